// Gradient clipping as torch.nn.utils.clip_grad_norm_ and clip_grad_value_, in place on
// the gradients. One difference from PyTorch, on purpose: a non-finite total norm leaves
// the gradients as they are (PyTorch scales them by it, turning every one into NaN or 0),
// so the caller can skip the step; see Optimizer.skipNonFinite.

import { noGrad } from "../autograd/grad-mode.js";
import { backendFor } from "../backend/registry.js";
import { ValueError } from "../errors.js";
import { scope } from "../memory.js";
import { full, ones, zeros } from "../ops/creation.js";
import { where } from "../ops/elementwise.js";
import { cat } from "../ops/slicing.js";
import type { Tensor } from "../tensor.js";
import { byDeviceAndDType, normsOf } from "./foreach.js";

export interface ClipGradNormOptions {
  /** Throw ValueError instead of returning a NaN or infinite norm. */
  errorIfNonfinite?: boolean;
}

function gradientsOf(parameters: Iterable<Tensor>): Tensor[] {
  const grads: Tensor[] = [];
  for (const p of parameters) if (p.grad !== null) grads.push(p.grad);
  return grads;
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
  scaleBy(gradientsOf(params), clipFactor(total, maxNorm));
  return total;
}

/**
 * PyTorch's min(1, maxNorm / (norm + 1e-6)), rounded as `round` rounds each step (float32's
 * for a float32 norm, as the device computes it), and 1 (no change) for a non-finite norm.
 */
function clipFactor(norm: number, maxNorm: number, round = (x: number) => x): number {
  return Number.isFinite(norm) ? Math.min(1, round(round(maxNorm) / round(norm + round(1e-6)))) : 1;
}

/** scaleInPlace by a factor known on the host, skipped when it is 1. */
function scaleBy(grads: readonly Tensor[], factor: number): void {
  if (factor < 1) scaleInPlace(grads, factor);
}

/**
 * clipGradNorm without reading the norm back, so that on a GPU the host never waits for
 * the device: the factor min(1, maxNorm / (norm + 1e-6)) is computed on the device, and
 * every gradient is multiplied by it (by 1, which changes nothing, when the norm is below
 * maxNorm or not finite: a NaN or infinite norm leaves the gradients as they are, as in
 * clipGradNorm). On cpu and reference, where reading waits for nothing, the factor is
 * taken from the norm's value, with the same rounding. Returns the total norm before clipping as a 0-d
 * tensor on the gradients' device (0 on the default device when no parameter has a
 * gradient). There is no
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
  if (!total.device.startsWith("cuda")) {
    // A host device's read waits for nothing: the factor is taken in JS, in the norm's
    // dtype as on the device (and so float64 works on cpu, whose element-wise ops do not).
    const round = total.dtype === "float32" ? Math.fround : undefined;
    scaleBy(grads, clipFactor(total.item(), maxNorm, round));
    return total;
  }
  noGrad(() =>
    scope(() => {
      const finite = total.sub(total).eq(0); // false for NaN and for either infinity
      const like = { dtype: total.dtype, device: total.device };
      const clipped = full([], maxNorm, like).div(total.add(1e-6)).minimum(1);
      scaleInPlace(grads, where(finite, clipped, ones([], like)));
    }),
  );
  return total;
}

/**
 * Multiplies every gradient by factor (a number, or a 0-d tensor) in place: one scaleInPlace
 * call per device and dtype, with factor in that dtype and on that device.
 */
function scaleInPlace(grads: readonly Tensor[], factor: number | Tensor): void {
  noGrad(() =>
    scope(() => {
      for (const group of byDeviceAndDType(grads)) {
        const { device, dtype } = group[0]!;
        const groupFactor =
          typeof factor === "number"
            ? full([], factor, { dtype, device })
            : factor.to(dtype).to(device);
        backendFor(device).scaleInPlace(group, groupFactor);
      }
    }),
  );
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
  const grads = gradientsOf(parameters);
  noGrad(() =>
    scope(() => {
      for (const g of grads) g.copy_(g.clamp(-clipValue, clipValue));
    }),
  );
}
