// Softmax and log-softmax along one axis, and their backward. The row maximum is
// subtracted first, so large finite logits never overflow; a row of -inf gives NaN, as in
// PyTorch.

import type { RawTensor } from "../backend.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape, normalizeAxis, splitAtAxis, type AxisSplit } from "./strides.js";

/** Calls visit(offsets) with the flat offsets of each row along the axis. */
function forEachRow(split: AxisSplit, visit: (offsets: number[]) => void): void {
  const { outer, dim, inner } = split;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const offsets = Array.from({ length: dim }, (_, j) => (o * dim + j) * inner + i);
      visit(offsets);
    }
  }
}

function softmaxRow(row: readonly number[], log: boolean): number[] {
  const max = row.reduce((acc, value) => Math.max(acc, value), -Infinity);
  const shifted = row.map((value) => value - max);
  const sum = shifted.reduce((acc, value) => acc + Math.exp(value), 0);
  if (log) {
    const logSum = Math.log(sum);
    return shifted.map((value) => value - logSum);
  }
  return shifted.map((value) => Math.exp(value) / sum);
}

export function softmax(out: RawTensor, x: RawTensor, axis: number, log: boolean): void {
  const op = log ? "logSoftmax" : "softmax";
  requireDType(op, x.dtype, FLOAT_DTYPES);
  requireSameDType(op, [out, x]);
  expectShape(op, "out", out.shape, x.shape);
  const split = splitAtAxis(x.shape, normalizeAxis(op, axis, x.shape.length));

  const xValues = elements(op, x);
  const outValues = elements(op, out);
  forEachRow(split, (offsets) => {
    const result = softmaxRow(
      offsets.map((offset) => xValues[offset]!),
      log,
    );
    offsets.forEach((offset, j) => (outValues[offset] = result[j]!));
  });
}

/**
 * softmax:     gradX = y * (gradOut - sum(gradOut * y))
 * log-softmax: gradX = gradOut - exp(y) * sum(gradOut)
 */
function softmaxBackwardRow(gradOut: number[], y: number[], log: boolean): number[] {
  if (log) {
    const sum = gradOut.reduce((acc, g) => acc + g, 0);
    return gradOut.map((g, j) => g - Math.exp(y[j]!) * sum);
  }
  const dot = gradOut.reduce((acc, g, j) => acc + g * y[j]!, 0);
  return gradOut.map((g, j) => y[j]! * (g - dot));
}

export function softmaxBackward(
  gradX: RawTensor,
  gradOut: RawTensor,
  y: RawTensor,
  axis: number,
  log: boolean,
): void {
  const op = log ? "logSoftmaxBackward" : "softmaxBackward";
  requireDType(op, y.dtype, FLOAT_DTYPES);
  requireSameDType(op, [gradX, gradOut, y]);
  expectShape(op, "gradOut", gradOut.shape, y.shape);
  expectShape(op, "gradX", gradX.shape, y.shape);
  const split = splitAtAxis(y.shape, normalizeAxis(op, axis, y.shape.length));

  const gradXValues = elements(op, gradX);
  const gradOutValues = elements(op, gradOut);
  const yValues = elements(op, y);
  forEachRow(split, (offsets) => {
    const result = softmaxBackwardRow(
      offsets.map((offset) => gradOutValues[offset]!),
      offsets.map((offset) => yValues[offset]!),
      log,
    );
    offsets.forEach((offset, j) => (gradXValues[offset] = result[j]!));
  });
}
