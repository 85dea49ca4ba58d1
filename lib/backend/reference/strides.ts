// Shape arithmetic shared by the reference kernels: sizes, row-major strides, broadcasting
// (numpy rules, shapes right-aligned) and the outer/dim/inner split of an axis.

import { ShapeError, ValueError, formatShape, type Shape } from "../../errors.js";

export function sizeOf(shape: Shape): number {
  let size = 1;
  for (const extent of shape) size *= extent;
  return size;
}

/** Row-major strides of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let axis = shape.length - 2; axis >= 0; axis--) {
    strides[axis] = strides[axis + 1]! * shape[axis + 1]!;
  }
  return strides;
}

/**
 * Strides that read a tensor of `shape` as if it had `outShape`: one per axis of outShape,
 * right-aligned, 0 on every axis where `shape` broadcasts (missing or of extent 1).
 */
export function broadcastStrides(op: string, shape: Shape, outShape: Shape): number[] {
  const lead = outShape.length - shape.length;
  if (lead < 0) throw broadcastError(op, shape, outShape);
  const own = contiguousStrides(shape);
  return outShape.map((outExtent, axis) => {
    if (axis < lead) return 0;
    const extent = shape[axis - lead]!;
    if (extent === outExtent) return extent === 1 ? 0 : own[axis - lead]!;
    if (extent === 1) return 0;
    throw broadcastError(op, shape, outShape);
  });
}

function broadcastError(op: string, shape: Shape, outShape: Shape): ShapeError {
  const message = `cannot broadcast ${formatShape(shape)} to ${formatShape(outShape)}`;
  return new ShapeError(op, message, [shape, outShape]);
}

/** Calls visit(index, flat) for every multi-index of `shape`, in row-major order. */
export function forEachIndex(
  shape: Shape,
  visit: (index: readonly number[], flat: number) => void,
): void {
  const total = sizeOf(shape);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < total; flat++) {
    visit(index, flat);
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      index[axis]! += 1;
      if (index[axis]! < shape[axis]!) break;
      index[axis] = 0;
    }
  }
}

export function offsetOf(index: readonly number[], strides: readonly number[]): number {
  let offset = 0;
  for (let axis = 0; axis < index.length; axis++) offset += index[axis]! * strides[axis]!;
  return offset;
}

/** For every element of outShape (row-major), the flat offset it reads from `strides`. */
export function offsetsFor(outShape: Shape, strides: readonly number[]): Int32Array {
  const offsets = new Int32Array(sizeOf(outShape));
  forEachIndex(outShape, (index, flat) => {
    offsets[flat] = offsetOf(index, strides);
  });
  return offsets;
}

/** For every element of outShape, the flat offset of the element of `shape` it reads. */
export function broadcastOffsets(op: string, shape: Shape, outShape: Shape): Int32Array {
  return offsetsFor(outShape, broadcastStrides(op, shape, outShape));
}

export function normalizeAxis(op: string, axis: number, rank: number): number {
  const normalized = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || normalized < 0 || normalized >= rank) {
    throw new ValueError(op, `axis ${axis} is out of range for rank ${rank}`, "axis");
  }
  return normalized;
}

/** A shape seen as [outer, dim, inner] around one axis. */
export interface AxisSplit {
  outer: number;
  dim: number;
  inner: number;
}

export function splitAtAxis(shape: Shape, axis: number): AxisSplit {
  return {
    outer: sizeOf(shape.slice(0, axis)),
    dim: shape[axis]!,
    inner: sizeOf(shape.slice(axis + 1)),
  };
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((extent, axis) => extent === b[axis]);
}

export function expectShape(op: string, role: string, shape: Shape, expected: Shape): void {
  if (!sameShape(shape, expected)) {
    const message = `${role} has shape ${formatShape(shape)}, expected ${formatShape(expected)}`;
    throw new ShapeError(op, message, [shape, expected]);
  }
}
