// Numerically hard inputs with exact expected values, for one backend: softmax,
// log-softmax and cross-entropy of huge and very negative logits (no inf, no NaN), softmax
// of equal values, binary cross-entropy with logits at +-1000, the gradients of sqrt and
// of a norm at zero, max-pool ties and int32 / float floordiv and remainder with negative
// operands. The expected values are PyTorch 1.13's (checked by hand with python3-torch).
// test/conformance.ts runs these for every backend it checks; test/backend-reference.test.ts
// runs them for the reference.

import { describe, expect, it } from "vitest";

import type { Backend, Pool2dParams } from "../lib/backend/backend.js";
import { F, scope, tensor, type NestedArray, type Tensor } from "../lib/index.js";
import type { Target } from "./conformance.js";
import { expectClose, expectEqualValues, raw, readRaw, type Tolerance } from "./helpers.js";

const EXACT: Tolerance = { atol: 0, rtol: 0 };
const ONE_ULP: Tolerance = { atol: 0, rtol: 1.2e-7 };
const f = Math.fround;

/** Defines the hard-input cases for `t`. */
export function hardInputCases(t: Target): void {
  describe("numerically hard inputs, exact values", () => {
    softmaxCases(t);
    lossCases(t);
    zeroGradientCases(t);
    maxPoolTieCases(t);
    divisionCases(t);
  });
}

/** Values of the float32 softmax (or log-softmax) of `rows` along axis 1. */
function softmaxOf(b: Backend, rows: number[][], log: boolean): number[] {
  const shape = [rows.length, rows[0]!.length];
  const out = raw(b, "float32", shape);
  b.softmax(out, raw(b, "float32", shape, rows.flat()), 1, log);
  return readRaw(b, out);
}

function softmaxBackwardOf(b: Backend, g: number[], y: number[], log: boolean): number[] {
  const gradX = raw(b, "float32", [1, g.length]);
  b.softmaxBackward(
    gradX,
    raw(b, "float32", [1, g.length], g),
    raw(b, "float32", [1, y.length], y),
    1,
    log,
  );
  return readRaw(b, gradX);
}

function softmaxCases(t: Target): void {
  const big = f(1e30);
  it("softmax of equal values is uniform, for huge and very negative values too", () => {
    const rows = [
      [7, 7, 7, 7],
      [-1e30, -1e30, -1e30, -1e30],
      [1e30, 1e30, 1e30, 1e30],
      [-1000, -1000, -1000, -1000],
    ];
    expectEqualValues(softmaxOf(t.backend(), rows, false), Array(16).fill(0.25), "softmax");
    const five = softmaxOf(t.backend(), [[3.5, 3.5, 3.5, 3.5, 3.5]], false);
    expectEqualValues(five, Array(5).fill(f(0.2)), "softmax of five equal values");
  });

  it("log-softmax of equal values is -log(n)", () => {
    const rows = [
      [7, 7, 7, 7],
      [-1e30, -1e30, -1e30, -1e30],
    ];
    const out = softmaxOf(t.backend(), rows, true);
    expectClose(out, Array(8).fill(f(-Math.log(4))), ONE_ULP, "log-softmax");
  });

  it("softmax and log-softmax of logits 1000 apart, and of +-1e30, are finite and exact", () => {
    const rows = [
      [1000, -1000, 1000, -1000],
      [1e30, 0, -1e30, -Infinity],
    ];
    const soft = softmaxOf(t.backend(), rows, false);
    expectEqualValues(soft, [0.5, 0, 0.5, 0, 1, 0, 0, 0], "softmax");
    const logSoft = softmaxOf(t.backend(), rows, true);
    const ln2 = f(Math.LN2);
    expectClose(
      logSoft.slice(0, 4),
      [-ln2, -2000 - ln2, -ln2, -2000 - ln2].map(f),
      ONE_ULP,
      "row 0",
    );
    expectEqualValues(logSoft.slice(4), [0, -big, f(-2 * big), -Infinity], "log-softmax row 1");
  });

  it("softmax of logits near 1000 matches PyTorch's float32 values", () => {
    const soft = softmaxOf(t.backend(), [[1000, 999]], false);
    expectClose(soft, [0.7310585975646973, 0.2689414322376251], ONE_ULP, "softmax");
    const logSoft = softmaxOf(t.backend(), [[1000, 999]], true);
    expectClose(logSoft, [-0.31326165795326233, -1.31326162815094], ONE_ULP, "log-softmax");
  });

  it("the backward of saturated softmax and log-softmax is exact", () => {
    // softmax: y (g - sum(g y)); log-softmax: g - exp(y) sum(g)
    expectEqualValues(softmaxBackwardOf(t.backend(), [1, 2], [1, 0], false), [0, 0], "softmax");
    const logGrad = softmaxBackwardOf(t.backend(), [1, 2], [0, -2000], true);
    expectEqualValues(logGrad, [-2, 2], "log-softmax");
  });
}

type Kind = "float32" | "int32" | "grad";
type Make = (values: NestedArray, kind?: Kind) => Tensor;

/**
 * Runs fn inside a scope on t's device, so the case leaves no tensors behind: make()
 * builds float32, int32 or requires-grad float32 tensors, and the gradients of the last
 * are disposed at the end (they outlive scopes by design).
 */
function onDevice(t: Target, fn: (make: Make) => void): void {
  const leaves: Tensor[] = [];
  scope(() => {
    fn((values, kind = "float32") => {
      const dtype = kind === "int32" ? "int32" : "float32";
      const x = tensor(values, { device: t.device, dtype, requiresGrad: kind === "grad" });
      if (kind === "grad") leaves.push(x);
      return x;
    });
    for (const leaf of leaves) leaf.zeroGrad();
  });
}

function lossCases(t: Target): void {
  it("crossEntropy of huge logits is finite, with exact losses and gradients", () => {
    onDevice(t, (make) => {
      const logits = make(
        [
          [1e30, 0, -1e30],
          [-1e30, -1e30, 5],
        ],
        "grad",
      );
      const loss = F.crossEntropy(logits, make([0, 1], "int32"), { reduction: "none" });
      // -log(1) is -0, as in PyTorch; + 0 folds it into 0 for the comparison.
      expectEqualValues(
        Array.from(loss.dataSync(), (v) => v + 0),
        [0, f(1e30 + 5)],
        "loss",
      );
      loss.sum().backward();
      expectEqualValues(logits.grad!, [0, 0, 0, 0, -1, 1], "gradient");
    });
  });

  it("crossEntropy (mean) and nllLoss of log-softmax at logits +-1000", () => {
    onDevice(t, (make) => {
      const logits = make(
        [
          [1000, -1000],
          [-1000, 1000],
        ],
        "grad",
      );
      const targets = make([1, 1], "int32");
      const loss = F.crossEntropy(logits, targets);
      expect(loss.item()).toBe(1000);
      loss.backward();
      expectEqualValues(logits.grad!, [0.5, -0.5, 0, 0], "crossEntropy gradient");
      const nll = F.nllLoss(F.logSoftmax(logits, 1), targets, { reduction: "sum" });
      expect(nll.item()).toBe(2000);
    });
  });

  it("binaryCrossEntropyWithLogits is exact at logits of +-1000, and so is its gradient", () => {
    onDevice(t, (make) => {
      const logits = make([1000, 1000, -1000, -1000, 0], "grad");
      const targets = make([1, 0, 1, 0, 1]);
      const losses = F.binaryCrossEntropyWithLogits(logits, targets, { reduction: "none" });
      expectEqualValues(losses, [0, 1000, 1000, 0, f(Math.LN2)], "losses");
      F.binaryCrossEntropyWithLogits(logits, targets, { reduction: "sum" }).backward();
      // d/dx = sigmoid(x) - y
      expectEqualValues(logits.grad!, [0, 1, -1, 0, -0.5], "gradient");
    });
  });
}

function zeroGradientCases(t: Target): void {
  it("the gradient of sqrt at 0 is +inf, as PyTorch's", () => {
    onDevice(t, (make) => {
      const x = make([0, 4, 0.25], "grad");
      x.sqrt().sum().backward();
      expectEqualValues(x.grad!, [Infinity, 0.25, 1], "gradient");
    });
  });

  it("the gradient of a norm at 0 is 0, as PyTorch's (not NaN)", () => {
    onDevice(t, (make) => {
      const zero = make([0, 0, 0], "grad");
      zero.norm().backward();
      expectEqualValues(zero.grad!, [0, 0, 0], "gradient at the origin");
      const rows = make(
        [
          [3, 4],
          [0, 0],
        ],
        "grad",
      );
      rows.norm(1).sum().backward();
      expectEqualValues(rows.grad!, [0.6, 0.8, 0, 0].map(f), "gradient per row");
    });
  });
}

function maxPoolTieCases(t: Target): void {
  // PyTorch's CPU kernel keeps the first maximum of a window in row-major order; padding
  // reads as -inf and never wins. Indices are flat positions in the input plane.
  it("max-pool ties: the gradient goes to the first maximum of each window", () => {
    onDevice(t, (make) => {
      const x = make(
        [
          [
            [
              [1, 1, 1],
              [1, 1, 1],
              [1, 1, 1],
            ],
          ],
        ],
        "grad",
      );
      const y = F.maxPool2d(x, 2, { stride: 1 });
      expectEqualValues(y, [1, 1, 1, 1], "output");
      y.backward(
        make([
          [
            [
              [1, 2],
              [3, 4],
            ],
          ],
        ]),
      );
      expectEqualValues(x.grad!, [1, 2, 0, 3, 4, 0, 0, 0, 0], "gradient");
    });
  });

  it("max-pool ties with padding: padding never wins, overlapping windows accumulate", () => {
    onDevice(t, (make) => {
      const plane = [2, 2, 1, 2, 2, 2, 2, 2, 0, 2, 2, 2, 2, 2, 2, 2];
      const x = make([[[0, 1, 2, 3].map((r) => plane.slice(4 * r, 4 * r + 4))]], "grad");
      const y = F.maxPool2d(x, 3, { stride: 2, padding: 1 });
      y.backward(
        make([
          [
            [
              [1, 10],
              [100, 1000],
            ],
          ],
        ]),
      );
      const expected = [1, 10, 0, 0, 100, 1000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
      expectEqualValues(x.grad!, expected, "gradient");
      const negative = make(
        [
          [
            [
              [-5, -5],
              [-5, -5],
            ],
          ],
        ],
        "grad",
      );
      const z = F.maxPool2d(negative, 2, { stride: 1, padding: 1 });
      expectEqualValues(z, Array(9).fill(-5), "output over padding");
      z.sum().backward();
      expectEqualValues(negative.grad!, [4, 2, 2, 1], "gradient over padding");
    });
  });

  it("the maxPool2d kernel records PyTorch's indices for ties", () => {
    const b = t.backend();
    const out = raw(b, "float32", [1, 1, 3, 3]);
    const indices = raw(b, "int32", [1, 1, 3, 3]);
    const params: Pool2dParams = {
      kernelSize: [2, 2],
      stride: [1, 1],
      padding: [1, 1],
      dilation: [1, 1],
      ceilMode: false,
    };
    b.maxPool2d(out, indices, raw(b, "float32", [1, 1, 2, 2], [-5, -5, -5, -5]), params);
    expectEqualValues(readRaw(b, indices), [0, 0, 1, 0, 0, 1, 2, 2, 3], "indices");
  });
}

function binaryOf(
  b: Backend,
  op: "floordiv" | "remainder",
  dtype: "int32" | "float32",
  a: number[],
  d: number[],
): number[] {
  const out = raw(b, dtype, [a.length]);
  b.binary(op, out, raw(b, dtype, [a.length], a), raw(b, dtype, [d.length], d));
  return readRaw(b, out);
}

function divisionCases(t: Target): void {
  const INT_MIN = -(2 ** 31);
  const INT_MAX = 2 ** 31 - 1;
  const a = [7, -7, 7, -7, 0, -1, 1, INT_MIN, INT_MAX, INT_MIN, 5];
  const d = [2, 2, -2, -2, 3, 3, -3, 2, -2, 3, -1];

  it("int32 floordiv rounds toward -inf, as Python and torch.div(rounding_mode='floor')", () => {
    const q = binaryOf(t.backend(), "floordiv", "int32", a, d);
    expectEqualValues(q, [3, -4, -4, 3, 0, -1, -1, -1073741824, -1073741824, -715827883, -5], "q");
  });

  it("int32 remainder takes the sign of the divisor, as Python and torch.remainder", () => {
    const r = binaryOf(t.backend(), "remainder", "int32", a, d);
    expectEqualValues(r, [1, 1, -1, -1, 0, 2, -2, 0, -1, 1, 0], "remainder");
  });

  it("float floordiv and remainder with negative operands, as PyTorch", () => {
    const fa = [-7.5, 7.5, -7.5, 7.5, -0, 1e-30, -1e-30].map(f);
    const fd = [2, -2, -2, 2, 3, 3, 3];
    const q = binaryOf(t.backend(), "floordiv", "float32", fa, fd);
    expectEqualValues(q, [-4, -4, 3, 3, -0, 0, -1], "floordiv");
    const r = binaryOf(t.backend(), "remainder", "float32", fa, fd);
    // remainder(-1e-30, 3) is -1e-30 + 3, which rounds to 3 in float32
    expectEqualValues(r, [0.5, -0.5, -1.5, 1.5, -0, f(1e-30), 3], "remainder");
  });
}
