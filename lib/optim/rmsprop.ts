// RMSprop (with momentum and the centered variant) and Adagrad (with learning-rate decay),
// as PyTorch defines them. A step is one fused kernel call over a group's parameters on a
// device (Adagrad: and step count), each element computed as the per-parameter kernel does.

import type { AdagradStepItem, AdagradStepOptions, RmspropStepItem } from "../backend/backend.js";
import { backendFor } from "../backend/registry.js";
import type { Tensor } from "../tensor.js";
import { Optimizer, type ParamGroup, type ParamsArg, type StateKeys } from "./optimizer.js";

export interface RMSpropOptions {
  lr: number;
  alpha: number;
  eps: number;
  weightDecay: number;
  momentum: number;
  centered: boolean;
}

export class RMSprop extends Optimizer<RMSpropOptions> {
  constructor(params: ParamsArg<RMSpropOptions>, options: Partial<RMSpropOptions> = {}) {
    const defaults = { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0 };
    super("RMSprop", params, { ...defaults, centered: false, ...options });
  }

  protected validate(o: RMSpropOptions): void {
    this.checkNonNegative("lr", o.lr);
    this.checkNonNegative("alpha", o.alpha);
    this.checkNonNegative("eps", o.eps);
    this.checkNonNegative("weightDecay", o.weightDecay);
    this.checkNonNegative("momentum", o.momentum);
  }

  /**
   * One rmspropSteps call per device, the gradients checked first (as Adam's updateGroup); a
   * subclass that overrides update() keeps its per-parameter calls.
   */
  protected override updateGroup(group: ParamGroup<RMSpropOptions>): void {
    const o = group.options;
    this.updateInBatches(
      group,
      RMSprop.prototype.update,
      (p, grad) => ({ item: this.advance(p, grad, o), key: 0 }),
      (device, items) => backendFor(device).rmspropSteps(items, o),
    );
  }

  /** The per-parameter step: one rmspropStep call (updateGroup batches them instead). */
  protected update(p: Tensor, grad: Tensor, o: RMSpropOptions): void {
    const { squareAvg, gradAvg, momentumBuffer } = this.advance(p, grad, o);
    backendFor(p.device).rmspropStep(p, grad, squareAvg, gradAvg, momentumBuffer, o);
  }

  /** Creates p's state on its first step and counts the step; returns what the kernel updates. */
  private advance(p: Tensor, grad: Tensor, o: RMSpropOptions): RmspropStepItem {
    const s = this.stateFor(p);
    if (s.step === undefined) {
      s.step = 0;
      s.squareAvg = this.newStateTensor(p);
      if (o.momentum > 0) s.momentumBuffer = this.newStateTensor(p);
      if (o.centered) s.gradAvg = this.newStateTensor(p);
    }
    s.step = (s.step as number) + 1;
    return {
      param: p,
      grad,
      squareAvg: s.squareAvg as Tensor,
      gradAvg: (s.gradAvg as Tensor | undefined) ?? null,
      momentumBuffer: (s.momentumBuffer as Tensor | undefined) ?? null,
    };
  }

  protected stateKeys(o: RMSpropOptions): StateKeys {
    const tensors = ["squareAvg"];
    if (o.momentum > 0) tensors.push("momentumBuffer");
    if (o.centered) tensors.push("gradAvg");
    return { tensors, numbers: ["step"] };
  }
}

export interface AdagradOptions {
  lr: number;
  lrDecay: number;
  weightDecay: number;
  initialAccumulatorValue: number;
  eps: number;
}

export class Adagrad extends Optimizer<AdagradOptions> {
  constructor(params: ParamsArg<AdagradOptions>, options: Partial<AdagradOptions> = {}) {
    const defaults = { lr: 1e-2, lrDecay: 0, weightDecay: 0, initialAccumulatorValue: 0 };
    super("Adagrad", params, { ...defaults, eps: 1e-10, ...options });
  }

  protected validate(o: AdagradOptions): void {
    this.checkNonNegative("lr", o.lr);
    this.checkNonNegative("lrDecay", o.lrDecay);
    this.checkNonNegative("weightDecay", o.weightDecay);
    this.checkNonNegative("initialAccumulatorValue", o.initialAccumulatorValue);
    this.checkNonNegative("eps", o.eps);
  }

  /** One adagradSteps call per device and step count, as Adam's updateGroup. */
  protected override updateGroup(group: ParamGroup<AdagradOptions>): void {
    const o = group.options;
    this.updateInBatches(
      group,
      Adagrad.prototype.update,
      (p, grad) => ({ item: this.advance(p, grad, o), key: this.stateFor(p).step as number }),
      (device, items, step) => backendFor(device).adagradSteps(items, stepOptions(o, step)),
    );
  }

  /** The per-parameter step: one adagradStep call (updateGroup batches them instead). */
  protected update(p: Tensor, grad: Tensor, o: AdagradOptions): void {
    const { stateSum } = this.advance(p, grad, o);
    const options = stepOptions(o, this.stateFor(p).step as number);
    backendFor(p.device).adagradStep(p, grad, stateSum, options);
  }

  /** Creates p's state on its first step and counts the step; returns what the kernel updates. */
  private advance(p: Tensor, grad: Tensor, o: AdagradOptions): AdagradStepItem {
    const s = this.stateFor(p);
    if (s.step === undefined) {
      s.step = 0;
      s.sum = this.newStateTensor(p, o.initialAccumulatorValue);
    }
    s.step = (s.step as number) + 1;
    return { param: p, grad, stateSum: s.sum as Tensor };
  }

  protected stateKeys(): StateKeys {
    return { tensors: ["sum"], numbers: ["step"] };
  }
}

function stepOptions(o: AdagradOptions, step: number): AdagradStepOptions {
  return { lr: o.lr, lrDecay: o.lrDecay, eps: o.eps, weightDecay: o.weightDecay, step };
}
