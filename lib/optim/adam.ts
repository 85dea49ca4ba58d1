// Adam and AdamW (decoupled weight decay), with amsgrad, as PyTorch defines them. A step is
// one fused kernel call over a group's parameters on a device and step count (as PyTorch's
// foreach Adam is on CUDA), each element computed as the per-parameter kernel computes it.

import type { AdamStepItem, AdamStepOptions } from "../backend/backend.js";
import { backendFor } from "../backend/registry.js";
import type { Tensor } from "../tensor.js";
import { Optimizer, type ParamGroup, type ParamsArg, type StateKeys } from "./optimizer.js";

export interface AdamOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
}

export class Adam extends Optimizer<AdamOptions> {
  protected readonly decoupled: boolean;

  constructor(
    params: ParamsArg<AdamOptions>,
    options: Partial<AdamOptions> = {},
    decoupled = false,
  ) {
    const defaults = {
      lr: 1e-3,
      betas: [0.9, 0.999] as [number, number],
      eps: 1e-8,
      weightDecay: decoupled ? 1e-2 : 0,
      amsgrad: false,
    };
    super(decoupled ? "AdamW" : "Adam", params, { ...defaults, ...options });
    this.decoupled = decoupled;
  }

  protected validate(o: AdamOptions): void {
    this.checkNonNegative("lr", o.lr);
    this.checkNonNegative("eps", o.eps);
    this.check(
      Array.isArray(o.betas) && o.betas.length === 2,
      "betas",
      o.betas,
      "a pair of numbers",
    );
    o.betas.forEach((beta, i) => {
      const valid = typeof beta === "number" && beta >= 0 && beta < 1;
      this.check(valid, `betas[${i}]`, beta, "a number in [0, 1)");
    });
    this.checkNonNegative("weightDecay", o.weightDecay);
  }

  /**
   * One adamSteps call per device and step count (parameters that started later have their
   * own): one native call on cpu, a launch per chunk of parameters on cuda. Every gradient is
   * checked against its parameter before any state changes, so a bad one leaves the step
   * counts as they were. A subclass that overrides update() keeps its per-parameter calls.
   */
  protected override updateGroup(group: ParamGroup<AdamOptions>): void {
    const o = group.options;
    this.updateInBatches(
      group,
      Adam.prototype.update,
      (p, grad) => ({ item: this.advance(p, grad, o), key: this.stateFor(p).step as number }),
      (device, items, step) => backendFor(device).adamSteps(items, this.stepOptions(o, step)),
    );
  }

  /** The per-parameter step: one adamStep call (updateGroup batches them instead). */
  protected update(p: Tensor, grad: Tensor, o: AdamOptions): void {
    const { param, expAvg, expAvgSq, maxExpAvgSq } = this.advance(p, grad, o);
    const options = this.stepOptions(o, this.stateFor(p).step as number);
    backendFor(p.device).adamStep(param, grad, expAvg, expAvgSq, maxExpAvgSq, options);
  }

  /** Creates p's state on its first step and counts the step; returns what the kernel updates. */
  private advance(p: Tensor, grad: Tensor, o: AdamOptions): AdamStepItem {
    const s = this.stateFor(p);
    if (s.step === undefined) {
      s.step = 0;
      s.expAvg = this.newStateTensor(p);
      s.expAvgSq = this.newStateTensor(p);
      if (o.amsgrad) s.maxExpAvgSq = this.newStateTensor(p);
    }
    s.step = (s.step as number) + 1;
    const maxExpAvgSq = (s.maxExpAvgSq as Tensor | undefined) ?? null;
    return {
      param: p,
      grad,
      expAvg: s.expAvg as Tensor,
      expAvgSq: s.expAvgSq as Tensor,
      maxExpAvgSq,
    };
  }

  private stepOptions(o: AdamOptions, step: number): AdamStepOptions {
    return {
      lr: o.lr,
      beta1: o.betas[0],
      beta2: o.betas[1],
      eps: o.eps,
      weightDecay: o.weightDecay,
      decoupledWeightDecay: this.decoupled,
      amsgrad: o.amsgrad,
      step,
    };
  }

  protected stateKeys(o: AdamOptions): StateKeys {
    const tensors = ["expAvg", "expAvgSq", ...(o.amsgrad ? ["maxExpAvgSq"] : [])];
    return { tensors, numbers: ["step"] };
  }
}

/** Adam with decoupled weight decay (default 0.01). */
export class AdamW extends Adam {
  constructor(params: ParamsArg<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super(params, options, true);
  }
}
