// The multi-tensor side of the optimizers and of gradient clipping: grouping tensors for
// the backends' calls over many tensors, and the norms of many tensors in one call.

import { backendFor } from "../backend/registry.js";
import { empty } from "../ops/creation.js";
import type { Tensor } from "../tensor.js";

/** items split by keyOf, each part in the order its items come, parts by their first item. */
export function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): T[][] {
  const parts = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const part = parts.get(key);
    if (part === undefined) parts.set(key, [item]);
    else part.push(item);
  }
  return [...parts.values()];
}

/** The tensors by device and dtype, each group in the order its first tensor comes. */
export function byDeviceAndDType(xs: readonly Tensor[]): Tensor[][] {
  return groupBy(xs, (x) => `${x.device} ${x.dtype}`);
}

/**
 * [||xs[0]||_p, ..., ||xs[n-1]||_p] on their device and in their dtype (all one), in one
 * backend call; for p = Infinity, max |x|, a NaN giving NaN.
 */
export function normsOf(xs: readonly Tensor[], normType: number): Tensor {
  const out = empty([xs.length], xs[0]!.dtype, xs[0]!.device);
  backendFor(out.device).norms(out, xs, normType);
  return out;
}
