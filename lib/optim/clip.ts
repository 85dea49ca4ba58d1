// Gradient clipping as torch.nn.utils.clip_grad_norm_ and clip_grad_value_, in place on
// the gradients. One difference from PyTorch, on purpose: a non-finite total norm leaves
// the gradients as they are (PyTorch scales them by it, turning every one into NaN or 0),
// so the caller can skip the step; see Optimizer.skipNonFinite.

import { noGrad } from "../autograd/grad-mode.js";
import { ValueError } from "../errors.js";
import { scope } from "../memory.js";
import { stack } from "../ops/slicing.js";
import type { Tensor } from "../tensor.js";

export interface ClipGradNormOptions {
  /** Throw ValueError instead of returning a NaN or infinite norm. */
  errorIfNonfinite?: boolean;
}

function gradientsOf(parameters: Iterable<Tensor>): Tensor[] {
  const grads: Tensor[] = [];
  for (const p of parameters) if (p.grad !== null) grads.push(p.grad);
  return grads;
}

/** ||g||_p of one gradient as a 0-d tensor (for p = Infinity, max |g|; a NaN gives NaN). */
function gradNorm(grad: Tensor, normType: number): Tensor {
  if (normType === Infinity) {
    // A max reduction may skip a NaN; the sum cannot, and adding it times 0 keeps it.
    return grad.abs().max().add(grad.sum().mul(0));
  }
  if (normType === 2) return grad.norm();
  return grad
    .abs()
    .pow(normType)
    .sum()
    .pow(1 / normType);
}

/**
 * The p-norm of all gradients together, as if concatenated into one vector: the p-norm of
 * the per-gradient norms, as PyTorch computes it, read back once.
 */
export function totalGradNorm(parameters: Iterable<Tensor>, normType = 2): number {
  const ok = normType === Infinity || (Number.isFinite(normType) && normType > 0);
  if (!ok)
    throw new ValueError(
      "clipGradNorm",
      `invalid normType: ${normType} (expected > 0 or Infinity)`,
      "normType",
    );
  const grads = gradientsOf(parameters);
  if (grads.length === 0) return 0;
  return noGrad(() =>
    scope(() => {
      const dtype = grads[0]!.dtype;
      const norms = stack(grads.map((g) => gradNorm(g.to(dtype), normType)));
      if (normType === Infinity) return norms.max().item();
      return (
        normType === 2
          ? norms.norm()
          : norms
              .pow(normType)
              .sum()
              .pow(1 / normType)
      ).item();
    }),
  );
}

/**
 * Scales the gradients in place so that their total p-norm is at most maxNorm, with
 * PyTorch's factor min(1, maxNorm / (norm + 1e-6)); returns the norm before clipping. A
 * NaN or infinite norm is returned (or thrown, with errorIfNonfinite) and nothing is scaled.
 */
export function clipGradNorm(
  parameters: Iterable<Tensor>,
  maxNorm: number,
  normType = 2,
  options: ClipGradNormOptions = {},
): number {
  if (!(maxNorm >= 0))
    throw new ValueError("clipGradNorm", `invalid maxNorm: ${maxNorm} (expected >= 0)`, "maxNorm");
  const params = [...parameters];
  const total = totalGradNorm(params, normType);
  if (!Number.isFinite(total)) {
    if (options.errorIfNonfinite === true) {
      throw new ValueError(
        "clipGradNorm",
        `the total norm of order ${normType} of the gradients is ${total}, so they cannot be ` +
          `clipped`,
        "parameters",
      );
    }
    return total;
  }
  const coefficient = maxNorm / (total + 1e-6);
  if (coefficient < 1) scaleGradients(gradientsOf(params), (g) => g.mul(coefficient));
  return total;
}

/** Clamps every gradient element into [-clipValue, clipValue], in place. */
export function clipGradValue(parameters: Iterable<Tensor>, clipValue: number): void {
  if (!(clipValue >= 0)) {
    throw new ValueError(
      "clipGradValue",
      `invalid clipValue: ${clipValue} (expected >= 0)`,
      "clipValue",
    );
  }
  scaleGradients(gradientsOf(parameters), (g) => g.clamp(-clipValue, clipValue));
}

function scaleGradients(grads: Tensor[], change: (g: Tensor) => Tensor): void {
  noGrad(() =>
    scope(() => {
      for (const g of grads) g.copy_(change(g));
    }),
  );
}
