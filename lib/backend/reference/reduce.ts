// Reductions over a set of axes, and argmax/argmin along one axis. NaN propagates through
// max and min and counts as the extreme value for argmax/argmin (the first NaN wins).

import type { RawTensor, ReduceOp } from "../backend.js";
import { isFloating, type DType } from "../../dtype.js";
import { DTypeError, ValueError, formatShape } from "../../errors.js";
import { ALL_DTYPES, FLOAT_DTYPES, NUMERIC_DTYPES, elements, requireDType } from "./storage.js";
import { broadcastOffsets, expectShape, normalizeAxis, splitAtAxis } from "./strides.js";

interface Fold {
  init: number;
  combine: (acc: number, value: number) => number;
}

const FLOAT_FOLDS: Record<ReduceOp, Fold> = {
  sum: { init: 0, combine: (acc, value) => acc + value },
  mean: { init: 0, combine: (acc, value) => acc + value },
  prod: { init: 1, combine: (acc, value) => acc * value },
  max: { init: -Infinity, combine: (acc, value) => Math.max(acc, value) },
  min: { init: Infinity, combine: (acc, value) => Math.min(acc, value) },
};

/** int32 sums and products wrap at every step, as C++ int32 arithmetic does. */
const INT_FOLDS: Partial<Record<ReduceOp, Fold>> = {
  sum: { init: 0, combine: (acc, value) => (acc + value) | 0 },
  prod: { init: 1, combine: (acc, value) => Math.imul(acc, value) },
  max: FLOAT_FOLDS.max,
  min: FLOAT_FOLDS.min,
};

/** Sum also takes bool, uint8 and int8 and counts into int32, as PyTorch widens them. */
const SUPPORTED: Record<ReduceOp, readonly DType[]> = {
  sum: ALL_DTYPES,
  mean: FLOAT_DTYPES,
  prod: NUMERIC_DTYPES,
  max: NUMERIC_DTYPES,
  min: NUMERIC_DTYPES,
};

function foldFor(op: ReduceOp, x: RawTensor): Fold {
  requireDType(op, x.dtype, SUPPORTED[op]);
  return isFloating(x.dtype) ? FLOAT_FOLDS[op] : INT_FOLDS[op]!;
}

function requireOutDType(op: ReduceOp, out: RawTensor, x: RawTensor): void {
  const expected = op === "sum" && !isFloating(x.dtype) ? "int32" : x.dtype;
  if (out.dtype !== expected) {
    throw new DTypeError(op, `out must be ${expected} for ${x.dtype} x, got ${out.dtype}`, [
      out.dtype,
      x.dtype,
    ]);
  }
}

/** x.shape with every reduced axis set to 1. */
function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((extent, axis) => (axes.includes(axis) ? 1 : extent));
}

/** max and min have no identity, so an empty reduced axis is an error, as in PyTorch. */
function checkNotEmpty(op: string, shape: readonly number[], axes: readonly number[]): void {
  const emptyAxis = axes.find((axis) => shape[axis] === 0);
  if (emptyAxis !== undefined) {
    const message = `cannot reduce over axis ${emptyAxis} of size 0 in shape ${formatShape(shape)}`;
    throw new ValueError(op, message, "axes");
  }
}

export function reduce(op: ReduceOp, out: RawTensor, x: RawTensor, axes: readonly number[]): void {
  const fold = foldFor(op, x);
  requireOutDType(op, out, x);
  const reducedAxes = axes.map((axis) => normalizeAxis(op, axis, x.shape.length));
  expectShape(op, "out", out.shape, keptShape(x.shape, reducedAxes));
  if (op === "max" || op === "min") checkNotEmpty(op, x.shape, reducedAxes);

  const outValues = elements(op, out);
  const xValues = elements(op, x);
  const outOffsets = broadcastOffsets(op, out.shape, x.shape);
  const accumulators = new Float64Array(outValues.length).fill(fold.init);
  for (let i = 0; i < xValues.length; i++) {
    const o = outOffsets[i]!;
    accumulators[o] = fold.combine(accumulators[o]!, xValues[i]!);
  }

  const count = outValues.length === 0 ? 0 : xValues.length / outValues.length;
  for (let o = 0; o < outValues.length; o++) {
    // mean over an empty axis is 0 / 0 = NaN, as in PyTorch.
    outValues[o] = op === "mean" ? accumulators[o]! / count : accumulators[o]!;
  }
}

type Better = (value: number, best: number) => boolean;

const BETTER: Record<"argmax" | "argmin", Better> = {
  argmax: (value, best) => value > best || Number.isNaN(value),
  argmin: (value, best) => value < best || Number.isNaN(value),
};

export function argReduce(
  op: "argmax" | "argmin",
  out: RawTensor,
  x: RawTensor,
  axis: number,
): void {
  requireDType(op, x.dtype, NUMERIC_DTYPES);
  requireDType(op, out.dtype, ["int32"]);
  const reducedAxis = normalizeAxis(op, axis, x.shape.length);
  expectShape(op, "out", out.shape, keptShape(x.shape, [reducedAxis]));
  checkNotEmpty(op, x.shape, [reducedAxis]);

  const outValues = elements(op, out);
  const xValues = elements(op, x);
  const { outer, dim, inner } = splitAtAxis(x.shape, reducedAxis);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      outValues[o * inner + i] = bestIndex(xValues, o * dim * inner + i, dim, inner, BETTER[op]);
    }
  }
}

/** Position of the first best of the `dim` values at start, start + stride, ... */
function bestIndex(
  values: ArrayLike<number>,
  start: number,
  dim: number,
  stride: number,
  better: Better,
): number {
  let best = values[start]!;
  let position = 0;
  for (let j = 1; j < dim && !Number.isNaN(best); j++) {
    const value = values[start + j * stride]!;
    if (better(value, best)) {
      best = value;
      position = j;
    }
  }
  return position;
}
