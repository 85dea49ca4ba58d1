// Learning-rate schedules as PyTorch's torch.optim.lr_scheduler defines them. Each
// schedule sets every group's lr from its closed form at the epoch counter (PyTorch's
// chainable forms give the same values up to rounding), and sets it once on construction
// as PyTorch does. ReduceLROnPlateau, which reacts to a metric, is in plateau.ts.

import { ValueError } from "../errors.js";
import { warnOnce } from "../log.js";
import { checkOption, type Optimizer } from "./optimizer.js";

/** Any optimizer: a schedule only reads and writes the groups' options (lr, momentum). */
export type AnyOptimizer = Optimizer<object>;

export type ScheduleConfig = Record<string, number | string | boolean | number[]>;

/** What a schedule saves: its kind, its counters and the settings it was made with. */
export interface SchedulerStateDict {
  kind: string;
  lastEpoch: number;
  stepCount: number;
  baseLrs: number[];
  lastLr: number[];
  config: ScheduleConfig;
}

/** A per-group value: one number for every group, or one per group. */
export function perGroup(
  name: string,
  option: string,
  value: number | number[],
  groups: number,
): number[] {
  if (!Array.isArray(value)) return new Array<number>(groups).fill(value);
  checkOption(name, value.length === groups, option, value, `${groups} values, one per group`);
  return [...value];
}

export abstract class LRScheduler {
  readonly optimizer: AnyOptimizer;
  /** The epoch (or step) counter: 0 after construction, +1 per step(). */
  lastEpoch = -1;
  /** Each group's lr when the schedule was made. */
  baseLrs: number[];
  protected lastLr: number[] = [];
  /** Calls of step(), the one in the constructor included. */
  protected stepCount = 0;
  protected readonly name: string;

  constructor(name: string, optimizer: AnyOptimizer) {
    this.name = name;
    this.optimizer = optimizer;
    this.baseLrs = optimizer.paramGroups.map((g) => (g.options as { lr: number }).lr);
  }

  /** Each group's lr at `epoch`. */
  protected abstract lrsAt(epoch: number): number[];

  /** The settings that must match when a state dict is loaded. */
  protected abstract config(): ScheduleConfig;

  /** Advances the counter and sets every group's lr. Call it after optimizer.step(). */
  step(): void {
    if (this.stepCount === 1 && this.optimizer.stepCount < 1) {
      warnOnce(
        "DEEPNODE_SCHEDULER_BEFORE_OPTIMIZER",
        "scheduler.step() was called before optimizer.step(); call optimizer.step() first, " +
          "or the first value of the schedule is skipped (as PyTorch warns)",
      );
    }
    this.stepCount++;
    this.lastEpoch++;
    this.lastLr = this.lrsAt(this.lastEpoch);
    this.optimizer.paramGroups.forEach(
      (g, i) => ((g.options as { lr: number }).lr = this.lastLr[i]!),
    );
  }

  /** The lr each group got from the last step(). */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): SchedulerStateDict {
    return {
      kind: this.name,
      lastEpoch: this.lastEpoch,
      stepCount: this.stepCount,
      baseLrs: [...this.baseLrs],
      lastLr: [...this.lastLr],
      config: this.config(),
    };
  }

  /**
   * Restores the counters of a stateDict() of the same kind of schedule, made with the same
   * settings over as many groups; throws ValueError naming what differs. As PyTorch, the
   * groups' lr is the optimizer's state, not the schedule's: load both.
   */
  loadStateDict(state: SchedulerStateDict): void {
    checkLoadable(this.name, state, this.config(), this.baseLrs.length);
    this.lastEpoch = state.lastEpoch;
    this.stepCount = state.stepCount;
    this.baseLrs = [...state.baseLrs];
    this.lastLr = [...state.lastLr];
  }

  /** Subclasses call this last in their constructor: PyTorch's initial step. */
  protected start(): void {
    this.step();
  }
}

export function checkLoadable(
  name: string,
  state: { kind: string; baseLrs?: number[]; config: ScheduleConfig },
  config: ScheduleConfig,
  groups: number,
): void {
  if (typeof state !== "object" || state === null || state.kind !== name) {
    throw new ValueError(
      name,
      `loadStateDict: the state is of a ${String(state?.kind)}, not a ${name}`,
      "kind",
    );
  }
  if (state.baseLrs !== undefined && state.baseLrs.length !== groups) {
    throw new ValueError(
      name,
      `loadStateDict: the state has ${state.baseLrs.length} parameter groups, the optimizer ` +
        `${groups}`,
      "baseLrs",
    );
  }
  for (const [key, value] of Object.entries(config)) {
    const saved = state.config[key];
    if (JSON.stringify(saved) !== JSON.stringify(value)) {
      throw new ValueError(
        name,
        `loadStateDict: ${key} is ${JSON.stringify(saved)} in the state, ` +
          `${JSON.stringify(value)} here`,
        key,
      );
    }
  }
}

/** lr = base * gamma ^ floor(epoch / stepSize). */
export class StepLR extends LRScheduler {
  constructor(
    optimizer: AnyOptimizer,
    readonly stepSize: number,
    readonly gamma = 0.1,
  ) {
    super("StepLR", optimizer);
    checkOption(
      this.name,
      Number.isInteger(stepSize) && stepSize > 0,
      "stepSize",
      stepSize,
      "an integer > 0",
    );
    checkOption(this.name, gamma >= 0, "gamma", gamma, ">= 0");
    this.start();
  }

  protected lrsAt(epoch: number): number[] {
    return this.baseLrs.map((lr) => lr * this.gamma ** Math.floor(epoch / this.stepSize));
  }

  protected config(): ScheduleConfig {
    return { stepSize: this.stepSize, gamma: this.gamma };
  }
}

/** lr = base * gamma ^ (number of milestones <= epoch); a repeated milestone counts twice. */
export class MultiStepLR extends LRScheduler {
  readonly milestones: number[];

  constructor(
    optimizer: AnyOptimizer,
    milestones: number[],
    readonly gamma = 0.1,
  ) {
    super("MultiStepLR", optimizer);
    const valid = milestones.every((m) => Number.isInteger(m) && m >= 0);
    checkOption(this.name, valid, "milestones", milestones, "integers >= 0");
    checkOption(this.name, gamma >= 0, "gamma", gamma, ">= 0");
    this.milestones = [...milestones].sort((a, b) => a - b);
    this.start();
  }

  protected lrsAt(epoch: number): number[] {
    const passed = this.milestones.filter((m) => m <= epoch).length;
    return this.baseLrs.map((lr) => lr * this.gamma ** passed);
  }

  protected config(): ScheduleConfig {
    return { milestones: this.milestones, gamma: this.gamma };
  }
}

/** lr = base * gamma ^ epoch. */
export class ExponentialLR extends LRScheduler {
  constructor(
    optimizer: AnyOptimizer,
    readonly gamma: number,
  ) {
    super("ExponentialLR", optimizer);
    checkOption(this.name, gamma >= 0, "gamma", gamma, ">= 0");
    this.start();
  }

  protected lrsAt(epoch: number): number[] {
    return this.baseLrs.map((lr) => lr * this.gamma ** epoch);
  }

  protected config(): ScheduleConfig {
    return { gamma: this.gamma };
  }
}

/**
 * lr = etaMin + (base - etaMin) * (1 + cos(pi * epoch / tMax)) / 2: down to etaMin at tMax,
 * then back up, with period 2 tMax, as PyTorch's schedule does past tMax.
 */
export class CosineAnnealingLR extends LRScheduler {
  constructor(
    optimizer: AnyOptimizer,
    readonly tMax: number,
    readonly etaMin = 0,
  ) {
    super("CosineAnnealingLR", optimizer);
    checkOption(this.name, Number.isInteger(tMax) && tMax > 0, "tMax", tMax, "an integer > 0");
    checkOption(this.name, etaMin >= 0, "etaMin", etaMin, ">= 0");
    this.start();
  }

  protected lrsAt(epoch: number): number[] {
    const cosine = (1 + Math.cos((Math.PI * epoch) / this.tMax)) / 2;
    return this.baseLrs.map((lr) => this.etaMin + (lr - this.etaMin) * cosine);
  }

  protected config(): ScheduleConfig {
    return { tMax: this.tMax, etaMin: this.etaMin };
  }
}

export interface LinearLROptions {
  startFactor: number;
  endFactor: number;
  totalIters: number;
}

/** lr = base * (start + (end - start) * min(epoch, totalIters) / totalIters). */
export class LinearLR extends LRScheduler {
  readonly options: LinearLROptions;

  constructor(optimizer: AnyOptimizer, options: Partial<LinearLROptions> = {}) {
    super("LinearLR", optimizer);
    const o = { startFactor: 1 / 3, endFactor: 1, totalIters: 5, ...options };
    checkOption(
      this.name,
      o.startFactor > 0 && o.startFactor <= 1,
      "startFactor",
      o.startFactor,
      "in (0, 1]",
    );
    checkOption(
      this.name,
      o.endFactor >= 0 && o.endFactor <= 1,
      "endFactor",
      o.endFactor,
      "in [0, 1]",
    );
    const validIters = Number.isInteger(o.totalIters) && o.totalIters > 0;
    checkOption(this.name, validIters, "totalIters", o.totalIters, "an integer > 0");
    this.options = o;
    this.start();
  }

  protected lrsAt(epoch: number): number[] {
    const { startFactor, endFactor, totalIters } = this.options;
    const factor =
      startFactor + ((endFactor - startFactor) * Math.min(epoch, totalIters)) / totalIters;
    return this.baseLrs.map((lr) => lr * factor);
  }

  protected config(): ScheduleConfig {
    return { ...this.options };
  }
}

export type LrLambda = (epoch: number) => number;

/** lr = base * lrLambda(epoch), one function for every group or one per group. */
export class LambdaLR extends LRScheduler {
  private readonly lambdas: LrLambda[];

  constructor(
    optimizer: AnyOptimizer,
    lrLambda: LrLambda | LrLambda[],
    private readonly description: ScheduleConfig = {},
  ) {
    super("LambdaLR", optimizer);
    const groups = optimizer.paramGroups.length;
    const lambdas = Array.isArray(lrLambda) ? lrLambda : new Array<LrLambda>(groups).fill(lrLambda);
    checkOption(
      this.name,
      lambdas.length === groups,
      "lrLambda",
      `${lambdas.length} functions`,
      `${groups}`,
    );
    this.lambdas = lambdas;
    this.start();
  }

  protected lrsAt(epoch: number): number[] {
    return this.baseLrs.map((lr, i) => lr * this.lambdas[i]!(epoch));
  }

  /** Functions are not saved: only what the maker described (warmupLinear's steps). */
  protected config(): ScheduleConfig {
    return { ...this.description };
  }
}

/**
 * Linear warmup from 0 to the base lr over warmupSteps, then linear decay to 0 at
 * totalSteps (Hugging Face's get_linear_schedule_with_warmup), as a LambdaLR.
 */
export function warmupLinear(
  optimizer: AnyOptimizer,
  warmupSteps: number,
  totalSteps: number,
): LambdaLR {
  const name = "warmupLinear";
  checkOption(
    name,
    Number.isInteger(warmupSteps) && warmupSteps >= 0,
    "warmupSteps",
    warmupSteps,
    "an integer >= 0",
  );
  const validTotal = Number.isInteger(totalSteps) && totalSteps >= warmupSteps;
  checkOption(
    name,
    validTotal,
    "totalSteps",
    totalSteps,
    `an integer >= warmupSteps (${warmupSteps})`,
  );
  const factor = (step: number): number =>
    step < warmupSteps
      ? step / Math.max(1, warmupSteps)
      : Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  return new LambdaLR(optimizer, factor, { schedule: name, warmupSteps, totalSteps });
}
