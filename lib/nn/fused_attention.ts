// Scaled dot-product attention by the backend's fusedAttention kernel, which never stores
// the [..., L, S] weights: the masks a transformer encoder uses (key padding, causal) and
// dropout on the weights are applied inside it, and the backward recomputes the weights.
// scaledDotProductAttention (and MultiheadAttention without weights) take this path when
// canFuse says it computes what the composed path computes; dropout draws the same numbers.

import { record } from "../autograd/graph.js";
import { backendFor } from "../backend/registry.js";
import type { AttentionParams } from "../backend/backend.js";
import { empty } from "../ops/creation.js";
import { defaultGenerator } from "../random.js";
import { sameShape, sizeOf } from "../shape.js";
import type { Tensor } from "../tensor.js";
import type { AttentionOptions } from "./attention.js";

/**
 * Whether the fused kernel applies: float32 q [..., L, E], k [..., S, E], v [..., S, Ev] with
 * the same leading dims on one device, no attnMask, keyPaddingMask null or bool [N, S] (N the
 * first dim) and a dropout below 1.
 */
export function canFuse(
  query: Tensor,
  key: Tensor,
  value: Tensor,
  options: AttentionOptions,
): boolean {
  const qkv = [query, key, value];
  if (qkv.some((t) => t.dtype !== "float32" || t.device !== query.device)) return false;
  if (query.ndim < 3 || key.ndim !== query.ndim || value.ndim !== query.ndim) return false;
  const lead = query.shape.slice(0, -2);
  if (!sameShape(key.shape.slice(0, -2), lead) || !sameShape(value.shape.slice(0, -2), lead)) {
    return false;
  }
  if ((options.attnMask ?? null) !== null || (options.dropoutP ?? 0) >= 1) return false;
  const kpm = options.keyPaddingMask ?? null;
  if (kpm === null) return true;
  const s = key.shape[key.ndim - 2];
  return (
    kpm.dtype === "bool" &&
    kpm.device === query.device &&
    kpm.ndim === 2 &&
    kpm.shape[0] === query.shape[0] &&
    kpm.shape[1] === s
  );
}

/** softmax(Q K^T * scale + masks) V with dropout, fused; check canFuse first. */
export function fusedAttention(
  query: Tensor,
  key: Tensor,
  value: Tensor,
  options: AttentionOptions,
): Tensor {
  const lead = query.shape.slice(0, -2);
  const [l, e] = query.shape.slice(-2) as [number, number];
  const s = key.shape[key.ndim - 2]!;
  const ev = value.shape[value.ndim - 1]!;
  const batch = sizeOf(lead);
  const q = query.reshape([batch, l, e]);
  const k = key.reshape([batch, s, e]);
  const v = value.reshape([batch, s, ev]);
  const padding = options.keyPaddingMask ?? null;
  const p = options.training === true ? (options.dropoutP ?? 0) : 0;
  const params: AttentionParams = {
    heads: padding === null ? 1 : batch / padding.shape[0]!,
    scale: options.scale ?? 1 / Math.sqrt(e),
    causal: options.isCausal === true,
    dropoutP: p,
    dropoutKey: p > 0 ? defaultGenerator.next(batch * l * s) : null,
  };
  const backend = backendFor(query.device);
  const out = empty([batch, l, ev], query.dtype, query.device);
  backend.fusedAttention(out, q, k, v, padding, params);
  record(out, "fusedAttention", [q, k, v], (g) => {
    const grads = [q, k, v].map((t) => empty(t.shape, t.dtype, t.device)) as [
      Tensor,
      Tensor,
      Tensor,
    ];
    backend.fusedAttentionBackward(grads, g, [q, k, v], padding, params);
    return grads;
  });
  return out.reshape([...lead, l, ev]);
}
