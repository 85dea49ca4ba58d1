// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, as
// PyTorch defines it; each parameter's update is one fused kernel.

import { backendFor } from "../backend/registry.js";
import type { Tensor } from "../tensor.js";
import { Optimizer, type ParamsArg, type StateKeys } from "./optimizer.js";

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsArg<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    super("SGD", params, {
      momentum: 0,
      dampening: 0,
      weightDecay: 0,
      nesterov: false,
      ...options,
    });
  }

  protected validate(o: SGDOptions): void {
    this.check(typeof o.lr === "number" && o.lr >= 0, "lr", o.lr, "a number >= 0");
    this.check(o.momentum >= 0, "momentum", o.momentum, ">= 0");
    this.check(o.weightDecay >= 0, "weightDecay", o.weightDecay, ">= 0");
    this.check(
      !o.nesterov || (o.momentum > 0 && o.dampening === 0),
      "nesterov",
      o.nesterov,
      "momentum > 0 and dampening 0",
    );
  }

  protected update(p: Tensor, grad: Tensor, o: SGDOptions): void {
    let buffer: Tensor | null = null;
    let firstStep = false;
    if (o.momentum !== 0) {
      const s = this.stateFor(p);
      firstStep = s.momentumBuffer === undefined;
      if (firstStep) s.momentumBuffer = this.newStateTensor(p);
      buffer = s.momentumBuffer as Tensor;
    }
    backendFor(p.device).sgdStep(p, grad, buffer, { ...o, firstStep });
  }

  protected stateKeys(o: SGDOptions): StateKeys {
    return { tensors: o.momentum !== 0 ? ["momentumBuffer"] : [], numbers: [] };
  }
}
