// Cases for the cuda backend's reduction kernel family (native/cuda/kernels/: reduce,
// softmax, loss, index, norm and ctc) beyond the conformance suite: rows, columns and
// channels long enough for the chunked two-pass reductions, NaN and ties among many values,
// integer wrapping, and the checks that run on the device (indices, targets, CTC lengths
// and labels), which must throw the cpu's error and write nothing. Run on the host
// emulation (backend-cuda-emulated.test.ts) and, where there is one, on a GPU
// (backend-cuda.test.ts).

import { describe, expect, it } from "vitest";

import type { Backend, RawTensor } from "../lib/backend/backend.js";
import { backendFor } from "../lib/backend/registry.js";
import * as lib from "../lib/index.js";
import { expectClose, randomValues, raw, readRaw, seededRandom } from "./helpers.js";

type Tol = { atol: number; rtol: number };

// The error `fn` throws (it must throw one).
function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error to be thrown");
}

// Runs `run` on cuda and on the oracle; every array it returns must agree.
function agree(oracle: Backend, run: (b: Backend) => number[][], tol: Tol, label: string): void {
  const got = run(backendFor("cuda:0"));
  const want = run(oracle);
  want.forEach((values, i) => expectClose(got[i]!, values, tol, `${label} [${i}]`));
}

// The same error class and message from cuda and cpu.
function sameError(
  run: (b: Backend) => void,
  cls: new (...args: never[]) => Error,
  label: string,
): void {
  const errors = [backendFor("cuda:0"), backendFor("cpu")].map((b) => caught(() => run(b)));
  expect(errors[0], label).toBeInstanceOf(cls);
  expect(errors[0]!.message, label).toBe(errors[1]!.message);
}

function integers(random: () => number, count: number, low: number, high: number): number[] {
  return Array.from({ length: count }, () => low + Math.floor(random() * (high - low + 1)));
}

function reductionCases(): void {
  const reference = () => backendFor("reference");
  const shapes: [number[], number[], number[]][] = [
    [[100000], [0], [1]],
    [[3, 20000], [1], [3, 1]],
    [[20000, 3], [0], [1, 3]],
    [
      [4, 3000, 5],
      [0, 2],
      [1, 3000, 1],
    ],
  ];

  it.each(shapes)(
    "sum, mean, max, min and prod of %o over %o (chunked)",
    (shape, axes, outShape) => {
      const n = shape.reduce((p, d) => p * d, 1);
      const xs = randomValues(seededRandom(n), n, -2, 2);
      const near1 = randomValues(seededRandom(n + 1), n, 0.9999, 1.0001);
      const withNaN = (values: number[]) => values.map((v, i) => (i === n >> 1 ? NaN : v));
      agree(
        reference(),
        (b) =>
          (["sum", "mean", "max", "min", "prod"] as const).flatMap((op) => {
            const values = op === "prod" ? near1 : xs;
            const out = raw(b, "float32", outShape);
            b.reduce(op, out, raw(b, "float32", shape, values), axes);
            const nanOut = raw(b, "float32", outShape);
            b.reduce(op, nanOut, raw(b, "float32", shape, withNaN(values)), axes);
            return [readRaw(b, out), readRaw(b, nanOut)];
          }),
        { atol: 1e-4, rtol: 1e-5 },
        `reduce ${JSON.stringify(shape)}`,
      );
    },
  );

  it("int32 sums and products wrap over 100000 values; uint8 sums count up in int32", () => {
    const random = seededRandom(7);
    const big = integers(random, 100000, -2000000000, 2000000000);
    const bytes = integers(random, 100000, 0, 255);
    agree(
      backendFor("cpu"),
      (b) => {
        const outs = (["sum", "prod", "max", "min"] as const).map((op) => {
          const out = raw(b, "int32", []);
          b.reduce(op, out, raw(b, "int32", [100000], big), [0]);
          return readRaw(b, out);
        });
        const byteSum = raw(b, "int32", [4]);
        b.reduce("sum", byteSum, raw(b, "uint8", [4, 25000], bytes), [1]);
        return [...outs, readRaw(b, byteSum)];
      },
      { atol: 0, rtol: 0 },
      "integer reduce",
    );
  });

  it("argmax and argmin keep the first of ties and the first NaN along 50000 values", () => {
    const ties = integers(seededRandom(3), 2 * 50000 * 3, -2, 2);
    const withNaN = ties.map((v, i) => (i === 120001 || i === 200000 ? NaN : v));
    agree(
      reference(),
      (b) =>
        (["argmax", "argmin"] as const).flatMap((op) =>
          [ties, withNaN].map((values) => {
            const out = raw(b, "int32", [2, 1, 3]);
            b.argReduce(op, out, raw(b, "float32", [2, 50000, 3], values), 1);
            return readRaw(b, out);
          }),
        ),
      { atol: 0, rtol: 0 },
      "argReduce",
    );
  });
}

// Rows along the contiguous axis a GPU reduces a warp per row (32 lanes striding the row),
// at lengths around the warp and the chunk (2 x 1024) boundaries.
function rowCases(): void {
  const reference = () => backendFor("reference");
  const lengths = [31, 32, 33, 100, 2048, 2049, 5000];

  it.each(lengths)("sum, mean, max and argmax of rows of %i, ties included", (cols) => {
    const rows = 3;
    const xs = randomValues(seededRandom(cols), rows * cols, -2, 2);
    const ties = integers(seededRandom(cols + 1), rows * cols, -1, 1);
    agree(
      reference(),
      (b) => [
        ...(["sum", "mean", "max"] as const).map((op) => {
          const out = raw(b, "float32", [rows, 1]);
          b.reduce(op, out, raw(b, "float32", [rows, cols], xs), [1]);
          return readRaw(b, out);
        }),
        ...(["argmax", "argmin"] as const).map((op) => {
          const out = raw(b, "int32", [rows, 1]);
          b.argReduce(op, out, raw(b, "float32", [rows, cols], ties), 1);
          return readRaw(b, out);
        }),
      ],
      { atol: 1e-4, rtol: 1e-5 },
      `rows of ${cols}`,
    );
  });

  it.each(lengths)("softmax and log-softmax of rows of %i", (cols) => {
    const xs = randomValues(seededRandom(cols + 2), 2 * cols, -30, 30);
    agree(
      reference(),
      (b) =>
        [false, true].map((log) => {
          const y = raw(b, "float32", [2, cols]);
          b.softmax(y, raw(b, "float32", [2, cols], xs), 1, log);
          return readRaw(b, y);
        }),
      { atol: 1e-6, rtol: 1e-4 },
      `softmax rows of ${cols}`,
    );
  });
}

function softmaxCases(): void {
  const reference = () => backendFor("reference");
  it.each([[[1, 50000]], [[2, 20000, 3]]])("softmax, log-softmax and backward of %o", (shape) => {
    const n = shape.reduce((p, d) => p * d, 1);
    const xs = randomValues(seededRandom(n), n, -30, 30);
    const gy = randomValues(seededRandom(n + 1), n, -1, 1);
    agree(
      reference(),
      (b) =>
        [false, true].flatMap((log) => {
          const y = raw(b, "float32", shape);
          b.softmax(y, raw(b, "float32", shape, xs), 1, log);
          const gx = raw(b, "float32", shape);
          b.softmaxBackward(gx, raw(b, "float32", shape, gy), y, 1, log);
          return [readRaw(b, y), readRaw(b, gx)];
        }),
      { atol: 1e-6, rtol: 1e-4 },
      `softmax ${JSON.stringify(shape)}`,
    );
  });

  it("masked softmax over rows of 30000 writes zeros for a fully masked row", () => {
    const [rows, cols] = [3, 30000];
    const scores = randomValues(seededRandom(5), rows * cols, -50, 50);
    const mask = randomValues(seededRandom(6), rows * cols, -2, 2).map((v, i) =>
      Math.floor(i / cols) === 1 || i === 5 ? -Infinity : v,
    );
    const run = (b: Backend) => {
      const out = raw(b, "float32", [rows, cols]);
      b.maskedSoftmax(
        out,
        raw(b, "float32", [rows, cols], scores),
        raw(b, "float32", [rows, cols], mask),
        0.125,
      );
      return [readRaw(b, out)];
    };
    agree(reference(), run, { atol: 1e-7, rtol: 1e-4 }, "maskedSoftmax");
    expect(run(backendFor("cuda:0"))[0]!.slice(cols, 2 * cols)).toEqual(new Array(cols).fill(0));
  });
}

function lossAndIndexCases(): void {
  it("nllLoss over 60000 weighted targets with an ignored class, and its backward", () => {
    const [n, c] = [60000, 4];
    const random = seededRandom(11);
    const logProbs = randomValues(random, n * c, -5, 0);
    const targets = integers(random, n, 0, c - 1);
    const weight = randomValues(random, c, 0.1, 1);
    agree(
      backendFor("reference"),
      (b) =>
        (["none", "sum", "mean"] as const).flatMap((reduction) => {
          const outShape = reduction === "none" ? [n] : [];
          const out = raw(b, "float32", outShape);
          const args = [raw(b, "int32", [n], targets), raw(b, "float32", [c], weight)] as const;
          b.nllLoss(out, raw(b, "float32", [n, c], logProbs), ...args, reduction, 1);
          const grad = raw(b, "float32", [n, c]);
          const gradOut = raw(
            b,
            "float32",
            outShape,
            reduction === "none" ? logProbs.slice(0, n) : [0.5],
          );
          b.nllLossBackward(grad, gradOut, ...args, reduction, 1);
          return [readRaw(b, out), readRaw(b, grad)];
        }),
      { atol: 1e-9, rtol: 1e-5 },
      "nllLoss",
    );
  });

  it("a bad target, index or embedding index is the cpu's IndexError; nothing written", () => {
    const targets = new Array(9000)
      .fill(0)
      .map((_, i) => (i === 7000 ? 4 : i === 8000 ? -3 : i % 4));
    sameError(
      (b) =>
        b.nllLoss(
          raw(b, "float32", []),
          raw(b, "float32", [9000, 4]),
          raw(b, "int32", [9000], targets),
          null,
          "mean",
          -100,
        ),
      lib.IndexError,
      "nllLoss",
    );
    const index = new Array(6000).fill(0).map((_, i) => (i === 4321 ? 5 : i === 5000 ? -1 : i % 5));
    for (const b of [backendFor("cuda:0"), backendFor("cpu")]) {
      const out = raw(b, "float32", [6000], new Array(6000).fill(7));
      const scatter = () =>
        b.scatterAdd(out, 0, raw(b, "int32", [6000], index), raw(b, "float32", [6000]));
      expect(caught(scatter)).toBeInstanceOf(lib.IndexError);
      expect(readRaw(b, out)).toEqual(new Array(6000).fill(7));
    }
    sameError(
      (b) =>
        b.gather(
          raw(b, "float32", [6000]),
          raw(b, "float32", [5]),
          0,
          raw(b, "int32", [6000], index),
        ),
      lib.IndexError,
      "gather",
    );
    sameError(
      (b) =>
        b.embedding(
          raw(b, "float32", [6000, 2]),
          raw(b, "float32", [5, 2]),
          raw(b, "int32", [6000], index),
        ),
      lib.IndexError,
      "embedding",
    );
  });

  it("embeddingBackward adds 20000 rows into 7 with a padding index", () => {
    const random = seededRandom(13);
    const indices = integers(random, 20000, 0, 6);
    const gradOut = randomValues(random, 20000 * 3, -1, 1);
    const start = randomValues(random, 21, -1, 1);
    agree(
      backendFor("reference"),
      (b) => {
        const grad = raw(b, "float32", [7, 3], start);
        b.embeddingBackward(
          grad,
          raw(b, "float32", [20000, 3], gradOut),
          raw(b, "int32", [20000], indices),
          2,
        );
        return [readRaw(b, grad)];
      },
      { atol: 1e-3, rtol: 1e-5 },
      "embeddingBackward",
    );
  });
}

function normCases(): void {
  it.each([[[64, 3, 300]], [[20000, 2]]])(
    "batchNorm of %o (long channels) and its backward",
    (shape) => {
      const n = shape.reduce((p, d) => p * d, 1);
      const c = shape[1]!;
      const random = seededRandom(n);
      const xs = randomValues(random, n, 90, 110);
      const gy = randomValues(random, n, -1, 1);
      const [w, bias] = [randomValues(random, c, 0.5, 2), randomValues(random, c, -1, 1)];
      agree(
        backendFor("reference"),
        (b) =>
          [true, false].flatMap((training) => {
            const mean = raw(b, "float32", [c], new Array(c).fill(100));
            const variance = raw(b, "float32", [c], new Array(c).fill(30));
            const [x, weight] = [raw(b, "float32", shape, xs), raw(b, "float32", [c], w)];
            const out = raw(b, "float32", shape);
            b.batchNorm(
              out,
              mean,
              variance,
              x,
              weight,
              raw(b, "float32", [c], bias),
              training,
              1e-5,
            );
            const grads = [
              raw(b, "float32", shape),
              raw(b, "float32", [c]),
              raw(b, "float32", [c]),
            ];
            const [gx, gw, gb] = grads as [RawTensor, RawTensor, RawTensor];
            b.batchNormBackward(
              gx,
              gw,
              gb,
              raw(b, "float32", shape, gy),
              x,
              mean,
              variance,
              weight,
              training,
              1e-5,
            );
            return [out, mean, variance, ...grads].map((t) => readRaw(b, t));
          }),
        { atol: 1e-3, rtol: 1e-4 },
        `batchNorm ${JSON.stringify(shape)}`,
      );
    },
  );

  it.each([[[3, 30000]], [[20000, 4]]])("layerNorm of %o and its backward", (shape) => {
    const [rows, size] = shape as [number, number];
    const random = seededRandom(rows * size);
    const xs = randomValues(random, rows * size, 40, 60);
    const gy = randomValues(random, rows * size, -1, 1);
    const [w, bias] = [randomValues(random, size, 0.5, 2), randomValues(random, size, -1, 1)];
    agree(
      backendFor("reference"),
      (b) => {
        const [x, weight] = [raw(b, "float32", shape, xs), raw(b, "float32", [size], w)];
        const [out, mean, rstd] = [
          raw(b, "float32", shape),
          raw(b, "float32", [rows]),
          raw(b, "float32", [rows]),
        ];
        b.layerNorm(out, mean, rstd, x, weight, raw(b, "float32", [size], bias), 1e-5);
        const grads = [
          raw(b, "float32", shape),
          raw(b, "float32", [size]),
          raw(b, "float32", [size]),
        ];
        const [gx, gw, gb] = grads as [RawTensor, RawTensor, RawTensor];
        b.layerNormBackward(gx, gw, gb, raw(b, "float32", shape, gy), x, mean, rstd, weight);
        return [out, mean, rstd, ...grads].map((t) => readRaw(b, t));
      },
      { atol: 1e-3, rtol: 1e-4 },
      `layerNorm ${JSON.stringify(shape)}`,
    );
  });
}

function ctcCases(): void {
  const [steps, batch, classes, maxTarget] = [30, 3, 6, 5];
  const width = 2 * maxTarget + 1;
  const logProbs = randomValues(seededRandom(17), steps * batch * classes, -4, -0.2);
  const inputsOf = (b: Backend, targets: number[], inputLengths: number[]) => ({
    logProbs: raw(b, "float32", [steps, batch, classes], logProbs),
    targets: raw(b, "int32", [batch, maxTarget], targets),
    inputLengths: raw(b, "int32", [batch], inputLengths),
    targetLengths: raw(b, "int32", [batch], [5, 5, 1]),
    blank: 0,
  });
  // Sample 1 needs 9 steps for 4, 4, 4, 4, 4 but has 8: its loss is +inf.
  const targets = [1, 2, 2, 3, 5, 4, 4, 4, 4, 4, 1, 0, 0, 0, 0];

  it("ctcLoss with an impossible sample, and its backward with and without zeroInfinity", () => {
    agree(
      backendFor("reference"),
      (b) => {
        const inputs = inputsOf(b, targets, [30, 8, 17]);
        const [loss, logAlpha] = [
          raw(b, "float32", [batch]),
          raw(b, "float64", [batch, steps, width]),
        ];
        b.ctcLoss(loss, logAlpha, inputs);
        return [false, true].reduce(
          (all, zeroInfinity) => {
            const grad = raw(b, "float32", [steps, batch, classes]);
            const gradLoss = raw(b, "float32", [batch], [0.5, 1, 2]);
            b.ctcLossBackward(grad, gradLoss, inputs, logAlpha, loss, zeroInfinity);
            return [...all, readRaw(b, grad).map((v) => (Number.isFinite(v) ? v : 0))];
          },
          [readRaw(b, loss)],
        );
      },
      { atol: 1e-6, rtol: 1e-5 },
      "ctcLoss",
    );
  });

  it("a blank target or an input length past T is the cpu's error", () => {
    const run = (t: number[], lengths: number[]) => (b: Backend) =>
      b.ctcLoss(
        raw(b, "float32", [batch]),
        raw(b, "float64", [batch, steps, width]),
        inputsOf(b, t, lengths),
      );
    const blank = targets.map((v, i) => (i === 6 ? 0 : v));
    sameError(run(blank, [30, 8, 17]), lib.IndexError, "blank target");
    sameError(run(targets, [30, 31, 17]), lib.ValueError, "input length");
  });
}

export function cudaReductionsSuite(title: string, available: boolean): void {
  describe.skipIf(!available)(title, () => {
    describe("reduce and argReduce", reductionCases);
    describe("rows a warp reduces", rowCases);
    describe("softmax and maskedSoftmax", softmaxCases);
    describe("nllLoss, gather, scatterAdd and embedding", lossAndIndexCases);
    describe("batchNorm and layerNorm", normCases);
    describe("ctcLoss", ctcCases);
  });
}
