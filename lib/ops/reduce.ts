// Reductions over dims with keepdim, and arg-reductions; backward spreads the gradient
// back over the reduced dims.

import { record } from "../autograd/graph.js";
import type { ReduceOp } from "../backend/backend.js";
import { backendFor } from "../backend/registry.js";
import { isFloating } from "../dtype.js";
import { ValueError } from "../errors.js";
import { normalizeAxes, normalizeAxis, sizeOf } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { empty, full } from "./creation.js";
import { cast, compare, div, mul, where } from "./elementwise.js";
import { expand, reshapeTemporary } from "./shape.js";

function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function outShape(shape: readonly number[], axes: readonly number[], keepdim: boolean): number[] {
  return keepdim ? keptShape(shape, axes) : shape.filter((_, i) => !axes.includes(i));
}

function reduceRaw(op: ReduceOp, x: Tensor, axes: number[]): Tensor {
  const integerSum = op === "sum" && !isFloating(x.dtype);
  const dtype = integerSum ? "int32" : x.dtype;
  const out = empty(keptShape(x.shape, axes), dtype, x.device);
  backendFor(x.device).reduce(op, out, x, axes);
  return out;
}

/** The gradient of a reduction, broadcast back to the input's shape. */
function spread(g: Tensor, x: Tensor, axes: number[]): Tensor {
  return expand(g.reshape(keptShape(x.shape, axes)), [...x.shape]);
}

export function sum(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  const axes = normalizeAxes("sum", dim, x.ndim);
  const out = reshapeTemporary(reduceRaw("sum", x, axes), outShape(x.shape, axes, keepdim));
  return record(out, "sum", [x], (g) => [spread(g, x, axes)], { savesTensors: false });
}

export function mean(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  const source = isFloating(x.dtype) ? x : cast(x, "float32");
  const axes = normalizeAxes("mean", dim, x.ndim);
  const count = sizeOf(axes.map((a) => x.shape[a]!));
  const out = reshapeTemporary(reduceRaw("mean", source, axes), outShape(x.shape, axes, keepdim));
  return record(out, "mean", [source], (g) => [div(spread(g, source, axes), count)], {
    savesTensors: false,
  });
}

function extremum(
  op: "max" | "min",
  x: Tensor,
  dim: number | readonly number[] | undefined,
  keepdim: boolean,
): Tensor {
  const axes = normalizeAxes(op, dim, x.ndim);
  const kept = reduceRaw(op, x, axes);
  const out = kept.reshape(outShape(x.shape, axes, keepdim));
  // The gradient is shared evenly among the elements equal to the extremum.
  return record(out, op, [x], (g) => {
    const hits = cast(compare("eq", x, expand(kept, [...x.shape])), g.dtype);
    const counts = reduceRaw("sum", hits, axes);
    return [mul(spread(g, x, axes), div(hits, expand(counts, [...x.shape])))];
  });
}

export function max(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return extremum("max", x, dim, keepdim);
}

export function min(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return extremum("min", x, dim, keepdim);
}

/** Index of the first maximum (minimum); over the flattened tensor when dim is undefined. */
export function argReduce(
  op: "argmax" | "argmin",
  x: Tensor,
  dim: number | undefined,
  keepdim: boolean,
): Tensor {
  if (x.numel === 0)
    throw new ValueError(op, "cannot take the index of an extremum of an empty tensor");
  const source = dim === undefined ? x.reshape([x.numel]) : x;
  const axis = dim === undefined ? 0 : normalizeAxis(op, dim, x.ndim);
  const out = empty(keptShape(source.shape, [axis]), "int32", x.device);
  backendFor(x.device).argReduce(op, out, source, axis);
  if (dim === undefined) return out.reshape(keepdim ? x.shape.map(() => 1) : []);
  return keepdim ? out : out.reshape(outShape(source.shape, [axis], false));
}

/**
 * The 2-norm over dims (all by default). Its gradient is x / norm, and 0 where the norm is
 * 0, as PyTorch defines it (the subgradient at the kink), instead of 0 / 0.
 */
export function norm(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  const source = isFloating(x.dtype) ? x : cast(x, "float32");
  const axes = normalizeAxes("norm", dim, x.ndim);
  const squares = empty(source.shape, source.dtype, source.device);
  backendFor(x.device).unary("square", squares, source);
  const sums = reduceRaw("sum", squares, axes);
  const kept = empty(sums.shape, sums.dtype, sums.device);
  backendFor(x.device).unary("sqrt", kept, sums);
  const out = kept.reshape(outShape(x.shape, axes, keepdim));
  return record(out, "norm", [source], (g) => {
    const zero = full([], 0, { dtype: source.dtype, device: source.device });
    const scale = where(compare("eq", kept, 0), zero, div(g.reshape(kept.shape), kept));
    return [mul(expand(scale, [...source.shape]), source)];
  });
}
