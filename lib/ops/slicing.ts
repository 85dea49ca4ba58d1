// Slicing and joining along one dim: slice (start, end, step as Python's), narrow, select,
// split, chunk, cat and stack. Storage is always contiguous, so each result is a copy made
// by the backend's slice kernel; the gradients go back through sliceAssign.

import { record, recordOutputs } from "../autograd/graph.js";
import { backendFor } from "../backend/registry.js";
import {
  DTypeError,
  DeviceError,
  IndexError,
  ShapeError,
  ValueError,
  formatShape,
  formatValue,
} from "../errors.js";
import { normalizeAxis } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { empty, zeroFilled, zeros } from "./creation.js";
import { unsqueeze } from "./shape.js";

/** Rows start, start + step, ... of x along axis (count of them), not recorded. */
function rows(x: Tensor, axis: number, start: number, step: number, count: number): Tensor {
  const shape = [...x.shape];
  shape[axis] = count;
  const out = empty(shape, x.dtype, x.device);
  backendFor(x.device).slice(out, x, axis, start, step);
  return out;
}

/** rows, recorded: its backward puts the gradient into zeros of x's shape. */
function strided(x: Tensor, axis: number, start: number, step: number, count: number): Tensor {
  return record(
    rows(x, axis, start, step, count),
    "slice",
    [x],
    (g) => {
      const gradX = zeros(x.shape, { dtype: g.dtype, device: g.device });
      backendFor(g.device).sliceAssign(gradX, g, axis, start, step);
      return [gradX];
    },
    { savesTensors: false },
  );
}

/**
 * x cut along axis into consecutive pieces `lengths` long, recorded as one op: its backward
 * writes each piece's gradient into one gradient of x's shape, so k pieces cost k
 * slice_assigns, where a slice node per piece would cost k zero-filled gradients of x's shape
 * and k - 1 additions of them (PyTorch's split backward is one concatenation too).
 */
function piecesOf(x: Tensor, axis: number, lengths: readonly number[]): Tensor[] {
  const offsets: number[] = [];
  let offset = 0;
  for (const length of lengths) {
    offsets.push(offset);
    offset += length;
  }
  const outs = lengths.map((length, i) => rows(x, axis, offsets[i]!, 1, length));
  const shape = x.shape;
  return recordOutputs(
    outs,
    "split",
    [x],
    (grads) => {
      // Zero-filled only when some non-empty piece got no gradient: else every entry is written.
      const missing = grads.some((g, i) => g === null && lengths[i]! > 0);
      const { dtype, device } = grads.find((g) => g !== null)!;
      const gradX = (missing ? zeroFilled : empty)(shape, dtype, device);
      grads.forEach((g, i) => {
        if (g !== null && lengths[i]! > 0)
          backendFor(device).sliceAssign(gradX, g, axis, offsets[i]!, 1);
      });
      return [gradX];
    },
    { savesTensors: false },
  );
}

/** The axis `dim` names in x, which must have one (PyTorch refuses these ops on a 0-d tensor). */
function axisOf(op: string, x: Tensor, dim: number): number {
  if (x.ndim === 0) {
    throw new ShapeError(op, `expects a tensor of at least one dimension, got a 0-d tensor`, [
      x.shape,
    ]);
  }
  return normalizeAxis(op, dim, x.ndim);
}

function integer(op: string, name: string, value: number): number {
  if (!Number.isInteger(value)) {
    throw new ValueError(op, `${name} must be an integer, got ${formatValue(value)}`, name);
  }
  return value;
}

/**
 * x[start:end:step] along `dim`, as Python slices: negative start and end count from the
 * end, both are clamped to the dim, and step is at least 1. A copy, as in DESIGN.md.
 */
export function slice(x: Tensor, dim: number, start = 0, end?: number, step = 1): Tensor {
  const axis = axisOf("slice", x, dim);
  const size = x.shape[axis]!;
  integer("slice", "start", start);
  if (end !== undefined) integer("slice", "end", end);
  if (integer("slice", "step", step) < 1) {
    throw new ValueError("slice", `step must be >= 1, got ${formatValue(step)}`, "step");
  }
  const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + size : i, 0), size);
  const from = clamp(start);
  const to = end === undefined ? size : clamp(end);
  const count = to > from ? Math.ceil((to - from) / step) : 0;
  return strided(x, axis, from, step, count);
}

/** `length` entries of `dim` from `start` (negative counts from the end), as torch.narrow. */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const axis = axisOf("narrow", x, dim);
  const size = x.shape[axis]!;
  integer("narrow", "start", start);
  integer("narrow", "length", length);
  const from = start < 0 ? start + size : start;
  if (from < 0 || length < 0 || from + length > size) {
    const message =
      `start ${start} and length ${length} do not fit dim ${axis} of ${formatShape(x.shape)} ` +
      `(expected 0 <= start, start + length <= ${size})`;
    throw new IndexError("narrow", message);
  }
  return strided(x, axis, from, 1, length);
}

/** Entry `index` of `dim` (negative counts from the end), with that dim removed. */
export function select(x: Tensor, dim: number, index: number): Tensor {
  const axis = axisOf("select", x, dim);
  const size = x.shape[axis]!;
  integer("select", "index", index);
  if (index < -size || index >= size) {
    const message = `index ${index} is out of range for dim ${axis} of ${formatShape(x.shape)}`;
    throw new IndexError("select", message);
  }
  const row = strided(x, axis, index < 0 ? index + size : index, 1, 1);
  const shape = x.shape.filter((_, i) => i !== axis);
  return row.reshape(shape);
}

/**
 * Pieces of `dim`: every piece `sizes` long (the last may be shorter) when a number, or
 * pieces of the listed sizes, which must add up to the dim.
 */
export function split(x: Tensor, sizes: number | readonly number[], dim = 0): Tensor[] {
  const axis = axisOf("split", x, dim);
  const size = x.shape[axis]!;
  let lengths: number[];
  if (typeof sizes === "number") {
    if (integer("split", "sizes", sizes) < 1) {
      throw new ValueError(
        "split",
        `a piece size must be >= 1, got ${formatValue(sizes)}`,
        "sizes",
      );
    }
    // An empty dim is one empty piece, as in PyTorch.
    lengths =
      size === 0
        ? [0]
        : Array.from({ length: Math.ceil(size / sizes) }, (_, i) =>
            Math.min(sizes, size - i * sizes),
          );
  } else {
    if (!Array.isArray(sizes)) {
      const message = `sizes must be a number or an array of numbers, got ${formatValue(sizes)}`;
      throw new ValueError("split", message, "sizes");
    }
    lengths = sizes.map((s) => integer("split", "sizes", s));
    const total = lengths.reduce((sum, s) => sum + s, 0);
    if (lengths.some((s) => s < 0) || total !== size) {
      const message =
        `sizes [${lengths.join(", ")}] must be >= 0 and add up to ${size}, dim ` +
        `${axis} of ${formatShape(x.shape)}`;
      throw new ShapeError("split", message, [x.shape], axis);
    }
  }
  return piecesOf(x, axis, lengths);
}

/** `chunks` pieces of `dim` of equal size (the last smaller), as torch.chunk. */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  if (integer("chunk", "chunks", chunks) < 1) {
    throw new ValueError("chunk", `chunks must be >= 1, got ${formatValue(chunks)}`, "chunks");
  }
  const axis = axisOf("chunk", x, dim);
  // An empty dim is `chunks` empty pieces, as in PyTorch.
  if (x.shape[axis] === 0) return split(x, new Array<number>(chunks).fill(0), axis);
  return split(x, Math.max(1, Math.ceil(x.shape[axis]! / chunks)), axis);
}

function checkJoinable(op: string, tensors: readonly Tensor[], axis: number): void {
  const first = tensors[0]!;
  for (const t of tensors) {
    if (t.device !== first.device) {
      const devices = [first.device, t.device];
      throw new DeviceError(
        op,
        `expected tensors on one device, got ${devices.join(" and ")}`,
        devices,
      );
    }
    if (t.dtype !== first.dtype) {
      const dtypes = [first.dtype, t.dtype];
      throw new DTypeError(
        op,
        `expected tensors of one dtype, got ${dtypes.join(" and ")}`,
        dtypes,
      );
    }
    const matches =
      t.ndim === first.ndim &&
      t.shape.every((extent, i) => i === axis || extent === first.shape[i]);
    if (!matches) {
      const message =
        `shapes ${formatShape(first.shape)} and ${formatShape(t.shape)} differ ` +
        `outside dim ${axis}`;
      throw new ShapeError(op, message, [first.shape, t.shape], axis);
    }
  }
}

/** The tensors joined along `dim`; they match in every other dim, dtype and device. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new ValueError("cat", "expected at least one tensor", "tensors");
  const first = tensors[0]!;
  const axis = normalizeAxis("cat", dim, first.ndim);
  checkJoinable("cat", tensors, axis);
  const shape = [...first.shape];
  shape[axis] = tensors.reduce((sum, t) => sum + t.shape[axis]!, 0);
  const out = empty(shape, first.dtype, first.device);
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    offsets.push(offset);
    backendFor(out.device).sliceAssign(out, t, axis, offset, 1);
    offset += t.shape[axis]!;
  }
  return record(
    out,
    "cat",
    tensors,
    (g) => tensors.map((t, i) => strided(g, axis, offsets[i]!, 1, t.shape[axis]!)),
    { savesTensors: false },
  );
}

/** The tensors, all of one shape, stacked along a new dim. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0)
    throw new ValueError("stack", "expected at least one tensor", "tensors");
  const first = tensors[0]!;
  const axis = normalizeAxis("stack", dim, first.ndim + 1);
  const unequal = tensors.find((t) => formatShape(t.shape) !== formatShape(first.shape));
  if (unequal !== undefined) {
    const message =
      `expected tensors of one shape, got ${formatShape(first.shape)} and ` +
      `${formatShape(unequal.shape)}`;
    throw new ShapeError("stack", message, [first.shape, unequal.shape]);
  }
  return cat(
    tensors.map((t) => unsqueeze(t, axis)),
    axis,
  );
}
