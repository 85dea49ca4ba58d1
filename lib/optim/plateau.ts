// ReduceLROnPlateau as PyTorch defines it: multiplies each group's lr by factor (down to
// its minLr) once the metric has not improved by more than threshold for patience steps,
// then waits cooldown steps before counting again.

import { ValueError } from "../errors.js";
import { checkLoadable, perGroup, type AnyOptimizer, type ScheduleConfig } from "./lr_scheduler.js";
import { checkOption } from "./optimizer.js";

export interface ReduceLROnPlateauOptions {
  mode: "min" | "max";
  factor: number;
  patience: number;
  threshold: number;
  thresholdMode: "rel" | "abs";
  cooldown: number;
  minLr: number | number[];
  /** A reduction smaller than eps is not applied. */
  eps: number;
}

export interface PlateauStateDict {
  kind: "ReduceLROnPlateau";
  lastEpoch: number;
  best: number;
  numBadEpochs: number;
  cooldownCounter: number;
  config: ScheduleConfig;
}

const DEFAULTS: ReduceLROnPlateauOptions = {
  mode: "min",
  factor: 0.1,
  patience: 10,
  threshold: 1e-4,
  thresholdMode: "rel",
  cooldown: 0,
  minLr: 0,
  eps: 1e-8,
};

export class ReduceLROnPlateau {
  readonly optimizer: AnyOptimizer;
  readonly options: ReduceLROnPlateauOptions;
  lastEpoch = 0;
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;
  private readonly minLrs: number[];
  private readonly name = "ReduceLROnPlateau";

  constructor(optimizer: AnyOptimizer, options: Partial<ReduceLROnPlateauOptions> = {}) {
    this.optimizer = optimizer;
    this.options = { ...DEFAULTS, ...options };
    this.validate();
    this.minLrs = perGroup(this.name, "minLr", this.options.minLr, optimizer.paramGroups.length);
    const valid = this.minLrs.every((lr) => lr >= 0);
    checkOption(this.name, valid, "minLr", this.options.minLr, "values >= 0");
    this.best = this.worst();
  }

  /** Records this step's metric (a loss, an accuracy) and lowers the lr on a plateau. */
  step(metric: number): void {
    if (typeof metric !== "number" || Number.isNaN(metric)) {
      throw new ValueError(this.name, `metric must be a number, got ${String(metric)}`, "metric");
    }
    this.lastEpoch++;
    if (this.isBetter(metric)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs++;
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter--;
      this.numBadEpochs = 0;
    }
    if (this.numBadEpochs > this.options.patience) {
      this.reduce();
      this.cooldownCounter = this.options.cooldown;
      this.numBadEpochs = 0;
    }
  }

  get inCooldown(): boolean {
    return this.cooldownCounter > 0;
  }

  getLastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => (g.options as { lr: number }).lr);
  }

  stateDict(): PlateauStateDict {
    const { lastEpoch, best, numBadEpochs, cooldownCounter } = this;
    return {
      kind: this.name,
      lastEpoch,
      best,
      numBadEpochs,
      cooldownCounter,
      config: this.config(),
    };
  }

  /** Restores a stateDict() made with the same settings; throws ValueError naming what differs. */
  loadStateDict(state: PlateauStateDict): void {
    checkLoadable(this.name, state, this.config(), this.minLrs.length);
    this.lastEpoch = state.lastEpoch;
    this.best = state.best;
    this.numBadEpochs = state.numBadEpochs;
    this.cooldownCounter = state.cooldownCounter;
  }

  private config(): ScheduleConfig {
    return { ...this.options, minLr: this.minLrs };
  }

  private reduce(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      const options = g.options as { lr: number };
      const lr = Math.max(options.lr * this.options.factor, this.minLrs[i]!);
      if (options.lr - lr > this.options.eps) options.lr = lr;
    });
  }

  private isBetter(metric: number): boolean {
    const { mode, thresholdMode, threshold } = this.options;
    if (mode === "min" && thresholdMode === "rel") return metric < this.best * (1 - threshold);
    if (mode === "min") return metric < this.best - threshold;
    if (thresholdMode === "rel") return metric > this.best * (threshold + 1);
    return metric > this.best + threshold;
  }

  private worst(): number {
    return this.options.mode === "min" ? Infinity : -Infinity;
  }

  private validate(): void {
    const o = this.options;
    const check = (ok: boolean, option: string, value: unknown, expected: string): void =>
      checkOption(this.name, ok, option, value, expected);
    check(o.mode === "min" || o.mode === "max", "mode", o.mode, "min or max");
    check(
      o.thresholdMode === "rel" || o.thresholdMode === "abs",
      "thresholdMode",
      o.thresholdMode,
      "rel or abs",
    );
    check(o.factor < 1 && o.factor >= 0, "factor", o.factor, "in [0, 1)");
    check(
      Number.isInteger(o.patience) && o.patience >= 0,
      "patience",
      o.patience,
      "an integer >= 0",
    );
    check(
      Number.isInteger(o.cooldown) && o.cooldown >= 0,
      "cooldown",
      o.cooldown,
      "an integer >= 0",
    );
    check(o.threshold >= 0, "threshold", o.threshold, ">= 0");
    check(o.eps >= 0, "eps", o.eps, ">= 0");
  }
}
