// The reference backend on small hand-computed examples: every primitive, its edge cases
// (NaN, empty axes, ties, padding, ignored targets) and its errors. Expected values are
// written out by hand; where a value is not exact in binary the expectation says why.

import { describe, expect, it } from "vitest";

import {
  COMPARISON_OPS,
  type BinaryOp,
  type Conv2dParams,
  type Pool2dParams,
  type RawTensor,
  type UnaryOp,
} from "../lib/backend/backend.js";
import { referenceBackend as backend } from "../lib/backend/reference/index.js";
import { poolOutputSize } from "../lib/backend/reference/pool.js";
import type { DType } from "../lib/dtype.js";
import { DTypeError, DeviceError, IndexError, ShapeError, ValueError } from "../lib/errors.js";
import { forEachNormal, forEachUniform } from "../lib/random.js";
import { leakCheck } from "./conformance.js";
import { hardInputCases } from "./hard-inputs.js";

/** What a float-only primitive says when given int32. */
const INT32_NOT_FLOAT =
  "dtype int32 is not supported by the reference backend (supported: float32, float64)";

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((acc, extent) => acc * extent, 1);
}

/** A tensor of `shape` holding `values`, or zeros. */
function tensor(dtype: DType, shape: readonly number[], values?: readonly number[]): RawTensor {
  const storage = values ? backend.fromArray(dtype, values) : backend.alloc(dtype, sizeOf(shape));
  return { storage, shape, dtype };
}

function f64(shape: readonly number[], values?: readonly number[]): RawTensor {
  return tensor("float64", shape, values);
}

function f32(shape: readonly number[], values?: readonly number[]): RawTensor {
  return tensor("float32", shape, values);
}

function i32(shape: readonly number[], values?: readonly number[]): RawTensor {
  return tensor("int32", shape, values);
}

/** Asserts that run throws an instance of errorClass with exactly this message. */
function expectThrow(
  run: () => unknown,
  errorClass: abstract new (...args: never[]) => Error,
  message: string,
): void {
  let caught: unknown = undefined;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(errorClass);
  expect((caught as Error).message).toBe(message);
}

function valuesOf(x: RawTensor): number[] {
  return Array.from(backend.read(x));
}

/** Runs a one-input unary op on float64 values and returns the result. */
function unary64(op: UnaryOp, xs: number[], alpha?: number, beta?: number): number[] {
  const out = f64([xs.length]);
  backend.unary(op, out, f64([xs.length], xs), alpha, beta);
  return valuesOf(out);
}

/** Runs a binary op on two tensors of one dtype and returns the result. */
function binaryOf(op: BinaryOp, dtype: DType, a: number[], b: number[]): number[] {
  const outDType = COMPARISON_OPS.includes(op) ? "bool" : dtype;
  const out = tensor(outDType, [a.length]);
  backend.binary(op, out, tensor(dtype, [a.length], a), tensor(dtype, [b.length], b));
  return valuesOf(out);
}

describe("memory", () => {
  it("alloc zero-fills storage of the dtype's typed array", () => {
    const storage = backend.alloc("float64", 3);
    expect(storage).toBeInstanceOf(Float64Array);
    expect(Array.from(storage as Float64Array)).toEqual([0, 0, 0]);
    expect(backend.alloc("bool", 2)).toBeInstanceOf(Uint8Array);
    expect(backend.alloc("int8", 2)).toBeInstanceOf(Int8Array);
  });

  it("fromArray converts: ints truncate toward zero, bool is 1 for any non-zero", () => {
    expect(Array.from(backend.fromArray("int32", [2.7, -2.7, 5]) as Int32Array)).toEqual([
      2, -2, 5,
    ]);
    expect(Array.from(backend.fromArray("bool", [0, 0.5, -3, NaN]) as Uint8Array)).toEqual([
      0, 1, 1, 1,
    ]);
    expect(Array.from(backend.fromArray("float32", [0.1]) as Float32Array)).toEqual([
      Math.fround(0.1),
    ]);
  });

  it("read returns a copy", () => {
    const x = f32([2], [1, 2]);
    const copy = backend.read(x);
    copy[0] = 99;
    expect(valuesOf(x)).toEqual([1, 2]);
  });

  it("rejects storage that is not a typed array, naming the backend", () => {
    const handle: RawTensor = { storage: { handle: 1, size: 2 }, shape: [2], dtype: "float32" };
    expectThrow(
      () => backend.read(handle),
      DeviceError,
      "read: the reference backend needs typed-array storage, got a native handle",
    );
  });

  it("rejects a typed array of the wrong kind for the dtype", () => {
    const wrong: RawTensor = { storage: new Float64Array(2), shape: [2], dtype: "float32" };
    expectThrow(
      () => backend.read(wrong),
      DTypeError,
      "read: a float32 tensor needs a Float32Array, got a Float64Array",
    );
  });

  it("rejects storage whose length does not match the shape", () => {
    const wrong: RawTensor = { storage: new Float32Array(3), shape: [2, 2], dtype: "float32" };
    expectThrow(
      () => backend.fill(wrong, 1),
      ShapeError,
      "fill: storage holds 3 elements but shape [2, 2] needs 4",
    );
  });
});

describe("fill and cast", () => {
  it("fill rounds to float32 and maps non-zero to true for bool", () => {
    const x = f32([2]);
    backend.fill(x, 0.1);
    expect(valuesOf(x)).toEqual([Math.fround(0.1), Math.fround(0.1)]);
    const flags = tensor("bool", [2]);
    backend.fill(flags, 3);
    expect(valuesOf(flags)).toEqual([1, 1]);
  });

  it("cast truncates floats to int32 and maps floats to bool", () => {
    const x = f32([4], [1.5, -1.5, 2.9, -0.2]);
    const ints = i32([4]);
    backend.cast(ints, x);
    expect(valuesOf(ints)).toEqual([1, -1, 2, 0]);
    const flags = tensor("bool", [3]);
    backend.cast(flags, f64([3], [0, 0.5, NaN]));
    expect(valuesOf(flags)).toEqual([0, 1, 1]);
  });

  it("cast float64 -> float32 rounds to nearest", () => {
    const out = f32([1]);
    backend.cast(out, f64([1], [0.1]));
    expect(valuesOf(out)).toEqual([Math.fround(0.1)]);
  });
});

describe("random", () => {
  const key = { seed: 42, offset: 8 };

  it("randUniform is low + (high - low) * u from forEachUniform, rounded once", () => {
    const out32 = f32([7]);
    const out64 = f64([7]);
    backend.randUniform(out32, key, -2, 3);
    backend.randUniform(out64, key, -2, 3);
    const expected: number[] = [];
    forEachUniform(key, 7, (_, u) => expected.push(-2 + 5 * u));
    expect(valuesOf(out64)).toEqual(expected);
    expect(valuesOf(out32)).toEqual(expected.map(Math.fround));
  });

  it("randNormal is mean + std * z from forEachNormal", () => {
    const out = f64([6]);
    backend.randNormal(out, key, 1, 2);
    const expected: number[] = [];
    forEachNormal(key, 6, (_, z) => expected.push(1 + 2 * z));
    expect(valuesOf(out)).toEqual(expected);
  });

  it("random fills reject integer dtypes with a DTypeError naming op, dtype and backend", () => {
    expectThrow(
      () => backend.randUniform(i32([2]), key, 0, 1),
      DTypeError,
      `randUniform: ${INT32_NOT_FLOAT}`,
    );
  });

  it("dropout keeps element e when uniform(e) >= p and scales by 1 / (1 - p)", () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8];
    const out = f32([8]);
    const mask = f32([8]);
    backend.dropout(out, mask, f32([8], xs), 0.5, key);
    const expectedMask: number[] = [];
    forEachUniform(key, 8, (_, u) => expectedMask.push(u >= 0.5 ? 2 : 0));
    expect(valuesOf(mask)).toEqual(expectedMask);
    expect(valuesOf(out)).toEqual(xs.map((x, i) => x * expectedMask[i]!));
    expect(expectedMask).toContain(0);
    expect(expectedMask).toContain(2);
  });

  it("dropout with p = 1 gives zeros and with p = 0 the input", () => {
    const out = f32([4]);
    const mask = f32([4]);
    backend.dropout(out, mask, f32([4], [1, -2, 3, -4]), 1, key);
    expect(valuesOf(mask)).toEqual([0, 0, 0, 0]);
    expect(valuesOf(out)).toEqual([0, -0, 0, -0]);
    backend.dropout(out, mask, f32([4], [1, -2, 3, -4]), 0, key);
    expect(valuesOf(out)).toEqual([1, -2, 3, -4]);
  });
});

describe("unary", () => {
  it("relu lets NaN through", () => {
    expect(unary64("relu", [NaN, -1, 0, 2])).toEqual([NaN, 0, 0, 2]);
  });

  it("sign is 0 at zero and, as PyTorch, at NaN", () => {
    expect(unary64("sign", [-3, -0, 0, 5, NaN, -Infinity])).toEqual([-1, 0, 0, 1, 0, -1]);
  });

  it("round is half to even", () => {
    const xs = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6];
    expect(unary64("round", xs)).toEqual([0, 2, 2, -0, -2, -2, 2, -3]);
  });

  it("sigmoid is stable for large |x|", () => {
    expect(unary64("sigmoid", [0, 1000, -1000, -800])).toEqual([0.5, 1, 0, 0]);
  });

  it("affine, pow and clamp use alpha and beta", () => {
    expect(unary64("affine", [1, -2], 3, 0.5)).toEqual([3.5, -5.5]);
    expect(unary64("pow", [2, 9, 1, NaN], 0.5)).toEqual([Math.SQRT2, 3, 1, NaN]);
    expect(unary64("pow", [NaN, 1], 0)).toEqual([1, 1]);
    expect(unary64("clamp", [-5, 0.5, 5, NaN], 0, 1)).toEqual([0, 0.5, 1, NaN]);
    expect(unary64("clamp", [-5, 5], 0)).toEqual([0, 5]);
  });

  it("the plain maps", () => {
    expect(unary64("neg", [1, -2])).toEqual([-1, 2]);
    expect(unary64("abs", [-3, 4])).toEqual([3, 4]);
    expect(unary64("square", [-3])).toEqual([9]);
    expect(unary64("reciprocal", [4, 0])).toEqual([0.25, Infinity]);
    expect(unary64("sqrt", [16, -1])).toEqual([4, NaN]);
    expect(unary64("log", [1, 0])).toEqual([0, -Infinity]);
    expect(unary64("exp", [0, -Infinity])).toEqual([1, 0]);
    expect(unary64("floor", [-1.5, 1.5])).toEqual([-2, 1]);
    expect(unary64("ceil", [-1.5, 1.5])).toEqual([-1, 2]);
    expect(unary64("tanh", [0, Infinity])).toEqual([0, 1]);
    expect(unary64("sin", [0])).toEqual([0]);
    expect(unary64("cos", [0])).toEqual([1]);
  });

  it("float32 results are the double result rounded once", () => {
    const out = f32([1]);
    backend.unary("exp", out, f32([1], [1]));
    expect(valuesOf(out)).toEqual([Math.fround(Math.E)]);
  });

  it("int32 supports neg, abs, sign, relu, square and clamp, wrapping like C++", () => {
    const x = i32([4], [-3, 0, 7, -2147483648]);
    const out = i32([4]);
    backend.unary("neg", out, x);
    expect(valuesOf(out)).toEqual([3, 0, -7, -2147483648]);
    backend.unary("square", out, i32([4], [-3, 65536, 2, 1]));
    expect(valuesOf(out)).toEqual([9, 0, 4, 1]);
    backend.unary("clamp", out, x, -2, 5);
    expect(valuesOf(out)).toEqual([-2, 0, 5, -2]);
  });

  it("rejects float-only ops on int32, naming op, dtype and backend", () => {
    expectThrow(
      () => backend.unary("exp", i32([1]), i32([1])),
      DTypeError,
      `exp: ${INT32_NOT_FLOAT}`,
    );
  });
});

describe("binary", () => {
  it("broadcasts [2, 3] with [3] and [2, 1] with [1, 3]", () => {
    const out = f64([2, 3]);
    backend.binary("add", out, f64([2, 3], [1, 2, 3, 4, 5, 6]), f64([3], [10, 20, 30]));
    expect(valuesOf(out)).toEqual([11, 22, 33, 14, 25, 36]);
    backend.binary("mul", out, f64([2, 1], [2, 3]), f64([1, 3], [1, 10, 100]));
    expect(valuesOf(out)).toEqual([2, 20, 200, 3, 30, 300]);
  });

  it("a shape that does not broadcast is a ShapeError naming both shapes", () => {
    expectThrow(
      () => backend.binary("add", f64([2, 3]), f64([2, 3]), f64([2])),
      ShapeError,
      "add: cannot broadcast [2] to [2, 3]",
    );
  });

  it("float32 add rounds the double sum once", () => {
    const out = f32([1]);
    backend.binary("add", out, f32([1], [0.1]), f32([1], [0.2]));
    expect(valuesOf(out)).toEqual([Math.fround(Math.fround(0.1) + Math.fround(0.2))]);
  });

  it("int32 floordiv and remainder follow Python with negative operands", () => {
    const a = [-7, 7, -7, 7, 6];
    const b = [2, -2, -2, 2, 3];
    expect(binaryOf("floordiv", "int32", a, b)).toEqual([-4, -4, 3, 3, 2]);
    expect(binaryOf("remainder", "int32", a, b)).toEqual([1, -1, -1, 1, 0]);
  });

  it("int32 division by zero is a ValueError", () => {
    expectThrow(
      () => binaryOf("floordiv", "int32", [1], [0]),
      ValueError,
      "floordiv: integer division by zero",
    );
    expectThrow(
      () => binaryOf("remainder", "int32", [1], [0]),
      ValueError,
      "remainder: integer division by zero",
    );
  });

  it("float floordiv and remainder", () => {
    expect(binaryOf("floordiv", "float64", [-7.5, 7.5, 1], [2, 2, 0])).toEqual([-4, 3, Infinity]);
    expect(binaryOf("remainder", "float64", [-7.5, 7.5, 7.5], [2, 2, -2])).toEqual([
      0.5, 1.5, -0.5,
    ]);
  });

  it("int32 add and mul wrap at 32 bits", () => {
    expect(binaryOf("add", "int32", [2147483647], [1])).toEqual([-2147483648]);
    expect(binaryOf("mul", "int32", [65536, -3], [65536, 5])).toEqual([0, -15]);
    expect(binaryOf("sub", "int32", [-2147483648], [1])).toEqual([2147483647]);
  });

  it("maximum and minimum propagate NaN", () => {
    expect(binaryOf("maximum", "float64", [1, NaN, 5], [NaN, 2, 3])).toEqual([NaN, NaN, 5]);
    expect(binaryOf("minimum", "float64", [1, NaN, 5], [NaN, 2, 3])).toEqual([NaN, NaN, 3]);
    expect(binaryOf("maximum", "int32", [1, -5], [2, -6])).toEqual([2, -5]);
  });

  it("sub, div and pow", () => {
    expect(binaryOf("sub", "float64", [5], [7])).toEqual([-2]);
    expect(binaryOf("div", "float64", [1, 1, 0], [4, 0, 0])).toEqual([0.25, Infinity, NaN]);
    expect(binaryOf("pow", "float64", [2, 1, -1, 4], [10, NaN, Infinity, -0.5])).toEqual([
      1024, 1, 1, 0.5,
    ]);
  });

  it("comparisons write bool and are false against NaN (ne is true)", () => {
    const a = [1, 2, 3, NaN];
    const b = [2, 2, 2, NaN];
    expect(binaryOf("eq", "float32", a, b)).toEqual([0, 1, 0, 0]);
    expect(binaryOf("ne", "float32", a, b)).toEqual([1, 0, 1, 1]);
    expect(binaryOf("lt", "float32", a, b)).toEqual([1, 0, 0, 0]);
    expect(binaryOf("le", "float32", a, b)).toEqual([1, 1, 0, 0]);
    expect(binaryOf("gt", "float32", a, b)).toEqual([0, 0, 1, 0]);
    expect(binaryOf("ge", "float32", a, b)).toEqual([0, 1, 1, 0]);
    expect(binaryOf("lt", "int32", [-1], [0])).toEqual([1]);
  });

  it("a comparison into a non-bool output is a DTypeError", () => {
    expectThrow(
      () => backend.binary("eq", f32([1]), f32([1]), f32([1])),
      DTypeError,
      "eq: out must be bool, got float32",
    );
  });

  it("activation backwards", () => {
    expect(binaryOf("relu_backward", "float64", [5, 5, 5, NaN], [1, 0, -1, -1])).toEqual([
      5, 0, 0, 0,
    ]);
    expect(binaryOf("sigmoid_backward", "float64", [2], [0.25])).toEqual([2 * 0.25 * 0.75]);
    expect(binaryOf("tanh_backward", "float64", [2], [0.5])).toEqual([1.5]);
  });

  it("div on int32 is a DTypeError", () => {
    expectThrow(() => binaryOf("div", "int32", [1], [2]), DTypeError, `div: ${INT32_NOT_FLOAT}`);
  });
});

describe("where, expand and permute", () => {
  it("where broadcasts cond, a and b", () => {
    const out = f64([2, 2]);
    const cond = tensor("bool", [2, 1], [1, 0]);
    backend.where(out, cond, f64([2, 2], [1, 2, 3, 4]), f64([1], [-1]));
    expect(valuesOf(out)).toEqual([1, 2, -1, -1]);
  });

  it("expand copies along broadcast axes", () => {
    const out = i32([3, 2]);
    backend.expand(out, i32([3, 1], [1, 2, 3]));
    expect(valuesOf(out)).toEqual([1, 1, 2, 2, 3, 3]);
    backend.expand(out, i32([2], [7, 8]));
    expect(valuesOf(out)).toEqual([7, 8, 7, 8, 7, 8]);
  });

  it("permute transposes a matrix and rotates three axes", () => {
    const out = f32([3, 2]);
    backend.permute(out, f32([2, 3], [1, 2, 3, 4, 5, 6]), [1, 0]);
    expect(valuesOf(out)).toEqual([1, 4, 2, 5, 3, 6]);
    // x[a][b][c] = 100a + 10b + c with shape [2, 1, 3]; out[c][a][b] = x[a][b][c].
    const x = i32([2, 1, 3], [0, 1, 2, 100, 101, 102]);
    const rotated = i32([3, 2, 1]);
    backend.permute(rotated, x, [2, 0, 1]);
    expect(valuesOf(rotated)).toEqual([0, 100, 1, 101, 2, 102]);
  });

  it("permute rejects a bad permutation", () => {
    expectThrow(
      () => backend.permute(f32([2, 2]), f32([2, 2]), [0, 0]),
      ShapeError,
      "permute: perm [0, 0] is not a permutation of 2 axes",
    );
  });
});

describe("reduce", () => {
  const x = f64([2, 3], [1, 2, 3, 4, 5, 6]);

  it("sum, mean, prod, max and min over one or all axes", () => {
    const rows = f64([2, 1]);
    backend.reduce("sum", rows, x, [1]);
    expect(valuesOf(rows)).toEqual([6, 15]);
    backend.reduce("mean", rows, x, [-1]);
    expect(valuesOf(rows)).toEqual([2, 5]);
    const cols = f64([1, 3]);
    backend.reduce("prod", cols, x, [0]);
    expect(valuesOf(cols)).toEqual([4, 10, 18]);
    backend.reduce("max", cols, x, [0]);
    expect(valuesOf(cols)).toEqual([4, 5, 6]);
    const all = f64([1, 1]);
    backend.reduce("min", all, x, [0, 1]);
    expect(valuesOf(all)).toEqual([1]);
    backend.reduce("sum", all, x, [0, 1]);
    expect(valuesOf(all)).toEqual([21]);
  });

  it("max and min propagate NaN", () => {
    const out = f64([1]);
    backend.reduce("max", out, f64([3], [1, NaN, 3]), [0]);
    expect(valuesOf(out)).toEqual([NaN]);
    backend.reduce("min", out, f64([3], [1, NaN, 3]), [0]);
    expect(valuesOf(out)).toEqual([NaN]);
  });

  it("over an empty axis: sum 0, prod 1, mean NaN, max and min throw", () => {
    const empty = f64([2, 0]);
    const out = f64([2, 1]);
    backend.reduce("sum", out, empty, [1]);
    expect(valuesOf(out)).toEqual([0, 0]);
    backend.reduce("prod", out, empty, [1]);
    expect(valuesOf(out)).toEqual([1, 1]);
    backend.reduce("mean", out, empty, [1]);
    expect(valuesOf(out)).toEqual([NaN, NaN]);
    expectThrow(
      () => backend.reduce("max", out, empty, [1]),
      ValueError,
      "max: cannot reduce over axis 1 of size 0 in shape [2, 0]",
    );
    expectThrow(
      () => backend.reduce("min", out, empty, [1]),
      ValueError,
      "min: cannot reduce over axis 1 of size 0 in shape [2, 0]",
    );
  });

  it("int32 sum, max and min; int32 mean is a DTypeError", () => {
    const ints = i32([4], [5, -2, 9, 1]);
    const out = i32([1]);
    backend.reduce("sum", out, ints, [0]);
    expect(valuesOf(out)).toEqual([13]);
    backend.reduce("max", out, ints, [0]);
    expect(valuesOf(out)).toEqual([9]);
    backend.reduce("min", out, ints, [0]);
    expect(valuesOf(out)).toEqual([-2]);
    expectThrow(
      () => backend.reduce("mean", out, ints, [0]),
      DTypeError,
      `mean: ${INT32_NOT_FLOAT}`,
    );
  });

  it("sum of bool or int8 counts into int32", () => {
    const out = i32([1]);
    backend.reduce("sum", out, tensor("bool", [4], [1, 0, 1, 1]), [0]);
    expect(valuesOf(out)).toEqual([3]);
    backend.reduce("sum", out, tensor("int8", [3], [-128, -128, 5]), [0]);
    expect(valuesOf(out)).toEqual([-251]);
    expectThrow(
      () => backend.reduce("sum", tensor("bool", [1]), tensor("bool", [2]), [0]),
      DTypeError,
      "sum: out must be int32 for bool x, got bool",
    );
  });

  it("an out shape that is not x's with reduced axes set to 1 is a ShapeError", () => {
    expectThrow(
      () => backend.reduce("sum", f64([2]), x, [1]),
      ShapeError,
      "sum: out has shape [2], expected [2, 1]",
    );
  });

  it("float32 sums accumulate in double and round once", () => {
    const out = f32([1]);
    // 2^24 + 1 + 1 is 2^24 + 2 in double; float32 accumulation would lose both ones.
    backend.reduce("sum", out, f32([3], [16777216, 1, 1]), [0]);
    expect(valuesOf(out)).toEqual([16777218]);
  });
});

describe("argReduce", () => {
  it("the first maximum or minimum wins ties", () => {
    const out = i32([2, 1]);
    backend.argReduce("argmax", out, f64([2, 3], [1, 3, 3, 2, 2, 0]), 1);
    expect(valuesOf(out)).toEqual([1, 0]);
    backend.argReduce("argmin", out, f64([2, 3], [1, 0, 0, 2, 2, 2]), 1);
    expect(valuesOf(out)).toEqual([1, 0]);
  });

  it("NaN counts as the extreme and the first NaN wins", () => {
    const out = i32([1]);
    backend.argReduce("argmax", out, f64([4], [1, NaN, 3, NaN]), 0);
    expect(valuesOf(out)).toEqual([1]);
    backend.argReduce("argmin", out, f64([4], [1, 0, NaN, NaN]), 0);
    expect(valuesOf(out)).toEqual([2]);
  });

  it("along axis 0 of a matrix", () => {
    const out = i32([1, 3]);
    backend.argReduce("argmax", out, i32([2, 3], [1, 5, 3, 4, 2, 3]), 0);
    expect(valuesOf(out)).toEqual([1, 0, 0]);
  });
});

describe("matmul", () => {
  // a = [[1, 2, 3], [4, 5, 6]], b = [[7, 8], [9, 10], [11, 12]]
  // a @ b = [[1*7 + 2*9 + 3*11, 1*8 + 2*10 + 3*12], [4*7 + 5*9 + 6*11, 4*8 + 5*10 + 6*12]]
  //       = [[58, 64], [139, 154]]
  const a = [1, 2, 3, 4, 5, 6];
  const aT = [1, 4, 2, 5, 3, 6];
  const b = [7, 8, 9, 10, 11, 12];
  const bT = [7, 9, 11, 8, 10, 12];
  const plain = { transA: false, transB: false, alpha: 1, beta: 0 };

  it("2x3 @ 3x2", () => {
    const out = f32([2, 2]);
    backend.matmul(out, f32([2, 3], a), f32([3, 2], b), plain);
    expect(valuesOf(out)).toEqual([58, 64, 139, 154]);
  });

  it("reads transposed operands", () => {
    const out = f64([1, 2, 2]);
    backend.matmul(out, f64([1, 3, 2], aT), f64([1, 2, 3], bT), {
      ...plain,
      transA: true,
      transB: true,
    });
    expect(valuesOf(out)).toEqual([58, 64, 139, 154]);
  });

  it("alpha scales the product and beta the old out; beta 0 ignores NaN in out", () => {
    const out = f64([2, 2], [1, 2, 3, 4]);
    backend.matmul(out, f64([2, 3], a), f64([3, 2], b), { ...plain, alpha: 2, beta: 0.5 });
    expect(valuesOf(out)).toEqual([116.5, 129, 279.5, 310]);
    const stale = f64([2, 2], [NaN, NaN, Infinity, NaN]);
    backend.matmul(stale, f64([2, 3], a), f64([3, 2], b), plain);
    expect(valuesOf(stale)).toEqual([58, 64, 139, 154]);
  });

  it("broadcasts a batch-1 operand over the other's batch", () => {
    const out = f64([2, 2, 2]);
    const identityThenDouble = [1, 0, 0, 1, 2, 0, 0, 2];
    backend.matmul(out, f64([2, 2, 2], identityThenDouble), f64([1, 2, 2], [1, 2, 3, 4]), plain);
    expect(valuesOf(out)).toEqual([1, 2, 3, 4, 2, 4, 6, 8]);
  });

  it("mismatched inner dimensions name both shapes", () => {
    expectThrow(
      () => backend.matmul(f32([2, 2]), f32([2, 3]), f32([4, 2]), plain),
      ShapeError,
      "matmul: inner dimensions differ: [2, 3] gives k = 3, [4, 2] gives k = 4",
    );
  });
});

describe("conv2d", () => {
  // x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], weight = [[1, 2], [3, 4]]
  const x = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  const weight = [1, 2, 3, 4];
  const unit: Conv2dParams = { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 };

  it("a 2x2 kernel over a 3x3 input, with bias", () => {
    // out[0][0] = 1*1 + 2*2 + 4*3 + 5*4 = 37, then 47, 67, 77; bias adds 0.5.
    const out = f32([1, 1, 2, 2]);
    backend.conv2d(out, f32([1, 1, 3, 3], x), f32([1, 1, 2, 2], weight), f32([1], [0.5]), unit);
    expect(valuesOf(out)).toEqual([37.5, 47.5, 67.5, 77.5]);
  });

  it("stride 2 and padding 1", () => {
    // Windows start at -1 and 1: out[0][0] sees only x[0][0] * 4; out[0][1] = 2*3 + 3*4;
    // out[1][0] = 4*2 + 7*4; out[1][1] = 5*1 + 6*2 + 8*3 + 9*4.
    const out = f64([1, 1, 2, 2]);
    const params: Conv2dParams = { ...unit, stride: [2, 2], padding: [1, 1] };
    backend.conv2d(out, f64([1, 1, 3, 3], x), f64([1, 1, 2, 2], weight), null, params);
    expect(valuesOf(out)).toEqual([4, 18, 36, 77]);
  });

  it("dilation 2 reads the corners", () => {
    const out = f64([1, 1, 1, 1]);
    const params: Conv2dParams = { ...unit, dilation: [2, 2] };
    backend.conv2d(out, f64([1, 1, 3, 3], x), f64([1, 1, 2, 2], weight), null, params);
    expect(valuesOf(out)).toEqual([1 * 1 + 3 * 2 + 7 * 3 + 9 * 4]);
  });

  it("groups keep channels apart", () => {
    const out = f64([1, 2, 1, 1]);
    const params: Conv2dParams = { ...unit, groups: 2 };
    backend.conv2d(out, f64([1, 2, 1, 1], [2, 3]), f64([2, 1, 1, 1], [10, 100]), null, params);
    expect(valuesOf(out)).toEqual([20, 300]);
  });

  it("backward data with ones upstream counts each input's kernel taps", () => {
    const gradX = f64([1, 1, 3, 3], [9, 9, 9, 9, 9, 9, 9, 9, 9]);
    const gradOut = f64([1, 1, 2, 2], [1, 1, 1, 1]);
    backend.conv2dBackwardData(gradX, gradOut, f64([1, 1, 2, 2], weight), unit);
    expect(valuesOf(gradX)).toEqual([1, 3, 2, 4, 10, 6, 3, 7, 4]);
  });

  it("backward weight with ones upstream sums each tap's inputs", () => {
    const gradWeight = f64([1, 1, 2, 2], [9, 9, 9, 9]);
    const gradOut = f64([1, 1, 2, 2], [1, 1, 1, 1]);
    backend.conv2dBackwardWeight(gradWeight, gradOut, f64([1, 1, 3, 3], x), unit);
    expect(valuesOf(gradWeight)).toEqual([12, 16, 24, 28]);
  });

  it("backward kernels are the adjoints of forward (stride, padding, dilation, groups)", () => {
    const params: Conv2dParams = { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 };
    const xShape = [2, 4, 5, 6];
    const weightShape = [6, 2, 3, 2];
    const outShape = [2, 6, 3, 8];
    const xs = counting(sizeOf(xShape), 0.37);
    const ws = counting(sizeOf(weightShape), 0.53);
    const gs = counting(sizeOf(outShape), 0.71);
    const out = f64(outShape);
    backend.conv2d(out, f64(xShape, xs), f64(weightShape, ws), null, params);
    const gradX = f64(xShape);
    backend.conv2dBackwardData(gradX, f64(outShape, gs), f64(weightShape, ws), params);
    const gradWeight = f64(weightShape);
    backend.conv2dBackwardWeight(gradWeight, f64(outShape, gs), f64(xShape, xs), params);
    // <conv(x, w), g> = <x, gradX> = <w, gradWeight>
    const forward = dot(valuesOf(out), gs);
    expect(dot(xs, valuesOf(gradX))).toBeCloseTo(forward, 9);
    expect(dot(ws, valuesOf(gradWeight))).toBeCloseTo(forward, 9);
  });

  it("an out shape that does not fit the geometry is a ShapeError", () => {
    expectThrow(
      () => backend.conv2d(f32([1, 1, 3, 3]), f32([1, 1, 3, 3], x), f32([1, 1, 2, 2]), null, unit),
      ShapeError,
      "conv2d: out has shape [1, 1, 3, 3], expected [1, 1, 2, 2]",
    );
  });
});

/** Deterministic values in [-1, 1) that are not symmetric: frac(i * step) * 2 - 1. */
function counting(count: number, step: number): number[] {
  return Array.from({ length: count }, (_, i) => ((i * step) % 1) * 2 - 1);
}

function dot(a: readonly number[], b: readonly number[]): number {
  return a.reduce((acc, value, i) => acc + value * b[i]!, 0);
}

describe("maxPool2d", () => {
  const base: Pool2dParams = {
    kernelSize: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
    dilation: [1, 1],
    ceilMode: false,
  };

  function pool(shape: number[], xs: number[], params: Pool2dParams, outShape: number[]) {
    const out = f32(outShape);
    const indices = i32(outShape);
    backend.maxPool2d(out, indices, f32(shape, xs), params);
    return { out: valuesOf(out), indices: valuesOf(indices), raw: indices };
  }

  it("the first maximum of a window wins ties", () => {
    const xs = [1, 3, 2, 2, 3, 0, 2, 1, 5, 5, 0, 7, 5, 5, 7, 7];
    const { out, indices } = pool([1, 1, 4, 4], xs, base, [1, 1, 2, 2]);
    expect(out).toEqual([3, 2, 5, 7]);
    expect(indices).toEqual([1, 2, 8, 11]);
  });

  it("a NaN is the maximum, the first NaN wins", () => {
    const { out, indices } = pool([1, 1, 2, 2], [1, NaN, 2, NaN], base, [1, 1, 1, 1]);
    expect(out).toEqual([NaN]);
    expect(indices).toEqual([1]);
  });

  it("padding reads as -inf, so negative inputs win over it", () => {
    const params = { ...base, stride: [1, 1] as const, padding: [1, 1] as const };
    const { out, indices } = pool([1, 1, 2, 2], [-1, -2, -3, -4], params, [1, 1, 3, 3]);
    expect(out).toEqual([-1, -1, -2, -1, -1, -2, -3, -3, -4]);
    expect(indices).toEqual([0, 0, 1, 0, 0, 1, 2, 2, 3]);
  });

  it("ceilMode keeps a last window that hangs over the edge", () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    const { out, indices } = pool([1, 1, 3, 3], xs, { ...base, ceilMode: true }, [1, 1, 2, 2]);
    expect(out).toEqual([5, 6, 8, 9]);
    expect(indices).toEqual([4, 5, 7, 8]);
  });

  it("dilation spreads the window", () => {
    const xs = [1, 2, 3, 4, 50, 6, 7, 8, 9];
    const params = { ...base, stride: [1, 1] as const, dilation: [2, 2] as const };
    const { out, indices } = pool([1, 1, 3, 3], xs, params, [1, 1, 1, 1]);
    expect(out).toEqual([9]);
    expect(indices).toEqual([8]);
  });

  it("output sizes follow PyTorch, including the ceil-mode start rule", () => {
    expect(poolOutputSize(5, 2, 2, 0, 1, false)).toBe(2);
    expect(poolOutputSize(5, 2, 2, 0, 1, true)).toBe(3);
    expect(poolOutputSize(6, 3, 3, 1, 1, true)).toBe(3);
    expect(poolOutputSize(6, 3, 3, 1, 1, false)).toBe(2);
    // ceil would give 3, but the third window would start at 6 >= 5 + 1, past the input.
    expect(poolOutputSize(5, 2, 3, 1, 1, true)).toBe(2);
  });

  it("backward adds the gradients of overlapping windows", () => {
    const params = { ...base, stride: [1, 1] as const, padding: [1, 1] as const };
    const { raw } = pool([1, 1, 2, 2], [-1, -2, -3, -4], params, [1, 1, 3, 3]);
    const gradX = f32([1, 1, 2, 2]);
    backend.maxPool2dBackward(gradX, f32([1, 1, 3, 3], [1, 1, 1, 1, 1, 1, 1, 1, 1]), raw);
    expect(valuesOf(gradX)).toEqual([4, 2, 2, 1]);
  });

  it("backward rejects an index outside the plane", () => {
    const gradX = f32([1, 1, 2, 2]);
    expectThrow(
      () => backend.maxPool2dBackward(gradX, f32([1, 1, 1, 1], [1]), i32([1, 1, 1, 1], [4])),
      IndexError,
      "maxPool2dBackward: index 4 is out of bounds for a plane of 4 elements",
    );
  });

  it("padding over half the kernel is a ValueError", () => {
    const params = { ...base, padding: [2, 2] as const };
    expect(() => pool([1, 1, 4, 4], new Array(16).fill(0), params, [1, 1, 4, 4])).toThrow(
      /maxPool2d: .*padding at most half the kernel/,
    );
  });
});

describe("softmax", () => {
  function softmax64(xs: number[], log: boolean, shape = [xs.length], axis = -1): number[] {
    const out = f64(shape);
    backend.softmax(out, f64(shape, xs), axis, log);
    return valuesOf(out);
  }

  it("log-softmax of [1000, 0, -1000] is [0, -1000, -2000] exactly", () => {
    expect(softmax64([1000, 0, -1000], true)).toEqual([0, -1000, -2000]);
    const out = f32([3]);
    backend.softmax(out, f32([3], [1000, 0, -1000]), 0, true);
    expect(valuesOf(out)).toEqual([0, -1000, -2000]);
  });

  it("softmax of large equal logits does not overflow", () => {
    expect(softmax64([1000, 1000], false)).toEqual([0.5, 0.5]);
    expect(softmax64([0, 0, 0, 0], false)).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it("a row of -inf gives NaN", () => {
    expect(softmax64([-Infinity, -Infinity], false)).toEqual([NaN, NaN]);
    expect(softmax64([-Infinity, -Infinity], true)).toEqual([NaN, NaN]);
  });

  it("works along a leading axis", () => {
    // columns [0, 0] and [5, 5], and [0, -inf] -> [1, 0]
    expect(softmax64([0, 5, 0, 5], false, [2, 2], 0)).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(softmax64([0, 0, -Infinity, 0], false, [2, 2], 0)).toEqual([1, 0.5, 0, 0.5]);
  });

  it("backward of softmax is y * (gy - sum(gy * y))", () => {
    // y = [0.25, 0.75], gy = [1, 0]: sum = 0.25; gx = [0.25 * 0.75, 0.75 * -0.25]
    const gradX = f64([2]);
    backend.softmaxBackward(gradX, f64([2], [1, 0]), f64([2], [0.25, 0.75]), 0, false);
    expect(valuesOf(gradX)).toEqual([0.1875, -0.1875]);
  });

  it("backward of log-softmax is gy - exp(y) * sum(gy)", () => {
    // y = [0, -inf] (probabilities [1, 0]), gy = [1, 2]: gx = [1 - 3, 2 - 0]
    const gradX = f64([2]);
    backend.softmaxBackward(gradX, f64([2], [1, 2]), f64([2], [0, -Infinity]), 0, true);
    expect(valuesOf(gradX)).toEqual([-2, 2]);
  });
});

describe("gather and scatterAdd", () => {
  const x = [1, 2, 3, 4, 5, 6]; // [[1, 2, 3], [4, 5, 6]]

  it("gather along the last and the first axis", () => {
    const out = f64([2, 2]);
    backend.gather(out, f64([2, 3], x), 1, i32([2, 2], [2, 0, 1, 1]));
    expect(valuesOf(out)).toEqual([3, 1, 5, 5]);
    const row = f64([1, 3]);
    backend.gather(row, f64([2, 3], x), 0, i32([1, 3], [1, 0, 1]));
    expect(valuesOf(row)).toEqual([4, 2, 6]);
  });

  it("gather of int32", () => {
    const out = i32([2]);
    backend.gather(out, i32([3], [10, 20, 30]), 0, i32([2], [2, 2]));
    expect(valuesOf(out)).toEqual([30, 30]);
  });

  it("an index out of range is an IndexError", () => {
    expectThrow(
      () => backend.gather(f64([2, 1]), f64([2, 3], x), 1, i32([2, 1], [0, 3])),
      IndexError,
      "gather: index 3 is out of bounds for axis 1 with size 3",
    );
    expectThrow(
      () => backend.gather(f64([2, 1]), f64([2, 3], x), 1, i32([2, 1], [0, -1])),
      IndexError,
      "gather: index -1 is out of bounds for axis 1 with size 3",
    );
  });

  it("scatterAdd accumulates repeated indices and keeps out's contents", () => {
    const out = f64([2, 3], [1, 1, 1, 1, 1, 1]);
    backend.scatterAdd(out, 1, i32([2, 2], [0, 0, 2, 1]), f64([2, 2], [1, 2, 3, 4]));
    expect(valuesOf(out)).toEqual([4, 1, 1, 1, 5, 4]);
  });

  it("scatterAdd along axis 0 is an embedding gradient", () => {
    // rows 0, 2, 0 of a [3, 2] table receive [1, 2], [3, 4], [5, 6].
    const out = f32([3, 2]);
    const index = i32([3, 2], [0, 0, 2, 2, 0, 0]);
    backend.scatterAdd(out, 0, index, f32([3, 2], [1, 2, 3, 4, 5, 6]));
    expect(valuesOf(out)).toEqual([6, 8, 0, 0, 3, 4]);
    expectThrow(
      () => backend.scatterAdd(out, 0, i32([1, 2], [3, 0]), f32([1, 2])),
      IndexError,
      "scatterAdd: index 3 is out of bounds for axis 0 with size 3",
    );
  });
});

describe("nllLoss", () => {
  // logProbs [3, 4]; targets [1, -100 (ignored), 3]; class weights [1, 2, 3, 4]
  const logProbs = [-1, -0.5, -2, -3, -1, -1, -1, -1, -4, -2, -1, -0.25];
  const targets = [1, -100, 3];
  const weight = [1, 2, 3, 4];
  // counted: sample 0 -> -2 * -0.5 = 1; sample 2 -> -4 * -0.25 = 1; total weight 2 + 4 = 6

  function loss(reduction: "none" | "mean" | "sum", ws: number[] | null, ts = targets) {
    const out = f64(reduction === "none" ? [3] : []);
    const w = ws === null ? null : f64([4], ws);
    backend.nllLoss(out, f64([3, 4], logProbs), i32([3], ts), w, reduction, -100);
    return valuesOf(out);
  }

  it("none, sum and mean with weights and an ignored target", () => {
    expect(loss("none", weight)).toEqual([1, 0, 1]);
    expect(loss("sum", weight)).toEqual([2]);
    expect(loss("mean", weight)).toEqual([2 / 6]);
    expect(loss("mean", null)).toEqual([(0.5 + 0.25) / 2]);
  });

  it("mean over all-ignored targets is NaN", () => {
    expect(loss("mean", weight, [-100, -100, -100])).toEqual([NaN]);
  });

  it("an out-of-range target is an IndexError naming it and the class count", () => {
    const out = f32([]);
    const run = () => backend.nllLoss(out, f32([1, 10]), i32([1], [12]), null, "mean", -100);
    expectThrow(run, IndexError, "nllLoss: target 12 is out of bounds for 10 classes");
  });

  it("spatial targets [n, d] pick logProbs [n, c, d]", () => {
    // n = 1, c = 2, d = 2: logProbs[0][:, 0] = [-1, -2], logProbs[0][:, 1] = [-3, -4]
    const out = f64([1, 2]);
    backend.nllLoss(out, f64([1, 2, 2], [-1, -3, -2, -4]), i32([1, 2], [1, 0]), null, "none", -100);
    expect(valuesOf(out)).toEqual([2, 3]);
  });

  it("backward of mean is -weight * gradOut / total weight at each counted target", () => {
    const grad = f64([3, 4], new Array(12).fill(7));
    backend.nllLossBackward(grad, f64([], [3]), i32([3], targets), f64([4], weight), "mean", -100);
    const expected = new Array(12).fill(0);
    expected[1] = (-2 * 3) / 6;
    expected[11] = (-4 * 3) / 6;
    expect(valuesOf(grad)).toEqual(expected);
  });

  it("backward of none takes each sample's upstream gradient", () => {
    const grad = f64([3, 4]);
    const gradOut = f64([3], [1, 5, 2]);
    backend.nllLossBackward(grad, gradOut, i32([3], targets), null, "none", -100);
    const expected = new Array(12).fill(0);
    expected[1] = -1;
    expected[11] = -2;
    expect(valuesOf(grad)).toEqual(expected);
  });
});

describe("sgdStep", () => {
  // lr 0.5, momentum 0.5, dampening 0.25, weight decay 0.25: every value is dyadic.
  const options = {
    lr: 0.5,
    momentum: 0.5,
    dampening: 0.25,
    weightDecay: 0.25,
    nesterov: false,
    firstStep: true,
  };

  it("plain SGD with weight decay", () => {
    // d = [0.5 + 0.25 * 1, -1 + 0.25 * 2] = [0.75, -0.5]; param -= 0.5 * d
    const param = f64([2], [1, 2]);
    backend.sgdStep(param, f64([2], [0.5, -1]), null, { ...options, momentum: 0 });
    expect(valuesOf(param)).toEqual([0.625, 2.25]);
  });

  it("momentum: the first step copies d into the buffer, the next dampens", () => {
    const param = f64([2], [1, 2]);
    const buffer = f64([2], [99, 99]);
    backend.sgdStep(param, f64([2], [0.5, -1]), buffer, options);
    expect(valuesOf(buffer)).toEqual([0.75, -0.5]);
    expect(valuesOf(param)).toEqual([0.625, 2.25]);
    // d = [1 + 0.25 * 0.625, 1 + 0.25 * 2.25] = [1.15625, 1.5625]
    // buf = 0.5 * [0.75, -0.5] + 0.75 * d = [1.2421875, 0.921875]
    backend.sgdStep(param, f64([2], [1, 1]), buffer, { ...options, firstStep: false });
    expect(valuesOf(buffer)).toEqual([1.2421875, 0.921875]);
    expect(valuesOf(param)).toEqual([0.625 - 0.5 * 1.2421875, 2.25 - 0.5 * 0.921875]);
  });

  it("nesterov steps along d + momentum * buf", () => {
    // d = buf = [0.75, -0.5]; d + 0.5 buf = [1.125, -0.75]; param -= 0.5 * that
    const param = f32([2], [1, 2]);
    const buffer = f32([2]);
    backend.sgdStep(param, f32([2], [0.5, -1]), buffer, { ...options, nesterov: true });
    expect(valuesOf(param)).toEqual([0.4375, 2.375]);
  });
});

describe("adamStep", () => {
  // beta1 0.5, beta2 0.75, eps 0, lr 0.25: the first step is exact in binary.
  const options = {
    lr: 0.25,
    beta1: 0.5,
    beta2: 0.75,
    eps: 0,
    weightDecay: 0,
    decoupledWeightDecay: false,
    amsgrad: false,
    step: 1,
  };

  function state(dtype: DType, m = 0, v = 0) {
    return { expAvg: tensor(dtype, [1], [m]), expAvgSq: tensor(dtype, [1], [v]) };
  }

  it("one step by hand", () => {
    // m = 0.5 * 2 = 1; v = 0.25 * 4 = 1; bc1 = 0.5; bc2 = 0.25
    // param = 1 - (0.25 / 0.5) * 1 / (sqrt(1) / sqrt(0.25) + 0) = 1 - 0.5 / 2 = 0.75
    const param = f32([1], [1]);
    const { expAvg, expAvgSq } = state("float32");
    backend.adamStep(param, f32([1], [2]), expAvg, expAvgSq, null, options);
    expect(valuesOf(expAvg)).toEqual([1]);
    expect(valuesOf(expAvgSq)).toEqual([1]);
    expect(valuesOf(param)).toEqual([0.75]);
  });

  it("the second step uses the step count in the bias corrections", () => {
    // m = 0.5 + 1 = 1.5; v = 0.75 + 1 = 1.75; bc1 = 0.75; bc2 = 0.4375 = 1.75 / 4
    // param = 0.75 - (0.25 / 0.75) * 1.5 / 2 = 0.5
    const param = f64([1], [0.75]);
    const { expAvg, expAvgSq } = state("float64", 1, 1);
    backend.adamStep(param, f64([1], [2]), expAvg, expAvgSq, null, { ...options, step: 2 });
    expect(valuesOf(expAvgSq)).toEqual([1.75]);
    expect(valuesOf(param)[0]).toBeCloseTo(0.5, 15);
  });

  it("L2 weight decay adds weightDecay * param to the gradient", () => {
    // g = 2 + 0.5 * 1 = 2.5; m = 1.25; v = 1.5625; denom = 1.25 / 0.5 = 2.5
    // param = 1 - 0.5 * 1.25 / 2.5 = 0.75
    const param = f64([1], [1]);
    const { expAvg, expAvgSq } = state("float64");
    backend.adamStep(param, f64([1], [2]), expAvg, expAvgSq, null, {
      ...options,
      weightDecay: 0.5,
    });
    expect(valuesOf(expAvg)).toEqual([1.25]);
    expect(valuesOf(param)).toEqual([0.75]);
  });

  it("AdamW decays the parameter first: param *= 1 - lr * weightDecay", () => {
    // param = 1 * (1 - 0.125) = 0.875, then the step of the first test: - 0.25
    const param = f64([1], [1]);
    const { expAvg, expAvgSq } = state("float64");
    const adamW = { ...options, weightDecay: 0.5, decoupledWeightDecay: true };
    backend.adamStep(param, f64([1], [2]), expAvg, expAvgSq, null, adamW);
    expect(valuesOf(expAvg)).toEqual([1]);
    expect(valuesOf(param)).toEqual([0.625]);
  });

  it("amsgrad divides by the running maximum of v", () => {
    // v = 1 but the stored maximum is 4: denom = 2 / 0.5 = 4; param = 1 - 0.5 / 4
    const param = f64([1], [1]);
    const { expAvg, expAvgSq } = state("float64");
    const maxExpAvgSq = f64([1], [4]);
    backend.adamStep(param, f64([1], [2]), expAvg, expAvgSq, maxExpAvgSq, {
      ...options,
      amsgrad: true,
    });
    expect(valuesOf(maxExpAvgSq)).toEqual([4]);
    expect(valuesOf(param)).toEqual([0.875]);
  });

  it("PyTorch's defaults on one step", () => {
    // lr 1e-3, betas (0.9, 0.999), eps 1e-8: m = 0.05, v = 0.00025, the step is
    // lr * (m / 0.1) / (sqrt(v / 0.001) + eps) = 1e-3 * 0.5 / (0.5 + 1e-8)
    const param = f64([1], [1]);
    const { expAvg, expAvgSq } = state("float64");
    const defaults = { ...options, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    backend.adamStep(param, f64([1], [0.5]), expAvg, expAvgSq, null, defaults);
    expect(valuesOf(param)[0]).toBeCloseTo(1 - (1e-3 * 0.5) / (0.5 + 1e-8), 15);
  });
});

// ---- numerically hard inputs -------------------------------------------------------------
// The exact-value cases that test/conformance.ts runs for every other backend.

describe("reference backend", () => {
  leakCheck();
  hardInputCases({ name: "reference", device: "reference", backend: () => backend });
});

describe("rnnForward and rnnBackward", () => {
  // One unit (H = 1), so every value is a closed form written beside its expectation.
  const one = { reverse: false, column: 0, slot: 0 };
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

  function forward(
    mode: "rnn_tanh" | "rnn_relu" | "lstm" | "gru",
    steps: number,
    xProj: number[],
    wHh: number[],
    bHh: number[],
    state: { h0: number; c0?: number; lengths?: number[]; reverse?: boolean },
  ) {
    const gates = xProj.length / steps;
    const lstm = mode === "lstm";
    const args = {
      output: f64([steps, 1, 1]),
      hN: f64([1, 1, 1]),
      cN: lstm ? f64([1, 1, 1]) : null,
      workspace: f64([steps, 1, lstm ? 6 : mode === "gru" ? 5 : 1]),
      xProj: f64([steps, 1, gates], xProj),
      wHh: f64([gates, 1], wHh),
      bHh: f64([gates], bHh),
      h0: f64([1, 1, 1], [state.h0]),
      c0: lstm ? f64([1, 1, 1], [state.c0 ?? 0]) : null,
      lengths: state.lengths === undefined ? null : i32([1], state.lengths),
    };
    const params = { ...one, mode, reverse: state.reverse ?? false };
    backend.rnnForward(args, params);
    return { args, params };
  }

  // Sums run as the kernel adds them: xp + (b + w h).
  it("rnn_tanh and rnn_relu: h' = act(xp + (b + w h))", () => {
    const { args } = forward("rnn_tanh", 2, [0.5, -0.25], [2], [0.1], { h0: 0.3 });
    const h1 = Math.tanh(0.5 + (0.1 + 2 * 0.3));
    const h2 = Math.tanh(-0.25 + (0.1 + 2 * h1));
    expect(valuesOf(args.output)).toEqual([h1, h2]);
    expect(valuesOf(args.hN)).toEqual([h2]);
    const relu = forward("rnn_relu", 2, [0.5, -2], [2], [0.1], { h0: 0.25 }).args;
    // 0.5 + (0.1 + 0.5) = 1.1, then -2 + (0.1 + 2 * 1.1), both positive
    expect(valuesOf(relu.output)).toEqual([0.5 + (0.1 + 0.5), -2 + (0.1 + 2 * 1.1)]);
  });

  it("lstm: gates i, f, g, o; c' = f c + i g, h' = o tanh(c')", () => {
    // xp + b = [0, 0, 0.5, 0] and w = 0: i = f = o = 1/2, g = tanh(0.5)
    const { args } = forward("lstm", 1, [0, 0, 0.5, 0], [0, 0, 0, 0], [0, 0, 0, 0], {
      h0: 0.7,
      c0: 1,
    });
    const c = 0.5 * 1 + 0.5 * Math.tanh(0.5);
    expect(valuesOf(args.cN!)).toEqual([c]);
    expect(valuesOf(args.hN)).toEqual([0.5 * Math.tanh(c)]);
    expect(valuesOf(args.workspace)).toEqual([
      0.5,
      0.5,
      Math.tanh(0.5),
      0.5,
      c,
      0.5 * Math.tanh(c),
    ]);
  });

  it("gru: b_hn sits inside r * (W_hn h + b_hn)", () => {
    // r = z = 1/2 (zero pre-activations); n = tanh(0.2 + r * (1 * 0.5 + 1))
    const { args } = forward("gru", 1, [0, 0, 0.2], [0, 0, 1], [0, 0, 1], { h0: 0.5 });
    const n = Math.tanh(0.2 + 0.5 * 1.5);
    expect(valuesOf(args.hN)).toEqual([0.5 * n + 0.5 * 0.5]);
    expect(valuesOf(args.workspace)).toEqual([0.5, 0.5, n, 1.5, 0.5 * n + 0.25]);
  });

  it("lengths: steps past a sequence's end keep its state and output zero", () => {
    // Reverse over 3 steps with length 2: the run starts at t = 1, t = 2 only carries h0.
    const { args } = forward("rnn_tanh", 3, [0.5, -0.25, 9], [2], [0], {
      h0: 0.3,
      lengths: [2],
      reverse: true,
    });
    const h1 = Math.tanh(-0.25 + 2 * 0.3);
    const h0 = Math.tanh(0.5 + 2 * h1);
    expect(valuesOf(args.output)).toEqual([h0, h1, 0]);
    expect(valuesOf(args.hN)).toEqual([h0]);
    expect(valuesOf(args.workspace)).toEqual([h0, h1, 0.3]);
  });

  it("rnnBackward: BPTT of rnn_tanh over two steps", () => {
    const { args, params } = forward("rnn_tanh", 2, [0.5, -0.25], [2], [0.1], { h0: 0.3 });
    const [h1, h2] = valuesOf(args.output) as [number, number];
    const grads = {
      gradXProj: f64([2, 1, 1]),
      gradWHh: f64([1, 1]),
      gradBHh: f64([1]),
      gradH0: f64([1, 1, 1]),
      gradC0: null,
      gradOutput: f64([2, 1, 1], [1, 0.5]),
      gradHN: f64([1, 1, 1], [0.25]),
      gradCN: null,
    };
    backend.rnnBackward({ ...grads, ...args, wHh: args.wHh, lengths: null }, params);
    // step 2: dh = 0.5 + 0.25; da2 = dh (1 - h2^2). step 1: dh = 1 + 2 da2; da1 = dh (1 - h1^2)
    const da2 = 0.75 * (1 - h2 * h2);
    const da1 = (1 + 2 * da2) * (1 - h1 * h1);
    expect(valuesOf(grads.gradXProj)).toEqual([da1, da2]);
    expect(valuesOf(grads.gradBHh)).toEqual([da1 + da2]);
    expect(valuesOf(grads.gradWHh)[0]).toBeCloseTo(da1 * 0.3 + da2 * h1, 14);
    expect(valuesOf(grads.gradH0)).toEqual([2 * da1]);
  });

  it("rejects a length past T and a missing LSTM cell state", () => {
    const run = () => forward("rnn_tanh", 1, [0], [1], [0], { h0: 0, lengths: [2] });
    expectThrow(run, IndexError, "rnnForward: length 2 is outside [0, 1]");
    const { args, params } = forward("lstm", 1, [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], {
      h0: 0,
    });
    expectThrow(
      () => backend.rnnForward({ ...args, c0: null }, params),
      ValueError,
      "rnnForward: c0 is required in lstm mode",
    );
    expectThrow(
      () => backend.rnnForward({ ...args, xProj: f64([1, 1, 3]) }, params),
      ShapeError,
      "rnnForward: xProj has shape [1, 1, 3], expected [1, 1, 4]",
    );
  });
});

// ---- layers: erf, batch norm, layer norm ------------------------------------------------

describe("erf, batchNorm and layerNorm by hand", () => {
  const close = (actual: RawTensor, expected: number[], tol = 1e-12) =>
    Array.from(actual.storage as Float64Array).forEach((v, i) =>
      expect(Math.abs(v - expected[i]!), `element ${i}: ${v} vs ${expected[i]}`).toBeLessThan(tol),
    );

  it("erf matches tabulated values to 1e-14 and is odd, with erf(+-inf) = +-1", () => {
    // erf(0.5), erf(1), erf(2), erf(3) from Abramowitz and Stegun's table 7.1 (to 15 places).
    const xs = [0, 0.5, -1, 2, 3, -Infinity, Infinity, NaN];
    const out = f64([xs.length]);
    backend.unary("erf", out, f64([xs.length], xs));
    const expected = [
      0, 0.520499877813047, -0.842700792949715, 0.995322265018953, 0.999977909503001,
    ];
    close({ ...out, storage: (out.storage as Float64Array).subarray(0, 5) }, expected, 1e-14);
    expect(Array.from(out.storage as Float64Array).slice(5, 7)).toEqual([-1, 1]);
    expect(Number.isNaN((out.storage as Float64Array)[7])).toBe(true);
    expect(() => backend.unary("erf", i32([1]), i32([1], [1]))).toThrow(DTypeError);
  });

  it("batchNorm training: each channel of [2, 2, 2] to mean 0 and variance 1, then scaled", () => {
    const x = f64([2, 2, 2], [1, 3, 10, 20, 5, 7, 30, 40]); // channel 0: 1, 3, 5, 7
    const [out, mean, variance] = [f64([2, 2, 2]), f64([2]), f64([2])];
    backend.batchNorm(out, mean, variance, x, f64([2], [2, 1]), f64([2], [0, 5]), true, 0);
    close(mean, [4, 25]);
    close(variance, [5, 125]);
    const s0 = 2 / Math.sqrt(5);
    const s1 = 1 / Math.sqrt(125);
    close(out, [-3 * s0, -s0, -15 * s1 + 5, -5 * s1 + 5, s0, 3 * s0, 5 * s1 + 5, 15 * s1 + 5]);
  });

  it("batchNorm eval reads the statistics; its backward is gradOut * weight / std", () => {
    const x = f64([2, 1], [3, 5]);
    const [out, gradX, gradWeight] = [f64([2, 1]), f64([2, 1]), f64([1])];
    const mean = f64([1], [1]);
    const variance = f64([1], [4]);
    backend.batchNorm(out, mean, variance, x, f64([1], [3]), null, false, 0);
    close(out, [3, 6]);
    const gradOut = f64([2, 1], [1, 2]);
    backend.batchNormBackward(
      gradX,
      gradWeight,
      null,
      gradOut,
      x,
      mean,
      variance,
      f64([1], [3]),
      false,
      0,
    );
    close(gradX, [1.5, 3]);
    close(gradWeight, [1 * 1 + 2 * 2]); // sum(g * xhat) with xhat = 1, 2
  });

  it("layerNorm normalises each row; its backward of a constant gradient is 0", () => {
    const x = f64([2, 2], [1, 3, -4, 0]);
    const [out, mean, rstd] = [f64([2, 2]), f64([2]), f64([2])];
    backend.layerNorm(out, mean, rstd, x, null, f64([2], [0.5, 0.5]), 0);
    close(out, [-0.5, 1.5, -0.5, 1.5]);
    close(mean, [2, -2]);
    close(rstd, [1, 0.5]);
    const [gradX, gradBias] = [f64([2, 2]), f64([2])];
    backend.layerNormBackward(
      gradX,
      null,
      gradBias,
      f64([2, 2], [1, 1, 1, 1]),
      x,
      mean,
      rstd,
      null,
    );
    close(gradX, [0, 0, 0, 0]);
    close(gradBias, [2, 2]);
  });

  it("layerNorm's statistics must be the leading dims of x", () => {
    expect(() =>
      backend.layerNorm(f64([2, 3]), f64([3]), f64([3]), f64([2, 3]), null, null, 1e-5),
    ).toThrow(ShapeError);
  });
});

describe("gelu, gelu_tanh, silu and their gradient ops by value", () => {
  // torch.nn.functional in float64 at x = -3, -1, 0, 0.5, 2 (values and derivatives).
  const xs = [-3, -1, 0, 0.5, 2];
  const cases: [UnaryOp, BinaryOp, number[], number[]][] = [
    [
      "gelu",
      "gelu_backward",
      [-0.00404969409489031, -0.158655253931457, 0, 0.345731230637007, 1.95449973610364],
      [-0.0119456472041839, -0.0833154705876863, 0.5, 0.867495124656163, 1.0852318010782],
    ],
    [
      "gelu_tanh",
      "gelu_tanh_backward",
      [-0.00363739208177299, -0.158808009391723, 0, 0.345714009825144, 1.95459769408777],
      [-0.0115841666309696, -0.0829640838457825, 0.5, 0.867369903534642, 1.08609925662362],
    ],
    [
      "silu",
      "silu_backward",
      [-0.1422776195327, -0.268941421369995, 0, 0.311229665600927, 1.76159415595576],
      [-0.0881041060151696, 0.0723294881285133, 0.5, 0.739961187302652, 1.0907842487849],
    ],
  ];

  it.each(cases)("%s and %s", (op, backward, values, grads) => {
    const out = f64([5]);
    backend.unary(op, out, f64([5], xs));
    Array.from(out.storage as Float64Array).forEach((v, i) =>
      expect(Math.abs(v - values[i]!), `${op}(${xs[i]})`).toBeLessThan(1e-13),
    );
    const grad = f64([5]);
    backend.binary(backward, grad, f64([5], [2, 2, 2, 2, 2]), f64([5], xs));
    Array.from(grad.storage as Float64Array).forEach((v, i) =>
      expect(Math.abs(v - 2 * grads[i]!), `${backward}(${xs[i]})`).toBeLessThan(1e-13),
    );
  });
});

describe("maskedSoftmax (attention's fused softmax)", () => {
  it("scales, adds the mask, drops -inf entries and zeroes a fully masked row", () => {
    const scores = f64([3, 2], [1, 2, 0, Math.log(3) / 2, 5, 6]);
    const mask = f64([3, 2], [0, -Infinity, 0, 0, -Infinity, -Infinity]);
    const out = f64([3, 2]);
    backend.maskedSoftmax(out, scores, mask, 2);
    const y = Array.from(out.storage as Float64Array);
    expect(y.slice(0, 2)).toEqual([1, 0]);
    expect(Math.abs(y[2]! - 0.25)).toBeLessThan(1e-15);
    expect(Math.abs(y[3]! - 0.75)).toBeLessThan(1e-15);
    expect(y.slice(4)).toEqual([0, 0]);
  });

  it("names the op and both shapes when the mask does not match the scores", () => {
    expectThrow(
      () => backend.maskedSoftmax(f64([3, 2]), f64([3, 2]), f64([2, 2]), 1),
      ShapeError,
      "maskedSoftmax: mask has shape [2, 2], expected [3, 2]",
    );
  });
});
