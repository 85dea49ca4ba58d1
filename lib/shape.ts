// Shape algebra shared by every op: broadcasting, axis normalisation, sizes.

import { ShapeError, ValueError, formatShape, formatValue, type Shape } from "./errors.js";

export function sizeOf(shape: Shape): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Numpy broadcasting of two shapes; the error names the op, both shapes and the dim. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        op,
        `shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast: ` +
          `dimension ${i} is ${da} and ${db}`,
        [a, b],
        i,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Axis in [-rank, rank) -> [0, rank). */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis))
    throw new ValueError(op, `dim must be an integer, got ${formatValue(axis)}`, "dim");
  if (axis < -Math.max(rank, 1) || axis >= Math.max(rank, 1)) {
    throw new ValueError(
      op,
      `dim ${axis} is out of range for a tensor of rank ${rank} (expected ${-rank} to ${rank - 1})`,
      "dim",
    );
  }
  return axis < 0 ? axis + rank : axis;
}

/** Sorted unique axes; undefined means all axes. */
export function normalizeAxes(
  op: string,
  axes: number | readonly number[] | undefined,
  rank: number,
): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === "number" ? [axes] : axes;
  const out = [...new Set(list.map((a) => normalizeAxis(op, a, rank)))];
  if (out.length !== list.length)
    throw new ValueError(op, `dims ${formatShape(list)} repeat a dimension`, "dim");
  return out.sort((x, y) => x - y);
}

/** The axes of `full` along which `shape` (right-aligned) was broadcast. */
export function broadcastAxes(shape: Shape, full: Shape): number[] {
  const axes: number[] = [];
  const lead = full.length - shape.length;
  for (let i = 0; i < full.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && full[i] !== 1)) axes.push(i);
  }
  return axes;
}

/** Resolves one -1 in a requested shape against `size`. */
export function inferShape(op: string, shape: Shape, requested: readonly number[]): number[] {
  const size = sizeOf(shape);
  const unknown = requested.indexOf(-1);
  if (requested.lastIndexOf(-1) !== unknown) {
    throw new ShapeError(op, `only one dimension can be -1, got ${formatShape(requested)}`, [
      shape,
      requested,
    ]);
  }
  for (const d of requested) {
    if (!Number.isInteger(d) || d < -1) {
      throw new ShapeError(op, `invalid dimension ${d} in ${formatShape(requested)}`, [
        shape,
        requested,
      ]);
    }
  }
  const out = [...requested];
  if (unknown >= 0) {
    const known = sizeOf(requested.filter((_, i) => i !== unknown));
    if (known === 0 || size % known !== 0) {
      throw new ShapeError(
        op,
        `shape ${formatShape(requested)} is invalid for input of shape ${formatShape(shape)} ` +
          `(${size} elements)`,
        [shape, requested],
      );
    }
    out[unknown] = size / known;
  }
  if (sizeOf(out) !== size) {
    throw new ShapeError(
      op,
      `shape ${formatShape(requested)} is invalid for input of shape ${formatShape(shape)} ` +
        `(${size} elements)`,
      [shape, requested],
    );
  }
  return out;
}

export function checkShape(op: string, shape: readonly number[]): void {
  if (!Array.isArray(shape)) {
    // randn(3, 4), PyTorch's habit, would fail below as "shape is not iterable".
    const message = `shape must be an array of sizes, as in [2, 3], got ${formatValue(shape)}`;
    throw new ShapeError(op, message, []);
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(op, `shape ${formatShape(shape)} must hold non-negative integers`, [
        shape,
      ]);
    }
  }
}
