// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, as
// PyTorch defines it. A step is one fused kernel call over a group's parameters on a device
// (as PyTorch's foreach SGD is on CUDA), each element computed as the per-parameter kernel
// computes it.

import type { SgdStepItem } from "../backend/backend.js";
import { backendFor } from "../backend/registry.js";
import type { Tensor } from "../tensor.js";
import { Optimizer, type ParamGroup, type ParamsArg, type StateKeys } from "./optimizer.js";

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
    this.checkNonNegative("lr", o.lr);
    this.checkNonNegative("momentum", o.momentum);
    this.checkNonNegative("weightDecay", o.weightDecay);
    this.check(Number.isFinite(o.dampening), "dampening", o.dampening, "a finite number");
    this.check(
      !o.nesterov || (o.momentum > 0 && o.dampening === 0),
      "nesterov",
      o.nesterov,
      "momentum > 0 and dampening 0",
    );
  }

  /**
   * One sgdSteps call per device, and per first step with momentum: parameters whose momentum
   * buffer is new this step (a whole model's on its first step) go in a call of their own.
   * firstStep stays one of the call's options, as Adam's step count is, rather than a flag per
   * parameter: the kernels then read the options of the per-parameter sgd_step unchanged, and
   * a second call happens only on a step where some parameters get their first gradient.
   * Every gradient is checked against its parameter before any state changes. A subclass that
   * overrides update() keeps its per-parameter calls.
   */
  protected override updateGroup(group: ParamGroup<SGDOptions>): void {
    const o = group.options;
    this.updateInBatches(
      group,
      SGD.prototype.update,
      (p, grad) => this.advance(p, grad, o),
      (device, items, firstStep) => backendFor(device).sgdSteps(items, { ...o, firstStep }),
    );
  }

  /** The per-parameter step: one sgdStep call (updateGroup batches them instead). */
  protected update(p: Tensor, grad: Tensor, o: SGDOptions): void {
    const { item, key: firstStep } = this.advance(p, grad, o);
    backendFor(p.device).sgdStep(p, grad, item.momentumBuffer, { ...o, firstStep });
  }

  /** Creates p's momentum buffer on its first step; returns what the kernel updates, and whether
   * the buffer is new (the kernel then sets it to the gradient). */
  private advance(p: Tensor, grad: Tensor, o: SGDOptions): { item: SgdStepItem; key: boolean } {
    if (o.momentum === 0) return { item: { param: p, grad, momentumBuffer: null }, key: false };
    const s = this.stateFor(p);
    const firstStep = s.momentumBuffer === undefined;
    if (firstStep) s.momentumBuffer = this.newStateTensor(p);
    return { item: { param: p, grad, momentumBuffer: s.momentumBuffer as Tensor }, key: firstStep };
  }

  protected stateKeys(o: SGDOptions): StateKeys {
    return { tensors: o.momentum !== 0 ? ["momentumBuffer"] : [], numbers: [] };
  }
}
