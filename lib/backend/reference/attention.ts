// Attention's fused softmax: softmax(scale * scores + mask) along the last axis, where an
// entry at -inf is masked out and a row with every entry masked gives zeros (softmax would
// give NaN). The backward is the plain softmax backward of the output.

import type { RawTensor } from "../backend.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

const OP = "maskedSoftmax";

function maskedSoftmaxRow(z: number[]): number[] {
  const max = z.reduce((acc, value) => Math.max(acc, value), -Infinity);
  if (max === -Infinity) return z.map(() => 0);
  const exps = z.map((value) => Math.exp(value - max));
  const sum = exps.reduce((acc, value) => acc + value, 0);
  return exps.map((value) => value / sum);
}

export function maskedSoftmax(
  out: RawTensor,
  scores: RawTensor,
  mask: RawTensor | null,
  scale: number,
): void {
  requireDType(OP, scores.dtype, FLOAT_DTYPES);
  requireSameDType(OP, mask === null ? [out, scores] : [out, scores, mask]);
  expectShape(OP, "out", out.shape, scores.shape);
  if (mask !== null) expectShape(OP, "mask", mask.shape, scores.shape);

  const x = elements(OP, scores);
  const m = mask === null ? null : elements(OP, mask);
  const o = elements(OP, out);
  const cols = scores.shape[scores.shape.length - 1] ?? 1;
  for (let start = 0; start < x.length; start += cols) {
    const z = Array.from({ length: cols }, (_, j) => scale * x[start + j]! + (m?.[start + j] ?? 0));
    maskedSoftmaxRow(z).forEach((value, j) => (o[start + j] = value));
  }
}
