// Gradient clipping as torch.nn.utils.clip_grad_norm_ and clip_grad_value_, in place on
// the gradients. One difference from PyTorch, on purpose: a non-finite total norm leaves
// the gradients as they are (PyTorch scales them by it, turning every one into NaN or 0),
// so the caller can skip the step; see Optimizer.skipNonFinite.

import { noGrad } from "../autograd/grad-mode.js";
import { clipFactor } from "../backend/reference/foreach.js";
import { backendFor } from "../backend/registry.js";
import { ValueError } from "../errors.js";
import { scope } from "../memory.js";
import { ones, zeros } from "../ops/creation.js";
import { cat } from "../ops/slicing.js";
import { Tensor } from "../tensor.js";
import { byDeviceAndDType, normsOf } from "./foreach.js";
import { checkOption } from "./optimizer.js";

export interface ClipGradNormOptions {
  /** Throw ValueError instead of returning a NaN or infinite norm. */
  errorIfNonfinite?: boolean;
}

/** What the clipping functions take: an iterable of tensors, or one (as PyTorch does). */
export type ClipParameters = Iterable<Tensor> | Tensor;

function gradientsOf(parameters: ClipParameters): Tensor[] {
  const params = parameters instanceof Tensor ? [parameters] : parameters;
  const grads: Tensor[] = [];
  for (const p of params) if (p.grad !== null) grads.push(p.grad);
  return grads;
}

function checkNormType(op: string, normType: number): void {
  const valid = normType === Infinity || (Number.isFinite(normType) && normType > 0);
  checkOption(op, valid, "normType", normType, "a number > 0, or Infinity");
}

function checkMaxNorm(op: string, maxNorm: number): void {
  checkOption(op, typeof maxNorm === "number" && maxNorm >= 0, "maxNorm", maxNorm, "a number >= 0");
}

/**
 * The p-norm of the gradients together as a 0-d tensor on their device: the p-norm of the
 * per-gradient norms, as PyTorch computes it. Nothing is read back.
 */
function totalNorm(grads: readonly Tensor[], normType: number): Tensor {
  return noGrad(() =>
    scope(() => {
      // One norms call per device and dtype, joined in the widest dtype (as PyTorch's stack
      // promotes); gradients on several devices fail in cat, naming them.
      const dtype = grads.some((g) => g.dtype === "float64") ? "float64" : grads[0]!.dtype;
      const groups = byDeviceAndDType(grads).map((group) => normsOf(group, normType).to(dtype));
      const norms = groups.length === 1 ? groups[0]! : cat(groups);
      return normsOf([norms], normType).reshape([]);
    }),
  );
}

/**
 * The p-norm of all gradients together, as if concatenated into one vector: the p-norm of
 * the per-gradient norms, as PyTorch computes it, read back once.
 */
export function totalGradNorm(parameters: ClipParameters, normType = 2): number {
  checkNormType("totalGradNorm", normType);
  const grads = gradientsOf(parameters);
  if (grads.length === 0) return 0;
  return scope(() => totalNorm(grads, normType).item());
}

/**
 * Scales the gradients in place so that their total p-norm is at most maxNorm, with
 * PyTorch's factor min(1, maxNorm / (norm + 1e-6)) taken in the norm's dtype; returns the
 * norm before clipping. A NaN or infinite norm is returned (or thrown, with errorIfNonfinite)
 * and nothing is scaled. Reading the norm back waits for the device; clipGradNormTensor does
 * not.
 */
export function clipGradNorm(
  parameters: ClipParameters,
  maxNorm: number,
  normType = 2,
  options: ClipGradNormOptions = {},
): number {
  checkMaxNorm("clipGradNorm", maxNorm);
  checkNormType("clipGradNorm", normType);
  const grads = gradientsOf(parameters);
  if (grads.length === 0) return 0;
  return scope(() => {
    const total = totalNorm(grads, normType);
    const value = total.item();
    if (!Number.isFinite(value) && options.errorIfNonfinite === true) {
      throw new ValueError(
        "clipGradNorm",
        `the total norm of order ${normType} of the gradients is ${value}, so they cannot be ` +
          `clipped`,
        "parameters",
      );
    }
    // Having read the norm, skip the pass over every gradient where the factor is 1 (a norm under
    // maxNorm): the reference's clipFactor, rounded in the norm's dtype, is the kernels' factor.
    const round = total.dtype === "float32" ? Math.fround : undefined;
    if (Number.isFinite(value) && clipFactor(value, maxNorm, round) < 1)
      clipInPlace(grads, total, maxNorm);
    return value;
  });
}

/**
 * clipGradNorm without reading the norm back, so that on a GPU the host never waits for
 * the device: every gradient is multiplied by the factor min(1, maxNorm / (norm + 1e-6)),
 * which the scaling kernel takes from the norm on the device (by 1, which changes nothing,
 * when the norm is below maxNorm or not finite: a NaN or infinite norm leaves the gradients
 * as they are, as in clipGradNorm). Returns the total norm before clipping as a 0-d tensor on
 * the gradients' device (0 on the default device when no parameter has a gradient). There is
 * no errorIfNonfinite here: deciding to throw needs the value; read the result to check it.
 */
export function clipGradNormTensor(
  parameters: ClipParameters,
  maxNorm: number,
  normType = 2,
): Tensor {
  checkMaxNorm("clipGradNormTensor", maxNorm);
  checkNormType("clipGradNormTensor", normType);
  const grads = gradientsOf(parameters);
  if (grads.length === 0) return zeros([]);
  const total = totalNorm(grads, normType);
  clipInPlace(grads, total, maxNorm);
  return total;
}

/**
 * Multiplies every gradient by the clip factor of the total norm `total`, one scaleInPlace
 * call per device and dtype (Backend.scaleInPlace with maxNorm takes the factor from the norm
 * in the same call). A group of another dtype than the norm's (mixed float32 and float64
 * gradients) gets the factor taken once in the norm's dtype and cast to its own, as
 * PyTorch's foreach mul casts it.
 */
function clipInPlace(grads: readonly Tensor[], total: Tensor, maxNorm: number): void {
  // maxNorm Infinity, PyTorch's idiom for taking the norm alone, makes every factor 1 (the
  // scaling kernel takes a finite maxNorm only): there is nothing to scale.
  if (maxNorm === Infinity) return;
  noGrad(() =>
    scope(() => {
      let factor: Tensor | null = null;
      for (const group of byDeviceAndDType(grads)) {
        const { device, dtype } = group[0]!;
        if (dtype === total.dtype && device === total.device) {
          backendFor(device).scaleInPlace(group, total, maxNorm);
          continue;
        }
        factor ??= clipFactorOf(total, maxNorm);
        backendFor(device).scaleInPlace(group, factor.to(dtype).to(device));
      }
    }),
  );
}

/** The clip factor of a norm as a 0-d tensor beside it: a one scaled by it. */
function clipFactorOf(total: Tensor, maxNorm: number): Tensor {
  const factor = ones([], { dtype: total.dtype, device: total.device });
  backendFor(total.device).scaleInPlace([factor], total, maxNorm);
  return factor;
}

/** Clamps every gradient element into [-clipValue, clipValue], in place. */
export function clipGradValue(parameters: ClipParameters, clipValue: number): void {
  const valid = typeof clipValue === "number" && clipValue >= 0;
  checkOption("clipGradValue", valid, "clipValue", clipValue, "a number >= 0");
  const grads = gradientsOf(parameters);
  noGrad(() =>
    scope(() => {
      for (const g of grads) g.copy_(g.clamp(-clipValue, clipValue));
    }),
  );
}
