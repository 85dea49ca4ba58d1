// OneCycleLR as PyTorch defines it: the lr rises from maxLr / divFactor to maxLr over
// pctStart of the steps, then falls to the initial lr / finalDivFactor (or, with
// threePhase, back to the initial lr first), while the momentum (SGD's momentum, Adam's
// beta1) cycles the other way between maxMomentum and baseMomentum.

import { ValueError } from "../errors.js";
import { LRScheduler, perGroup, type AnyOptimizer, type ScheduleConfig } from "./lr_scheduler.js";
import { checkOption } from "./optimizer.js";

export interface OneCycleLROptions {
  /** Either totalSteps, or epochs and stepsPerEpoch. */
  totalSteps?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  pctStart: number;
  annealStrategy: "cos" | "linear";
  cycleMomentum: boolean;
  baseMomentum: number | number[];
  maxMomentum: number | number[];
  divFactor: number;
  finalDivFactor: number;
  threePhase: boolean;
}

interface Phase {
  endStep: number;
  lrs: [number[], number[]]; // start, end per group
  momenta: [number[], number[]];
}

const DEFAULTS = {
  pctStart: 0.3,
  annealStrategy: "cos" as const,
  cycleMomentum: true,
  baseMomentum: 0.85,
  maxMomentum: 0.95,
  divFactor: 25,
  finalDivFactor: 1e4,
  threePhase: false,
};

function anneal(strategy: "cos" | "linear", start: number, end: number, pct: number): number {
  if (strategy === "linear") return (end - start) * pct + start;
  return end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
}

export class OneCycleLR extends LRScheduler {
  readonly totalSteps: number;
  readonly options: Omit<OneCycleLROptions, "totalSteps" | "epochs" | "stepsPerEpoch">;
  private readonly maxLrs: number[];
  private readonly phases: Phase[];
  private readonly momentumKey: "momentum" | "betas" | null;

  constructor(
    optimizer: AnyOptimizer,
    maxLr: number | number[],
    options: Partial<OneCycleLROptions> = {},
  ) {
    super("OneCycleLR", optimizer);
    const { totalSteps, epochs, stepsPerEpoch, ...rest } = { ...DEFAULTS, ...options };
    this.options = rest;
    this.totalSteps = this.resolveTotal(totalSteps, epochs, stepsPerEpoch);
    this.validate();
    const groups = optimizer.paramGroups.length;
    this.maxLrs = perGroup(this.name, "maxLr", maxLr, groups);
    this.momentumKey = this.findMomentum();
    this.phases = this.makePhases(groups);
    this.start();
  }

  protected lrsAt(step: number): number[] {
    if (step > this.totalSteps) {
      throw new ValueError(
        this.name,
        `tried to step ${step + 1} times; the specified number of total steps is ` +
          `${this.totalSteps}`,
        "totalSteps",
      );
    }
    const { phase, pct } = this.phaseAt(step);
    const strategy = this.options.annealStrategy;
    if (this.momentumKey !== null) {
      const momenta = phase.momenta[0].map((m, i) =>
        anneal(strategy, m, phase.momenta[1][i]!, pct),
      );
      this.setMomenta(momenta);
    }
    return phase.lrs[0].map((lr, i) => anneal(strategy, lr, phase.lrs[1][i]!, pct));
  }

  protected config(): ScheduleConfig {
    return { ...this.options, totalSteps: this.totalSteps, maxLr: this.maxLrs } as ScheduleConfig;
  }

  private phaseAt(step: number): { phase: Phase; pct: number } {
    let startStep = 0;
    for (let i = 0; i < this.phases.length; i++) {
      const phase = this.phases[i]!;
      if (step <= phase.endStep || i === this.phases.length - 1) {
        return { phase, pct: (step - startStep) / (phase.endStep - startStep) };
      }
      startStep = phase.endStep;
    }
    throw new ValueError(this.name, "no phases", "totalSteps"); // unreachable: 2 or 3 phases
  }

  private resolveTotal(totalSteps?: number, epochs?: number, stepsPerEpoch?: number): number {
    const positive = (v: number | undefined): boolean => Number.isInteger(v) && (v as number) > 0;
    if (totalSteps !== undefined) {
      checkOption(this.name, positive(totalSteps), "totalSteps", totalSteps, "an integer > 0");
      return totalSteps;
    }
    if (epochs === undefined || stepsPerEpoch === undefined) {
      throw new ValueError(this.name, "give totalSteps, or epochs and stepsPerEpoch", "totalSteps");
    }
    checkOption(this.name, positive(epochs), "epochs", epochs, "an integer > 0");
    checkOption(
      this.name,
      positive(stepsPerEpoch),
      "stepsPerEpoch",
      stepsPerEpoch,
      "an integer > 0",
    );
    return epochs * stepsPerEpoch;
  }

  private validate(): void {
    const o = this.options;
    checkOption(this.name, o.pctStart >= 0 && o.pctStart <= 1, "pctStart", o.pctStart, "in [0, 1]");
    const strategies = ["cos", "linear"];
    checkOption(
      this.name,
      strategies.includes(o.annealStrategy),
      "annealStrategy",
      o.annealStrategy,
      "cos or linear",
    );
    checkOption(this.name, o.divFactor > 0, "divFactor", o.divFactor, "> 0");
    checkOption(this.name, o.finalDivFactor > 0, "finalDivFactor", o.finalDivFactor, "> 0");
  }

  private findMomentum(): "momentum" | "betas" | null {
    if (!this.options.cycleMomentum) return null;
    const options = this.optimizer.paramGroups[0]!.options as Record<string, unknown>;
    if ("betas" in options) return "betas";
    if ("momentum" in options) return "momentum";
    throw new ValueError(
      this.name,
      "cycleMomentum needs an optimizer with momentum or betas",
      "cycleMomentum",
    );
  }

  private makePhases(groups: number): Phase[] {
    const { pctStart, divFactor, finalDivFactor, threePhase } = this.options;
    const initial = this.maxLrs.map((lr) => lr / divFactor);
    const min = initial.map((lr) => lr / finalDivFactor);
    const maxM = perGroup(this.name, "maxMomentum", this.options.maxMomentum, groups);
    const baseM = perGroup(this.name, "baseMomentum", this.options.baseMomentum, groups);
    const rise = pctStart * this.totalSteps - 1;
    const last = this.totalSteps - 1;
    if (!threePhase) {
      return [
        { endStep: rise, lrs: [initial, this.maxLrs], momenta: [maxM, baseM] },
        { endStep: last, lrs: [this.maxLrs, min], momenta: [baseM, maxM] },
      ];
    }
    return [
      { endStep: rise, lrs: [initial, this.maxLrs], momenta: [maxM, baseM] },
      {
        endStep: 2 * pctStart * this.totalSteps - 2,
        lrs: [this.maxLrs, initial],
        momenta: [baseM, maxM],
      },
      { endStep: last, lrs: [initial, min], momenta: [maxM, maxM] },
    ];
  }

  private setMomenta(momenta: number[]): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      const options = g.options as Record<string, unknown>;
      if (this.momentumKey === "betas") {
        const betas = options.betas as [number, number];
        options.betas = [momenta[i]!, betas[1]];
      } else {
        options.momentum = momenta[i]!;
      }
    });
  }
}
