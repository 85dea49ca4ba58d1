// Losses composed from tensor ops, each with PyTorch's formula and reductions: mse, l1,
// smooth l1, binary cross-entropy on probabilities, KL divergence, and the label-smoothed
// cross-entropy that F.crossEntropy hands over to. Binary cross-entropy records its own
// backward, PyTorch's (x - y) / max(x (1 - x), 1e-12), which stays finite at 0 and 1.

import { record } from "../autograd/graph.js";
import { backendFor } from "../backend/registry.js";
import { noGrad } from "../autograd/grad-mode.js";
import { DTypeError, ShapeError, ValueError, formatShape, formatValue } from "../errors.js";
import type { DType } from "../dtype.js";
import { full } from "../ops/creation.js";
import { checkFloatingInput, where } from "../ops/elementwise.js";
import type { Tensor } from "../tensor.js";
import {
  binaryCrossEntropyWithLogits,
  crossEntropy,
  logSoftmax,
  nllLoss,
  type BceWithLogitsOptions,
  type NllLossOptions,
} from "./functional.js";
import { Module } from "./module.js";

export type LossReduction = "none" | "mean" | "sum";

export interface LossOptions {
  reduction?: LossReduction;
}

function reductionOf<R extends string>(op: string, value: string, allowed: readonly R[]): R {
  if (!allowed.includes(value as R))
    throw new ValueError(
      op,
      `reduction must be ${allowed.map((r) => JSON.stringify(r)).join(", ")}, got ` +
        `${JSON.stringify(value)}`,
      "reduction",
    );
  return value as R;
}

const REDUCTIONS: readonly LossReduction[] = ["none", "mean", "sum"];

function reduce(loss: Tensor, reduction: LossReduction): Tensor {
  if (reduction === "none") return loss;
  return reduction === "sum" ? loss.sum() : loss.mean();
}

/** Both float, on one device, of one shape (PyTorch deprecates broadcasting here). */
function checkPair(op: string, input: Tensor, target: Tensor): void {
  checkFloatingInput(op, input);
  if (target.dtype !== input.dtype)
    throw new DTypeError(op, `target is ${target.dtype}, input is ${input.dtype}`, [
      input.dtype,
      target.dtype,
    ]);
  const same = input.ndim === target.ndim && input.shape.every((d, i) => d === target.shape[i]);
  if (!same)
    throw new ShapeError(
      op,
      `target ${formatShape(target.shape)} must have the shape of the input ` +
        `${formatShape(input.shape)}`,
      [input.shape, target.shape],
    );
}

/** Mean squared error: (input - target)^2. */
export function mseLoss(input: Tensor, target: Tensor, options: LossOptions = {}): Tensor {
  checkPair("mseLoss", input, target);
  const reduction = reductionOf("mseLoss", options.reduction ?? "mean", REDUCTIONS);
  return reduce(input.sub(target).square(), reduction);
}

/** Mean absolute error: |input - target| (gradient 0 where they are equal, as PyTorch). */
export function l1Loss(input: Tensor, target: Tensor, options: LossOptions = {}): Tensor {
  checkPair("l1Loss", input, target);
  const reduction = reductionOf("l1Loss", options.reduction ?? "mean", REDUCTIONS);
  return reduce(input.sub(target).abs(), reduction);
}

export interface SmoothL1Options extends LossOptions {
  beta?: number;
}

/** 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = input - target). */
export function smoothL1Loss(input: Tensor, target: Tensor, options: SmoothL1Options = {}): Tensor {
  const op = "smoothL1Loss";
  checkPair(op, input, target);
  const reduction = reductionOf(op, options.reduction ?? "mean", REDUCTIONS);
  const beta = options.beta ?? 1;
  if (typeof beta !== "number" || !(beta >= 0))
    throw new ValueError(op, `beta must be a number >= 0, got ${formatValue(beta)}`, "beta");
  const diff = input.sub(target);
  const absolute = diff.abs();
  if (beta === 0) return reduce(absolute, reduction);
  const quadratic = diff.square().mul(0.5 / beta);
  return reduce(where(absolute.lt(beta), quadratic, absolute.sub(0.5 * beta)), reduction);
}

export interface BceOptions extends LossOptions {
  weight?: Tensor | null; // rescales each element's loss; broadcasts to the input
}

/**
 * Every input element must be a probability. The backend checks (on cuda the device checks
 * without the host waiting, and the error comes at the next read, as PyTorch's device-side
 * assert does).
 */
function checkProbabilities(op: string, input: Tensor): void {
  backendFor(input.device).checkRange(input, 0, 1, op, "input");
}

/** The element-wise loss -(y log x + (1 - y) log(1 - x)), each log clamped at -100. */
function bceElements(input: Tensor, target: Tensor): Tensor {
  const out = noGrad(() => {
    const logX = input.log().maximum(-100);
    const log1mX = input.neg().add(1).log().maximum(-100);
    return target.mul(logX).add(target.neg().add(1).mul(log1mX)).neg();
  });
  return record(out, "binaryCrossEntropy", [input], (g) => {
    const denominator = input.mul(input.neg().add(1)).maximum(1e-12);
    return [g.mul(input.sub(target)).div(denominator)];
  });
}

/** Binary cross-entropy of probabilities in [0, 1] against targets in [0, 1]. */
export function binaryCrossEntropy(
  input: Tensor,
  target: Tensor,
  options: BceOptions = {},
): Tensor {
  const op = "binaryCrossEntropy";
  checkPair(op, input, target);
  const reduction = reductionOf(op, options.reduction ?? "mean", REDUCTIONS);
  checkProbabilities(op, input);
  let loss = bceElements(input, target);
  if (options.weight !== undefined && options.weight !== null) loss = loss.mul(options.weight);
  return reduce(loss, reduction);
}

export type KlDivReduction = LossReduction | "batchmean";

export interface KlDivOptions {
  /** batchmean divides the sum by the batch size: the true KL divergence per sample. */
  reduction?: KlDivReduction;
  /** The target holds log-probabilities. */
  logTarget?: boolean;
}

/**
 * KL divergence of input (log-probabilities) from target: target (log target - input), 0
 * where target is 0; with logTarget, exp(target) (target - input).
 */
export function klDiv(input: Tensor, target: Tensor, options: KlDivOptions = {}): Tensor {
  const op = "klDiv";
  checkPair(op, input, target);
  const allowed: readonly KlDivReduction[] = ["none", "mean", "sum", "batchmean"];
  const reduction = reductionOf(op, options.reduction ?? "mean", allowed);
  let loss: Tensor;
  if (options.logTarget === true) {
    loss = target.exp().mul(target.sub(input));
  } else {
    const positive = target.gt(0);
    const safe = where(
      positive,
      target,
      full([], 1, { dtype: target.dtype, device: target.device }),
    );
    loss = target.mul(safe.log()).sub(target.mul(input));
  }
  if (reduction !== "batchmean") return reduce(loss, reduction);
  return loss.sum().div(input.ndim === 0 ? 1 : input.shape[0]!);
}

// ---- cross-entropy with label smoothing -----------------------------------------------

export interface CrossEntropyOptions extends NllLossOptions {
  /** In [0, 1]: the target becomes (1 - s) one-hot + s / classes. */
  labelSmoothing?: number;
}

export function checkLabelSmoothing(value: number): number {
  if (typeof value !== "number" || !(value >= 0 && value <= 1))
    throw new ValueError(
      "crossEntropy",
      `labelSmoothing must be in [0, 1], got ${formatValue(value)}`,
      "labelSmoothing",
    );
  return value;
}

/**
 * Sum of the class weights of the targets that count (mean's divisor), as a 0-d tensor of
 * `dtype` on the targets' device: nothing is read back, so a GPU need not be waited for.
 */
function countedWeight(
  targets: Tensor,
  weight: Tensor | null,
  ignoreIndex: number,
  dtype: DType,
): Tensor {
  const counted = targets.ne(ignoreIndex).flatten();
  if (weight === null) return counted.to(dtype).sum();
  const zero = full([], 0, { dtype: targets.dtype, device: targets.device });
  const classes = where(counted, targets.flatten(), zero); // an ignored target reads class 0
  return weight.gather(0, classes).mul(counted.to(weight.dtype)).sum().to(dtype);
}

/**
 * Cross-entropy against class probabilities targets (the shape of logits [N, C, ...]):
 * -sum_c weight_c target_c log p_c per sample, target smoothed toward 1 / C first; mean
 * divides by the number of samples, not by weights, as PyTorch.
 */
function probabilityCrossEntropy(
  logits: Tensor,
  targets: Tensor,
  options: CrossEntropyOptions,
): Tensor {
  const op = "crossEntropy";
  checkPair(op, logits, targets);
  if (logits.ndim < 2)
    throw new ShapeError(op, `input must be [N, C, ...], got ${formatShape(logits.shape)}`, [
      logits.shape,
    ]);
  const smoothing = checkLabelSmoothing(options.labelSmoothing ?? 0);
  const reduction = reductionOf(op, options.reduction ?? "mean", REDUCTIONS);
  const classes = logits.shape[1]!;
  const weight = options.weight ?? null;
  let target = targets;
  if (smoothing !== 0) target = target.mul(1 - smoothing).add(smoothing / classes);
  const perClass = [1, classes, ...logits.shape.slice(2).map(() => 1)];
  if (weight !== null) target = target.mul(weight.reshape(perClass));
  const loss = logSoftmax(logits, 1).mul(target).sum(1).neg();
  if (reduction === "none") return loss;
  return reduction === "sum" ? loss.sum() : loss.sum().div(logits.numel / classes);
}

/** The cross-entropies F.crossEntropy hands over: probability targets or labelSmoothing. */
export function extendedCrossEntropy(
  logits: Tensor,
  targets: Tensor,
  options: CrossEntropyOptions,
): Tensor {
  if (targets.dtype === "float32" || targets.dtype === "float64")
    return probabilityCrossEntropy(logits, targets, options);
  return smoothedCrossEntropy(logits, targets, options);
}

/**
 * PyTorch's label-smoothed cross-entropy: (1 - s) nll + s / C * smooth, where smooth is
 * -sum_c weight_c log p_c per counted sample, reduced as nll is (mean divides by the
 * weight of the counted targets).
 */
export function smoothedCrossEntropy(
  logits: Tensor,
  targets: Tensor,
  options: CrossEntropyOptions,
): Tensor {
  const smoothing = checkLabelSmoothing(options.labelSmoothing ?? 0);
  const reduction = reductionOf("crossEntropy", options.reduction ?? "mean", REDUCTIONS);
  const weight = options.weight ?? null;
  const ignoreIndex = options.ignoreIndex ?? -100;
  const logProbs = logSoftmax(logits, 1);
  const nll = nllLoss(logProbs, targets, { weight, ignoreIndex, reduction });
  const classes = logits.shape[1]!;

  const perClass = [1, classes, ...logits.shape.slice(2).map(() => 1)];
  const weighted = weight === null ? logProbs : logProbs.mul(weight.reshape(perClass));
  const zero = full([], 0, { dtype: logits.dtype, device: logits.device });
  let smooth = where(targets.ne(ignoreIndex), weighted.sum(1).neg(), zero);
  if (reduction === "sum") smooth = smooth.sum();
  if (reduction === "mean")
    smooth = smooth.sum().div(countedWeight(targets, weight, ignoreIndex, smooth.dtype));
  return nll.mul(1 - smoothing).add(smooth.mul(smoothing / classes));
}

// ---- loss modules ---------------------------------------------------------------------
// Configuration in the constructor, forward(input, target) into the function above. Class
// weights (and posWeight) are buffers, so stateDict holds them as PyTorch's does.

/** A loss module's optional weight tensors, registered as buffers under PyTorch's names. */
abstract class WeightedLoss extends Module {
  weight: Tensor | null = null;

  constructor(weight: Tensor | null | undefined) {
    super();
    if (weight !== undefined && weight !== null) this.registerBuffer("weight", weight);
  }
}

export class MSELoss extends Module {
  constructor(readonly options: LossOptions = {}) {
    super();
  }

  forward(input: Tensor, target: Tensor): Tensor {
    return mseLoss(input, target, this.options);
  }
}

export class L1Loss extends Module {
  constructor(readonly options: LossOptions = {}) {
    super();
  }

  forward(input: Tensor, target: Tensor): Tensor {
    return l1Loss(input, target, this.options);
  }
}

export class SmoothL1Loss extends Module {
  constructor(readonly options: SmoothL1Options = {}) {
    super();
  }

  forward(input: Tensor, target: Tensor): Tensor {
    return smoothL1Loss(input, target, this.options);
  }
}

export class KLDivLoss extends Module {
  constructor(readonly options: KlDivOptions = {}) {
    super();
  }

  forward(input: Tensor, target: Tensor): Tensor {
    return klDiv(input, target, this.options);
  }
}

export class BCELoss extends WeightedLoss {
  constructor(private readonly options: BceOptions = {}) {
    super(options.weight);
  }

  forward(input: Tensor, target: Tensor): Tensor {
    return binaryCrossEntropy(input, target, { ...this.options, weight: this.weight });
  }
}

export class BCEWithLogitsLoss extends WeightedLoss {
  pos_weight: Tensor | null = null;

  constructor(private readonly options: BceWithLogitsOptions = {}) {
    super(options.weight);
    if (options.posWeight !== undefined && options.posWeight !== null)
      this.registerBuffer("pos_weight", options.posWeight);
  }

  forward(input: Tensor, target: Tensor): Tensor {
    const options = { ...this.options, weight: this.weight, posWeight: this.pos_weight };
    return binaryCrossEntropyWithLogits(input, target, options);
  }
}

export class NLLLoss extends WeightedLoss {
  constructor(private readonly options: NllLossOptions = {}) {
    super(options.weight);
  }

  forward(input: Tensor, target: Tensor): Tensor {
    return nllLoss(input, target, { ...this.options, weight: this.weight });
  }
}

export class CrossEntropyLoss extends WeightedLoss {
  constructor(private readonly options: CrossEntropyOptions = {}) {
    super(options.weight);
    checkLabelSmoothing(options.labelSmoothing ?? 0);
  }

  forward(input: Tensor, target: Tensor): Tensor {
    return crossEntropy(input, target, { ...this.options, weight: this.weight });
  }
}
