// Scaled dot-product attention: batched matmul, then the backend's fused maskedSoftmax
// (scale, additive mask and softmax in one pass), then batched matmul. Every mask becomes
// one additive float mask with -inf at masked keys; a row whose keys are all masked gets
// zero weights and a zero output (PyTorch gives NaN there), and passes no gradient.

import { record } from "../autograd/graph.js";
import { backendFor } from "../backend/registry.js";
import { DTypeError, ShapeError, ValueError, formatShape, formatValue } from "../errors.js";
import { arange, empty, full, zeros } from "../ops/creation.js";
import { where } from "../ops/elementwise.js";
import { matmul } from "../ops/linalg.js";
import { broadcastShapes, sameShape } from "../shape.js";
import type { DType } from "../dtype.js";
import type { Tensor } from "../tensor.js";
import * as F from "./functional.js";
import { canFuse, fusedAttention } from "./fused_attention.js";

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
      `key ${formatShape(key.shape)} and value ${formatShape(value.shape)} differ in the number ` +
        `of keys (dim -2)`,
      shapes,
      -2,
    );
}

/** A mask as an additive float mask: bool masks give 0 where kept and -inf where masked. */
function additiveMask(mask: Tensor, keepWhenTrue: boolean, dtype: DType): Tensor {
  if (mask.dtype === "bool") {
    const options = { dtype, device: mask.device };
    const [kept, masked] = [full([], 0, options), full([], -Infinity, options)];
    return keepWhenTrue ? where(mask, kept, masked) : where(mask, masked, kept);
  }
  if (mask.dtype === "float32" || mask.dtype === "float64") return mask.to(dtype);
  throw new DTypeError(OP, `masks must be bool or float, got ${mask.dtype}`, [mask.dtype]);
}

function checkMaskShape(name: string, mask: Tensor, scoresShape: number[]): void {
  let fits: boolean;
  try {
    const b = broadcastShapes(OP, mask.shape, scoresShape);
    fits = b.length === scoresShape.length && b.every((d, i) => d === scoresShape[i]);
  } catch {
    fits = false;
  }
  if (!fits) {
    throw new ShapeError(
      OP,
      `${name} ${formatShape(mask.shape)} does not broadcast to the scores ` +
        `${formatShape(scoresShape)} [..., L, S]`,
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
      `keyPaddingMask ${formatShape(mask.shape)} must be [N, S] = [${n}, ${s}] or [S] for scores ` +
        `${formatShape(scoresShape)}`,
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

/** The sum of every mask given, broadcast to the scores' shape; null when there is none. */
function combinedMask(scores: Tensor, options: AttentionOptions): Tensor | null {
  const shape = [...scores.shape];
  const [l, s] = shape.slice(-2) as [number, number];
  const masks: Tensor[] = [];
  if (options.attnMask !== undefined && options.attnMask !== null) {
    checkMaskShape("attnMask", options.attnMask, shape);
    masks.push(additiveMask(options.attnMask, true, scores.dtype));
  }
  if (options.keyPaddingMask !== undefined && options.keyPaddingMask !== null) {
    const kpm = keyPaddingAsScoresMask(options.keyPaddingMask, shape);
    masks.push(additiveMask(kpm, false, scores.dtype));
  }
  if (options.isCausal === true)
    masks.push(additiveMask(causalMask(l, s, scores.device), true, scores.dtype));
  if (masks.length === 0) return null;
  const sum = masks.reduce((acc, m) => acc.add(m));
  if (sameShape(sum.shape, shape)) return sum;
  return zeros(shape, { dtype: scores.dtype, device: scores.device }).add(sum);
}

/**
 * softmax(scale * scores + mask) over keys by the backend's fused kernel. Its backward is
 * softmax's: gz = y * (g - sum(g * y)), zero wherever y is (masked keys, all-masked rows).
 */
function maskedSoftmax(scores: Tensor, mask: Tensor | null, scale: number): Tensor {
  const out = empty(scores.shape, scores.dtype, scores.device);
  const backend = backendFor(scores.device);
  backend.maskedSoftmax(out, scores, mask, scale);
  const inputs = mask === null ? [scores] : [scores, mask];
  return record(out, "maskedSoftmax", inputs, (g) => {
    const gz = empty(out.shape, out.dtype, out.device);
    backend.softmaxBackward(gz, g, out, out.ndim - 1, false);
    return mask === null ? [gz.mul(scale)] : [gz.mul(scale), gz];
  });
}

function checkAttentionOptions(options: AttentionOptions): void {
  const p = options.dropoutP ?? 0;
  if (typeof p !== "number" || !(p >= 0 && p <= 1))
    throw new ValueError(OP, `dropoutP must be in [0, 1], got ${formatValue(p)}`, "dropoutP");
  if (options.scale !== undefined && !(Number.isFinite(options.scale) && options.scale > 0))
    throw new ValueError(
      OP,
      `scale must be a positive number, got ${formatValue(options.scale)}`,
      "scale",
    );
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
  const scores = matmul(query, key.transpose(-2, -1));
  let weights = maskedSoftmax(scores, combinedMask(scores, options), scale);
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
  checkQkv(query, key, value);
  checkAttentionOptions(options);
  if (canFuse(query, key, value, options)) return fusedAttention(query, key, value, options);
  return attentionWithWeights(query, key, value, options)[0];
}
