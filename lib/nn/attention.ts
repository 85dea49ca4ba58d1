// Scaled dot-product attention, composed from batched matmul, where and softmax. Masked scores are set to the dtype's lowest finite value rather than
// -inf, and the weights are then multiplied by the keep mask, so a row whose keys are all
// masked gives zero weights and a zero output (PyTorch gives NaN there), in both passes.

import { DTypeError, ShapeError, ValueError, formatShape } from "../errors.js";
import { arange, full } from "../ops/creation.js";
import { where } from "../ops/elementwise.js";
import { matmul } from "../ops/linalg.js";
import { broadcastShapes } from "../shape.js";
import type { DType } from "../dtype.js";
import type { Tensor } from "../tensor.js";
import * as F from "./functional.js";

export interface AttentionOptions {
  /**
   * Broadcastable to [..., L, S]. Bool: true = the key takes part (PyTorch's
   * F.scaled_dot_product_attention convention); float: added to the scores.
   */
  attnMask?: Tensor | null;
  /** [N, S] or [S], N the first batch dim. Bool: true = the key is padding (masked out). */
  keyPaddingMask?: Tensor | null;
  /** Query i attends to keys 0..i only. */
  isCausal?: boolean;
  /** Dropout on the attention weights, applied only when training is true. */
  dropoutP?: number;
  /** Defaults to 1 / sqrt(E). */
  scale?: number;
  training?: boolean;
}

const OP = "scaledDotProductAttention";

/** The most negative finite value of a float dtype: exp() of it minus any row max is 0. */
function lowest(dtype: string): number {
  return dtype === "float64" ? -Number.MAX_VALUE : -3.4028234663852886e38;
}

function checkQkv(query: Tensor, key: Tensor, value: Tensor): void {
  const shapes = [query.shape, key.shape, value.shape];
  for (const [name, t] of [
    ["query", query],
    ["key", key],
    ["value", value],
  ] as const) {
    if (t.ndim < 2)
      throw new ShapeError(OP, `${name} must be [..., L, E], got ${formatShape(t.shape)}`, shapes);
    if (t.dtype !== "float32" && t.dtype !== "float64")
      throw new DTypeError(OP, `${name} must be float32 or float64, got ${t.dtype}`, [t.dtype]);
  }
  const e = query.shape[query.ndim - 1];
  if (key.shape[key.ndim - 1] !== e)
    throw new ShapeError(
      OP,
      `query ${formatShape(query.shape)} and key ${formatShape(key.shape)} differ in the last dim`,
      shapes,
      -1,
    );
  if (key.shape[key.ndim - 2] !== value.shape[value.ndim - 2])
    throw new ShapeError(
      OP,
      `key ${formatShape(key.shape)} and value ${formatShape(value.shape)} differ in the number of keys (dim -2)`,
      shapes,
      -2,
    );
}

/** A float mask (1 = keep, 0 = masked) or an additive float mask, shaped for the scores. */
interface MaskParts {
  keep: Tensor | null;
  additive: Tensor | null;
}

function addMask(parts: MaskParts, mask: Tensor, keepWhenTrue: boolean, dtype: DType): void {
  if (mask.dtype === "bool") {
    const keep = (keepWhenTrue ? mask : mask.eq(0)).to(dtype);
    parts.keep = parts.keep === null ? keep : parts.keep.mul(keep);
  } else if (mask.dtype === "float32" || mask.dtype === "float64") {
    const m = mask.to(dtype);
    parts.additive = parts.additive === null ? m : parts.additive.add(m);
  } else {
    throw new DTypeError(OP, `masks must be bool or float, got ${mask.dtype}`, [mask.dtype]);
  }
}

function checkMaskShape(name: string, mask: Tensor, scoresShape: number[]): void {
  try {
    const b = broadcastShapes(OP, mask.shape, scoresShape);
    if (b.length !== scoresShape.length || b.some((d, i) => d !== scoresShape[i])) throw 0;
  } catch {
    throw new ShapeError(
      OP,
      `${name} ${formatShape(mask.shape)} does not broadcast to the scores ${formatShape(scoresShape)} [..., L, S]`,
      [mask.shape, scoresShape],
    );
  }
}

function keyPaddingAsScoresMask(mask: Tensor, scoresShape: number[]): Tensor {
  const s = scoresShape[scoresShape.length - 1]!;
  const n = scoresShape[0]!;
  const ok =
    (mask.ndim === 1 && mask.shape[0] === s) ||
    (mask.ndim === 2 && mask.shape[0] === n && mask.shape[1] === s && scoresShape.length > 2);
  if (!ok)
    throw new ShapeError(
      OP,
      `keyPaddingMask ${formatShape(mask.shape)} must be [N, S] = [${n}, ${s}] or [S] for scores ${formatShape(scoresShape)}`,
      [mask.shape, scoresShape],
    );
  if (mask.ndim === 1) return mask;
  const ones = scoresShape.slice(1, -1).map(() => 1);
  return mask.reshape([n, ...ones, s]);
}

function causalMask(l: number, s: number, device: string): Tensor {
  const rows = arange(0, l, 1, { dtype: "int32", device }).reshape([l, 1]);
  const cols = arange(0, s, 1, { dtype: "int32", device }).reshape([1, s]);
  return cols.le(rows);
}

function maskParts(scores: Tensor, options: AttentionOptions): MaskParts {
  const parts: MaskParts = { keep: null, additive: null };
  const shape = [...scores.shape];
  const [l, s] = shape.slice(-2) as [number, number];
  if (options.attnMask !== undefined && options.attnMask !== null) {
    checkMaskShape("attnMask", options.attnMask, shape);
    addMask(parts, options.attnMask, true, scores.dtype);
  }
  if (options.keyPaddingMask !== undefined && options.keyPaddingMask !== null) {
    const kpm = keyPaddingAsScoresMask(options.keyPaddingMask, shape);
    addMask(parts, kpm, false, scores.dtype);
  }
  if (options.isCausal === true)
    addMask(parts, causalMask(l, s, scores.device), true, scores.dtype);
  return parts;
}

/** softmax(scores + additive) over keys, with masked keys (and all-masked rows) at zero. */
function maskedSoftmax(scores: Tensor, parts: MaskParts): Tensor {
  let x = parts.additive === null ? scores : scores.add(parts.additive);
  // -inf from an additive mask counts as masked, so an all -inf row gives zeros too.
  let keep = parts.keep;
  if (parts.additive !== null) {
    const finite = x.gt(lowest(x.dtype)).to(x.dtype);
    keep = keep === null ? finite : keep.mul(finite);
  }
  if (keep === null) return F.softmax(x, -1);
  const floor = full([], lowest(x.dtype), { dtype: x.dtype, device: x.device });
  x = where(keep.gt(0), x, floor);
  return F.softmax(x, -1).mul(keep);
}

function checkAttentionOptions(options: AttentionOptions): void {
  const p = options.dropoutP ?? 0;
  if (typeof p !== "number" || !(p >= 0 && p <= 1))
    throw new ValueError(OP, `dropoutP must be in [0, 1], got ${p}`, "dropoutP");
  if (options.scale !== undefined && !(Number.isFinite(options.scale) && options.scale > 0))
    throw new ValueError(OP, `scale must be a positive number, got ${options.scale}`, "scale");
}

/** Attention output [..., L, Ev] and the weights [..., L, S] (after dropout). */
export function attentionWithWeights(
  query: Tensor,
  key: Tensor,
  value: Tensor,
  options: AttentionOptions = {},
): [Tensor, Tensor] {
  checkQkv(query, key, value);
  checkAttentionOptions(options);
  const e = query.shape[query.ndim - 1]!;
  const scale = options.scale ?? 1 / Math.sqrt(e);
  const scores = matmul(query, key.transpose(-2, -1)).mul(scale);
  let weights = maskedSoftmax(scores, maskParts(scores, options));
  if (options.training === true && (options.dropoutP ?? 0) > 0)
    weights = F.dropout(weights, options.dropoutP, true);
  return [matmul(weights, value), weights];
}

/**
 * softmax(Q K^T * scale + masks) V, as F.scaled_dot_product_attention. query [..., L, E],
 * key [..., S, E], value [..., S, Ev]; output [..., L, Ev]. Dropout only when training.
 */
export function scaledDotProductAttention(
  query: Tensor,
  key: Tensor,
  value: Tensor,
  options: AttentionOptions = {},
): Tensor {
  return attentionWithWeights(query, key, value, options)[0];
}
