// Gradient clipping as torch.nn.utils.clip_grad_norm_ and clip_grad_value_, in place on
// the gradients. One difference from PyTorch, on purpose: a non-finite total norm leaves
// the gradients as they are (PyTorch scales them by it, turning every one into NaN or 0),
// so the caller can skip the step; see Optimizer.skipNonFinite.

import { noGrad } from "../autograd/grad-mode.js";
import { ValueError } from "../errors.js";
import { scope } from "../memory.js";
import { full, ones, zeros } from "../ops/creation.js";
import { where } from "../ops/elementwise.js";
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

function checkNormType(op: string, normType: number): void {
  if (normType === Infinity || (Number.isFinite(normType) && normType > 0)) return;
  throw new ValueError(op, `invalid normType: ${normType} (expected > 0 or Infinity)`, "normType");
}

function checkMaxNorm(op: string, maxNorm: number): void {
  if (!(maxNorm >= 0))
    throw new ValueError(op, `invalid maxNorm: ${maxNorm} (expected >= 0)`, "maxNorm");
}

/**
 * The p-norm of the gradients together as a 0-d tensor on their device: the p-norm of the
 * per-gradient norms, as PyTorch computes it. Nothing is read back.
 */
function totalNorm(grads: readonly Tensor[], normType: number): Tensor {
  return noGrad(() =>
    scope(() => {
      const dtype = grads[0]!.dtype;
      const norms = stack(grads.map((g) => gradNorm(g.to(dtype), normType)));
      if (normType === Infinity) return norms.max();
      return normType === 2
        ? norms.norm()
        : norms
            .pow(normType)
            .sum()
            .pow(1 / normType);
    }),
  );
}

/**
 * The p-norm of all gradients together, as if concatenated into one vector: the p-norm of
 * the per-gradient norms, as PyTorch computes it, read back once.
 */
export function totalGradNorm(parameters: Iterable<Tensor>, normType = 2): number {
  checkNormType("clipGradNorm", normType);
  const grads = gradientsOf(parameters);
  if (grads.length === 0) return 0;
  return scope(() => totalNorm(grads, normType).item());
}

/**
 * Scales the gradients in place so that their total p-norm is at most maxNorm, with
 * PyTorch's factor min(1, maxNorm / (norm + 1e-6)); returns the norm before clipping. A
 * NaN or infinite norm is returned (or thrown, with errorIfNonfinite) and nothing is scaled.
 * Reading the norm back waits for the device; clipGradNormTensor does not.
 */
export function clipGradNorm(
  parameters: Iterable<Tensor>,
  maxNorm: number,
  normType = 2,
  options: ClipGradNormOptions = {},
): number {
  checkMaxNorm("clipGradNorm", maxNorm);
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

/**
 * clipGradNorm without reading the norm back, so that on a GPU the host never waits for
 * the device: the factor min(1, maxNorm / (norm + 1e-6)) is computed on the device, and
 * every gradient is multiplied by it (by 1, which changes nothing, when the norm is below
 * maxNorm or not finite: a NaN or infinite norm leaves the gradients as they are, as in
 * clipGradNorm). Returns the total norm before clipping as a 0-d tensor on the gradients'
 * device (0 on the default device when no parameter has a gradient). There is no
 * errorIfNonfinite here: deciding to throw needs the value; read the result to check it.
 */
export function clipGradNormTensor(
  parameters: Iterable<Tensor>,
  maxNorm: number,
  normType = 2,
): Tensor {
  checkMaxNorm("clipGradNormTensor", maxNorm);
  checkNormType("clipGradNormTensor", normType);
  const grads = gradientsOf(parameters);
  if (grads.length === 0) return zeros([]);
  const total = totalNorm(grads, normType);
  noGrad(() =>
    scope(() => {
      const finite = total.sub(total).eq(0); // false for NaN and for either infinity
      const like = { dtype: total.dtype, device: total.device };
      const clipped = full([], maxNorm, like).div(total.add(1e-6)).minimum(1);
      const coefficient = where(finite, clipped, ones([], like));
      for (const g of grads) g.copy_(g.mul(coefficient.to(g.dtype)));
    }),
  );
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
