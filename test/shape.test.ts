// Property-based tests of the shape algebra with fast-check: broadcasting, reshape with
// -1, reduction shapes with keepdim, matmul batching, permute and expand. Shapes are small
// and random; values computed by the cpu backend are compared with the reference backend.

import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { ShapeError, Tensor, liveTensors, matmul, scope, tensor } from "../lib/index.js";
import { broadcastShapes, inferShape, sizeOf } from "../lib/shape.js";
import { expectClose, expectEqualValues, randomValues, seededRandom } from "./helpers.js";

const RUNS = { numRuns: 60 };

const dim = fc.integer({ min: 1, max: 4 });
const shapeArb = (maxRank = 4) => fc.array(dim, { minLength: 0, maxLength: maxRank });

/** Two shapes that broadcast: a full shape, each side dropping leading dims and some to 1. */
const broadcastPair = fc
  .tuple(
    shapeArb(4),
    fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    fc.nat(4),
    fc.nat(4),
  )
  .map(([full, onesA, onesB, dropA, dropB]) => {
    const a = full.map((d, i) => (onesA[i] ? 1 : d)).slice(Math.min(dropA, full.length));
    const b = full.map((d, i) => (onesB[i] ? 1 : d)).slice(Math.min(dropB, full.length));
    return [a, b] as const;
  });

/** A float32 tensor of `shape` with seeded values, on `device`. */
function filled(shape: readonly number[], seed: number, device: "cpu" | "reference"): Tensor {
  const values = randomValues(seededRandom(seed), sizeOf(shape), -2, 2);
  return tensor(values, { device }).reshape([...shape]);
}

/** Runs fn on both devices inside a scope and returns both results' values and shapes. */
function onBoth(fn: (device: "cpu" | "reference") => Tensor) {
  return scope(() => {
    const cpu = fn("cpu");
    const ref = fn("reference");
    return {
      cpu: { shape: [...cpu.shape], values: Array.from(cpu.dataSync()) },
      ref: { shape: [...ref.shape], values: Array.from(ref.dataSync()) },
    };
  });
}

describe("broadcasting", () => {
  it("is commutative and takes the larger of each pair of dims", () => {
    fc.assert(
      fc.property(broadcastPair, ([a, b]) => {
        const ab = broadcastShapes("test", a, b);
        expect(broadcastShapes("test", b, a)).toEqual(ab);
        expect(ab.length).toBe(Math.max(a.length, b.length));
        ab.forEach((d, i) => {
          const da = a[a.length - ab.length + i] ?? 1;
          const db = b[b.length - ab.length + i] ?? 1;
          expect(d).toBe(Math.max(da, db));
        });
      }),
      RUNS,
    );
  });

  it("names the disagreeing dim when two dims differ and neither is 1", () => {
    fc.assert(
      fc.property(
        shapeArb(3),
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 2, max: 5 }),
        (rest, x, y) => {
          fc.pre(x !== y);
          const a = [x, ...rest];
          const b = [y, ...rest];
          let caught: unknown;
          try {
            broadcastShapes("add", a, b);
          } catch (error) {
            caught = error;
          }
          expect(caught).toBeInstanceOf(ShapeError);
          expect((caught as ShapeError).dim).toBe(0);
          expect((caught as ShapeError).message).toBe(
            `add: shapes [${a.join(", ")}] and [${b.join(", ")}] cannot be broadcast: ` +
              `dimension 0 is ${x} and ${y}`,
          );
        },
      ),
      RUNS,
    );
  });

  it("gives the same element-wise results on cpu and reference", () => {
    const ops = ["add", "sub", "mul", "div", "maximum", "minimum"] as const;
    fc.assert(
      fc.property(broadcastPair, fc.constantFrom(...ops), fc.nat(), (pair, op, seed) => {
        const [a, b] = pair;
        const { cpu, ref } = onBoth((device) =>
          filled(a, seed, device)[op](filled(b, seed + 1, device)),
        );
        expect(cpu.shape).toEqual(broadcastShapes(op, a, b));
        expect(ref.shape).toEqual(cpu.shape);
        // One float32 rounding of the exact result on both sides: identical bits.
        expectEqualValues(cpu.values, ref.values, `${op} of [${a}] and [${b}]`);
      }),
      RUNS,
    );
  });

  it("expands on cpu as on reference", () => {
    fc.assert(
      fc.property(broadcastPair, fc.nat(), ([a, b], seed) => {
        const target = broadcastShapes("expand", a, b);
        const { cpu, ref } = onBoth((device) => filled(a, seed, device).expand(target));
        expect(cpu.shape).toEqual(target);
        expectEqualValues(cpu.values, ref.values);
      }),
      RUNS,
    );
  });
});

describe("reshape with -1", () => {
  /** A shape, and another of the same size: its dims shuffled and neighbours merged. */
  const reshapePair = fc
    .tuple(fc.array(dim, { minLength: 1, maxLength: 5 }), fc.nat(), fc.nat())
    .chain(([shape, mergeAt, unknownAt]) =>
      fc
        .shuffledSubarray(shape, { minLength: shape.length, maxLength: shape.length })
        .map((shuffled) => {
          const target = [...shuffled];
          const i = mergeAt % target.length;
          if (i + 1 < target.length) target.splice(i, 2, target[i]! * target[i + 1]!);
          const unknown = unknownAt % target.length;
          return { shape, target, unknown };
        }),
    );

  it("infers the missing dim and round-trips the values", () => {
    fc.assert(
      fc.property(reshapePair, fc.nat(), ({ shape, target, unknown }, seed) => {
        const requested = target.map((d, i) => (i === unknown ? -1 : d));
        expect(inferShape("reshape", shape, requested)).toEqual(target);
        scope(() => {
          const x = filled(shape, seed, "cpu");
          const y = x.reshape(requested);
          expect(y.shape).toEqual(target);
          expect(y.storage).toBe(x.storage);
          const back = y.reshape(shape.map((d, i) => (i === 0 ? -1 : d)));
          expect(back.shape).toEqual(shape);
          expectEqualValues(back, x);
          expect(x.flatten().shape).toEqual([sizeOf(shape)]);
        });
      }),
      RUNS,
    );
  });

  it("rejects a size that does not divide", () => {
    fc.assert(
      fc.property(fc.array(dim, { minLength: 1, maxLength: 4 }), (shape) => {
        const size = sizeOf(shape);
        const bad = size + 1;
        expect(() => inferShape("reshape", shape, [bad, -1])).toThrow(ShapeError);
        expect(() => inferShape("reshape", shape, [-1, -1])).toThrow(
          `reshape: only one dimension can be -1, got [-1, -1]`,
        );
      }),
      RUNS,
    );
  });
});

describe("reductions", () => {
  const reduction = fc
    .tuple(fc.array(dim, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.nat())
    .chain(([shape, keepdim, seed]) =>
      fc
        .subarray(
          shape.map((_, i) => i),
          { minLength: 1 },
        )
        .chain((axes) =>
          fc
            .array(fc.boolean(), { minLength: axes.length, maxLength: axes.length })
            .map((negative) => ({
              shape,
              keepdim,
              seed,
              axes,
              dims: axes.map((a, i) => (negative[i] ? a - shape.length : a)),
            })),
        ),
    );

  it("give keepdim and squeezed shapes, and cpu values match reference", () => {
    const ops = ["sum", "mean", "max", "min"] as const;
    fc.assert(
      fc.property(
        reduction,
        fc.constantFrom(...ops),
        ({ shape, keepdim, seed, axes, dims }, op) => {
          const expectedShape = keepdim
            ? shape.map((d, i) => (axes.includes(i) ? 1 : d))
            : shape.filter((_, i) => !axes.includes(i));
          const { cpu, ref } = onBoth((device) => filled(shape, seed, device)[op](dims, keepdim));
          expect(cpu.shape).toEqual(expectedShape);
          expect(ref.shape).toEqual(expectedShape);
          // cpu sums in float32 in its own order; up to 256 terms in [-2, 2].
          expectClose(cpu.values, ref.values, { atol: 2e-5, rtol: 1e-5 }, `${op} over ${dims}`);
        },
      ),
      RUNS,
    );
  });

  it("argmax along a dim matches reference", () => {
    fc.assert(
      fc.property(reduction, ({ shape, keepdim, seed, dims }) => {
        const { cpu, ref } = onBoth((device) =>
          filled(shape, seed, device).argmax(dims[0], keepdim),
        );
        expect(cpu.shape).toEqual(ref.shape);
        expect(cpu.values).toEqual(ref.values);
      }),
      RUNS,
    );
  });
});

describe("matmul batching", () => {
  const operands = fc.tuple(broadcastPair, dim, dim, dim, fc.nat(), fc.boolean(), fc.boolean());

  it("broadcasts batch dims and squeezes 1-D operands; cpu matches reference", () => {
    fc.assert(
      fc.property(operands, ([[batchA, batchB], m, k, n, seed, vecA, vecB]) => {
        const aShape = vecA ? [k] : [...batchA, m, k];
        const bShape = vecB ? [k] : [...batchB, k, n];
        const batch = broadcastShapes("matmul", vecA ? [] : batchA, vecB ? [] : batchB);
        const expected = [...batch, ...(vecA ? [] : [m]), ...(vecB ? [] : [n])];
        const { cpu, ref } = onBoth((device) =>
          matmul(filled(aShape, seed, device), filled(bShape, seed + 7, device)),
        );
        expect(cpu.shape).toEqual(expected);
        expect(ref.shape).toEqual(expected);
        expectClose(cpu.values, ref.values, { atol: 1e-5, rtol: 1e-5 }, "matmul");
      }),
      RUNS,
    );
  });
});

describe("permute", () => {
  const permuted = fc.array(dim, { minLength: 1, maxLength: 5 }).chain((shape) =>
    fc
      .shuffledSubarray(
        shape.map((_, i) => i),
        { minLength: shape.length, maxLength: shape.length },
      )
      .map((perm) => ({ shape, perm })),
  );

  it("moves dims as asked, matches reference and inverts", () => {
    fc.assert(
      fc.property(permuted, fc.nat(), ({ shape, perm }, seed) => {
        const { cpu, ref } = onBoth((device) => filled(shape, seed, device).permute(perm));
        expect(cpu.shape).toEqual(perm.map((p) => shape[p]));
        expectEqualValues(cpu.values, ref.values);
        const inverse = perm.map((_, i) => perm.indexOf(i));
        scope(() => {
          const x = filled(shape, seed, "cpu");
          expectEqualValues(x.permute(perm).permute(inverse), x);
        });
      }),
      RUNS,
    );
  });

  it("leaves no tensors behind", () => {
    const before = liveTensors();
    onBoth((device) => filled([2, 3], 1, device).permute(1, 0));
    expect(liveTensors()).toBe(before);
  });
});

// ---- the shape algebra against plain index arithmetic -------------------------------------
// Independent oracles rather than one backend against the other: broadcast values and
// gradients from explicit index maps, keepdim as a reshape of the squeezed result, and
// batched matmul as a loop of 2-D products over the broadcast batch index.

const DEVICES = ["cpu", "reference"] as const;

/** Row-major coordinates of flat index i in shape. */
function coordsOf(i: number, shape: readonly number[]): number[] {
  const coords = Array<number>(shape.length).fill(0);
  let rest = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    coords[d] = rest % shape[d]!;
    rest = Math.floor(rest / shape[d]!);
  }
  return coords;
}

/** Flat index in `shape` of the out coordinates `coords`, as broadcasting reads it. */
function broadcastIndex(coords: readonly number[], shape: readonly number[]): number {
  const lead = coords.length - shape.length;
  return shape.reduce((flat, d, i) => flat * d + (d === 1 ? 0 : coords[lead + i]!), 0);
}

/** Seeded values that are small integers, so sums and products are exact in float32. */
function integerValues(count: number, seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => Math.floor(random() * 9) - 4);
}

describe.each(DEVICES)("shape algebra against index arithmetic on %s", (device) => {
  const make = (shape: readonly number[], seed: number) =>
    tensor(integerValues(sizeOf(shape), seed), { device }).reshape([...shape]);

  it("a broadcast sum reads each operand at its broadcast index", () => {
    fc.assert(
      fc.property(broadcastPair, fc.nat(), ([a, b], seed) => {
        scope(() => {
          const x = make(a, seed);
          const y = make(b, seed + 1);
          const out = x.add(y);
          const xs = Array.from(x.dataSync());
          const ys = Array.from(y.dataSync());
          const expected = Array.from({ length: out.numel }, (_, i) => {
            const c = coordsOf(i, out.shape);
            return xs[broadcastIndex(c, a)]! + ys[broadcastIndex(c, b)]!;
          });
          expectEqualValues(out, expected, `[${a}] + [${b}]`);
        });
      }),
      RUNS,
    );
  });

  it("the gradient of a broadcast operand counts how often each element was read", () => {
    fc.assert(
      fc.property(broadcastPair, ([a, b]) => {
        const x = tensor(Array<number>(sizeOf(a)).fill(1), { device, requiresGrad: true });
        scope(() => {
          const xa = x.reshape([...a]);
          xa.mul(make(b, 3).mul(0).add(1)).sum().backward();
        });
        const out = broadcastShapes("add", a, b);
        const counts = Array<number>(sizeOf(a)).fill(0);
        for (let i = 0; i < sizeOf(out); i++) counts[broadcastIndex(coordsOf(i, out), a)]!++;
        expectEqualValues(x.grad!, counts, `gradient of [${a}] against [${b}]`);
        x.zeroGrad();
        x.dispose();
      }),
      RUNS,
    );
  });

  it("keepdim is the squeezed reduction with the reduced dims kept as 1", () => {
    const arb = fc
      .tuple(fc.array(dim, { minLength: 1, maxLength: 4 }), fc.nat())
      .chain(([shape, seed]) =>
        fc
          .subarray(
            shape.map((_, i) => i),
            { minLength: 1 },
          )
          .map((axes) => ({ shape, seed, axes })),
      );
    const ops = ["sum", "max", "min"] as const;
    fc.assert(
      fc.property(arb, fc.constantFrom(...ops), ({ shape, seed, axes }, op) => {
        scope(() => {
          const x = make(shape, seed);
          const kept = x[op](axes, true);
          const squeezed = x[op](axes, false);
          expect(kept.shape).toEqual(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
          expectEqualValues(kept.reshape([...squeezed.shape]), squeezed, `${op} over ${axes}`);
          // reducing one axis at a time, from the last, gives the same values
          const stepwise = [...axes].sort((p, q) => q - p).reduce((t, axis) => t[op](axis), x);
          expectEqualValues(stepwise, squeezed, `${op} axis by axis over ${axes}`);
          // the kept result broadcasts back against x
          expect(x.sub(kept).shape).toEqual(shape);
        });
      }),
      RUNS,
    );
  });

  it("batched matmul is a loop of 2-D products over the broadcast batch index", () => {
    const arb = fc.tuple(broadcastPair, dim, dim, dim, fc.nat());
    fc.assert(
      fc.property(arb, ([[batchA, batchB], m, k, n, seed]) => {
        scope(() => {
          const x = make([...batchA, m, k], seed);
          const y = make([...batchB, k, n], seed + 1);
          const out = matmul(x, y);
          const batch = broadcastShapes("matmul", batchA, batchB);
          expect(out.shape).toEqual([...batch, m, n]);
          const xs = Array.from(x.dataSync());
          const ys = Array.from(y.dataSync());
          const expected: number[] = [];
          for (let bi = 0; bi < sizeOf(batch); bi++) {
            const c = coordsOf(bi, batch);
            const xo = broadcastIndex(c, batchA) * m * k;
            const yo = broadcastIndex(c, batchB) * k * n;
            for (let i = 0; i < m; i++)
              for (let j = 0; j < n; j++) {
                let acc = 0;
                for (let p = 0; p < k; p++) acc += xs[xo + i * k + p]! * ys[yo + p * n + j]!;
                expected.push(acc);
              }
          }
          expectEqualValues(out, expected, `[${batchA}, ${m}, ${k}] @ [${batchB}, ${k}, ${n}]`);
        });
      }),
      RUNS,
    );
  });
});
