// Gather and scatter-add along one axis (embedding lookup and its gradient, picking
// class scores). An index outside [0, size of the axis) is an IndexError.

import type { RawTensor } from "../backend.js";
import { IndexError, ShapeError, formatShape } from "../../errors.js";
import { ALL_DTYPES, NUMERIC_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape, normalizeAxis, sameShape, splitAtAxis } from "./strides.js";

/** Checks that `indexed` and `full` agree on every axis but `axis`. */
function checkIndexShape(
  op: string,
  indexed: readonly number[],
  full: readonly number[],
  axis: number,
): void {
  const withAxis = full.map((extent, a) => (a === axis ? indexed[axis]! : extent));
  if (indexed.length !== full.length || !sameShape(indexed, withAxis)) {
    const message =
      `index ${formatShape(indexed)} must match ${formatShape(full)} ` +
      `on every axis but ${axis}`;
    throw new ShapeError(op, message, [indexed, full], axis);
  }
}

function checkIndex(op: string, index: number, axis: number, size: number): void {
  if (index < 0 || index >= size) {
    throw new IndexError(op, `index ${index} is out of bounds for axis ${axis} with size ${size}`);
  }
}

/**
 * Calls visit(indexOffset, targetOffset) for each element of the index tensor, where
 * targetOffset is the element of the full tensor (x of gather, out of scatterAdd) it names.
 */
function forEachIndexed(
  op: string,
  indexValues: ArrayLike<number>,
  indexShape: readonly number[],
  fullShape: readonly number[],
  axis: number,
  visit: (indexOffset: number, targetOffset: number) => void,
): void {
  const { outer, dim: indexDim, inner } = splitAtAxis(indexShape, axis);
  const dim = fullShape[axis]!;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < indexDim; j++) {
      for (let i = 0; i < inner; i++) {
        const indexOffset = (o * indexDim + j) * inner + i;
        const target = indexValues[indexOffset]!;
        checkIndex(op, target, axis, dim);
        visit(indexOffset, (o * dim + target) * inner + i);
      }
    }
  }
}

/** out[..., j, ...] = x[..., index[..., j, ...], ...]; out has the shape of index. */
export function gather(out: RawTensor, x: RawTensor, axis: number, index: RawTensor): void {
  requireDType("gather", x.dtype, ALL_DTYPES);
  requireDType("gather", index.dtype, ["int32"]);
  requireSameDType("gather", [out, x]);
  const gatherAxis = normalizeAxis("gather", axis, x.shape.length);
  checkIndexShape("gather", index.shape, x.shape, gatherAxis);
  expectShape("gather", "out", out.shape, index.shape);

  const outValues = elements("gather", out);
  const xValues = elements("gather", x);
  const indexValues = elements("gather", index);
  forEachIndexed("gather", indexValues, index.shape, x.shape, gatherAxis, (j, source) => {
    outValues[j] = xValues[source]!;
  });
}

/** out[..., index[..., j, ...], ...] += src[..., j, ...]; each sum is rounded once. */
export function scatterAdd(out: RawTensor, axis: number, index: RawTensor, src: RawTensor): void {
  requireDType("scatterAdd", src.dtype, NUMERIC_DTYPES);
  requireDType("scatterAdd", index.dtype, ["int32"]);
  requireSameDType("scatterAdd", [out, src]);
  const scatterAxis = normalizeAxis("scatterAdd", axis, out.shape.length);
  checkIndexShape("scatterAdd", index.shape, out.shape, scatterAxis);
  expectShape("scatterAdd", "src", src.shape, index.shape);

  const outValues = elements("scatterAdd", out);
  const srcValues = elements("scatterAdd", src);
  const indexValues = elements("scatterAdd", index);
  const sums = Float64Array.from(outValues);
  forEachIndexed("scatterAdd", indexValues, index.shape, out.shape, scatterAxis, (j, target) => {
    sums[target] = sums[target]! + srcValues[j]!;
  });
  outValues.set(sums);
}
