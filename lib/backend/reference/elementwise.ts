// Element-wise kernels: unary maps, broadcasting binary ops, where, expand and permute.
// Every value is computed in double and rounded once, by the store into the output.

import { COMPARISON_OPS, type BinaryOp, type RawTensor, type UnaryOp } from "../backend.js";
import type { DType } from "../../dtype.js";
import { DTypeError, ShapeError, ValueError, formatShape } from "../../errors.js";
import * as scalar from "./scalar.js";
import * as special from "./special.js";
import {
  ALL_DTYPES,
  FLOAT_DTYPES,
  NUMERIC_DTYPES,
  elements,
  requireDType,
  requireSameDType,
} from "./storage.js";
import { broadcastOffsets, contiguousStrides, expectShape, offsetsFor } from "./strides.js";

type UnaryFn = (x: number, alpha: number, beta: number) => number;
type BinaryFn = (a: number, b: number) => number;

const FLOAT_UNARY: Record<UnaryOp, UnaryFn> = {
  neg: (x) => -x,
  exp: (x) => Math.exp(x),
  log: (x) => Math.log(x),
  sqrt: (x) => Math.sqrt(x),
  abs: (x) => Math.abs(x),
  sign: scalar.sign,
  relu: scalar.relu,
  sigmoid: scalar.sigmoid,
  tanh: (x) => Math.tanh(x),
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  sin: (x) => Math.sin(x),
  cos: (x) => Math.cos(x),
  floor: (x) => Math.floor(x),
  ceil: (x) => Math.ceil(x),
  round: scalar.roundHalfEven,
  affine: (x, alpha, beta) => alpha * x + beta,
  pow: (x, alpha) => scalar.pow(x, alpha),
  clamp: (x, alpha, beta) => Math.min(Math.max(x, alpha), beta),
  erf: special.erf,
  gelu: special.gelu,
  gelu_tanh: special.geluTanh,
  silu: (x) => x * scalar.sigmoid(x),
};

/**
 * The unary ops defined on int32. Results wrap as the store does (neg and abs of -2^31);
 * affine and clamp truncate a fractional result toward zero.
 */
const INT_UNARY: Partial<Record<UnaryOp, UnaryFn>> = {
  neg: FLOAT_UNARY.neg,
  abs: FLOAT_UNARY.abs,
  sign: FLOAT_UNARY.sign,
  relu: FLOAT_UNARY.relu,
  square: (x) => Math.imul(x, x),
  affine: FLOAT_UNARY.affine,
  clamp: FLOAT_UNARY.clamp,
};

/** Math.max and Math.min propagate NaN, as torch.maximum and torch.minimum do. */
const FLOAT_BINARY: Record<BinaryOp, BinaryFn> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: scalar.pow,
  maximum: (a, b) => Math.max(a, b),
  minimum: (a, b) => Math.min(a, b),
  floordiv: scalar.floorDivFloat,
  remainder: scalar.remainderFloat,
  eq: (a, b) => Number(a === b),
  ne: (a, b) => Number(a !== b),
  lt: (a, b) => Number(a < b),
  le: (a, b) => Number(a <= b),
  gt: (a, b) => Number(a > b),
  ge: (a, b) => Number(a >= b),
  // The mask selects, as PyTorch's threshold_backward: a NaN gradient where b <= 0 gives 0.
  relu_backward: (a, b) => (b > 0 ? a : 0),
  sigmoid_backward: (a, b) => a * b * (1 - b),
  tanh_backward: (a, b) => a * (1 - b * b),
  gelu_backward: (a, b) => a * special.geluGrad(b),
  gelu_tanh_backward: (a, b) => a * special.geluTanhGrad(b),
  silu_backward: (a, b) => a * special.siluGrad(b),
};

const INT_BINARY: Partial<Record<BinaryOp, BinaryFn>> = {
  add: (a, b) => (a + b) | 0,
  sub: (a, b) => (a - b) | 0,
  mul: (a, b) => Math.imul(a, b),
  maximum: FLOAT_BINARY.maximum,
  minimum: FLOAT_BINARY.minimum,
  floordiv: scalar.floorDivInt,
  remainder: scalar.remainderInt,
};

function unaryFunction(op: UnaryOp, dtype: DType): UnaryFn {
  const intFn = INT_UNARY[op];
  requireDType(op, dtype, intFn === undefined ? FLOAT_DTYPES : NUMERIC_DTYPES);
  return dtype === "int32" ? intFn! : FLOAT_UNARY[op];
}

/** alpha and beta with their defaults: affine 1 and 0, clamp -inf and +inf; pow needs alpha. */
function unaryScalars(op: UnaryOp, alpha?: number, beta?: number): [number, number] {
  if (op === "pow" && alpha === undefined) {
    throw new ValueError("pow", "the exponent (alpha) is required", "alpha");
  }
  if (op === "clamp") return [alpha ?? -Infinity, beta ?? Infinity];
  return [alpha ?? 1, beta ?? 0];
}

export function unary(
  op: UnaryOp,
  out: RawTensor,
  x: RawTensor,
  alpha?: number,
  beta?: number,
): void {
  const fn = unaryFunction(op, x.dtype);
  requireSameDType(op, [out, x]);
  expectShape(op, "out", out.shape, x.shape);
  const [a, b] = unaryScalars(op, alpha, beta);
  const outValues = elements(op, out);
  const xValues = elements(op, x);
  for (let i = 0; i < xValues.length; i++) outValues[i] = fn(xValues[i]!, a, b);
}

function binaryFunction(op: BinaryOp, dtype: DType): BinaryFn {
  if (COMPARISON_OPS.includes(op)) return FLOAT_BINARY[op];
  const intFn = INT_BINARY[op];
  requireDType(op, dtype, intFn === undefined ? FLOAT_DTYPES : NUMERIC_DTYPES);
  return dtype === "int32" ? intFn! : FLOAT_BINARY[op];
}

function requireOutDType(op: string, out: RawTensor, expected: DType): void {
  if (out.dtype !== expected) {
    const message = `out must be ${expected}, got ${out.dtype}`;
    throw new DTypeError(op, message, [out.dtype, expected]);
  }
}

export function binary(op: BinaryOp, out: RawTensor, a: RawTensor, b: RawTensor): void {
  requireSameDType(op, [a, b]);
  const fn = binaryFunction(op, a.dtype);
  requireOutDType(op, out, COMPARISON_OPS.includes(op) ? "bool" : a.dtype);
  const aOffsets = broadcastOffsets(op, a.shape, out.shape);
  const bOffsets = broadcastOffsets(op, b.shape, out.shape);
  const outValues = elements(op, out);
  const aValues = elements(op, a);
  const bValues = elements(op, b);
  for (let i = 0; i < outValues.length; i++) {
    outValues[i] = fn(aValues[aOffsets[i]!]!, bValues[bOffsets[i]!]!);
  }
}

export function where(out: RawTensor, cond: RawTensor, a: RawTensor, b: RawTensor): void {
  requireDType("where", cond.dtype, ["bool", "uint8"]);
  requireSameDType("where", [out, a, b]);
  const condOffsets = broadcastOffsets("where", cond.shape, out.shape);
  const aOffsets = broadcastOffsets("where", a.shape, out.shape);
  const bOffsets = broadcastOffsets("where", b.shape, out.shape);
  const outValues = elements("where", out);
  const condValues = elements("where", cond);
  const aValues = elements("where", a);
  const bValues = elements("where", b);
  for (let i = 0; i < outValues.length; i++) {
    const pickA = condValues[condOffsets[i]!] !== 0;
    outValues[i] = pickA ? aValues[aOffsets[i]!]! : bValues[bOffsets[i]!]!;
  }
}

export function expand(out: RawTensor, x: RawTensor): void {
  requireDType("expand", x.dtype, ALL_DTYPES);
  requireSameDType("expand", [out, x]);
  copyThrough(out, x, broadcastOffsets("expand", x.shape, out.shape), "expand");
}

export function permute(out: RawTensor, x: RawTensor, perm: readonly number[]): void {
  requireSameDType("permute", [out, x]);
  checkPermutation(perm, x.shape.length);
  const permutedShape = perm.map((axis) => x.shape[axis]!);
  expectShape("permute", "out", out.shape, permutedShape);
  const xStrides = contiguousStrides(x.shape);
  const permutedStrides = perm.map((axis) => xStrides[axis]!);
  copyThrough(out, x, offsetsFor(out.shape, permutedStrides), "permute");
}

function checkPermutation(perm: readonly number[], rank: number): void {
  const sorted = [...perm].sort((p, q) => p - q);
  if (sorted.length !== rank || sorted.some((axis, i) => axis !== i)) {
    const message = `perm ${formatShape(perm)} is not a permutation of ${rank} axes`;
    throw new ShapeError("permute", message, [perm]);
  }
}

/** out[i] = x[offsets[i]] for every element of out. */
function copyThrough(out: RawTensor, x: RawTensor, offsets: Int32Array, op: string): void {
  const outValues = elements(op, out);
  const xValues = elements(op, x);
  for (let i = 0; i < outValues.length; i++) outValues[i] = xValues[offsets[i]!]!;
}
