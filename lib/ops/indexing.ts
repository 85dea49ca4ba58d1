// Indexing along one dim: gather (the lookup that losses and top-k style selections
// need) and its adjoint scatterAdd.

import { record } from "../autograd/graph.js";
import { backendFor } from "../backend/registry.js";
import { DTypeError, DeviceError, ShapeError, formatShape } from "../errors.js";
import { normalizeAxis } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { empty, zeroFilled } from "./creation.js";

function checkIndex(op: string, x: Tensor, axis: number, index: Tensor): void {
  if (index.dtype !== "int32") {
    throw new DTypeError(op, `index must be int32, got ${index.dtype}`, [index.dtype]);
  }
  if (index.device !== x.device) {
    throw new DeviceError(op, `index is on ${index.device}, input on ${x.device}`, [
      index.device,
      x.device,
    ]);
  }
  const fits = index.ndim === x.ndim && index.shape.every((d, i) => i === axis || d === x.shape[i]);
  if (!fits) {
    throw new ShapeError(
      op,
      `index ${formatShape(index.shape)} must match input ${formatShape(x.shape)} ` +
        `in every dimension but ${axis}`,
      [x.shape, index.shape],
      axis,
    );
  }
}

/** out[..., j, ...] = x[..., index[..., j, ...], ...] along dim; out has index's shape. */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const axis = normalizeAxis("gather", dim, x.ndim);
  checkIndex("gather", x, axis, index);
  const out = empty(index.shape, x.dtype, x.device);
  const backend = backendFor(x.device);
  backend.gather(out, x, axis, index);
  return record(out, "gather", [x], (g) => [
    scatterAdd(zeroFilled(x.shape, g.dtype, g.device), dim, index, g),
  ]);
}

/** A copy of target with src added at index along dim (repeated indices add up). */
export function scatterAdd(target: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  const axis = normalizeAxis("scatterAdd", dim, target.ndim);
  checkIndex("scatterAdd", target, axis, index);
  if (src.dtype !== target.dtype || src.shape.some((d, i) => d !== index.shape[i])) {
    throw new ShapeError(
      "scatterAdd",
      `src ${formatShape(src.shape)} (${src.dtype}) must have index's shape ` +
        `${formatShape(index.shape)} and the target's dtype ${target.dtype}`,
      [target.shape, index.shape, src.shape],
    );
  }
  const out = empty(target.shape, target.dtype, target.device);
  const backend = backendFor(target.device);
  backend.cast(out, target);
  backend.scatterAdd(out, axis, index, src);
  return record(out, "scatterAdd", [target, src], (g) => [g, gather(g, dim, index)]);
}
