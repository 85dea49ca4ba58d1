// Shape ops. reshape and its relatives are views sharing storage; permute, expand and
// device copies go through a kernel (storage is always contiguous).

import { record } from "../autograd/graph.js";
import { backendFor, type Device } from "../backend/registry.js";
import { ShapeError, formatShape } from "../errors.js";
import { broadcastShapes, inferShape, normalizeAxis, sameShape } from "../shape.js";
import { Tensor } from "../tensor.js";
import { empty } from "./creation.js";
import { sumTo } from "./elementwise.js";

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape("reshape", x.shape, shape);
  if (sameShape(target, x.shape) && !x.requiresGrad)
    return new Tensor(x.storage, target, x.dtype, x.device);
  const out = new Tensor(x.storage, target, x.dtype, x.device);
  return record(out, "reshape", [x], (g) => [reshape(g, x.shape)], { savesTensors: false });
}

/**
 * A temporary's values under another shape, the temporary disposed, so that the result is
 * the only tensor on its storage (autograd may then hand it to a leaf as its gradient
 * without a copy). Only for a tensor an op just made, that nothing else holds and that
 * records no graph.
 */
export function reshapeTemporary(x: Tensor, shape: readonly number[]): Tensor {
  const out = new Tensor(x.storage, inferShape("reshape", x.shape, shape), x.dtype, x.device);
  x.dispose();
  return out;
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const start = normalizeAxis("flatten", startDim, x.ndim);
  const end = normalizeAxis("flatten", endDim, x.ndim);
  if (start > end) {
    throw new ShapeError("flatten", `startDim ${startDim} comes after endDim ${endDim}`, [x.shape]);
  }
  const middle = x.shape.slice(start, end + 1).reduce((a, b) => a * b, 1);
  return reshape(x, [...x.shape.slice(0, start), middle, ...x.shape.slice(end + 1)]);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined)
    return reshape(
      x,
      x.shape.filter((d) => d !== 1),
    );
  const d = normalizeAxis("squeeze", dim, x.ndim);
  if (x.shape[d] !== 1) return x;
  return reshape(
    x,
    x.shape.filter((_, i) => i !== d),
  );
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normalizeAxis("unsqueeze", dim, x.ndim + 1);
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) {
    throw new ShapeError(
      "permute",
      `dims ${formatShape(dims)} do not match the rank of ${formatShape(x.shape)}`,
      [x.shape],
    );
  }
  const perm = dims.map((d) => normalizeAxis("permute", d, x.ndim));
  if (new Set(perm).size !== perm.length) {
    throw new ShapeError("permute", `dims ${formatShape(dims)} repeat a dimension`, [x.shape]);
  }
  const out = empty(
    perm.map((p) => x.shape[p]!),
    x.dtype,
    x.device,
  );
  backendFor(x.device).permute(out, x, perm);
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return record(out, "permute", [x], (g) => [permute(g, inverse)], { savesTensors: false });
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const a = normalizeAxis("transpose", dim0, x.ndim);
  const b = normalizeAxis("transpose", dim1, x.ndim);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

/** Broadcasts x to shape (-1 keeps a dim) as a new contiguous tensor. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.ndim;
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - lead]! : d));
  const full = broadcastShapes("expand", x.shape, target);
  if (!sameShape(full, target)) {
    throw new ShapeError(
      "expand",
      `cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`,
      [x.shape, shape],
    );
  }
  if (sameShape(target, x.shape)) return x;
  const out = empty(target, x.dtype, x.device);
  backendFor(x.device).expand(out, x);
  return record(out, "expand", [x], (g) => [sumTo(g, x.shape)], { savesTensors: false });
}

/** A copy on another device; gradients flow back to the source device. */
export function toDevice(x: Tensor, device: Device): Tensor {
  if (device === x.device) return x;
  const target = backendFor(device);
  const out = new Tensor(
    target.fromArray(x.dtype, backendFor(x.device).read(x)),
    x.shape,
    x.dtype,
    device,
  );
  return record(out, "toDevice", [x], (g) => [toDevice(g, x.device)], {
    savesTensors: false,
  });
}
