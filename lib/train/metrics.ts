// Metrics for the Trainer: each maps a batch's outputs and targets to the sum of a
// per-sample score as a scalar tensor, so the trainer can add them up on the device and
// read one number per epoch; the value reported is the sum over the epoch / samples.

import { ShapeError } from "../errors.js";
import type { Tensor } from "../tensor.js";

/** outputs [B, ...], targets [B, ...] -> a scalar tensor: the sum of the batch's scores. */
export type MetricFn = (outputs: Tensor, targets: Tensor) => Tensor;

/**
 * The share of samples whose largest output is the target class: outputs [B, C] (logits or
 * probabilities), targets [B] int32 class indices.
 */
export function accuracy(outputs: Tensor, targets: Tensor): Tensor {
  if (outputs.ndim !== 2 || targets.ndim !== 1 || outputs.shape[0] !== targets.shape[0]) {
    throw new ShapeError(
      "accuracy",
      `expected outputs [B, C] and targets [B], got [${outputs.shape.join(", ")}] and ` +
        `[${targets.shape.join(", ")}]`,
      [outputs.shape, targets.shape],
    );
  }
  return outputs.argmax(1).eq(targets).float().sum();
}
