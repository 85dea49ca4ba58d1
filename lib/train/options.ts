// The Trainer's options: what fit() takes, with defaults, and the checks that reject a bad
// value by name before any work starts.

import { DataLoader, type Batch } from "../data/dataloader.js";
import type { Dataset, Sample } from "../data/dataset.js";
import { ValueError, formatValue } from "../errors.js";
import type { Module } from "../nn/module.js";
import type { Parameter } from "../nn/parameter.js";
import type { AnyOptimizer, LRScheduler } from "../optim/lr_scheduler.js";
import type { ReduceLROnPlateau } from "../optim/plateau.js";
import type { DecayGroup } from "../optim/regularization.js";
import type { Tensor } from "../tensor.js";
import type { SaveHooks } from "./checkpoint.js";
import type { MetricFn } from "./metrics.js";
import type { Trainer } from "./trainer.js";

/** A model the trainer can drive: a Module whose forward maps a batch of inputs to outputs. */
export type Model = Module & { forward(inputs: Tensor): Tensor };
/** outputs, targets -> the scalar loss to minimise (a batch mean, as F.crossEntropy gives). */
export type LossFn = (outputs: Tensor, targets: Tensor) => Tensor;
/**
 * An epoch of batches and their count, drawn afresh each time it is iterated: a DataLoader,
 * or one's own loader whose batches carry more than inputs and targets (lengths, masks) for
 * a `forward` option to pass on. The trainer disposes every Tensor field of a batch after
 * its step.
 */
export interface BatchSource<B extends Batch = Batch> extends Iterable<B> {
  readonly length: number;
}
export type DataSource<B extends Batch = Batch> = Dataset<Sample> | BatchSource<B>;
export type AnyScheduler = LRScheduler | ReduceLROnPlateau;

/** What a scheduler factory is told about the run. */
export interface ScheduleContext {
  totalSteps: number;
  stepsPerEpoch: number;
  warmupSteps: number;
}

export type OptimizerFactory = (params: Parameter[] | DecayGroup[]) => AnyOptimizer;
export type SchedulerFactory = (optimizer: AnyOptimizer, context: ScheduleContext) => AnyScheduler;

export interface EarlyStoppingOptions {
  /** Evaluations without an improvement before training stops. */
  patience: number;
  /** The least change that counts as an improvement; default 0. */
  minDelta?: number;
}

export interface StepInfo {
  epoch: number;
  /** 1-based batch of this epoch, and the number of batches. */
  batch: number;
  batches: number;
  globalStep: number;
  /** The epoch's mean training loss so far; read only every logEvery steps (else undefined). */
  loss: number | undefined;
}

/** One epoch's numbers: loss and metrics over the training batches, and the evaluation's. */
export interface EpochRecord {
  epoch: number;
  globalStep: number;
  /** The first group's lr at the end of the epoch's training (before a plateau reacts). */
  lr: number;
  train: Record<string, number>;
  eval?: Record<string, number>;
  seconds: number;
  samplesPerSecond: number;
  /** Steps whose gradients had a NaN or infinite norm and were not applied. */
  skippedSteps: number;
}

export interface FitResult {
  history: EpochRecord[];
  globalStep: number;
  /** The epoch and value of the best monitored metric (null when none was tracked). */
  bestEpoch: number | null;
  bestValue: number | null;
  /** Whether early stopping (or a callback) ended the run before its last epoch. */
  stoppedEarly: boolean;
  /** Whether the best epoch's weights were loaded into the model at the end. */
  restoredBest: boolean;
  /** The last checkpoint written, if any. */
  lastCheckpoint: string | null;
  /**
   * Epochs this call trained (a resumed part of an epoch counts as one); 0 when the run it
   * resumed had already finished: at its last epoch (or past it) or stopped early.
   */
  epochsRun: number;
  /** The checkpoint folder this call resumed from, or null. */
  resumedFrom: string | null;
}

/** Hooks into the loop; each receives the trainer. Return true from onEpochEnd to stop. */
export interface Callbacks<B extends Batch = Batch, M extends Module = Model> {
  onTrainBegin?(trainer: Trainer<B, M>): void;
  onEpochBegin?(epoch: number, trainer: Trainer<B, M>): void;
  onStepEnd?(step: StepInfo, trainer: Trainer<B, M>): void;
  onEvaluate?(metrics: Record<string, number>, trainer: Trainer<B, M>): void;
  onEpochEnd?(record: EpochRecord, trainer: Trainer<B, M>): boolean | void;
  onSave?(path: string, trainer: Trainer<B, M>): void;
  onTrainEnd?(result: FitResult, trainer: Trainer<B, M>): void;
}

/**
 * B: the batches trainData and evalData yield (a DataLoader's: inputs and targets); M: the
 * model. Without a `forward` option M's forward must take the inputs tensor alone.
 */
export interface TrainerOptions<B extends Batch = Batch, M extends Module = Model> {
  /** The model, or a function that builds it (called after seeding, on the device). */
  model: M | (() => M);
  trainData: DataSource<B>;
  evalData?: DataSource<B>;
  /**
   * The model's outputs for a batch, for a model whose forward takes more than the inputs
   * tensor: `(model, batch) => model.forward(batch.inputs, batch.lengths)`. Default:
   * `model.forward(batch.inputs)`. Training, evaluation and predict all run through it.
   */
  forward?(model: M, batch: B): Tensor;
  epochs: number;
  /** Batch sizes for Datasets (a DataLoader keeps its own); default 32, eval: batchSize. */
  batchSize?: number;
  evalBatchSize?: number;
  /** Shuffle the training Dataset every epoch; default true. */
  shuffle?: boolean;
  /** An optimizer over the model's parameters, or a function of them that makes one. */
  optimizer: AnyOptimizer | OptimizerFactory;
  scheduler?: AnyScheduler | SchedulerFactory;
  /** When an LRScheduler steps: after every optimizer step (default) or every epoch. */
  schedulerInterval?: "step" | "epoch";
  /** Linear warmup over this many steps then linear decay to 0 (when no scheduler is given). */
  warmupSteps?: number;
  /** Weight decay for the optimizer factory's groups, biases and 1-d weights exempt. */
  weightDecay?: number;
  /** Clip the gradients' total 2-norm to this before each step (reads the norm: one sync). */
  clipGradNorm?: number;
  lossFn: LossFn;
  /** Named metrics reported for training and evaluation, e.g. { accuracy }. */
  metrics?: Record<string, MetricFn>;
  /** Evaluate every n epochs (and after the last); default 1. */
  evalEvery?: number;
  /** Write a checkpoint every saveEvery epochs (and after the last) into this folder. */
  saveDir?: string;
  saveEvery?: number;
  /**
   * Also write a checkpoint every saveSteps optimizer steps inside an epoch; a run resumed
   * from one continues the epoch where it was (same order, same dropout), not from its start.
   */
  saveSteps?: number;
  /** How many of the newest checkpoints to keep; default 2. */
  keepCheckpoints?: number;
  /** A checkpoint folder, or a saveDir whose newest checkpoint is taken, to continue from. */
  resume?: string;
  /** Load the weights of the best epoch by metricForBest when fit ends. */
  loadBestModelAtEnd?: boolean;
  /** "loss" (default), a metric name, or "train.x" / "eval.x"; bare names are eval's. */
  metricForBest?: string;
  /** Default: false for names ending in "loss", true otherwise. */
  greaterIsBetter?: boolean;
  /** Stop when metricForBest has not improved for patience evaluations; restores the best. */
  earlyStopping?: EarlyStoppingOptions;
  callbacks?: Callbacks<B, M> | Callbacks<B, M>[];
  /** Seeds the generator (initialisation by a model factory, shuffles, dropout). */
  seed?: number;
  /** Device for the model, the batches and the default device during fit. */
  device?: string;
  /** Read the loss back every n steps (progress bar, onStepEnd); default 10. */
  logEvery?: number;
  /** A progress bar on stderr when it is a terminal; default true. */
  progress?: boolean;
  /**
   * Append each epoch's record as a JSON line to this file. A fresh run empties it first; a
   * resumed one keeps the lines up to its checkpoint's epoch.
   */
  metricsFile?: string;
  /** Draw loss and metric curves (train and validation) to this PNG file after each epoch. */
  plotFile?: string;
  /** For tests: called between writing a checkpoint and committing it, and in rotation. */
  checkpointHooks?: SaveHooks;
}

/** Any trainer's options, as the checks read them. */
type AnyOptions = TrainerOptions<Batch, Module>;

const KNOWN = new Set([
  "model",
  "trainData",
  "evalData",
  "epochs",
  "batchSize",
  "evalBatchSize",
  "shuffle",
  "optimizer",
  "scheduler",
  "schedulerInterval",
  "warmupSteps",
  "weightDecay",
  "clipGradNorm",
  "lossFn",
  "metrics",
  "evalEvery",
  "saveDir",
  "saveEvery",
  "saveSteps",
  "keepCheckpoints",
  "resume",
  "loadBestModelAtEnd",
  "metricForBest",
  "greaterIsBetter",
  "earlyStopping",
  "callbacks",
  "seed",
  "device",
  "logEvery",
  "progress",
  "metricsFile",
  "plotFile",
  "checkpointHooks",
  "forward",
]);

function fail(param: string, expected: string, value: unknown): never {
  throw new ValueError("Trainer", `${param} must be ${expected}, got ${formatValue(value)}`, param);
}

function checkInt(options: AnyOptions, name: keyof AnyOptions, min: number): void {
  const value = options[name];
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    fail(name, min === 0 ? "an integer >= 0" : "a positive integer", value);
  }
}

/** A Dataset, or a batch source that is not an array (its batches would serve one epoch). */
function checkData(name: string, data: unknown, required: boolean): void {
  if (data === undefined && !required) return;
  const object =
    typeof data === "object" && data !== null ? (data as Partial<Dataset<Sample>>) : {};
  const counted = Number.isSafeInteger(object.length);
  const iterable = typeof (object as Partial<Iterable<unknown>>)[Symbol.iterator] === "function";
  const ok =
    data instanceof DataLoader ||
    (counted && typeof object.get === "function") ||
    (counted && iterable && !Array.isArray(data));
  if (!ok) {
    const expected =
      "a Dataset (length and get) or a DataLoader (or a batch source: a length and an " +
      "iterator that draws fresh batches each epoch)";
    fail(name, expected, data);
  }
}

function checkFunctions(options: AnyOptions): void {
  if (typeof options.lossFn !== "function") fail("lossFn", "a function", options.lossFn);
  if (options.forward !== undefined && typeof options.forward !== "function") {
    fail("forward", "a function (model, batch) => outputs", options.forward);
  }
  for (const [name, metric] of Object.entries(options.metrics ?? {})) {
    if (typeof metric !== "function") fail(`metrics.${name}`, "a function", metric);
    if (name === "loss") fail("metrics", "named other than loss (the loss is reported)", name);
  }
  const optimizer = options.optimizer as unknown;
  if (typeof optimizer !== "function" && typeof optimizer !== "object") {
    fail("optimizer", "an Optimizer or a function of the parameters", optimizer);
  }
}

function checkCombinations(options: AnyOptions): void {
  if (options.weightDecay !== undefined) {
    if (!(options.weightDecay >= 0)) fail("weightDecay", "a number >= 0", options.weightDecay);
    if (typeof options.optimizer !== "function") {
      const message =
        "weightDecay needs an optimizer factory (params => new optim.AdamW(params, ...)) " +
        "to build its groups; give the decay to the optimizer itself instead";
      throw new ValueError("Trainer", message, "weightDecay");
    }
  }
  if (options.warmupSteps !== undefined && options.scheduler !== undefined) {
    if (typeof options.scheduler !== "function") {
      const message =
        "warmupSteps cannot change a scheduler that is already made; pass a scheduler " +
        "factory, which receives warmupSteps, or leave warmupSteps out";
      throw new ValueError("Trainer", message, "warmupSteps");
    }
  }
  const stopping = options.earlyStopping;
  if (stopping !== undefined) {
    if (!Number.isSafeInteger(stopping.patience) || stopping.patience < 1) {
      fail("earlyStopping.patience", "a positive integer", stopping.patience);
    }
    const delta = stopping.minDelta ?? 0;
    if (!(delta >= 0)) fail("earlyStopping.minDelta", "a number >= 0", delta);
  }
  const clip = options.clipGradNorm;
  if (clip !== undefined && (typeof clip !== "number" || !(clip > 0))) {
    fail("clipGradNorm", "a number > 0", options.clipGradNorm);
  }
}

/** Throws ValueError naming the first option that is unknown or has a bad value. */
export function checkTrainerOptions(options: AnyOptions): void {
  if (typeof options !== "object" || options === null) fail("options", "an object", options);
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) throw new ValueError("Trainer", `unknown option ${name}`, name);
  }
  const model = options.model as unknown;
  if (typeof model !== "function" && typeof model !== "object") {
    fail("model", "a Module or a function that builds one", model);
  }
  checkData("trainData", options.trainData, true);
  checkData("evalData", options.evalData, false);
  if (!Number.isSafeInteger(options.epochs) || options.epochs < 1) {
    fail("epochs", "a positive integer", options.epochs);
  }
  const counts = [
    "batchSize",
    "evalBatchSize",
    "evalEvery",
    "saveEvery",
    "saveSteps",
    "logEvery",
  ] as const;
  for (const name of [...counts, "keepCheckpoints"] as const) checkInt(options, name, 1);
  for (const name of ["warmupSteps", "seed"] as const) checkInt(options, name, 0);
  const interval = options.schedulerInterval;
  if (interval !== undefined && interval !== "step" && interval !== "epoch") {
    fail("schedulerInterval", '"step" or "epoch"', interval);
  }
  checkFunctions(options);
  checkCombinations(options);
}
