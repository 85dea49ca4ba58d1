// gradcheck: compares the analytic gradients of fn with central finite differences.
// The output is reduced to a scalar with fixed random weights, so one backward gives
// the analytic directional gradient and two evaluations per element the numeric one.
// Use float64 inputs (the reference backend) for tight tolerances.

import { DeepnodeError } from "../errors.js";
import type { TypedArray } from "../dtype.js";
import { full } from "../ops/creation.js";
import { Tensor, fromTypedArray } from "../tensor.js";
import { noGrad } from "./grad-mode.js";

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

export class GradcheckError extends DeepnodeError {
  constructor(message: string) {
    super("ERR_GRADCHECK", message, "gradcheck");
  }
}

function weightsLike(out: Tensor): Tensor {
  const values = new Float64Array(out.numel).map((_, i) => Math.sin(i * 12.9898 + 0.5) * 0.5 + 1);
  const w = fromTypedArray(
    out.dtype === "float64" ? values : Float32Array.from(values),
    out.shape,
    { device: out.device },
  );
  return w;
}

function scalarOf(
  fn: () => Tensor,
  weights: Tensor | null,
): { value: number; weights: Tensor; out: Tensor } {
  const out = fn();
  const w = weights ?? weightsLike(out);
  const value = noGrad(() => out.mul(w).sum().item());
  return { value, weights: w, out };
}

/**
 * Throws GradcheckError naming the input, the element and both values when an analytic
 * gradient differs from the numeric one by more than atol + rtol * |numeric|.
 */
export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: Tensor[],
  options: GradcheckOptions = {},
): true {
  const isDouble = inputs.every((t) => t.dtype === "float64");
  const eps = options.eps ?? (isDouble ? 1e-6 : 1e-2);
  const atol = options.atol ?? (isDouble ? 1e-5 : 1e-2);
  const rtol = options.rtol ?? (isDouble ? 1e-3 : 1e-2);
  for (const t of inputs) t.zeroGrad();

  const base = scalarOf(() => fn(...inputs), null);
  base.out.mul(base.weights).sum().backward();
  inputs.forEach((input, inputIndex) => {
    if (!input.requiresGrad) return;
    const analytic =
      input.grad === null
        ? full(input.shape, 0, { dtype: input.dtype }).dataSync()
        : input.grad.dataSync();
    const storage = input.storage as TypedArray;
    for (let i = 0; i < input.numel; i++) {
      const original = storage[i]!;
      storage[i] = original + eps;
      const plus = noGrad(() => scalarOf(() => fn(...inputs), base.weights).value);
      storage[i] = original - eps;
      const minus = noGrad(() => scalarOf(() => fn(...inputs), base.weights).value);
      storage[i] = original;
      const numeric = (plus - minus) / (2 * eps);
      const got = analytic[i]!;
      if (!(Math.abs(got - numeric) <= atol + rtol * Math.abs(numeric))) {
        throw new GradcheckError(
          `input ${inputIndex} of shape [${input.shape.join(", ")}], element ${i}: analytic ` +
            `${got}, numeric ${numeric} ` +
            `(difference ${Math.abs(got - numeric)} > ${atol} + ${rtol} * |numeric|)`,
        );
      }
    }
  });
  return true;
}
