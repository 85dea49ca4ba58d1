// RMSprop (with momentum and the centered variant) and Adagrad (with learning-rate decay),
// as PyTorch defines them; each parameter's update is one fused kernel.

import { backendFor } from "../backend/registry.js";
import type { Tensor } from "../tensor.js";
import { Optimizer, type ParamsArg, type StateKeys } from "./optimizer.js";

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
    this.check(typeof o.lr === "number" && o.lr >= 0, "lr", o.lr, "a number >= 0");
    this.check(o.alpha >= 0, "alpha", o.alpha, ">= 0");
    this.check(o.eps >= 0, "eps", o.eps, ">= 0");
    this.check(o.weightDecay >= 0, "weightDecay", o.weightDecay, ">= 0");
    this.check(o.momentum >= 0, "momentum", o.momentum, ">= 0");
  }

  protected update(p: Tensor, grad: Tensor, o: RMSpropOptions): void {
    const s = this.stateFor(p);
    if (s.step === undefined) {
      s.step = 0;
      s.squareAvg = this.newStateTensor(p);
      if (o.momentum > 0) s.momentumBuffer = this.newStateTensor(p);
      if (o.centered) s.gradAvg = this.newStateTensor(p);
    }
    s.step = (s.step as number) + 1;
    backendFor(p.device).rmspropStep(
      p,
      grad,
      s.squareAvg as Tensor,
      (s.gradAvg as Tensor | undefined) ?? null,
      (s.momentumBuffer as Tensor | undefined) ?? null,
      o,
    );
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
    this.check(typeof o.lr === "number" && o.lr >= 0, "lr", o.lr, "a number >= 0");
    this.check(o.lrDecay >= 0, "lrDecay", o.lrDecay, ">= 0");
    this.check(o.weightDecay >= 0, "weightDecay", o.weightDecay, ">= 0");
    this.check(
      o.initialAccumulatorValue >= 0,
      "initialAccumulatorValue",
      o.initialAccumulatorValue,
      ">= 0",
    );
    this.check(o.eps >= 0, "eps", o.eps, ">= 0");
  }

  protected update(p: Tensor, grad: Tensor, o: AdagradOptions): void {
    const s = this.stateFor(p);
    if (s.step === undefined) {
      s.step = 0;
      s.sum = this.newStateTensor(p, o.initialAccumulatorValue);
    }
    s.step = (s.step as number) + 1;
    backendFor(p.device).adagradStep(p, grad, s.sum as Tensor, {
      lr: o.lr,
      lrDecay: o.lrDecay,
      eps: o.eps,
      weightDecay: o.weightDecay,
      step: s.step,
    });
  }

  protected stateKeys(): StateKeys {
    return { tensors: ["sum"], numbers: ["step"] };
  }
}
