// Strided slices along one axis: slice reads every step-th position from start into a
// smaller tensor, sliceAssign writes a smaller tensor back into those positions. Both see
// their tensors as [outer, dim, inner] around the axis.

import type { RawTensor } from "../backend.js";
import { ShapeError, ValueError, formatShape } from "../../errors.js";
import { elements, requireSameDType } from "./storage.js";
import { normalizeAxis, splitAtAxis } from "./strides.js";

/**
 * Checks that `small` is `large` with `axis` cut to the positions start, start + step, ...
 * that lie inside it, and returns the extents.
 */
function sliceExtents(
  op: string,
  large: RawTensor,
  small: RawTensor,
  axis: number,
  start: number,
  step: number,
): { outer: number; inner: number; largeDim: number; count: number } {
  requireSameDType(op, [large, small]);
  const a = normalizeAxis(op, axis, large.shape.length);
  const { outer, dim: largeDim, inner } = splitAtAxis(large.shape, a);
  const count = small.shape[a] ?? 0;
  const sameElsewhere =
    small.shape.length === large.shape.length &&
    small.shape.every((extent, i) => i === a || extent === large.shape[i]);
  if (!sameElsewhere) {
    const message =
      `${formatShape(small.shape)} is not ${formatShape(large.shape)} cut along ` + `axis ${a}`;
    throw new ShapeError(op, message, [large.shape, small.shape], a);
  }
  const last = start + (count - 1) * step;
  if (!Number.isInteger(start) || !Number.isInteger(step) || step < 1) {
    throw new ValueError(op, `start ${start} and step ${step} must be integers, step >= 1`, "step");
  }
  if (count > 0 && (start < 0 || last >= largeDim)) {
    const message =
      `positions ${start}..${last} (step ${step}) leave [0, ${largeDim}) of axis ` + `${a}`;
    throw new ValueError(op, message, "start");
  }
  return { outer, inner, largeDim, count };
}

// Copies row (o, i) of the small tensor to or from row (o, start + i * step) of the large.
function copyRows(
  op: string,
  large: RawTensor,
  small: RawTensor,
  axis: number,
  start: number,
  step: number,
  toSmall: boolean,
): void {
  const { outer, inner, largeDim, count } = sliceExtents(op, large, small, axis, start, step);
  const largeValues = elements(op, large);
  const smallValues = elements(op, small);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < count; i++) {
      const l = (o * largeDim + start + i * step) * inner;
      const m = (o * count + i) * inner;
      for (let k = 0; k < inner; k++) {
        if (toSmall) smallValues[m + k] = largeValues[l + k]!;
        else largeValues[l + k] = smallValues[m + k]!;
      }
    }
  }
}

/** out[o, i, k] = x[o, start + i * step, k]. */
export function slice(
  out: RawTensor,
  x: RawTensor,
  axis: number,
  start: number,
  step: number,
): void {
  copyRows("slice", x, out, axis, start, step, true);
}

/** out[o, start + i * step, k] = x[o, i, k]; the other positions of out are left alone. */
export function sliceAssign(
  out: RawTensor,
  x: RawTensor,
  axis: number,
  start: number,
  step: number,
): void {
  copyRows("sliceAssign", out, x, axis, start, step, false);
}
