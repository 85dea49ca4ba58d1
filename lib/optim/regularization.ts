// Penalties to add to a loss, and parameter groups that exempt biases and norm weights
// from weight decay (the usual recipe for AdamW).

import { ValueError } from "../errors.js";
import type { Module } from "../nn/module.js";
import type { Tensor } from "../tensor.js";
import { checkOption } from "./optimizer.js";

function penalty(
  op: string,
  parameters: Iterable<Tensor>,
  coefficient: number,
  term: (p: Tensor) => Tensor,
): Tensor {
  if (!Number.isFinite(coefficient) || coefficient < 0) {
    throw new ValueError(
      op,
      `invalid coefficient: ${coefficient} (expected a finite number >= 0)`,
      "coefficient",
    );
  }
  let total: Tensor | null = null;
  for (const p of parameters) {
    const value = term(p).sum();
    total = total === null ? value : total.add(value);
  }
  if (total === null) throw new ValueError(op, "got an empty parameter list", "parameters");
  return total.mul(coefficient);
}

/**
 * coefficient * sum |p| over every parameter, recorded for backward (its gradient is
 * coefficient * sign(p)).
 */
export function l1Penalty(parameters: Iterable<Tensor>, coefficient = 1): Tensor {
  return penalty("l1Penalty", parameters, coefficient, (p) => p.abs());
}

/**
 * coefficient * sum p^2 over every parameter (the squared L2 norm), recorded for backward:
 * its gradient is 2 * coefficient * p, so coefficient = weightDecay / 2 matches SGD's weightDecay.
 */
export function l2Penalty(parameters: Iterable<Tensor>, coefficient = 1): Tensor {
  return penalty("l2Penalty", parameters, coefficient, (p) => p.square());
}

export interface DecayGroupsOptions {
  /**
   * Which parameters get no weight decay. Default: every parameter with at most one
   * dimension (biases, the weights of norm layers, scalars) or whose name ends in "bias".
   */
  exempt?: (name: string, param: Tensor) => boolean;
}

export interface DecayGroup {
  params: Tensor[];
  weightDecay: number;
}

function defaultExempt(name: string, param: Tensor): boolean {
  return param.ndim <= 1 || name === "bias" || name.endsWith(".bias");
}

/**
 * A model's parameters split into a group with weightDecay and a group with none, for an
 * optimizer's constructor: new optim.AdamW(optim.paramGroupsWithDecay(model, 0.01), { lr }).
 * A group with no parameters is left out.
 */
export function paramGroupsWithDecay(
  model: Module | Iterable<[string, Tensor]>,
  weightDecay: number,
  options: DecayGroupsOptions = {},
): DecayGroup[] {
  checkOption("paramGroupsWithDecay", weightDecay >= 0, "weightDecay", weightDecay, ">= 0");
  const exempt = options.exempt ?? defaultExempt;
  const named = "namedParameters" in model ? model.namedParameters() : model;
  const decay: Tensor[] = [];
  const none: Tensor[] = [];
  for (const [name, p] of named) (exempt(name, p) ? none : decay).push(p);
  const groups = [
    { params: decay, weightDecay },
    { params: none, weightDecay: 0 },
  ];
  return groups.filter((g) => g.params.length > 0);
}
