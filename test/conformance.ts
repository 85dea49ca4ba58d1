// The conformance suite: one backend against the reference backend, primitive by
// primitive, forward and backward, on random and edge shapes: size-1 dims, odd sizes,
// batch 1, stride > 1, padding, dilation, non-square kernels, groups, broadcasting in each
// direction and empty tensors where legal. Both backends get the same input values; each
// op states its tolerance, and a failure names the worst element and its ratio to it.
// test/backend-<name>.test.ts runs it for each backend; an absent backend's suite shows
// as skipped with the reason. Every case must leave the live-tensor count where it found
// it, and a leak names the case. Each section below is one function defining one describe
// block for the backend under test; the few over 100 lines are long lists of cases.

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import type {
  AdagradStepItem,
  AdagradStepOptions,
  AdamStepItem,
  AdamStepOptions,
  AvgPool2dParams,
  Backend,
  BinaryOp,
  Conv2dParams,
  CtcInputs,
  MatmulOptions,
  Pool2dParams,
  RandomKey,
  RawTensor,
  ReduceOp,
  Reduction,
  RmspropStepItem,
  RmspropStepOptions,
  SgdStepItem,
  SgdStepOptions,
  UnaryOp,
} from "../lib/backend/backend.js";
import { convOutputSize } from "../lib/backend/reference/conv.js";
import { poolOutputSize } from "../lib/backend/reference/pool.js";
import { referenceBackend } from "../lib/backend/reference/index.js";
import type { Device } from "../lib/backend/registry.js";
import { rnnWorkspaceWidth, type RnnParams } from "../lib/backend/rnn.js";
import type { DType } from "../lib/dtype.js";
import {
  DTypeError,
  DeepnodeError,
  IndexError,
  NativeError,
  ShapeError,
  ValueError,
  formatShape,
  liveTensors,
} from "../lib/index.js";
import {
  awayFromZero,
  expectClose,
  expectThrows,
  randomValues,
  raw,
  rawZeros,
  readRaw,
  seededRandom,
  sizeOf,
  toFloat32,
  type Tolerance,
} from "./helpers.js";
import { hardInputCases } from "./hard-inputs.js";

const ref: Backend = referenceBackend;

export const EXACT: Tolerance = { atol: 0, rtol: 0 };
export const ONE_ULP: Tolerance = { atol: 0, rtol: 1.2e-7 };
const TRANSCENDENTAL: Tolerance = { atol: 1e-7, rtol: 4e-7 };
const ACCUMULATE: Tolerance = { atol: 1e-5, rtol: 1e-5 };

/** Defines the whole suite for `target`: skipped, with the reason in its title, when absent. */
export function conformanceSuite(target: Target, availability: Availability): void {
  const title = availability.available
    ? `${target.name} backend conforms to the reference backend`
    : `${target.name} backend conformance suite (skipped: ${availability.reason})`;
  describe.skipIf(!availability.available)(title, () => {
    leakCheck();
    for (const section of SECTIONS) section(target);
  });
}

/** Every case must leave the live-tensor count where it found it; a leak names the case. */
export function leakCheck(): void {
  let liveBefore = 0;
  beforeEach(() => {
    liveBefore = liveTensors();
  });
  afterEach((context) => {
    expect(liveTensors(), `live tensors after "${context.task.name}"`).toBe(liveBefore);
  });
}

// ---- running one case on both backends ------------------------------------------------

/** A backend the suite checks; resolved only when a case runs, so an absent one just skips. */
export interface Target {
  name: string;
  device: Device;
  backend: () => Backend;
}

export interface Availability {
  available: boolean;
  reason: string;
}

/**
 * Runs `op` on the backend under test and on the reference with the same inputs and
 * compares the tensors it returns (outputs, or inputs it changes in place) with the given
 * tolerance. A case that leaves tensors alive fails naming its label.
 */
function conform(
  t: Target,
  label: string,
  tol: Tolerance,
  op: (backend: Backend) => RawTensor[],
): { actual: RawTensor[]; ref: RawTensor[] } {
  const before = liveTensors();
  const actual = op(t.backend());
  const expected = op(ref);
  expect(liveTensors(), `${label}: live tensors after the op`).toBe(before);
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => {
    const a = actual[i]!;
    expect(a.shape, `${label}: shape of result ${i}`).toEqual(e.shape);
    expect(a.dtype, `${label}: dtype of result ${i}`).toBe(e.dtype);
    const values = { ...a, storage: t.backend().read(a) };
    expectClose(values, e, tol, `${label} on ${t.name}: result ${i}`);
  });
  return { actual, ref: expected };
}

/** float32 values for a seed: uniform in [low, high), rounded to float32. */
function floats(seed: number, count: number, low = -1, high = 1): number[] {
  return toFloat32(randomValues(seededRandom(seed), count, low, high));
}

/** Small integers in [low, high]: ties and exact comparisons happen often. */
function integers(seed: number, count: number, low = -3, high = 3): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => low + Math.floor(random() * (high - low + 1)));
}

// ---- memory, fills and casts -----------------------------------------------------------

const DTYPES: DType[] = ["float32", "float64", "int32", "bool", "uint8", "int8"];

function memoryFillAndCastCases(t: Target): void {
  describe("memory, fill and cast", () => {
    it.each(DTYPES)("alloc zero-fills and read copies (%s)", (dtype) => {
      conform(t, `alloc ${dtype}`, EXACT, (b) => {
        const x = rawZeros(b, dtype, [3, 5]);
        const copy = b.read(x);
        copy[0] = 1;
        return [x];
      });
      conform(t, `alloc ${dtype} empty`, EXACT, (b) => [rawZeros(b, dtype, [0, 4])]);
    });

    it.each(DTYPES)("fromArray stores values as the dtype does (%s)", (dtype) => {
      const values =
        dtype === "uint8" || dtype === "bool" ? [0, 1, 7, 255, 3, 0] : [0, -1.5, 2.75, 100, -7, 3];
      conform(t, `fromArray ${dtype}`, EXACT, (b) => [raw(b, dtype, [6], values)]);
    });

    it.each(DTYPES)("fill (%s)", (dtype) => {
      // bool stores 1 for any non-zero value; the integer types truncate and wrap.
      for (const value of [1, 3, -5, -2.5, 300]) {
        conform(t, `fill ${dtype} ${value}`, EXACT, (b) => {
          const x = raw(b, dtype, [7, 3]);
          b.fill(x, value);
          return [x];
        });
      }
    });

    it("fill with special float values", () => {
      for (const value of [NaN, Infinity, -0, 1e-30, 3.4e38]) {
        conform(t, `fill ${value}`, EXACT, (b) => {
          const x = raw(b, "float32", [5]);
          b.fill(x, value);
          return [x];
        });
      }
    });

    const castValues: Record<DType, number[]> = {
      float32: [0, -1.75, 2.5, 100.25, -0, 7, -128, 127],
      float64: [0, -1.75, 2.5, 100.25, 1e-3, 7, -128, 127],
      int32: [0, -2, 3, 100, 1, 7, -128, 127],
      int8: [0, -2, 3, 100, 1, 7, -128, 127],
      uint8: [0, 2, 3, 100, 1, 7, 128, 255],
      bool: [0, 1, 1, 0, 1, 0, 0, 1],
    };
    // Targets that can hold every source value above (no out-of-range float -> int casts).
    const castPairs = DTYPES.flatMap((from) =>
      DTYPES.filter((to) => {
        if (to === "uint8") return from === "uint8" || from === "bool";
        if (to === "int8") return from !== "uint8";
        return true;
      }).map((to) => [from, to] as const),
    );

    it.each(castPairs)("cast %s -> %s", (from, to) => {
      conform(t, `cast ${from} -> ${to}`, EXACT, (b) => {
        const out = raw(b, to, [2, 4]);
        b.cast(out, raw(b, from, [2, 4], castValues[from]));
        return [out];
      });
    });

    it("cast of an empty tensor", () => {
      conform(t, "cast empty", EXACT, (b) => {
        const out = raw(b, "int32", [0]);
        b.cast(out, raw(b, "float32", [0]));
        return [out];
      });
    });
  });
}

// ---- randomness ------------------------------------------------------------------------

function randomKernelsCases(t: Target): void {
  describe("random kernels", () => {
    const keys: [RandomKey, number][] = [
      [{ seed: 0, offset: 0 }, 1],
      [{ seed: 5, offset: 12 }, 37],
      [{ seed: 2 ** 35 + 3, offset: 2 ** 33 }, 1001],
    ];

    it.each(keys)("uniform, normal and dropout for key %o, size %d", (key, size) => {
      conform(t, "randUniform", EXACT, (b) => {
        const out = raw(b, "float32", [size]);
        b.randUniform(out, key, -1, 4);
        return [out];
      });
      conform(t, "randNormal", { atol: 1e-6, rtol: 1e-6 }, (b) => {
        const out = raw(b, "float32", [size]);
        b.randNormal(out, key, 2, 0.5);
        return [out];
      });
      const xs = floats(size, size);
      conform(t, "dropout", EXACT, (b) => {
        const out = raw(b, "float32", [size]);
        const mask = raw(b, "float32", [size]);
        b.dropout(out, mask, raw(b, "float32", [size], xs), 0.3, key);
        return [out, mask];
      });
    });

    it("dropout refuses p outside [0, 1] with the reference's message", () => {
      for (const backend of [t.backend(), ref]) {
        const [out, mask, x] = [0, 1, 2].map(() => raw(backend, "float32", [2]));
        for (const [p, text] of [
          [1.5, "1.5"],
          [-1e-7, "-1e-7"],
          [NaN, "NaN"],
        ] as const) {
          const call = () => backend.dropout(out!, mask!, x!, p, { seed: 1, offset: 0 });
          expectThrows(call, ValueError, `dropout: p must be in [0, 1], got ${text}`);
        }
      }
    });
  });
}

// ---- element-wise ------------------------------------------------------------------------

interface UnaryCase {
  op: UnaryOp;
  tol: Tolerance;
  values: (seed: number, count: number) => number[];
  alpha?: number;
  beta?: number;
}

const positive = (seed: number, count: number) => floats(seed, count, 0.01, 10);
const signed = (seed: number, count: number) => floats(seed, count, -4, 4);
const nonZero = (seed: number, count: number) =>
  toFloat32(awayFromZero(seededRandom(seed), count, 0.05, 5));
const halves = (seed: number, count: number) => integers(seed, count, -8, 8).map((v) => v / 2);

const UNARY_CASES: UnaryCase[] = [
  { op: "neg", tol: EXACT, values: signed },
  { op: "exp", tol: TRANSCENDENTAL, values: (s, n) => floats(s, n, -20, 20) },
  { op: "log", tol: TRANSCENDENTAL, values: (s, n) => floats(s, n, 1e-3, 1e3) },
  { op: "sqrt", tol: EXACT, values: positive },
  { op: "abs", tol: EXACT, values: signed },
  { op: "sign", tol: EXACT, values: (s, n) => integers(s, n, -2, 2) },
  { op: "relu", tol: EXACT, values: signed },
  { op: "sigmoid", tol: TRANSCENDENTAL, values: (s, n) => floats(s, n, -12, 12) },
  { op: "tanh", tol: TRANSCENDENTAL, values: (s, n) => floats(s, n, -6, 6) },
  { op: "square", tol: EXACT, values: signed },
  { op: "reciprocal", tol: EXACT, values: nonZero },
  { op: "sin", tol: TRANSCENDENTAL, values: (s, n) => floats(s, n, -10, 10) },
  { op: "cos", tol: TRANSCENDENTAL, values: (s, n) => floats(s, n, -10, 10) },
  { op: "floor", tol: EXACT, values: halves },
  { op: "ceil", tol: EXACT, values: halves },
  { op: "round", tol: EXACT, values: halves },
  { op: "affine", tol: ONE_ULP, values: signed, alpha: 2.5, beta: -0.75 },
  { op: "pow", tol: TRANSCENDENTAL, values: positive, alpha: 2.5 },
  { op: "pow", tol: TRANSCENDENTAL, values: positive, alpha: -1.5 },
  { op: "pow", tol: ONE_ULP, values: signed, alpha: 2 },
  { op: "pow", tol: TRANSCENDENTAL, values: signed, alpha: 3 },
  { op: "pow", tol: ONE_ULP, values: positive, alpha: 0.5 },
  { op: "clamp", tol: EXACT, values: signed, alpha: -1, beta: 2 },
];

// Odd sizes around the vector widths, a size-1 tensor, an empty one and a long one.
const UNARY_SHAPES: number[][] = [[0], [1], [7], [3, 5], [17], [1027]];

function unaryCases(t: Target): void {
  describe("unary", () => {
    it.each(UNARY_CASES.map((c) => [c.op, c.alpha ?? "", c] as const))(
      "%s %s on float32",
      (op, _alpha, testCase) => {
        UNARY_SHAPES.forEach((shape, i) => {
          const values = testCase.values(i + 1, sizeOf(shape));
          conform(t, `${op} ${JSON.stringify(shape)}`, testCase.tol, (b) => {
            const out = raw(b, "float32", shape);
            b.unary(op, out, raw(b, "float32", shape, values), testCase.alpha, testCase.beta);
            return [out];
          });
        });
      },
    );

    it.each(UNARY_CASES.filter((c) => c.op !== "pow").map((c) => [c.op, c] as const))(
      "%s on special values",
      (op, testCase) => {
        const values = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 0.5, 88.5, -88.5];
        conform(t, `${op} special`, testCase.tol, (b) => {
          const out = raw(b, "float32", [values.length]);
          b.unary(
            op,
            out,
            raw(b, "float32", [values.length], values),
            testCase.alpha,
            testCase.beta,
          );
          return [out];
        });
      },
    );

    const INT_UNARY: [UnaryOp, number?, number?][] = [
      ["neg"],
      ["abs"],
      ["sign"],
      ["square"],
      ["affine", 3, -2],
    ];

    it.each(INT_UNARY)("%s on int32", (op, alpha, beta) => {
      const values = [...integers(4, 20, -100, 100), 2 ** 31 - 1, -(2 ** 31)];
      conform(t, `${op} int32`, EXACT, (b) => {
        const out = raw(b, "int32", [values.length]);
        b.unary(op, out, raw(b, "int32", [values.length], values), alpha, beta);
        return [out];
      });
    });
  });
}

const BINARY_OPS: [BinaryOp, Tolerance][] = [
  ["add", EXACT],
  ["sub", EXACT],
  ["mul", EXACT],
  ["div", EXACT],
  ["pow", TRANSCENDENTAL],
  ["maximum", EXACT],
  ["minimum", EXACT],
  ["floordiv", EXACT],
  ["remainder", { atol: 1e-6, rtol: 1e-6 }],
  ["eq", EXACT],
  ["ne", EXACT],
  ["lt", EXACT],
  ["le", EXACT],
  ["gt", EXACT],
  ["ge", EXACT],
  ["relu_backward", EXACT],
  // cpu rounds each float32 step; the reference rounds once
  ["sigmoid_backward", { atol: 2e-7, rtol: 4e-7 }],
  ["tanh_backward", { atol: 2e-7, rtol: 4e-7 }],
];

const COMPARISONS: BinaryOp[] = ["eq", "ne", "lt", "le", "gt", "ge"];

// [a, b] pairs: equal shapes, each side broadcasting, both broadcasting, a 0-d operand,
// size-1 dims, an empty result, and a long row that takes the vector loops.
const BROADCAST_PAIRS: [number[], number[]][] = [
  [
    [3, 5],
    [3, 5],
  ],
  [[3, 5], [5]],
  [[5], [3, 5]],
  [
    [3, 1],
    [1, 5],
  ],
  [
    [2, 1, 4],
    [3, 1],
  ],
  [[], [4, 3]],
  [[4, 3], []],
  [[1], [1]],
  [
    [2, 1, 1],
    [1, 1, 3],
  ],
  [[0, 3], [3]],
  [[64, 33], [33]],
  [
    [64, 1],
    [64, 33],
  ],
  [
    [2, 3, 2, 2],
    [1, 3, 1, 1],
  ],
];

function outShapeOf(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, i) => {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    return da === 1 ? db : da;
  });
}

function binaryValues(op: BinaryOp, seed: number, count: number, side: "a" | "b"): number[] {
  if (COMPARISONS.includes(op) || op === "maximum" || op === "minimum") {
    return integers(seed, count, -2, 2);
  }
  if (op === "pow") return side === "a" ? floats(seed, count, 0.1, 3) : floats(seed, count, -3, 3);
  if (op === "div" || op === "floordiv" || op === "remainder") {
    return side === "a" ? floats(seed, count, -10, 10) : nonZero(seed, count);
  }
  if (op === "sigmoid_backward" && side === "b") return floats(seed, count, 0, 1);
  return floats(seed, count, -2, 2);
}

function binaryCases(t: Target): void {
  describe("binary", () => {
    it.each(BINARY_OPS)("%s on float32 with broadcasting", (op, tol) => {
      BROADCAST_PAIRS.forEach(([aShape, bShape], i) => {
        const outShape = outShapeOf(aShape, bShape);
        const aValues = binaryValues(op, 2 * i + 1, sizeOf(aShape), "a");
        const bValues = binaryValues(op, 2 * i + 2, sizeOf(bShape), "b");
        const outDType: DType = COMPARISONS.includes(op) ? "bool" : "float32";
        conform(t, `${op} ${JSON.stringify(aShape)} ${JSON.stringify(bShape)}`, tol, (b) => {
          const out = raw(b, outDType, outShape);
          b.binary(op, out, raw(b, "float32", aShape, aValues), raw(b, "float32", bShape, bValues));
          return [out];
        });
      });
    });

    const specialOps = BINARY_OPS.filter(([op]) => !op.endsWith("_backward"));
    const runSpecials = (op: BinaryOp, tol: Tolerance, specials: number[]) => {
      const a = specials.flatMap((x) => specials.map(() => x));
      const bv = specials.flatMap(() => specials);
      const outDType: DType = COMPARISONS.includes(op) ? "bool" : "float32";
      conform(t, `${op} special`, tol, (b) => {
        const out = raw(b, outDType, [a.length]);
        b.binary(op, out, raw(b, "float32", [a.length], a), raw(b, "float32", [a.length], bv));
        return [out];
      });
    };

    it.each(specialOps)("%s on NaN, zeros of both signs and finite values", (op, tol) => {
      runSpecials(op, tol, [NaN, 0, -0, 1, -1, 2.5, -7.25]);
    });

    it.each(specialOps.filter(([op]) => op !== "floordiv" && op !== "remainder"))(
      "%s on infinities",
      (op, tol) => {
        runSpecials(op, tol, [NaN, Infinity, -Infinity, 0, -0, 1, -1, 2.5]);
      },
    );

    // PyTorch's fmod-based rules: floordiv(inf, 1) is NaN, floordiv(1, -inf) is -1,
    // remainder(1, inf) is 1, remainder(-0, 1) is -0.
    it.each(specialOps.filter(([op]) => op === "floordiv" || op === "remainder"))(
      "%s on infinities",
      (op, tol) => {
        runSpecials(op, tol, [NaN, Infinity, -Infinity, 0, -0, 1, -1, 2.5]);
      },
    );

    const INT_BINARY: BinaryOp[] = [
      "add",
      "sub",
      "mul",
      "maximum",
      "minimum",
      "floordiv",
      "remainder",
    ];

    it.each(INT_BINARY)("%s on int32, with wrap-around and negative divisors", (op) => {
      const a = [...integers(7, 30, -50, 50), 2 ** 31 - 1, -(2 ** 31), 7, -7];
      const divisors = integers(8, 34, -9, 9).map((v) => (v === 0 ? 3 : v));
      const bValues =
        op === "floordiv" || op === "remainder"
          ? divisors
          : [...integers(8, 30, -50, 50), 1, 1, -2, 2];
      conform(t, `${op} int32`, EXACT, (b) => {
        const out = raw(b, "int32", [a.length]);
        b.binary(op, out, raw(b, "int32", [a.length], a), raw(b, "int32", [a.length], bValues));
        return [out];
      });
      conform(t, `${op} int32 broadcast`, EXACT, (b) => {
        const out = raw(b, "int32", [4, 34]);
        b.binary(
          op,
          out,
          raw(b, "int32", [1, 34], bValues),
          raw(b, "int32", [4, 1], [3, -2, 5, 1]),
        );
        return [out];
      });
    });

    it("where with broadcasting of cond, a and b", () => {
      const cases: [number[], number[], number[]][] = [
        [
          [3, 4],
          [3, 4],
          [3, 4],
        ],
        [[3, 1], [4], []],
        [[4], [3, 1], [3, 4]],
        [[2, 1, 4], [3, 1], [1]],
        [[0, 4], [4], [4]],
        [[50, 33], [33], [50, 1]],
      ];
      cases.forEach(([condShape, aShape, bShape], i) => {
        const outShape = outShapeOf(condShape, outShapeOf(aShape, bShape));
        const cond = integers(i, sizeOf(condShape), 0, 1);
        for (const dtype of ["float32", "int32"] as const) {
          const aValues = integers(i + 10, sizeOf(aShape), -9, 9);
          const bValues = integers(i + 20, sizeOf(bShape), -9, 9);
          conform(
            t,
            `where ${JSON.stringify([condShape, aShape, bShape])} ${dtype}`,
            EXACT,
            (b) => {
              const out = raw(b, dtype, outShape);
              b.where(
                out,
                raw(b, "bool", condShape, cond),
                raw(b, dtype, aShape, aValues),
                raw(b, dtype, bShape, bValues),
              );
              return [out];
            },
          );
        }
      });
    });

    it("expand to larger shapes, all dtypes", () => {
      const cases: [number[], number[]][] = [
        [
          [3, 1],
          [2, 3, 4],
        ],
        [[], [2, 2]],
        [[1], [0]],
        [
          [1, 5],
          [4, 5],
        ],
        [
          [2, 1, 3],
          [2, 7, 3],
        ],
        [[33], [40, 33]],
      ];
      for (const dtype of ["float32", "int32", "uint8", "bool", "int8"] as const) {
        cases.forEach(([from, to], i) => {
          const values = integers(i, sizeOf(from), 0, 1);
          conform(
            t,
            `expand ${JSON.stringify(from)} -> ${JSON.stringify(to)} ${dtype}`,
            EXACT,
            (b) => {
              const out = raw(b, dtype, to);
              b.expand(out, raw(b, dtype, from, values));
              return [out];
            },
          );
        });
      }
    });

    it("permute: transposes, size-1 dims, rank 0 and 1, empty and large", () => {
      const cases: [number[], number[]][] = [
        [
          [2, 3, 4],
          [2, 0, 1],
        ],
        [
          [2, 3, 4],
          [0, 2, 1],
        ],
        [
          [1, 5, 1, 3],
          [3, 2, 1, 0],
        ],
        [[7], [0]],
        [[], []],
        [
          [0, 3],
          [1, 0],
        ],
        [
          [33, 65],
          [1, 0],
        ],
        [
          [3, 17, 19],
          [2, 1, 0],
        ],
        [
          [2, 3, 4, 5, 2],
          [4, 0, 3, 1, 2],
        ],
      ];
      for (const dtype of ["float32", "int32", "uint8"] as const) {
        cases.forEach(([shape, perm], i) => {
          const values = integers(i, sizeOf(shape), 0, 100);
          conform(
            t,
            `permute ${JSON.stringify(shape)} by ${JSON.stringify(perm)} ${dtype}`,
            EXACT,
            (b) => {
              const out = raw(
                b,
                dtype,
                perm.map((p) => shape[p]!),
              );
              b.permute(out, raw(b, dtype, shape, values), perm);
              return [out];
            },
          );
        });
      }
    });
  });
}

// ---- reductions --------------------------------------------------------------------------

const REDUCE_CASES: [number[], number[]][] = [
  [[5], [0]],
  [[3, 4, 5], [1]],
  [
    [3, 4, 5],
    [0, 2],
  ],
  [
    [3, 4, 5],
    [0, 1, 2],
  ],
  [[3, 4, 5], [2]],
  [
    [1, 7, 1],
    [0, 2],
  ],
  [[64, 129], [0]],
  [[64, 129], [1]],
  [
    [2, 3, 4, 5],
    [1, 3],
  ],
  [[4, 6], []],
];

function keptShape(shape: number[], axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function reductionsCases(t: Target): void {
  describe("reductions", () => {
    const floatOps: [ReduceOp, Tolerance][] = [
      ["sum", ACCUMULATE],
      ["mean", ACCUMULATE],
      ["max", EXACT],
      ["min", EXACT],
      ["prod", { atol: 1e-30, rtol: 1e-5 }],
    ];

    it.each(floatOps)("%s on float32 over axes", (op, tol) => {
      REDUCE_CASES.forEach(([shape, axes], i) => {
        // prod of values near 1 stays in range over 129 terms
        const values =
          op === "prod" ? floats(i, sizeOf(shape), 0.9, 1.1) : floats(i, sizeOf(shape));
        conform(t, `${op} ${JSON.stringify(shape)} over ${JSON.stringify(axes)}`, tol, (b) => {
          const out = raw(b, "float32", keptShape(shape, axes));
          b.reduce(op, out, raw(b, "float32", shape, values), axes);
          return [out];
        });
      });
    });

    it.each(["sum", "max", "min", "prod"] as const)("%s on int32", (op) => {
      REDUCE_CASES.slice(0, 6).forEach(([shape, axes], i) => {
        const values = integers(i, sizeOf(shape), -5, 5);
        conform(t, `${op} int32 ${JSON.stringify(shape)}`, EXACT, (b) => {
          const out = raw(b, "int32", keptShape(shape, axes));
          b.reduce(op, out, raw(b, "int32", shape, values), axes);
          return [out];
        });
      });
    });

    it("sum of bool and uint8 counts into int32", () => {
      for (const dtype of ["bool", "uint8"] as const) {
        const values = integers(3, 60, 0, 1);
        conform(t, `sum ${dtype}`, EXACT, (b) => {
          const out = raw(b, "int32", [3, 1]);
          b.reduce("sum", out, raw(b, dtype, [3, 20], values), [1]);
          return [out];
        });
      }
    });

    it("sum and prod over an empty axis give 0 and 1; NaN propagates through max", () => {
      for (const op of ["sum", "prod"] as const) {
        conform(t, `${op} empty`, EXACT, (b) => {
          const out = raw(b, "float32", [1, 3]);
          b.reduce(op, out, raw(b, "float32", [0, 3]), [0]);
          return [out];
        });
      }
      for (const op of ["max", "min", "sum"] as const) {
        conform(t, `${op} NaN`, EXACT, (b) => {
          const out = raw(b, "float32", [2, 1]);
          b.reduce(op, out, raw(b, "float32", [2, 3], [1, NaN, 3, -Infinity, 2, Infinity]), [1]);
          return [out];
        });
      }
    });

    it("argmax and argmin: every axis, ties, NaN and integer inputs", () => {
      const shape = [3, 4, 5];
      for (const op of ["argmax", "argmin"] as const) {
        for (const axis of [0, 1, 2]) {
          for (const dtype of ["float32", "int32"] as const) {
            const values = integers(axis + 1, 60, -2, 2);
            conform(t, `${op} axis ${axis} ${dtype}`, EXACT, (b) => {
              const out = raw(b, "int32", keptShape(shape, [axis]));
              b.argReduce(op, out, raw(b, dtype, shape, values), axis);
              return [out];
            });
          }
        }
        conform(t, `${op} NaN`, EXACT, (b) => {
          const out = raw(b, "int32", [2, 1]);
          b.argReduce(op, out, raw(b, "float32", [2, 4], [1, NaN, 5, NaN, -1, 2, 2, -1]), 1);
          return [out];
        });
        conform(t, `${op} long row`, EXACT, (b) => {
          const out = raw(b, "int32", [2, 1]);
          b.argReduce(op, out, raw(b, "float32", [2, 1000], floats(9, 2000)), 1);
          return [out];
        });
      }
    });
  });
}

// ---- matmul --------------------------------------------------------------------------------

interface MatmulCase {
  batch: number;
  batchA: number;
  batchB: number;
  m: number;
  k: number;
  n: number;
}

const MATMUL_SIZES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 1],
  [3, 5, 4],
  [7, 13, 9],
  [33, 65, 17],
  [130, 70, 131],
];

const MATMUL_BATCHES: [number, number, number][] = [
  [1, 1, 1],
  [3, 3, 3],
  [3, 1, 3],
  [3, 3, 1],
];

function runMatmul(b: Backend, c: MatmulCase, options: MatmulOptions, seed: number): RawTensor[] {
  const aShape = options.transA ? [c.batchA, c.k, c.m] : [c.batchA, c.m, c.k];
  const bShape = options.transB ? [c.batchB, c.n, c.k] : [c.batchB, c.k, c.n];
  const out = raw(b, "float32", [c.batch, c.m, c.n], floats(seed + 2, c.batch * c.m * c.n));
  const lhs = raw(b, "float32", aShape, floats(seed, sizeOf(aShape)));
  const rhs = raw(b, "float32", bShape, floats(seed + 1, sizeOf(bShape)));
  b.matmul(out, lhs, rhs, options);
  return [out];
}

function matmulCases(t: Target): void {
  describe("matmul", () => {
    const transposes = [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const;

    it.each(transposes)(
      "transA %s, transB %s over sizes and batch broadcasting",
      (transA, transB) => {
        MATMUL_SIZES.forEach(([m, k, n], i) => {
          const batches = m * k * n > 100_000 ? MATMUL_BATCHES.slice(0, 2) : MATMUL_BATCHES;
          for (const [batch, batchA, batchB] of batches) {
            const c = { batch, batchA, batchB, m, k, n };
            const options = { transA, transB, alpha: 1, beta: 0 };
            conform(t, `matmul ${JSON.stringify(c)}`, ACCUMULATE, (b) =>
              runMatmul(b, c, options, i),
            );
          }
        });
      },
    );

    it("alpha and beta scale the product and accumulate into out", () => {
      const c = { batch: 2, batchA: 2, batchB: 1, m: 5, k: 6, n: 7 };
      for (const [alpha, beta] of [
        [0.5, 0],
        [1, 1],
        [-2, 0.75],
        [0, 1],
      ] as const) {
        const options = { transA: false, transB: true, alpha, beta };
        conform(t, `matmul alpha ${alpha} beta ${beta}`, ACCUMULATE, (b) =>
          runMatmul(b, c, options, 3),
        );
      }
    });

    // 27 products of 32^3 are 96^3 multiply-adds, where the cpu kernel starts to thread
    // across the batch; below it one thread runs them all.
    it("batches on both sides of the cpu kernel's threading threshold", () => {
      for (const batch of [26, 27]) {
        for (const [batchA, batchB, transA, transB, beta] of [
          [batch, batch, false, false, 0],
          [1, batch, true, false, 0.5],
          [batch, 1, false, true, 1],
        ] as const) {
          const c = { batch, batchA, batchB, m: 32, k: 32, n: 32 };
          const options = { transA, transB, alpha: 1, beta };
          conform(t, `matmul ${JSON.stringify({ ...c, ...options })}`, ACCUMULATE, (b) =>
            runMatmul(b, c, options, batch),
          );
        }
      }
    });

    it("empty dims: m = 0, n = 0, and k = 0 (out = beta * out)", () => {
      const cases: MatmulCase[] = [
        { batch: 1, batchA: 1, batchB: 1, m: 0, k: 3, n: 4 },
        { batch: 2, batchA: 2, batchB: 2, m: 3, k: 4, n: 0 },
        { batch: 2, batchA: 1, batchB: 2, m: 3, k: 0, n: 4 },
        { batch: 0, batchA: 1, batchB: 1, m: 3, k: 2, n: 4 },
      ];
      for (const c of cases) {
        const options = { transA: false, transB: false, alpha: 1, beta: 0.5 };
        conform(t, `matmul ${JSON.stringify(c)}`, EXACT, (b) => runMatmul(b, c, options, 4));
      }
      // beta 0 writes zeros into an uninitialised out, whatever it held (poisoned: NaN).
      conform(t, "matmul k = 0, beta 0, uninitialised out", EXACT, (b) => {
        const out = raw(b, "float32", [2, 3, 4]);
        b.matmul(out, raw(b, "float32", [2, 3, 0]), raw(b, "float32", [2, 0, 4]), {
          transA: false,
          transB: false,
          alpha: 1,
          beta: 0,
        });
        return [out];
      });
    });
  });
}

// ---- convolution ------------------------------------------------------------------------

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  weight: [number, number, number, number];
  bias: boolean;
  params: Conv2dParams;
}

function convParams(
  stride: [number, number] = [1, 1],
  padding: [number, number] = [0, 0],
  dilation: [number, number] = [1, 1],
  groups = 1,
): Conv2dParams {
  return { stride, padding, dilation, groups };
}

const CONV_CASES: ConvCase[] = [
  {
    name: "3x3, one channel",
    x: [1, 1, 5, 5],
    weight: [1, 1, 3, 3],
    bias: false,
    params: convParams(),
  },
  {
    name: "non-square kernel, stride [2, 1], padding [1, 0], bias",
    x: [2, 3, 7, 6],
    weight: [4, 3, 3, 2],
    bias: true,
    params: convParams([2, 1], [1, 0]),
  },
  {
    name: "dilation 2, padding 2",
    x: [1, 2, 8, 9],
    weight: [3, 2, 3, 3],
    bias: true,
    params: convParams([1, 1], [2, 2], [2, 2]),
  },
  {
    name: "groups 2, stride 2",
    x: [2, 4, 9, 7],
    weight: [6, 2, 3, 3],
    bias: true,
    params: convParams([2, 2], [1, 1], [1, 1], 2),
  },
  {
    name: "depthwise (groups = channels)",
    x: [1, 3, 6, 6],
    weight: [3, 1, 3, 3],
    bias: false,
    params: convParams([1, 1], [1, 1], [1, 1], 3),
  },
  {
    name: "1x1, stride 2",
    x: [3, 5, 5, 4],
    weight: [2, 5, 1, 1],
    bias: true,
    params: convParams([2, 2]),
  },
  {
    name: "kernel as large as the input",
    x: [2, 2, 4, 3],
    weight: [5, 2, 4, 3],
    bias: true,
    params: convParams(),
  },
  {
    name: "stride larger than kernel, dilation [1, 3]",
    x: [1, 2, 11, 12],
    weight: [2, 2, 2, 2],
    bias: false,
    params: convParams([3, 2], [0, 1], [1, 3]),
  },
  {
    name: "many channels, padding 1 (the GEMM path)",
    x: [2, 16, 10, 10],
    weight: [32, 16, 3, 3],
    bias: true,
    params: convParams([1, 1], [1, 1]),
  },
];

function convOut(c: ConvCase): number[] {
  const [n, , h, w] = c.x;
  const [cOut, , kH, kW] = c.weight;
  const { stride, padding, dilation } = c.params;
  return [
    n,
    cOut,
    convOutputSize(h, kH, stride[0], padding[0], dilation[0]),
    convOutputSize(w, kW, stride[1], padding[1], dilation[1]),
  ];
}

function conv2dCases(t: Target): void {
  describe("conv2d", () => {
    it.each(CONV_CASES.map((c) => [c.name, c] as const))("%s: forward", (_name, c) => {
      const xs = floats(1, sizeOf(c.x));
      const ws = floats(2, sizeOf(c.weight));
      const bs = floats(3, c.weight[0]);
      conform(t, "conv2d", ACCUMULATE, (b) => {
        const out = raw(b, "float32", convOut(c));
        const bias = c.bias ? raw(b, "float32", [c.weight[0]], bs) : null;
        b.conv2d(out, raw(b, "float32", c.x, xs), raw(b, "float32", c.weight, ws), bias, c.params);
        return [out];
      });
    });

    it.each(CONV_CASES.map((c) => [c.name, c] as const))("%s: backward data", (_name, c) => {
      const gs = floats(4, sizeOf(convOut(c)));
      const ws = floats(2, sizeOf(c.weight));
      conform(t, "conv2dBackwardData", ACCUMULATE, (b) => {
        const gradX = raw(b, "float32", c.x);
        const gradOut = raw(b, "float32", convOut(c), gs);
        b.conv2dBackwardData(gradX, gradOut, raw(b, "float32", c.weight, ws), c.params);
        return [gradX];
      });
    });

    it.each(CONV_CASES.map((c) => [c.name, c] as const))("%s: backward weight", (_name, c) => {
      const gs = floats(4, sizeOf(convOut(c)));
      const xs = floats(1, sizeOf(c.x));
      conform(t, "conv2dBackwardWeight", ACCUMULATE, (b) => {
        const gradWeight = raw(b, "float32", c.weight);
        const gradOut = raw(b, "float32", convOut(c), gs);
        b.conv2dBackwardWeight(gradWeight, gradOut, raw(b, "float32", c.x, xs), c.params);
        return [gradWeight];
      });
    });
  });
}

// ---- pooling --------------------------------------------------------------------------

interface PoolCase {
  name: string;
  x: [number, number, number, number];
  params: Pool2dParams;
  ties?: boolean;
}

function poolParams(
  kernelSize: [number, number],
  stride: [number, number] = kernelSize,
  padding: [number, number] = [0, 0],
  dilation: [number, number] = [1, 1],
  ceilMode = false,
): Pool2dParams {
  return { kernelSize, stride, padding, dilation, ceilMode };
}

const POOL_CASES: PoolCase[] = [
  { name: "2x2 stride 2", x: [2, 3, 6, 6], params: poolParams([2, 2]) },
  { name: "odd input, 2x2 floor", x: [1, 2, 7, 5], params: poolParams([2, 2]) },
  { name: "3x3 stride 2 padding 1", x: [2, 2, 7, 8], params: poolParams([3, 3], [2, 2], [1, 1]) },
  {
    name: "non-square kernel, dilation [2, 1], stride 1 (overlapping)",
    x: [1, 2, 8, 7],
    params: poolParams([2, 3], [1, 1], [0, 1], [2, 1]),
  },
  { name: "ceil mode", x: [1, 1, 7, 7], params: poolParams([2, 2], [2, 2], [0, 0], [1, 1], true) },
  {
    name: "ceil mode with padding",
    x: [2, 1, 6, 5],
    params: poolParams([3, 3], [2, 2], [1, 1], [1, 1], true),
  },
  { name: "1x1 kernel", x: [1, 3, 3, 4], params: poolParams([1, 1]) },
  {
    name: "ties: first maximum wins",
    x: [2, 2, 6, 6],
    params: poolParams([3, 3], [1, 1]),
    ties: true,
  },
];

function poolOut(c: PoolCase): number[] {
  const { kernelSize, stride, padding, dilation, ceilMode } = c.params;
  return [
    c.x[0],
    c.x[1],
    ...[0, 1].map((i) =>
      poolOutputSize(c.x[2 + i]!, kernelSize[i]!, stride[i]!, padding[i]!, dilation[i]!, ceilMode),
    ),
  ];
}

function maxPool2dCases(t: Target): void {
  describe("maxPool2d", () => {
    it.each(POOL_CASES.map((c) => [c.name, c] as const))("%s: forward and backward", (_name, c) => {
      const xs = c.ties ? integers(5, sizeOf(c.x), 0, 2) : floats(5, sizeOf(c.x));
      const forward = conform(t, "maxPool2d", EXACT, (b) => {
        const out = raw(b, "float32", poolOut(c));
        const indices = raw(b, "int32", poolOut(c));
        b.maxPool2d(out, indices, raw(b, "float32", c.x, xs), c.params);
        return [out, indices];
      });
      const indices = Array.from(forward.ref[1]!.storage as Int32Array);
      const gs = floats(6, sizeOf(poolOut(c)));
      conform(t, "maxPool2dBackward", { atol: 1e-6, rtol: 1e-6 }, (b) => {
        const gradX = rawZeros(b, "float32", c.x);
        const gradOut = raw(b, "float32", poolOut(c), gs);
        b.maxPool2dBackward(gradX, gradOut, raw(b, "int32", poolOut(c), indices));
        return [gradX];
      });
    });
  });
}

// ---- softmax ----------------------------------------------------------------------------

const SOFTMAX_CASES: [number[], number][] = [
  [[3, 5], 1],
  [[3, 5], 0],
  [[2, 3, 4], 1],
  [[1, 1], 1],
  [[4, 1000], 1],
  [[7], 0],
  [[2, 33, 3], 2],
];

function softmaxCases(t: Target): void {
  describe("softmax", () => {
    it.each(SOFTMAX_CASES)("shape %o along axis %d, softmax and log-softmax", (shape, axis) => {
      const xs = floats(axis + 1, sizeOf(shape), -5, 5);
      const gs = floats(axis + 2, sizeOf(shape));
      for (const log of [false, true]) {
        const tol = { atol: 1e-6, rtol: 1e-5 };
        const forward = conform(t, `softmax log=${log}`, tol, (b) => {
          const out = raw(b, "float32", shape);
          b.softmax(out, raw(b, "float32", shape, xs), axis, log);
          return [out];
        });
        const y = Array.from(forward.ref[0]!.storage as Float32Array);
        conform(t, `softmaxBackward log=${log}`, tol, (b) => {
          const gradX = raw(b, "float32", shape);
          b.softmaxBackward(
            gradX,
            raw(b, "float32", shape, gs),
            raw(b, "float32", shape, y),
            axis,
            log,
          );
          return [gradX];
        });
      }
    });

    const extreme = (log: boolean) => {
      const xs = [1000, 999, -1000, 0, -Infinity, 5, 5, -Infinity];
      conform(t, `softmax extreme log=${log}`, { atol: 1e-6, rtol: 1e-6 }, (b) => {
        const out = raw(b, "float32", [2, 4]);
        b.softmax(out, raw(b, "float32", [2, 4], xs), 1, log);
        return [out];
      });
    };

    it("softmax is stable for large inputs and handles -Infinity", () => extreme(false));

    // log-softmax must compute (x - max) - log(sum), as PyTorch and the reference do:
    // x - (max + log(sum)) carries ulp(1000) ~ 6e-5 of error for logits near 1000.
    it("log-softmax is exact for large inputs", () => extreme(true));

    // One dominant logit over many small ones: its log-probability is -log(1 + 0.005), small,
    // so the sum of exponentials must be near exact (float lanes alone lose 1e-4 of it).
    it("log-softmax keeps a dominant class's small log-probability accurate on long rows", () => {
      const n = 5000;
      const xs = floats(41, 2 * n, -5, -3);
      xs[17] = 10;
      xs[n + 4321] = 10;
      conform(t, "log-softmax dominant", { atol: 1e-9, rtol: 1e-6 }, (b) => {
        const out = raw(b, "float32", [2, n]);
        b.softmax(out, raw(b, "float32", [2, n], xs), 1, true);
        return [out];
      });
    });
  });
}

// ---- indexing ----------------------------------------------------------------------------

function gatherAndScatterAddCases(t: Target): void {
  describe("gather and scatterAdd", () => {
    const shape = [3, 4, 5];

    it.each([0, 1, 2])("along axis %d, float32 and int32", (axis) => {
      const indexShape = shape.map((d, i) => (i === axis ? 2 * d + 1 : d));
      const index = integers(axis, sizeOf(indexShape), 0, shape[axis]! - 1);
      for (const dtype of ["float32", "int32"] as const) {
        const xs = integers(axis + 5, sizeOf(shape), -9, 9);
        conform(t, `gather axis ${axis} ${dtype}`, EXACT, (b) => {
          const out = raw(b, dtype, indexShape);
          b.gather(out, raw(b, dtype, shape, xs), axis, raw(b, "int32", indexShape, index));
          return [out];
        });
        const src = integers(axis + 6, sizeOf(indexShape), -9, 9);
        conform(t, `scatterAdd axis ${axis} ${dtype}`, EXACT, (b) => {
          const out = raw(b, dtype, shape, xs);
          b.scatterAdd(
            out,
            axis,
            raw(b, "int32", indexShape, index),
            raw(b, dtype, indexShape, src),
          );
          return [out];
        });
      }
    });

    it("scatterAdd accumulates float duplicates; an index out of range is an IndexError", () => {
      const index = [0, 0, 0, 2, 2, 1];
      const src = floats(3, 6);
      conform(t, "scatterAdd duplicates", { atol: 1e-7, rtol: 1e-6 }, (b) => {
        const out = rawZeros(b, "float32", [3]);
        b.scatterAdd(out, 0, raw(b, "int32", [6], index), raw(b, "float32", [6], src));
        return [out];
      });
      for (const b of [t.backend(), ref]) {
        expect(() =>
          b.gather(raw(b, "float32", [2]), raw(b, "float32", [3]), 0, raw(b, "int32", [2], [0, 3])),
        ).toThrow(IndexError);
        expect(() =>
          b.scatterAdd(
            raw(b, "float32", [3]),
            0,
            raw(b, "int32", [1], [-1]),
            raw(b, "float32", [1]),
          ),
        ).toThrow(IndexError);
      }
    });
  });
}

// ---- losses ------------------------------------------------------------------------------

interface NllCase {
  name: string;
  logProbs: number[];
  targets: number[];
  weight: number[] | null;
  ignoreIndex: number;
}

const NLL_CASES: NllCase[] = [
  { name: "[4, 3]", logProbs: [4, 3], targets: [0, 2, 1, 2], weight: null, ignoreIndex: -100 },
  {
    name: "weighted, one ignored",
    logProbs: [5, 3],
    targets: [0, 2, -100, 1, 2],
    weight: [0.2, 1.5, 0.7],
    ignoreIndex: -100,
  },
  {
    name: "ignoreIndex 1",
    logProbs: [4, 3],
    targets: [1, 0, 2, 1],
    weight: [0.5, 2, 1.25],
    ignoreIndex: 1,
  },
  {
    name: "spatial [2, 3, 2, 2]",
    logProbs: [2, 3, 2, 2],
    targets: [0, 1, 2, 1, 2, 2, 0, -100],
    weight: null,
    ignoreIndex: -100,
  },
  { name: "batch 1, one class", logProbs: [1, 1], targets: [0], weight: null, ignoreIndex: -100 },
  {
    name: "all ignored (mean is NaN)",
    logProbs: [2, 3],
    targets: [-100, -100],
    weight: null,
    ignoreIndex: -100,
  },
  { name: "empty batch", logProbs: [0, 3], targets: [], weight: null, ignoreIndex: -100 },
];

function nllLossCases(t: Target): void {
  describe("nllLoss", () => {
    const reductions: Reduction[] = ["mean", "sum", "none"];

    it.each(NLL_CASES.map((c) => [c.name, c] as const))("%s: forward and backward", (_name, c) => {
      const lp = floats(7, sizeOf(c.logProbs), -4, 0);
      const targetShape = [c.logProbs[0]!, ...c.logProbs.slice(2)];
      for (const reduction of reductions) {
        const outShape = reduction === "none" ? targetShape : [];
        const weight = (b: Backend) =>
          c.weight === null ? null : raw(b, "float32", [c.weight.length], c.weight);
        conform(t, `nllLoss ${reduction}`, { atol: 1e-6, rtol: 1e-6 }, (b) => {
          const out = raw(b, "float32", outShape);
          const targets = raw(b, "int32", targetShape, c.targets);
          b.nllLoss(
            out,
            raw(b, "float32", c.logProbs, lp),
            targets,
            weight(b),
            reduction,
            c.ignoreIndex,
          );
          return [out];
        });
        const gs = reduction === "none" ? floats(8, sizeOf(targetShape)) : [0.75];
        conform(t, `nllLossBackward ${reduction}`, { atol: 1e-7, rtol: 1e-6 }, (b) => {
          const gradLogProbs = raw(b, "float32", c.logProbs);
          const targets = raw(b, "int32", targetShape, c.targets);
          const gradOut = raw(b, "float32", outShape, gs);
          b.nllLossBackward(gradLogProbs, gradOut, targets, weight(b), reduction, c.ignoreIndex);
          return [gradLogProbs];
        });
      }
    });

    it("a target out of range is an IndexError on both backends", () => {
      for (const b of [t.backend(), ref]) {
        let caught: unknown;
        try {
          b.nllLoss(
            raw(b, "float32", []),
            raw(b, "float32", [2, 3]),
            raw(b, "int32", [2], [0, 3]),
            null,
            "mean",
            -100,
          );
        } catch (error) {
          caught = error;
        }
        expect(caught, b.name).toBeInstanceOf(IndexError);
        expect((caught as DeepnodeError).message, b.name).toMatch(
          /target 3 is out of bounds for 3 classes$/,
        );
      }
    });
  });

  describe("checkRange", () => {
    it("passes values within the bounds, bounds included, in float32 and float64", () => {
      for (const dtype of ["float32", "float64"] as const) {
        for (const b of [t.backend(), ref]) {
          const x = raw(b, dtype, [2, 3], [0, 0.25, 1, 0.5, 1e-30, 0.999]);
          expect(() => b.checkRange(x, 0, 1, "binaryCrossEntropy", "input"), b.name).not.toThrow();
          b.checkRange(raw(b, dtype, [0]), 0, 1, "binaryCrossEntropy", "input");
          b.release?.(x.storage);
        }
      }
    });

    it.each([
      ["above", 1.5],
      ["below", -0.25],
      ["NaN", NaN],
      ["Infinity", Infinity],
    ])("names the first element %s the bounds, in the op's words, on both", (_, bad) => {
      for (const dtype of ["float32", "float64"] as const) {
        for (const b of [t.backend(), ref]) {
          const x = raw(b, dtype, [2, 2], [0.5, 1, bad, bad]);
          const error = expectThrows(
            () => b.checkRange(x, 0, 1, "binaryCrossEntropy", "input"),
            ValueError,
            "binaryCrossEntropy: all elements of input should be between 0 and 1, but element 2 " +
              "is not",
          );
          expect(error.param, b.name).toBe("input");
          b.release?.(x.storage);
        }
      }
    });
  });
}

// ---- optimizer steps ------------------------------------------------------------------

/** The Adam options the optimizer cases vary from, and the variations both sections run. */
const ADAM_BASE: AdamStepOptions = {
  lr: 1e-2,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  decoupledWeightDecay: false,
  amsgrad: false,
  step: 1,
};
const ADAM_VARIANTS: AdamStepOptions[] = [
  ADAM_BASE,
  { ...ADAM_BASE, weightDecay: 0.01, step: 3 },
  { ...ADAM_BASE, weightDecay: 0.01, decoupledWeightDecay: true, step: 3 },
  { ...ADAM_BASE, amsgrad: true, step: 5 },
  {
    ...ADAM_BASE,
    amsgrad: true,
    decoupledWeightDecay: true,
    weightDecay: 0.1,
    beta1: 0.5,
    step: 2,
  },
];

/** The RMSprop and Adagrad options the cases vary from, and the variations both sections run. */
const RMSPROP_BASE: RmspropStepOptions = {
  lr: 1e-2,
  alpha: 0.99,
  eps: 1e-8,
  weightDecay: 0,
  momentum: 0,
  centered: false,
};
const RMSPROP_VARIANTS: RmspropStepOptions[] = [
  RMSPROP_BASE,
  { ...RMSPROP_BASE, alpha: 0.9, eps: 1e-3, weightDecay: 0.05 },
  { ...RMSPROP_BASE, momentum: 0.9 },
  { ...RMSPROP_BASE, centered: true },
  { ...RMSPROP_BASE, centered: true, momentum: 0.5, weightDecay: 0.1, alpha: 0.8 },
];
const ADAGRAD_BASE: AdagradStepOptions = {
  lr: 1e-2,
  lrDecay: 0,
  eps: 1e-10,
  weightDecay: 0,
  step: 1,
};
const ADAGRAD_VARIANTS: AdagradStepOptions[] = [
  ADAGRAD_BASE,
  { ...ADAGRAD_BASE, lr: 0.1, lrDecay: 0.5, step: 4 },
  { ...ADAGRAD_BASE, weightDecay: 0.2, eps: 1e-3, step: 2 },
];

/** The SGD options both sections run: plain, weight decay, momentum (first and later steps),
 * dampening, Nesterov. */
const SGD_VARIANTS: SgdStepOptions[] = [
  { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, firstStep: true },
  { lr: 0.05, momentum: 0, dampening: 0, weightDecay: 0.01, nesterov: false, firstStep: false },
  { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, firstStep: true },
  { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 1e-3, nesterov: false, firstStep: false },
  { lr: 0.01, momentum: 0.8, dampening: 0, weightDecay: 0.1, nesterov: true, firstStep: false },
];

function optimizerStepsCases(t: Target): void {
  describe("optimizer steps", () => {
    const size = 37;
    const params = floats(11, size);
    const grads = floats(12, size);
    const state1 = floats(13, size);
    const state2 = floats(14, size, 0, 0.1);
    const state3 = floats(15, size, 0.05, 0.2);

    it.each(SGD_VARIANTS.map((o) => [JSON.stringify(o), o] as const))(
      "sgdStep %s",
      (_label, options) => {
        conform(t, "sgdStep", { atol: 1e-7, rtol: 1e-6 }, (b) => {
          const param = raw(b, "float32", [size], params);
          const buffer = options.momentum === 0 ? null : raw(b, "float32", [size], state1);
          b.sgdStep(param, raw(b, "float32", [size], grads), buffer, options);
          return buffer === null ? [param] : [param, buffer];
        });
      },
    );

    const ADAM: AdamStepOptions[] = [...ADAM_VARIANTS, { ...ADAM_BASE, step: 10 }];

    it.each(ADAM.map((o) => [JSON.stringify(o), o] as const))("adamStep %s", (_label, options) => {
      conform(t, "adamStep", { atol: 1e-7, rtol: 1e-5 }, (b) => {
        const param = raw(b, "float32", [size], params);
        const expAvg = raw(
          b,
          "float32",
          [size],
          state1.map((v) => v * 0.1),
        );
        const expAvgSq = raw(b, "float32", [size], state2);
        const maxSq = options.amsgrad ? raw(b, "float32", [size], state3) : null;
        b.adamStep(param, raw(b, "float32", [size], grads), expAvg, expAvgSq, maxSq, options);
        return maxSq === null ? [param, expAvg, expAvgSq] : [param, expAvg, expAvgSq, maxSq];
      });
    });
  });
}

// ---- many steps in one call (adamSteps, sgdSteps) -----------------------------------------

/** 30 params, 5 empty and 5 of 1 element: on cuda, a launch over 24 params, then the last alone. */
const STEP_ITEM_SIZES = Array.from({ length: 30 }, (_, k) =>
  k % 7 === 1 ? 0 : k % 5 === 2 ? 1 : 2 + ((k * 13) % 41),
);

/** A float32 tensor of `size` from a seed, uniform in [low, high). */
function seeded(b: Backend, seed: number, size: number, low = -1, high = 1): RawTensor {
  return raw(b, "float32", [size], floats(seed, size, low, high));
}

/** A float32 tensor's bits: equal only when every element is the same float, NaNs included. */
function bitsOf(b: Backend, x: RawTensor): number[] {
  return Array.from(new Uint32Array(Float32Array.from(b.read(x) as Float32Array).buffer));
}

/** Runs a kernel with buffers the backend itself never sends (the native checks behind it). */
function runKernel(b: Backend, op: string, buffers: unknown[], attrs: object): void {
  (b as unknown as { call(op: string, buffers: unknown[], attrs: object): void }).call(
    op,
    buffers,
    attrs,
  );
}

/**
 * What a step changes: each item's param and state (every tensor but the gradient), in item
 * order, as the items functions below lay them out.
 */
function updatedBy(items: readonly object[]): RawTensor[] {
  return items.flatMap((item) =>
    Object.entries(item)
      .filter(([role, x]) => role !== "grad" && x !== null)
      .map(([, x]) => x as RawTensor),
  );
}

/** A kernel over many params (adamSteps, sgdSteps) and the one-param kernel it must match. */
interface ManySteps<Item extends object, Options> {
  name: string;
  one: string;
  variants: Options[];
  tol: Tolerance;
  /** The items on `b`: each param, gradient and state from seeds of its own. */
  items(b: Backend, sizes: readonly number[], options: Options): Item[];
  many(b: Backend, items: readonly Item[], options: Options): void;
  each(b: Backend, item: Item, options: Options): void;
}

/** The cases every many-params kernel runs: against the reference, and bit for bit against
 * its one-param kernel on the backend under test. */
function manyStepsCases<Item extends object, Options>(
  t: Target,
  steps: ManySteps<Item, Options>,
): void {
  const OPTIONS = steps.variants.map((o) => [JSON.stringify(o), o] as const);

  it.each(OPTIONS)("against the reference %s", (_label, options) => {
    conform(t, steps.name, steps.tol, (b) => {
      const items = steps.items(b, STEP_ITEM_SIZES, options);
      steps.many(b, items, options);
      return updatedBy(items);
    });
  });

  it.each(OPTIONS)(`the same bits as ${steps.one} on each param %s`, (_label, options) => {
    const b = t.backend();
    const together = steps.items(b, STEP_ITEM_SIZES, options);
    const oneByOne = steps.items(b, STEP_ITEM_SIZES, options);
    steps.many(b, together, options);
    for (const item of oneByOne) steps.each(b, item, options);
    const expected = updatedBy(oneByOne);
    updatedBy(together).forEach((x, i) => {
      expect(bitsOf(b, x), `tensor ${i}`).toEqual(bitsOf(b, expected[i]!));
    });
  });

  it("takes an empty list of params", () => {
    expect(() => steps.many(t.backend(), [], steps.variants[0]!)).not.toThrow();
  });
}

/** The one-param kernel of `steps` on one param of `size` elements, against the reference. */
function oneStep<Item extends object, Options>(
  t: Target,
  steps: ManySteps<Item, Options>,
  size: number,
  options: Options,
): void {
  conform(t, steps.one, steps.tol, (b) => {
    const items = steps.items(b, [size], options);
    steps.each(b, items[0]!, options);
    return updatedBy(items);
  });
}

function adamItems(b: Backend, sizes: readonly number[], amsgrad: boolean): AdamStepItem[] {
  return sizes.map((size, k) => ({
    param: seeded(b, 100 + k, size),
    grad: seeded(b, 200 + k, size),
    expAvg: seeded(b, 300 + k, size, -0.1, 0.1),
    expAvgSq: seeded(b, 400 + k, size, 0, 0.1),
    maxExpAvgSq: amsgrad ? seeded(b, 500 + k, size, 0.05, 0.2) : null,
  }));
}

const ADAM_STEPS: ManySteps<AdamStepItem, AdamStepOptions> = {
  name: "adamSteps",
  one: "adamStep",
  variants: ADAM_VARIANTS,
  tol: { atol: 1e-7, rtol: 1e-5 },
  items: (b, sizes, options) => adamItems(b, sizes, options.amsgrad),
  many: (b, items, options) => b.adamSteps(items, options),
  each: (b, item, options) =>
    b.adamStep(item.param, item.grad, item.expAvg, item.expAvgSq, item.maxExpAvgSq, options),
};

function adamStepsCases(t: Target): void {
  describe("optimizer steps: adamSteps, many params in one call", () => {
    manyStepsCases(t, ADAM_STEPS);

    it("names the param whose buffer is wrong, and then updates none", () => {
      const b = t.backend();
      const items = adamItems(b, [4, 3, 2], true);
      const before = bitsOf(b, items[0]!.param);
      const short = { ...items[1]!, expAvg: raw(b, "float32", [2], [0, 0]) };
      const message = "adamSteps: item 1: buffer 'expAvg' holds 2 elements, expected 3";
      expectThrows(() => b.adamSteps([items[0]!, short], ADAM_BASE), ShapeError, message);
      const noMax = { ...items[2]!, maxExpAvgSq: null };
      const amsgrad = { ...ADAM_BASE, amsgrad: true };
      const needsMax = "adamSteps: item 2: amsgrad needs a maxExpAvgSq buffer";
      expectThrows(
        () => b.adamSteps([items[0]!, items[1]!, noMax], amsgrad),
        NativeError,
        needsMax,
      );
      const wide = { ...items[0]!, grad: raw(b, "float64", [4]) };
      const dtype = /^adamSteps: item 0: buffer 'grad' must be float32, got float64/;
      expectThrows(() => b.adamSteps([wide], ADAM_BASE), DTypeError, dtype);
      expectThrows(
        () => b.adamSteps([items[0]!], { ...ADAM_BASE, step: 0 }),
        ValueError,
        "adamSteps: step must be at least 1, got 0",
      );
      expect(bitsOf(b, items[0]!.param)).toEqual(before);
    });

    it("rejects a call without 4 buffers per param (5 with amsgrad)", () => {
      const b = t.backend();
      const [item] = adamItems(b, [3], false);
      const buffers = [item!.param, item!.grad, item!.expAvg, item!.expAvgSq].map((x) => x.storage);
      expectThrows(
        () => runKernel(b, "adam_steps", buffers, { ...ADAM_BASE, count: 2 }),
        NativeError,
        "adamSteps: count 2 needs 8 buffers (4 per item), got 4",
      );
      expectThrows(
        () => runKernel(b, "adam_steps", buffers, { ...ADAM_BASE, amsgrad: true, count: 1 }),
        NativeError,
        "adamSteps: count 1 needs 5 buffers (5 per item), got 4",
      );
      expectThrows(
        () => runKernel(b, "adam_steps", buffers, { ...ADAM_BASE, count: -1 }),
        ValueError,
        "adamSteps: count must be at least 0, got -1",
      );
    });
  });
}

function sgdItems(b: Backend, sizes: readonly number[], momentum: boolean): SgdStepItem[] {
  return sizes.map((size, k) => ({
    param: seeded(b, 600 + k, size),
    grad: seeded(b, 700 + k, size),
    momentumBuffer: momentum ? seeded(b, 800 + k, size, -0.5, 0.5) : null,
  }));
}

const SGD_STEPS: ManySteps<SgdStepItem, SgdStepOptions> = {
  name: "sgdSteps",
  one: "sgdStep",
  variants: SGD_VARIANTS,
  tol: { atol: 1e-7, rtol: 1e-6 },
  items: (b, sizes, options) => sgdItems(b, sizes, options.momentum !== 0),
  many: (b, items, options) => b.sgdSteps(items, options),
  each: (b, item, options) => b.sgdStep(item.param, item.grad, item.momentumBuffer, options),
};

function sgdStepsCases(t: Target): void {
  describe("optimizer steps: sgdSteps, many params in one call", () => {
    manyStepsCases(t, SGD_STEPS);
    const momentum = SGD_VARIANTS[3]!;

    it("names the param whose buffer is wrong, and then updates none", () => {
      const b = t.backend();
      const items = sgdItems(b, [4, 3, 2], true);
      const before = items
        .flatMap((item) => [item.param, item.momentumBuffer!])
        .map((x) => bitsOf(b, x));
      const short = { ...items[1]!, momentumBuffer: raw(b, "float32", [2], [0, 0]) };
      expectThrows(
        () => b.sgdSteps([items[0]!, short], momentum),
        ShapeError,
        "sgdSteps: item 1: buffer 'momentumBuffer' holds 2 elements, expected 3",
      );
      const noBuffer = { ...items[2]!, momentumBuffer: null };
      expectThrows(
        () => b.sgdSteps([items[0]!, items[1]!, noBuffer], momentum),
        NativeError,
        "sgdSteps: item 2: momentum != 0 needs a momentumBuffer",
      );
      const wide = { ...items[1]!, grad: raw(b, "float64", [3]) };
      const dtype = /^sgdSteps: item 1: buffer 'grad' must be float32, got float64/;
      expectThrows(() => b.sgdSteps([items[0]!, wide], momentum), DTypeError, dtype);
      const after = items
        .flatMap((item) => [item.param, item.momentumBuffer!])
        .map((x) => bitsOf(b, x));
      expect(after).toEqual(before);
    });

    it("takes no momentum buffer for an empty param", () => {
      const b = t.backend();
      const [empty, item] = sgdItems(b, [0, 3], true);
      const expected = sgdItems(b, [0, 3], true)[1]!;
      b.sgdSteps([{ ...empty!, momentumBuffer: null }, item!], momentum);
      b.sgdStep(expected.param, expected.grad, expected.momentumBuffer, momentum);
      expect(bitsOf(b, item!.param)).toEqual(bitsOf(b, expected.param));
    });

    it("rejects a call without 2 buffers per param (3 with momentum)", () => {
      const b = t.backend();
      const [item] = sgdItems(b, [3], false);
      const buffers = [item!.param, item!.grad].map((x) => x.storage);
      const plain = SGD_VARIANTS[0]!;
      expectThrows(
        () => runKernel(b, "sgd_steps", buffers, { ...plain, count: 2 }),
        NativeError,
        "sgdSteps: count 2 needs 4 buffers (2 per item), got 2",
      );
      expectThrows(
        () => runKernel(b, "sgd_steps", buffers, { ...momentum, count: 1 }),
        NativeError,
        "sgdSteps: count 1 needs 3 buffers (3 per item), got 2",
      );
      expectThrows(
        () => runKernel(b, "sgd_steps", buffers, { ...plain, count: -1 }),
        ValueError,
        "sgdSteps: count must be at least 0, got -1",
      );
    });
  });
}

// ---- the multi-tensor ops of gradient clipping: norms and scaleInPlace ------------------

/** Shapes of one call: empty, one element, odd sizes, past a cpu vector of lanes (64), past
 * a cuda warp's chunks (2 * 1024) and past a cpu chunk (64 Ki elements). */
const FOREACH_SHAPES: number[][] = [[0], [1], [5], [3, 4], [2, 3, 5], [70], [2, 1500], [66000]];
const NORM_TYPES = [1, 2, 3, 0.5, Infinity];
const FLOATS = ["float32", "float64"] as const;
/** A sum of double terms in another order, rounded once: float32 rounds alike but at a tie. */
const NORM_TOL: Record<(typeof FLOATS)[number], Tolerance> = {
  float32: ONE_ULP,
  float64: { atol: 0, rtol: 1e-12 },
};

/** Tensors of `shapes` in dtype, from seeds of their own; float64 values keep every bit. */
function foreachInputs(b: Backend, dtype: DType, shapes: readonly number[][], seed: number) {
  return shapes.map((shape, k) => {
    const values = randomValues(seededRandom(seed + k), sizeOf(shape), -2, 2);
    return raw(b, dtype, shape, dtype === "float32" ? toFloat32(values) : values);
  });
}

function normsOn(b: Backend, xs: readonly RawTensor[], dtype: DType, normType: number) {
  const out = raw(b, dtype, [xs.length]);
  b.norms(out, xs, normType);
  return out;
}

function normsCases(t: Target): void {
  describe("norms (the p-norm of each of many tensors)", () => {
    const cases = FLOATS.flatMap((dtype) => NORM_TYPES.map((p) => [dtype, p] as const));

    it.each(cases)("%s, normType %s, on empty to long tensors of 1 to 3 dims", (dtype, p) => {
      conform(t, `norms ${dtype} p=${p}`, NORM_TOL[dtype], (b) => [
        normsOn(b, foreachInputs(b, dtype, FOREACH_SHAPES, 40), dtype, p),
      ]);
    });

    it.each(cases)("%s, normType %s, on 60 tensors of 0 to 5000 elements", (dtype, p) => {
      // Three cuda launches of 24 tensors, empty ones and ones of several chunks among them.
      const shapes = Array.from({ length: 60 }, (_, k) => [k % 13 === 5 ? 0 : (k * 2657) % 5001]);
      conform(t, `norms ${dtype} p=${p} of 60 tensors`, NORM_TOL[dtype], (b) => [
        normsOn(b, foreachInputs(b, dtype, shapes, 70), dtype, p),
      ]);
    });

    it.each(cases)("%s, normType %s: one tensor of one element, and none", (dtype, p) => {
      conform(t, `norms ${dtype} p=${p} of [-2.5]`, NORM_TOL[dtype], (b) => [
        normsOn(b, [raw(b, dtype, [1], [-2.5])], dtype, p),
      ]);
      const b = t.backend();
      const none = normsOn(b, [], dtype, p);
      expect(none.shape).toEqual([0]);
    });

    it.each(cases)("%s, normType %s: a NaN gives NaN, an infinity Infinity", (dtype, p) => {
      const long = (at: number, value: number) =>
        Array.from({ length: 3000 }, (_, i) => (i === at ? value : 0.5));
      const inputs: number[][] = [
        [1, NaN, 2],
        [Infinity, 1],
        [-Infinity, NaN],
        [NaN, -Infinity, 3],
        long(2999, NaN), // the last element of a chunked reduction
        long(1234, -Infinity),
      ];
      const { actual } = conform(t, `norms ${dtype} p=${p} of non-finite values`, EXACT, (b) => {
        const xs = inputs.map((values) => raw(b, dtype, [values.length], values));
        return [normsOn(b, xs, dtype, p)];
      });
      const norms = Array.from(t.backend().read(actual[0]!));
      expect(norms).toEqual([NaN, Infinity, NaN, NaN, NaN, Infinity]);
    });

    it("rejects another dtype, a wrong out, a bad normType, integer tensors", () => {
      const b = t.backend();
      const [x0, x1] = foreachInputs(b, "float32", [[3], [2]], 1);
      const wide = raw(b, "float64", [2], [1, 2]);
      expectThrows(
        () => b.norms(raw(b, "float32", [2]), [x0!, wide], 2),
        DTypeError,
        /^norms: item 1: buffer 'x' must be float32, got float64/,
      );
      expectThrows(
        () => b.norms(raw(b, "float32", [3]), [x0!, x1!], 2),
        ShapeError,
        "norms: buffer 'out' holds 3 elements, expected 2",
      );
      const ints = raw(b, "int32", [1], [3]);
      expectThrows(
        () => b.norms(raw(b, "int32", [1]), [ints], 2),
        DTypeError,
        /^norms: buffer 'out' must be float32 or float64, got int32/,
      );
      for (const backend of [b, ref]) {
        for (const [normType, text] of [
          [0, "0"],
          [-1, "-1"],
          [NaN, "NaN"],
          [-Infinity, "-Infinity"],
          [-0.75, "-0.75"],
        ] as const) {
          const x = raw(backend, "float32", [1], [1]);
          expectThrows(
            () => backend.norms(raw(backend, "float32", [1]), [x], normType),
            ValueError,
            new RegExp(`^norms: normType must be > 0 or Infinity, got ${text}`),
          );
        }
      }
    });

    it("rejects a call without one buffer per tensor and out", () => {
      const b = t.backend();
      const buffers = [raw(b, "float32", [1]), ...foreachInputs(b, "float32", [[3]], 2)].map(
        (x) => x.storage,
      );
      expectThrows(
        () => runKernel(b, "norms", buffers, { normType: 2, count: 2 }),
        NativeError,
        "norms: count 2 needs 3 buffers (1 per item and 1 more), got 2",
      );
    });
  });
}

function scaleInPlaceCases(t: Target): void {
  describe("scaleInPlace (many tensors times one factor, in place)", () => {
    // 30 tensors: more than one cuda launch's 24, empty ones among them.
    const shapes = Array.from({ length: 30 }, (_, k) => FOREACH_SHAPES[k % 7]!);

    it.each(FLOATS)("%s: each element times the factor, rounded once", (dtype) => {
      for (const factor of [0.37, -3, 0, 1, NaN]) {
        conform(t, `scaleInPlace ${dtype} by ${factor}`, EXACT, (b) => {
          const xs = foreachInputs(b, dtype, [...shapes, [66000]], 60);
          b.scaleInPlace(xs, raw(b, dtype, [], [factor]));
          return xs;
        });
      }
    });

    it.each(FLOATS)("%s: with maxNorm, each element times the clip factor of the norm", (dtype) => {
      // Norms over and under maxNorm 1.3, near it, 0, and not finite (the factor is 1).
      for (const norm of [5.1, 1.3, 1.2999999, 0.4, 0, 1e-7, NaN, Infinity, -Infinity]) {
        for (const maxNorm of [1.3, 0]) {
          conform(t, `scaleInPlace ${dtype} clipping norm ${norm} to ${maxNorm}`, EXACT, (b) => {
            const xs = foreachInputs(b, dtype, [...shapes, [66000]], 61);
            b.scaleInPlace(xs, raw(b, dtype, [], [norm]), maxNorm);
            return xs;
          });
        }
      }
      const b = t.backend();
      const x = raw(b, dtype, [2], [3, 4]);
      b.scaleInPlace([x], raw(b, dtype, [], [5]), 1);
      const round = dtype === "float32" ? Math.fround : (v: number) => v;
      const factor = round(1 / round(5 + round(1e-6)));
      expect(Array.from(b.read(x))).toEqual([3, 4].map((v) => round(v * factor)));
      expectThrows(
        () => b.scaleInPlace([x], raw(b, dtype, [], [5]), -1),
        ValueError,
        /^scaleInPlace: maxNorm must be finite and >= 0, got -1/,
      );
      // NaN too: the native kernels took it for no maxNorm, and multiplied by the norm.
      expectThrows(
        () => b.scaleInPlace([x], raw(b, dtype, [], [5]), NaN),
        ValueError,
        /^scaleInPlace: maxNorm must be finite and >= 0, got NaN/,
      );
      expect(Array.from(b.read(x))).toEqual([3, 4].map((v) => round(v * factor)));
    });

    it.each(FLOATS)("%s: one element, and an empty list", (dtype) => {
      conform(t, `scaleInPlace ${dtype} of one element`, EXACT, (b) => {
        const x = raw(b, dtype, [1], [1.5]);
        b.scaleInPlace([x], raw(b, dtype, [], [-0.25]));
        return [x];
      });
      const b = t.backend();
      expect(() => b.scaleInPlace([], raw(b, dtype, [], [2]))).not.toThrow();
    });

    it("rejects a factor that is one of the tensors it scales", () => {
      for (const b of [t.backend(), ref]) {
        const x = raw(b, "float32", [2], [1, 2]);
        const f = raw(b, "float32", [], [3]);
        expectThrows(
          () => b.scaleInPlace([x, f], f),
          ValueError,
          /^scaleInPlace: item 1: the factor must not be one of the tensors it scales/,
        );
        expect(Array.from(b.read(x))).toEqual([1, 2]);
      }
    });

    it("rejects a factor or a tensor of another dtype, and a factor of two elements", () => {
      const b = t.backend();
      const [x0, x1] = foreachInputs(b, "float32", [[3], [2]], 3);
      const before = [x0!, x1!].map((x) => bitsOf(b, x));
      expectThrows(
        () => b.scaleInPlace([x0!, raw(b, "float64", [2], [1, 2])], raw(b, "float32", [], [2])),
        DTypeError,
        /^scaleInPlace: item 1: buffer 'x' must be float32, got float64/,
      );
      expectThrows(
        () => b.scaleInPlace([x0!], raw(b, "int32", [], [2])),
        DTypeError,
        /^scaleInPlace: buffer 'factor' must be float32 or float64, got int32/,
      );
      expectThrows(
        () => b.scaleInPlace([x0!], raw(b, "float32", [2], [2, 2])),
        ShapeError,
        "scaleInPlace: buffer 'factor' holds 2 elements, expected 1",
      );
      expect([x0!, x1!].map((x) => bitsOf(b, x))).toEqual(before);
    });
  });
}

function rmspropItems(b: Backend, sizes: readonly number[], o: RmspropStepOptions) {
  return sizes.map((size, k) => ({
    param: seeded(b, 900 + k, size),
    grad: seeded(b, 1000 + k, size),
    // squareAvg >= gradAvg^2, as the running moments of any gradients are.
    squareAvg: seeded(b, 1100 + k, size, 0.05, 0.2),
    gradAvg: o.centered ? seeded(b, 1200 + k, size, -0.2, 0.2) : null,
    momentumBuffer: o.momentum > 0 ? seeded(b, 1300 + k, size) : null,
  }));
}

const RMSPROP_STEPS: ManySteps<RmspropStepItem, RmspropStepOptions> = {
  name: "rmspropSteps",
  one: "rmspropStep",
  variants: RMSPROP_VARIANTS,
  tol: { atol: 1e-6, rtol: 1e-5 },
  items: rmspropItems,
  many: (b, items, options) => b.rmspropSteps(items, options),
  each: (b, { param, grad, squareAvg, gradAvg, momentumBuffer }, options) =>
    b.rmspropStep(param, grad, squareAvg, gradAvg, momentumBuffer, options),
};

function adagradItems(b: Backend, sizes: readonly number[]): AdagradStepItem[] {
  return sizes.map((size, k) => ({
    param: seeded(b, 1400 + k, size),
    grad: seeded(b, 1500 + k, size),
    stateSum: seeded(b, 1600 + k, size, 0, 0.5),
  }));
}

const ADAGRAD_STEPS: ManySteps<AdagradStepItem, AdagradStepOptions> = {
  name: "adagradSteps",
  one: "adagradStep",
  variants: ADAGRAD_VARIANTS,
  tol: { atol: 1e-7, rtol: 1e-5 },
  items: adagradItems,
  many: (b, items, options) => b.adagradSteps(items, options),
  each: (b, item, options) => b.adagradStep(item.param, item.grad, item.stateSum, options),
};

function rmspropAndAdagradStepsCases(t: Target): void {
  describe("optimizer steps: rmspropSteps, many params in one call", () => {
    manyStepsCases(t, RMSPROP_STEPS);

    it("names the param whose buffer is wrong, and then updates none", () => {
      const b = t.backend();
      const options = RMSPROP_VARIANTS[4]!; // centered, with momentum
      const items = rmspropItems(b, [4, 3], options);
      const before = bitsOf(b, items[0]!.param);
      const noMean = { ...items[1]!, gradAvg: null };
      expectThrows(
        () => b.rmspropSteps([items[0]!, noMean], options),
        NativeError,
        "rmspropSteps: item 1: this step needs a gradAvg buffer",
      );
      const short = { ...items[1]!, squareAvg: raw(b, "float32", [2], [0, 0]) };
      expectThrows(
        () => b.rmspropSteps([items[0]!, short], options),
        ShapeError,
        "rmspropSteps: item 1: buffer 'squareAvg' holds 2 elements, expected 3",
      );
      expect(bitsOf(b, items[0]!.param)).toEqual(before);
      const buffers = [items[0]!.param, items[0]!.grad, items[0]!.squareAvg].map((x) => x.storage);
      expectThrows(
        () => runKernel(b, "rmsprop_steps", buffers, { ...options, count: 1 }),
        NativeError,
        "rmspropSteps: count 1 needs 5 buffers (5 per item), got 3",
      );
    });
  });

  describe("optimizer steps: adagradSteps, many params in one call", () => {
    manyStepsCases(t, ADAGRAD_STEPS);

    it("names the param whose buffer is wrong, and then updates none", () => {
      const b = t.backend();
      const items = adagradItems(b, [4, 3]);
      const before = bitsOf(b, items[0]!.param);
      const wide = { ...items[1]!, stateSum: raw(b, "float64", [3]) };
      const dtype = /^adagradSteps: item 1: buffer 'stateSum' must be float32, got float64/;
      expectThrows(() => b.adagradSteps([items[0]!, wide], ADAGRAD_BASE), DTypeError, dtype);
      expectThrows(
        () => b.adagradSteps(items, { ...ADAGRAD_BASE, step: 0 }),
        ValueError,
        "adagradSteps: step must be at least 1, got 0",
      );
      expect(bitsOf(b, items[0]!.param)).toEqual(before);
      const buffers = [items[0]!.param, items[0]!.grad].map((x) => x.storage);
      expectThrows(
        () => runKernel(b, "adagrad_steps", buffers, { ...ADAGRAD_BASE, count: 1 }),
        NativeError,
        "adagradSteps: count 1 needs 3 buffers (3 per item), got 2",
      );
    });
  });
}

// ---- empty tensors and integer division by zero ------------------------------------------

function emptyTensorCases(t: Target): void {
  describe("empty tensors where legal, and integer division by zero", () => {
    const conv = convParams();
    const pool = poolParams([2, 2]);

    it("softmax and its backward over an empty batch and along an empty axis", () => {
      for (const shape of [
        [0, 3],
        [2, 0],
      ]) {
        for (const log of [false, true]) {
          conform(t, `softmax ${JSON.stringify(shape)} log=${log}`, EXACT, (b) => {
            const out = raw(b, "float32", shape);
            b.softmax(out, raw(b, "float32", shape), 1, log);
            const gradX = raw(b, "float32", shape);
            b.softmaxBackward(gradX, raw(b, "float32", shape), out, 1, log);
            return [out, gradX];
          });
        }
      }
    });

    it("conv2d forward and both backwards over a batch of 0", () => {
      const ws = floats(1, 8);
      conform(t, "conv2d N=0", EXACT, (b) => {
        const x = raw(b, "float32", [0, 1, 3, 3]);
        const weight = raw(b, "float32", [2, 1, 2, 2], ws);
        const out = raw(b, "float32", [0, 2, 2, 2]);
        b.conv2d(out, x, weight, raw(b, "float32", [2], [1, -1]), conv);
        const gradX = raw(b, "float32", [0, 1, 3, 3]);
        b.conv2dBackwardData(gradX, out, weight, conv);
        // over no samples the weight gradient is all zeros, whatever was there before
        const gradWeight = raw(b, "float32", [2, 1, 2, 2], ws);
        b.conv2dBackwardWeight(gradWeight, out, x, conv);
        return [out, gradX, gradWeight];
      });
    });

    it("maxPool2d, its backward and dropout over empty tensors", () => {
      conform(t, "maxPool2d N=0", EXACT, (b) => {
        const out = raw(b, "float32", [0, 1, 1, 1]);
        const indices = raw(b, "int32", [0, 1, 1, 1]);
        b.maxPool2d(out, indices, raw(b, "float32", [0, 1, 2, 2]), pool);
        const gradX = rawZeros(b, "float32", [0, 1, 2, 2]);
        b.maxPool2dBackward(gradX, out, indices);
        return [out, indices, gradX];
      });
      conform(t, "dropout empty", EXACT, (b) => {
        const out = raw(b, "float32", [0, 3]);
        const mask = raw(b, "float32", [0, 3]);
        b.dropout(out, mask, raw(b, "float32", [0, 3]), 0.5, { seed: 1, offset: 0 });
        return [out, mask];
      });
    });

    it.each(["floordiv", "remainder"] as const)(
      "int32 %s by zero is a ValueError on both backends",
      (op) => {
        for (const b of [t.backend(), ref]) {
          const out = raw(b, "int32", [3]);
          const divide = () =>
            b.binary(op, out, raw(b, "int32", [3], [1, 2, 3]), raw(b, "int32", [3], [1, 0, 2]));
          expect(divide, b.name).toThrow(ValueError);
          expect(divide, b.name).toThrow(`${op}: integer division by zero`);
        }
      },
    );
  });
}

// ---- release ------------------------------------------------------------------------

function releaseCases(t: Target): void {
  describe("release", () => {
    it.each(["float32", "int32", "uint8"] as const)(
      "storage allocated after a release is zero-filled again (%s, large enough to pool)",
      (dtype) => {
        const size = 70_000; // >= 64 KiB even for uint8: the cpu pool keeps it
        conform(t, `alloc after release ${dtype}`, EXACT, (b) => {
          const first = raw(b, dtype, [size]);
          b.fill(first, 7);
          b.release?.(first.storage);
          return [rawZeros(b, dtype, [size])];
        });
      },
    );
  });
}

// ---- rmsprop and adagrad steps --------------------------------------------------------

function rmspropAndAdagradCases(t: Target): void {
  describe("rmsprop and adagrad steps", () => {
    // 70001 elements span several threads' chunks of the native kernel.
    const SIZES = [37, 70001];

    it.each(SIZES.flatMap((size) => RMSPROP_VARIANTS.map((o) => [size, o] as const)))(
      "rmspropStep over %d elements %j",
      (size, options) => oneStep(t, RMSPROP_STEPS, size, options),
    );

    it.each(SIZES.flatMap((size) => ADAGRAD_VARIANTS.map((o) => [size, o] as const)))(
      "adagradStep over %d elements %j",
      (size, options) => oneStep(t, ADAGRAD_STEPS, size, options),
    );

    it("rejects a missing buffer and a bad step with typed errors on both backends", () => {
      const options = { ...RMSPROP_BASE, centered: true };
      for (const b of [t.backend(), ref]) {
        const param = raw(b, "float32", [3], [1, 2, 3]);
        const grad = raw(b, "float32", [3], [1, 1, 1]);
        const sq = raw(b, "float32", [3], [0, 0, 0]);
        expect(() => b.rmspropStep(param, grad, sq, null, null, options)).toThrow(DeepnodeError);
      }
      const param = raw(t.backend(), "float32", [3], [1, 2, 3]);
      const grad = raw(t.backend(), "float32", [3], [1, 1, 1]);
      const sum = raw(t.backend(), "float32", [3], [0, 0, 0]);
      expect(() => t.backend().adagradStep(param, grad, sum, { ...ADAGRAD_BASE, step: 0 })).toThrow(
        "step must be at least 1, got 0",
      );
    });
  });
}

// ---- recurrent layers -----------------------------------------------------------------

function recurrentCases(t: Target): void {
  describe("recurrent layers (rnnForward, rnnBackward)", () => {
    type Mode = RnnParams["mode"];
    interface RnnCase {
      steps: number;
      batch: number;
      hidden: number;
      reverse?: boolean;
      bias?: boolean;
      lengths?: number[];
      // Write columns [H, 2H) of a [T, N, 2H] output, state slot 1 of 2.
      bidirectionalSlot?: boolean;
      noGradOutput?: boolean;
      // The lengths' values also given as params.lengthValues (cuda then reads none back).
      hostLengths?: boolean;
    }
    const CASES: RnnCase[] = [
      { steps: 5, batch: 3, hidden: 7 },
      { steps: 1, batch: 1, hidden: 5 },
      {
        steps: 6,
        batch: 4,
        hidden: 9,
        reverse: true,
        bidirectionalSlot: true,
        lengths: [6, 2, 4, 1],
        hostLengths: true,
      },
      { steps: 5, batch: 4, hidden: 6, lengths: [3, 0, 5, 1], bias: false },
      { steps: 4, batch: 5, hidden: 33, reverse: true, noGradOutput: true },
      { steps: 3, batch: 2, hidden: 17, lengths: [1, 3], bidirectionalSlot: true },
      // Every sequence ends before T: the kernels skip those steps' GEMMs.
      { steps: 6, batch: 3, hidden: 5, lengths: [2, 4, 3] },
      { steps: 6, batch: 3, hidden: 5, lengths: [2, 4, 3], reverse: true },
      // Sorted longest first, as PyTorch packs: each step's GEMM covers the running rows only.
      { steps: 7, batch: 5, hidden: 6, lengths: [7, 5, 5, 2, 1], reverse: true },
      { steps: 7, batch: 5, hidden: 6, lengths: [6, 5, 5, 2, 1] },
      { steps: 7, batch: 5, hidden: 6, lengths: [6, 5, 5, 2, 1], hostLengths: true },
    ];
    const MODES: Mode[] = ["rnn_tanh", "rnn_relu", "lstm", "gru"];
    const TABLE = MODES.flatMap((mode) =>
      CASES.map((c) => [`${mode} ${JSON.stringify(c)}`, mode, c] as const),
    );
    const TOL: Tolerance = { atol: 2e-5, rtol: 1e-4 };

    function gatesOf(mode: Mode): number {
      return mode === "lstm" ? 4 : mode === "gru" ? 3 : 1;
    }

    /** Forward on backend b with the case's values; returns every argument. */
    function forward(b: Backend, mode: Mode, c: RnnCase, seed: number) {
      const random = seededRandom(seed);
      const values = (n: number, scale = 1) => toFloat32(randomValues(random, n, -scale, scale));
      const gh = gatesOf(mode) * c.hidden;
      const slots = c.bidirectionalSlot === true ? 2 : 1;
      const outWidth = slots * c.hidden;
      const stateShape = [slots, c.batch, c.hidden];
      const lstm = mode === "lstm";
      const f = (shape: number[], scale = 1) =>
        raw(b, "float32", shape, values(sizeOf(shape), scale));
      // With two slots the call writes only the second (its columns of output): zero the rest.
      const part = (shape: number[]) =>
        slots === 2 ? rawZeros(b, "float32", shape) : raw(b, "float32", shape);
      const args = {
        output: part([c.steps, c.batch, outWidth]),
        hN: part(stateShape),
        cN: lstm ? part(stateShape) : null,
        workspace: raw(b, "float32", [c.steps, c.batch, rnnWorkspaceWidth(mode) * c.hidden]),
        xProj: f([c.steps, c.batch, gh], 1.5),
        wHh: f([gh, c.hidden], 0.6),
        bHh: c.bias === false ? null : f([gh], 0.5),
        h0: f(stateShape),
        c0: lstm ? f(stateShape) : null,
        lengths: c.lengths === undefined ? null : raw(b, "int32", [c.batch], c.lengths),
      };
      const params: RnnParams = {
        mode,
        reverse: c.reverse ?? false,
        column: slots === 2 ? c.hidden : 0,
        slot: slots - 1,
        ...(c.hostLengths === true ? { lengthValues: c.lengths! } : {}),
      };
      b.rnnForward(args, params);
      return { args, params, values, f, part, stateShape };
    }

    it.each(TABLE)("forward %s", (label, mode, c) => {
      conform(t, label, TOL, (b) => {
        const { args } = forward(b, mode, c, 7);
        const outs = [args.output, args.hN, args.workspace];
        return args.cN === null ? outs : [...outs, args.cN];
      });
    });

    it.each(TABLE)("backward %s", (label, mode, c) => {
      conform(t, label, TOL, (b) => {
        const { args, params, f, part, stateShape } = forward(b, mode, c, 7);
        const grads = {
          gradXProj: raw(b, "float32", args.xProj.shape),
          gradWHh: raw(b, "float32", args.wHh.shape),
          gradBHh: args.bHh === null ? null : raw(b, "float32", args.bHh.shape),
          gradH0: part(stateShape),
          gradC0: args.c0 === null ? null : part(stateShape),
          gradOutput: c.noGradOutput === true ? null : f([...args.output.shape]),
          gradHN: f(stateShape),
          gradCN: args.cN === null ? null : f(stateShape),
        };
        b.rnnBackward(
          {
            ...grads,
            workspace: args.workspace,
            wHh: args.wHh,
            h0: args.h0,
            c0: args.c0,
            lengths: args.lengths,
          },
          params,
        );
        const results = [grads.gradXProj, grads.gradWHh, grads.gradH0];
        if (grads.gradBHh !== null) results.push(grads.gradBHh);
        if (grads.gradC0 !== null) results.push(grads.gradC0);
        return results;
      });
    });

    it.each([t.name, "reference"])("rejects bad arguments with typed errors (%s)", (name) => {
      const b = name === "reference" ? ref : t.backend();
      const { args, params } = forward(b, "lstm", CASES[0]!, 3);
      const lengths = raw(b, "int32", [3], [1, 9, 2]);
      expectThrows(
        () => b.rnnForward({ ...args, lengths }, params),
        IndexError,
        "rnnForward: length 9 is outside [0, 5]",
      );
      expectThrows(
        () => b.rnnForward({ ...args, c0: null }, params),
        ValueError,
        "rnnForward: c0 is required in lstm mode",
      );
      expectThrows(
        () => b.rnnForward(args, { ...params, slot: 1 }),
        ValueError,
        "rnnForward: slot 1 is outside [0, 1)",
      );
      const f64 = raw(b, "float64", [...args.xProj.shape]);
      expectThrows(
        () => b.rnnForward({ ...args, xProj: f64 }, params),
        DTypeError,
        /^rnnForward: /,
      );
    });
  });
}

// ---- slices along one axis ---------------------------------------------------------------

function sliceCases(t: Target): void {
  describe("slice and sliceAssign", () => {
    // [shape of x, axis, start, step, count]: first, middle and last axes, steps > 1,
    // a count of 0, size-1 dims and an empty tensor.
    const CASES: [number[], number, number, number, number][] = [
      [[7], 0, 2, 2, 3],
      [[3, 5, 4], 1, 1, 3, 2],
      [[3, 5, 4], 0, 2, 1, 1],
      [[3, 5, 4], 2, 0, 1, 4],
      [[2, 1, 6], 2, 5, 1, 1],
      [[4, 3], 0, 0, 1, 0],
      [[0, 3], 1, 1, 1, 2],
      [[2, 300, 3], 1, 7, 5, 58],
    ];
    const dtypes: DType[] = ["float32", "int32", "uint8", "float64"];
    const table = CASES.flatMap((c) =>
      dtypes.map((dtype) => [JSON.stringify(c), dtype, c] as const),
    );

    it.each(table)("slice %s %s", (label, dtype, [shape, axis, start, step, count]) => {
      const outShape = shape.map((d, i) => (i === axis ? count : d));
      conform(t, `slice ${label}`, EXACT, (b) => {
        const x = raw(b, dtype, shape, integers(41, sizeOf(shape), 0, 99));
        const out = raw(b, dtype, outShape);
        b.slice(out, x, axis, start, step);
        return [out];
      });
    });

    it.each(table)("sliceAssign %s %s", (label, dtype, [shape, axis, start, step, count]) => {
      const smallShape = shape.map((d, i) => (i === axis ? count : d));
      conform(t, `sliceAssign ${label}`, EXACT, (b) => {
        const out = raw(b, dtype, shape, integers(42, sizeOf(shape), 0, 99));
        b.sliceAssign(
          out,
          raw(b, dtype, smallShape, integers(43, sizeOf(smallShape), 0, 99)),
          axis,
          start,
          step,
        );
        return [out];
      });
    });

    it("rejects positions outside the axis and mismatched shapes on both backends", () => {
      for (const b of [t.backend(), ref]) {
        const x = raw(b, "float32", [2, 5]);
        expect(() => b.slice(raw(b, "float32", [2, 3]), x, 1, 1, 2), b.name).toThrow(ValueError);
        expect(() => b.slice(raw(b, "float32", [3, 2]), x, 1, 0, 1), b.name).toThrow(DeepnodeError);
      }
    });
  });
}

// ---- layers: erf, batch norm, layer norm, fused activations, embedding --------------------

function layerCases(t: Target): void {
  describe("erf (the exact GELU's unary op)", () => {
    it.each(UNARY_SHAPES.map((s) => [JSON.stringify(s), s] as const))("shape %s", (_, shape) => {
      const values = floats(sizeOf(shape) + 3, sizeOf(shape), -5, 5);
      conform(t, `erf ${JSON.stringify(shape)}`, TRANSCENDENTAL, (b) => {
        const out = raw(b, "float32", shape);
        b.unary("erf", out, raw(b, "float32", shape, values));
        return [out];
      });
    });

    it("special values: NaN, infinities, signed zeros and the tails", () => {
      const values = [NaN, Infinity, -Infinity, 0, -0, 1e-30, 3, -3, 5.9, 6.5, -10];
      conform(t, "erf special", TRANSCENDENTAL, (b) => {
        const out = raw(b, "float32", [values.length]);
        b.unary("erf", out, raw(b, "float32", [values.length], values));
        return [out];
      });
    });
  });

  // Shapes of x [n, c, ...inner]: batch 1, one value of inner, odd sizes, a long channel.
  const BATCH_NORM_SHAPES: number[][] = [
    [4, 3],
    [2, 3, 5],
    [2, 3, 4, 5],
    [1, 2, 7],
    [3, 1, 1, 1],
    [2, 4, 1027],
    [64, 600], // [N, C] read as columns in blocks of channels
    [3, 40, 15],
  ];
  const NORM_TOL: Tolerance = { atol: 1e-5, rtol: 1e-5 };

  describe("batchNorm", () => {
    const optional = (b: Backend, c: number, values: number[] | null) =>
      values === null ? null : raw(b, "float32", [c], values);

    it.each(BATCH_NORM_SHAPES.map((s) => [JSON.stringify(s), s] as const))(
      "x %s: training and eval, with and without affine, forward and backward",
      (_, shape) => {
        const c = shape[1]!;
        const xs = floats(sizeOf(shape), sizeOf(shape), -3, 5);
        const gs = floats(sizeOf(shape) + 1, sizeOf(shape));
        const running = [floats(1, c, -1, 1), floats(2, c, 0.5, 2)];
        for (const training of [true, false]) {
          for (const affine of [true, false]) {
            const weight = affine ? floats(3, c, 0.5, 1.5) : null;
            const bias = affine ? floats(4, c) : null;
            const label =
              `batchNorm ${JSON.stringify(shape)} training=${training} ` + `affine=${affine}`;
            const forward = conform(t, label, NORM_TOL, (b) => {
              const out = raw(b, "float32", shape);
              const mean = raw(b, "float32", [c], training ? undefined : running[0]);
              const variance = raw(b, "float32", [c], training ? undefined : running[1]);
              const x = raw(b, "float32", shape, xs);
              b.batchNorm(
                out,
                mean,
                variance,
                x,
                optional(b, c, weight),
                optional(b, c, bias),
                training,
                1e-5,
              );
              return [out, mean, variance];
            });
            const [mean, variance] = forward.ref
              .slice(1)
              .map((t) => Array.from(t.storage as Float32Array));
            conform(t, `${label} backward`, NORM_TOL, (b) => {
              const gradX = raw(b, "float32", shape);
              const gradWeight = raw(b, "float32", [c]);
              const gradBias = raw(b, "float32", [c]);
              b.batchNormBackward(
                gradX,
                gradWeight,
                gradBias,
                raw(b, "float32", shape, gs),
                raw(b, "float32", shape, xs),
                raw(b, "float32", [c], mean),
                raw(b, "float32", [c], variance),
                optional(b, c, weight),
                training,
                1e-5,
              );
              return [gradX, gradWeight, gradBias];
            });
          }
        }
      },
    );

    it.each(BATCH_NORM_SHAPES.map((s) => [JSON.stringify(s), s] as const))(
      "x %s: training moves the running statistics in the same call",
      (_, shape) => {
        const c = shape[1]!;
        const xs = floats(sizeOf(shape), sizeOf(shape), -3, 5);
        const running = [floats(1, c, -1, 1), floats(2, c, 0.5, 2)];
        for (const which of ["both", "mean", "variance"] as const) {
          const label = `batchNorm ${JSON.stringify(shape)} running ${which}`;
          conform(t, label, NORM_TOL, (b) => {
            const [mean, variance] = [raw(b, "float32", [c]), raw(b, "float32", [c])];
            const runningMean = which === "variance" ? null : raw(b, "float32", [c], running[0]);
            const runningVar = which === "mean" ? null : raw(b, "float32", [c], running[1]);
            const out = raw(b, "float32", shape);
            const x = raw(b, "float32", shape, xs);
            const stats = { mean: runningMean, variance: runningVar, momentum: 0.3 };
            b.batchNorm(out, mean, variance, x, null, null, true, 1e-5, stats);
            return [out, mean, variance, ...[runningMean, runningVar].filter((r) => r !== null)];
          });
        }
      },
    );

    it("running statistics: unchanged for one value per channel, refused in eval", () => {
      const b = t.backend();
      const runningMean = raw(b, "float32", [3], [1, 2, 3]);
      const stats = { mean: runningMean, variance: null, momentum: 0.5 };
      const x = raw(b, "float32", [1, 3], [7, 8, 9]);
      const [out, mean, variance] = [
        raw(b, "float32", [1, 3]),
        ...[3, 3].map((c) => raw(b, "float32", [c])),
      ];
      b.batchNorm(out!, mean!, variance!, x, null, null, true, 1e-5, stats);
      expect(Array.from(b.read(runningMean))).toEqual([1, 2, 3]);
      // One value per channel in [2, 3]: the mean moves halfway, to 4, 5, 6.
      const two = raw(b, "float32", [2, 3], [7, 8, 9, 7, 8, 9]);
      b.batchNorm(raw(b, "float32", [2, 3]), mean!, variance!, two, null, null, true, 1e-5, stats);
      expect(Array.from(b.read(runningMean))).toEqual([4, 5, 6]);
      for (const backend of [b, ref]) {
        const r = raw(backend, "float32", [3], [1, 2, 3]);
        const s = [3, 3].map((c) => raw(backend, "float32", [c], [0, 0, 1]));
        const x = raw(backend, "float32", [2, 3]);
        const call = (training: boolean, momentum: number) => () => {
          const running = { mean: r, variance: null, momentum };
          const out = raw(backend, "float32", [2, 3]);
          backend.batchNorm(out, s[0]!, s[1]!, x, null, null, training, 1e-5, running);
        };
        expectThrows(
          call(false, 0.5),
          ValueError,
          /running statistics are updated only when training/,
        );
        // A bad momentum is named as JavaScript writes it, on every backend.
        for (const [momentum, text] of [
          [1.5, "1.5"],
          [NaN, "NaN"],
          [-Infinity, "-Infinity"],
          [-1e-7, "-1e-7"],
          [-0.000001, "-0.000001"],
          [1e21, "1e+21"],
          [12345678901234567000, "12345678901234567000"],
          [-(2 ** -24), "-5.960464477539063e-8"], // '%.17g' and a digits loop gave 17 digits
          [2 ** 89, "6.189700196426902e+26"],
        ] as const) {
          const message = `batchNorm: momentum must be in [0, 1], got ${text}`;
          expectThrows(call(true, momentum), ValueError, message);
        }
      }
    });

    it("gradX alone (no weight or bias gradients) matches", () => {
      const shape = [3, 2, 4];
      const xs = floats(5, 24);
      conform(t, "batchNormBackward without parameter gradients", NORM_TOL, (b) => {
        const gradX = raw(b, "float32", shape);
        b.batchNormBackward(
          gradX,
          null,
          null,
          raw(b, "float32", shape, floats(6, 24)),
          raw(b, "float32", shape, xs),
          raw(b, "float32", [2], [0.1, -0.2]),
          raw(b, "float32", [2], [0.5, 1.5]),
          null,
          true,
          1e-3,
        );
        return [gradX];
      });
    });

    it("a statistics buffer of the wrong size is a ShapeError on both backends", () => {
      for (const b of [t.backend(), ref]) {
        let caught: unknown;
        try {
          const x = raw(b, "float32", [2, 3]);
          b.batchNorm(
            raw(b, "float32", [2, 3]),
            raw(b, "float32", [2]),
            raw(b, "float32", [3]),
            x,
            null,
            null,
            true,
            1e-5,
          );
        } catch (error) {
          caught = error;
        }
        expect(caught, b.name).toBeInstanceOf(ShapeError);
      }
    });
  });

  // [x shape, the leading dims that mean and rstd keep]
  const LAYER_NORM_CASES: [number[], number[]][] = [
    [[5, 7], [5]],
    [[2, 3, 4], [2]],
    [
      [2, 3, 4],
      [2, 3],
    ],
    [[3, 1000], [3]],
    [[4], []],
    [[1, 1], [1]],
    [[600, 3], [600]],
    // Rows summed in groups for the weight gradient on the cpu; each row 16-wide vectors, a tail.
    [[40, 37], [40]],
  ];

  describe("layerNorm", () => {
    it.each(
      LAYER_NORM_CASES.map(([x, m]) => [JSON.stringify(x), JSON.stringify(m), x, m] as const),
    )(
      "x %s over rows %s, with weight and bias, neither, or a bias alone, forward and backward",
      (_x, _m, shape, rowShape) => {
        const normSize = sizeOf(shape) / sizeOf(rowShape);
        const xs = floats(sizeOf(shape) + 7, sizeOf(shape), -2, 6);
        const gs = floats(sizeOf(shape) + 8, sizeOf(shape));
        const modes = [
          [true, true],
          [false, false],
          [false, true],
        ] as const;
        for (const [hasWeight, hasBias] of modes) {
          const param = (b: Backend, seed: number, present: boolean) =>
            present ? raw(b, "float32", [normSize], floats(seed, normSize, 0.5, 1.5)) : null;
          const label = `layerNorm ${JSON.stringify(shape)} weight=${hasWeight} bias=${hasBias}`;
          const forward = conform(t, label, NORM_TOL, (b) => {
            const out = raw(b, "float32", shape);
            const mean = raw(b, "float32", rowShape);
            const rstd = raw(b, "float32", rowShape);
            b.layerNorm(
              out,
              mean,
              rstd,
              raw(b, "float32", shape, xs),
              param(b, 1, hasWeight),
              param(b, 2, hasBias),
              1e-5,
            );
            return [out, mean, rstd];
          });
          const [mean, rstd] = forward.ref
            .slice(1)
            .map((t) => Array.from(t.storage as Float32Array));
          conform(t, `${label} backward`, NORM_TOL, (b) => {
            const gradX = raw(b, "float32", shape);
            const gradWeight = hasWeight ? raw(b, "float32", [normSize]) : null;
            const gradBias = hasBias ? raw(b, "float32", [normSize]) : null;
            b.layerNormBackward(
              gradX,
              gradWeight,
              gradBias,
              raw(b, "float32", shape, gs),
              raw(b, "float32", shape, xs),
              raw(b, "float32", rowShape, mean),
              raw(b, "float32", rowShape, rstd),
              param(b, 1, hasWeight),
            );
            return [gradX, gradWeight, gradBias].filter((t) => t !== null);
          });
        }
      },
    );
  });

  // GELU's 1 + erf (1 + tanh) cancels for negative inputs, so float errors there are absolute:
  // near 1e-7 for the values, and the tanh form's gradient flushes to 0 below about -5.5
  // where it is -5e-7, as PyTorch's float kernel does.
  const ACTIVATION_TOL: Tolerance = { atol: 1e-6, rtol: 1e-6 };

  describe("fused activations: gelu, gelu_tanh, silu and their gradients", () => {
    const ops: [UnaryOp, BinaryOp][] = [
      ["gelu", "gelu_backward"],
      ["gelu_tanh", "gelu_tanh_backward"],
      ["silu", "silu_backward"],
    ];

    it.each(ops)("%s and %s on random and special values", (op, backward) => {
      const specials = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 3.9, 4.1, -6, 30, -30];
      for (const shape of UNARY_SHAPES) {
        const count = sizeOf(shape);
        const xs = [...specials, ...floats(count + 9, count, -8, 8)].slice(0, count);
        const gs = floats(count + 10, count);
        conform(t, `${op} ${JSON.stringify(shape)}`, ACTIVATION_TOL, (b) => {
          const out = raw(b, "float32", shape);
          b.unary(op, out, raw(b, "float32", shape, xs));
          return [out];
        });
        conform(t, `${backward} ${JSON.stringify(shape)}`, ACTIVATION_TOL, (b) => {
          const out = raw(b, "float32", shape);
          b.binary(backward, out, raw(b, "float32", shape, gs), raw(b, "float32", shape, xs));
          return [out];
        });
      }
    });

    it("the gradient ops are float only", () => {
      expect(() =>
        t
          .backend()
          .binary(
            "gelu_backward",
            raw(t.backend(), "int32", [2]),
            raw(t.backend(), "int32", [2]),
            raw(t.backend(), "int32", [2]),
          ),
      ).toThrow(DeepnodeError);
    });
  });

  describe("embedding and embeddingBackward", () => {
    // [numEmbeddings, dim, indices]: repeats, one row, a wide row, many rows into few.
    const cases: [number, number, number[]][] = [
      [5, 3, [0, 2, 4, 2, 1, 0]],
      [1, 1, [0, 0, 0]],
      [7, 130, [6, 0, 3]],
      [3, 16, integers(9, 2000, 0, 2)],
      [1000, 8, integers(10, 300, 0, 999)],
    ];

    it.each(cases.map((c) => [c[0], c[1], c[2].length, c] as const))(
      "%d x %d table, %d indices: lookup, and gradients with and without a padding row",
      (_rows, _dim, _count, [rows, dim, indices]) => {
        const table = floats(rows * dim, rows * dim);
        const upstream = floats(indices.length, indices.length * dim);
        conform(t, "embedding", EXACT, (b) => {
          const out = raw(b, "float32", [indices.length, dim]);
          b.embedding(
            out,
            raw(b, "float32", [rows, dim], table),
            raw(b, "int32", [indices.length], indices),
          );
          return [out];
        });
        for (const paddingIdx of [-1, indices[0]!]) {
          conform(t, `embeddingBackward paddingIdx=${paddingIdx}`, ACCUMULATE, (b) => {
            const grad = raw(b, "float32", [rows, dim], floats(3, rows * dim));
            const gradOut = raw(b, "float32", [indices.length, dim], upstream);
            b.embeddingBackward(
              grad,
              gradOut,
              raw(b, "int32", [indices.length], indices),
              paddingIdx,
            );
            return [grad];
          });
        }
      },
    );

    it("an index out of range is an IndexError on both backends, before any write", () => {
      for (const b of [t.backend(), ref]) {
        const out = raw(b, "float32", [2, 2], [7, 7, 7, 7]);
        let caught: unknown;
        try {
          b.embedding(out, raw(b, "float32", [3, 2]), raw(b, "int32", [2], [1, 3]));
        } catch (error) {
          caught = error;
        }
        expect(caught, b.name).toBeInstanceOf(IndexError);
        expect((caught as Error).message, b.name).toBe(
          "embedding: index 3 is out of bounds for 3 embeddings",
        );
        expect(readRaw(b, out)).toEqual([7, 7, 7, 7]);
      }
    });
  });
}

// ---- attention's fused softmax -----------------------------------------------------------

/** A mask with -inf at about a third of the entries, the whole of row 1 included. */
function attentionMask(seed: number, rows: number, cols: number): number[] {
  const values = floats(seed, rows * cols, -2, 2);
  return values.map((v, i) => (Math.floor(i / cols) === 1 || v > 0.7 ? -Infinity : v));
}

const MASKED_SOFTMAX_CASES: [number[], number, boolean][] = [
  [[3, 5], 0.5, false],
  [[2, 3, 4], 0.125, true],
  [[4, 1000], 1, true],
  [[2, 1, 33], 2, true],
];

function maskedSoftmaxCases(t: Target): void {
  describe("maskedSoftmax", () => {
    it.each(MASKED_SOFTMAX_CASES)("shape %o, scale %d, mask %s", (shape, scale, masked) => {
      const cols = shape[shape.length - 1]!;
      const rows = sizeOf(shape) / cols;
      const xs = floats(rows + 3, sizeOf(shape), -5, 5);
      const mask = attentionMask(cols, rows, cols);
      const { ref } = conform(t, "maskedSoftmax", { atol: 1e-6, rtol: 1e-5 }, (b) => {
        const out = raw(b, "float32", shape);
        const m = masked ? raw(b, "float32", shape, mask) : null;
        b.maskedSoftmax(out, raw(b, "float32", shape, xs), m, scale);
        return [out];
      });
      const y = Array.from(ref[0]!.storage as Float32Array);
      if (masked) expect(y.slice(cols, 2 * cols).every((v) => v === 0)).toBe(true);
      expect(y.every(Number.isFinite)).toBe(true);
    });
  });
}

// ---- average pooling, adaptive average pooling and CTC loss ------------------------------

function avgParams(
  kernelSize: [number, number],
  stride: [number, number] = kernelSize,
  padding: [number, number] = [0, 0],
  extra: Partial<AvgPool2dParams> = {},
): AvgPool2dParams {
  const base = { ceilMode: false, countIncludePad: true, divisorOverride: null };
  return { kernelSize, stride, padding, ...base, ...extra };
}

const AVG_POOL_CASES: { name: string; x: number[]; params: AvgPool2dParams }[] = [
  { name: "2x2 stride 2", x: [2, 3, 6, 6], params: avgParams([2, 2]) },
  {
    name: "odd input, 3x3 stride 2 padding 1",
    x: [2, 2, 7, 8],
    params: avgParams([3, 3], [2, 2], [1, 1]),
  },
  {
    name: "ceil mode, padding not counted",
    x: [1, 2, 7, 6],
    params: avgParams([3, 3], [2, 2], [1, 1], { ceilMode: true, countIncludePad: false }),
  },
  {
    name: "non-square, stride [1, 2], divisorOverride 5",
    x: [2, 1, 5, 9],
    params: avgParams([2, 3], [1, 2], [1, 0], { divisorOverride: 5 }),
  },
  { name: "1x1 kernel, batch 1", x: [1, 3, 3, 4], params: avgParams([1, 1]) },
  { name: "empty batch", x: [0, 2, 4, 4], params: avgParams([2, 2]) },
];

const ADAPTIVE_CASES: { x: number[]; out: [number, number] }[] = [
  { x: [2, 3, 7, 5], out: [3, 2] },
  { x: [1, 2, 3, 5], out: [4, 4] },
  { x: [2, 2, 6, 6], out: [1, 1] },
  { x: [1, 1, 5, 7], out: [5, 7] },
];

function avgPoolCases(t: Target): void {
  describe("avgPool2d and adaptiveAvgPool2d", () => {
    it.each(AVG_POOL_CASES.map((c) => [c.name, c] as const))(
      "avgPool2d %s: forward and backward",
      (_n, c) => {
        const { kernelSize, stride, padding, ceilMode } = c.params;
        const out = [
          c.x[0]!,
          c.x[1]!,
          ...[0, 1].map((i) =>
            poolOutputSize(c.x[2 + i]!, kernelSize[i]!, stride[i]!, padding[i]!, 1, ceilMode),
          ),
        ];
        const xs = floats(11, sizeOf(c.x));
        conform(t, "avgPool2d", ACCUMULATE, (b) => {
          const y = raw(b, "float32", out);
          b.avgPool2d(y, raw(b, "float32", c.x, xs), c.params);
          return [y];
        });
        const [gs, start] = [floats(12, sizeOf(out)), floats(13, sizeOf(c.x))];
        conform(t, "avgPool2dBackward (adds into gradX)", ACCUMULATE, (b) => {
          const gradX = raw(b, "float32", c.x, start);
          b.avgPool2dBackward(gradX, raw(b, "float32", out, gs), c.params);
          return [gradX];
        });
      },
    );

    it.each(
      ADAPTIVE_CASES.map((c) => [`${formatShape(c.x)} to ${formatShape(c.out)}`, c] as const),
    )("adaptiveAvgPool2d %s: forward and backward", (_n, c) => {
      const out = [c.x[0]!, c.x[1]!, ...c.out];
      const xs = floats(14, sizeOf(c.x));
      conform(t, "adaptiveAvgPool2d", ACCUMULATE, (b) => {
        const y = raw(b, "float32", out);
        b.adaptiveAvgPool2d(y, raw(b, "float32", c.x, xs));
        return [y];
      });
      const gs = floats(15, sizeOf(out));
      conform(t, "adaptiveAvgPool2dBackward", ACCUMULATE, (b) => {
        const gradX = rawZeros(b, "float32", c.x);
        b.adaptiveAvgPool2dBackward(gradX, raw(b, "float32", out, gs));
        return [gradX];
      });
    });
  });
}

interface CtcCase {
  name: string;
  steps: number;
  classes: number;
  targets: number[][];
  inputLengths: number[];
  blank: number;
}

const CTC_CASES: CtcCase[] = [
  { name: "one sample", steps: 6, classes: 4, targets: [[1, 2]], inputLengths: [6], blank: 0 },
  {
    name: "repeats, an empty target, an impossible one, short inputs",
    steps: 9,
    classes: 5,
    targets: [[1, 1, 2], [3], [], [1, 2, 3, 4, 1, 2]],
    inputLengths: [9, 5, 3, 4],
    blank: 0,
  },
  {
    name: "blank last, 8 samples (threads)",
    steps: 12,
    classes: 6,
    targets: [[0, 1], [2, 2, 2], [4], [3, 0, 3], [1], [0, 1, 2, 3], [4, 4], [2]],
    inputLengths: [12, 11, 10, 9, 8, 12, 7, 1],
    blank: 5,
  },
];

function ctcRaw(b: Backend, c: CtcCase, logProbs: number[]): CtcInputs {
  const batch = c.targets.length;
  const maxTarget = Math.max(0, ...c.targets.map((row) => row.length));
  const padded = c.targets.flatMap((row) => [
    ...row,
    ...new Array<number>(maxTarget - row.length).fill(0),
  ]);
  return {
    logProbs: raw(b, "float32", [c.steps, batch, c.classes], logProbs),
    targets: raw(b, "int32", [batch, maxTarget], padded),
    inputLengths: raw(b, "int32", [batch], c.inputLengths),
    targetLengths: raw(
      b,
      "int32",
      [batch],
      c.targets.map((row) => row.length),
    ),
    blank: c.blank,
  };
}

function ctcCases(t: Target): void {
  describe("ctcLoss", () => {
    it.each(CTC_CASES.map((c) => [c.name, c] as const))("%s: loss, alpha and gradient", (_n, c) => {
      const batch = c.targets.length;
      const width = 2 * Math.max(0, ...c.targets.map((row) => row.length)) + 1;
      const logProbs = floats(21, c.steps * batch * c.classes, -3, 0);
      const forward = conform(t, "ctcLoss", ACCUMULATE, (b) => {
        const loss = raw(b, "float32", [batch]);
        const logAlpha = raw(b, "float64", [batch, c.steps, width]);
        b.ctcLoss(loss, logAlpha, ctcRaw(b, c, logProbs));
        return [loss, logAlpha];
      });
      const alpha = Array.from(forward.ref[1]!.storage as Float64Array);
      const loss = Array.from(forward.ref[0]!.storage as Float32Array);
      const gradLoss = floats(22, batch);
      for (const zeroInfinity of [false, true]) {
        conform(t, `ctcLossBackward zeroInfinity ${zeroInfinity}`, ACCUMULATE, (b) => {
          const grad = raw(
            b,
            "float32",
            [c.steps, batch, c.classes],
            new Array<number>(c.steps * batch * c.classes).fill(7),
          );
          const inputs = ctcRaw(b, c, logProbs);
          const alphaRaw = raw(b, "float64", [batch, c.steps, width], alpha);
          b.ctcLossBackward(
            grad,
            raw(b, "float32", [batch], gradLoss),
            inputs,
            alphaRaw,
            raw(b, "float32", [batch], loss),
            zeroInfinity,
          );
          return [grad];
        });
      }
    });

    it("a label equal to the blank is an IndexError on both backends", () => {
      const c = { ...CTC_CASES[0]!, targets: [[1, 0]] };
      for (const b of [t.backend(), ref]) {
        const loss = raw(b, "float32", [1]);
        const logAlpha = raw(b, "float64", [1, c.steps, 5]);
        const inputs = ctcRaw(b, c, floats(23, c.steps * c.classes, -3, 0));
        expect(() => b.ctcLoss(loss, logAlpha, inputs), b.name).toThrow(IndexError);
      }
    });
  });
}

const SECTIONS: ((t: Target) => void)[] = [
  memoryFillAndCastCases,
  randomKernelsCases,
  unaryCases,
  binaryCases,
  reductionsCases,
  matmulCases,
  conv2dCases,
  maxPool2dCases,
  softmaxCases,
  gatherAndScatterAddCases,
  nllLossCases,
  optimizerStepsCases,
  adamStepsCases,
  sgdStepsCases,
  normsCases,
  scaleInPlaceCases,
  rmspropAndAdagradStepsCases,
  rmspropAndAdagradCases,
  recurrentCases,
  sliceCases,
  layerCases,
  hardInputCases,
  emptyTensorCases,
  releaseCases,
  maskedSoftmaxCases,
  avgPoolCases,
  ctcCases,
  fusedAttentionCases,
];

// ---- fused attention ---------------------------------------------------------------------

interface FusedAttentionCase {
  name: string;
  /** B (= N * heads), L, S, E, Ev. */
  sizes: [number, number, number, number, number];
  heads: number;
  /** Padded keys per sample (from the end), or null for no key-padding mask. */
  padded: number[] | null;
  causal: boolean;
  dropoutP: number;
}

const FUSED_ATTENTION_CASES: FusedAttentionCase[] = [
  { name: "plain", sizes: [2, 3, 4, 5, 6], heads: 1, padded: null, causal: false, dropoutP: 0 },
  {
    name: "3 heads, padding (one sample all padding), dropout",
    sizes: [6, 5, 7, 4, 3],
    heads: 3,
    padded: [2, 7],
    causal: false,
    dropoutP: 0.3,
  },
  {
    name: "causal over fewer keys than queries, with padding",
    sizes: [4, 6, 3, 8, 2],
    heads: 2,
    padded: [0, 1],
    causal: true,
    dropoutP: 0,
  },
  {
    name: "one query, 33-wide heads, causal, dropout",
    sizes: [3, 1, 9, 33, 5],
    heads: 1,
    padded: null,
    causal: true,
    dropoutP: 0.5,
  },
];

function fusedAttentionInputs(b: Backend, c: FusedAttentionCase) {
  const [B, L, S, E, Ev] = c.sizes;
  const query = raw(b, "float32", [B, L, E], floats(1, B * L * E, -2, 2));
  const key = raw(b, "float32", [B, S, E], floats(2, B * S * E, -2, 2));
  const value = raw(b, "float32", [B, S, Ev], floats(3, B * S * Ev));
  const padding =
    c.padded === null
      ? null
      : raw(
          b,
          "bool",
          [B / c.heads, S],
          c.padded.flatMap((count) =>
            Array.from({ length: S }, (_, j) => (j >= S - count ? 1 : 0)),
          ),
        );
  const dropoutKey: RandomKey | null = c.dropoutP > 0 ? { seed: 11, offset: 8 } : null;
  const params = { heads: c.heads, scale: 1 / Math.sqrt(E), causal: c.causal, ...{ dropoutKey } };
  return { query, key, value, padding, params: { ...params, dropoutP: c.dropoutP } };
}

function fusedAttentionCases(t: Target): void {
  describe("fusedAttention", () => {
    const tol = { atol: 1e-5, rtol: 1e-4 };
    it.each(FUSED_ATTENTION_CASES)("forward: $name", (c) => {
      const [B, L, , , Ev] = c.sizes;
      const { ref } = conform(t, "fusedAttention", tol, (b) => {
        const { query, key, value, padding, params } = fusedAttentionInputs(b, c);
        const out = raw(b, "float32", [B, L, Ev]);
        b.fusedAttention(out, query, key, value, padding, params);
        return [out];
      });
      const out = Array.from(ref[0]!.storage as Float32Array);
      // A sample whose keys are all padding attends to nothing: its heads give zeros.
      if (c.padded?.[1] === c.sizes[2]) {
        expect(out.slice((B / 2) * L * Ev).every((v) => v === 0)).toBe(true);
      }
    });

    it.each(FUSED_ATTENTION_CASES)("backward: $name", (c) => {
      const [B, L, S, E, Ev] = c.sizes;
      conform(t, "fusedAttentionBackward", tol, (b) => {
        const { query, key, value, padding, params } = fusedAttentionInputs(b, c);
        const grads: [RawTensor, RawTensor, RawTensor] = [
          raw(b, "float32", [B, L, E], new Array<number>(B * L * E).fill(9)),
          raw(b, "float32", [B, S, E], new Array<number>(B * S * E).fill(9)),
          raw(b, "float32", [B, S, Ev], new Array<number>(B * S * Ev).fill(9)),
        ];
        const gradOut = raw(b, "float32", [B, L, Ev], floats(4, B * L * Ev));
        b.fusedAttentionBackward(grads, gradOut, [query, key, value], padding, params);
        return grads;
      });
    });

    it("names sizes that do not fit: a ShapeError on both backends", () => {
      const c = FUSED_ATTENTION_CASES[1]!;
      for (const b of [t.backend(), ref]) {
        const { query, key, value, padding, params } = fusedAttentionInputs(b, c);
        const out = raw(b, "float32", [6, 5, 3]);
        const wrongKey = { ...key, shape: [6, 6, 4] };
        expect(() => b.fusedAttention(out, query, wrongKey, value, padding, params)).toThrow(
          ShapeError,
        );
        const tooFewHeads = { ...params, heads: 4 };
        expect(() => b.fusedAttention(out, query, key, value, padding, tooFewHeads)).toThrow(
          ShapeError,
        );
      }
    });
  });
}
