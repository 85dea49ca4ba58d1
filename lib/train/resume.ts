// What a Trainer puts into a checkpoint and takes back out: the model's weights, the
// optimizer's state (tensors in optimizer.safetensors, counts in the JSON), the schedule,
// the generator's state, the counters, the history and the best model so far. Loading
// checks the checkpoint against the run and names the first thing that does not fit.

import { noGrad } from "../autograd/grad-mode.js";
import { DeepnodeError } from "../errors.js";
import { keep } from "../memory.js";
import type { AnyOptimizer } from "../optim/lr_scheduler.js";
import type { OptimizerStateDict, ParamState } from "../optim/optimizer.js";
import { getRngState, setRngState } from "../random.js";
import { Tensor } from "../tensor.js";
import {
  CheckpointError,
  checkCheckpointFiles,
  disposeCheckpoint,
  loadCheckpoint,
  readState,
  resolveCheckpoint,
  rotateCheckpoints,
  saveCheckpoint,
  type CheckpointData,
  type SaveHooks,
} from "./checkpoint.js";
import type { Module } from "../nn/module.js";
import type { AnyScheduler, EpochRecord } from "./options.js";

export const MODEL_FILE = "model.safetensors";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const BEST_FILE = "best_model.safetensors";

/** The best value of the monitored metric, its epoch and a copy of that epoch's weights. */
export interface BestState {
  value: number | null;
  epoch: number | null;
  weights: Record<string, Tensor> | null;
  /** Evaluations since the last improvement (for early stopping). */
  badEpochs: number;
}

/** An epoch stopped part way by a mid-epoch checkpoint (saveSteps). */
export interface PartialEpoch {
  /** Batches of the epoch done, and their samples and skipped steps. */
  batch: number;
  samples: number;
  skippedSteps: number;
  seconds: number;
  /** The running sums of the batch losses and the metrics. */
  sums: { loss: number; metrics: number[] };
  /** The generator before the epoch drew its shuffle, and at the save. */
  rngAtEpochStart: { seed: number; offset: number };
  rngAtSave: { seed: number; offset: number };
}

export interface Built {
  model: Module;
  optimizer: AnyOptimizer;
  scheduler: AnyScheduler | null;
}

export interface TrainerSnapshot {
  built: Built;
  partial: PartialEpoch | null;
  epoch: number;
  globalStep: number;
  history: EpochRecord[];
  best: BestState;
  stoppedEarly: boolean;
  stepsPerEpoch: number;
  keep: number;
  hooks: SaveHooks;
}

interface TrainerJson {
  history: EpochRecord[];
  best: { value: number | null; epoch: number | null; file: string | null; badEpochs: number };
  stoppedEarly: boolean;
  stepsPerEpoch: number;
  partial: PartialEpoch | null;
}

/** The optimizer's state tensors by "<parameter index>.<name>", and its numbers. */
function splitOptimizerState(dict: OptimizerStateDict<object>) {
  const tensors: Record<string, Tensor> = {};
  const numbers: Record<string, Record<string, number>> = {};
  for (const [index, state] of Object.entries(dict.state)) {
    for (const [name, value] of Object.entries(state)) {
      if (value instanceof Tensor) tensors[`${index}.${name}`] = value;
      else (numbers[index] ??= {})[name] = value;
    }
  }
  return { tensors, numbers };
}

/** Writes the run's checkpoint into saveDir, keeps the newest `keep`; returns its path. */
export function saveTrainerCheckpoint(saveDir: string, s: TrainerSnapshot): string {
  const { model, optimizer, scheduler } = s.built;
  const dict = optimizer.stateDict();
  const { tensors, numbers } = splitOptimizerState(dict);
  const files: Record<string, Record<string, Tensor>> = {
    [MODEL_FILE]: model.stateDict(),
    [OPTIMIZER_FILE]: tensors,
  };
  let bestFile: string | null = null;
  if (s.best.weights !== null) {
    bestFile = s.best.epoch === s.epoch ? MODEL_FILE : BEST_FILE;
    if (bestFile === BEST_FILE) files[BEST_FILE] = s.best.weights;
  }
  const trainer: TrainerJson = {
    history: s.history,
    best: { value: s.best.value, epoch: s.best.epoch, file: bestFile, badEpochs: s.best.badEpochs },
    stoppedEarly: s.stoppedEarly,
    stepsPerEpoch: s.stepsPerEpoch,
    partial: s.partial,
  };
  const data: CheckpointData = {
    tensors: files,
    state: {
      epoch: s.epoch,
      globalStep: s.globalStep,
      rng: getRngState(),
      optimizer: { kind: optimizer.constructor.name, paramGroups: dict.paramGroups },
      optimizerNumbers: numbers,
      scheduler: scheduler === null ? null : scheduler.stateDict(),
      trainer: trainer as unknown as Record<string, unknown>,
    },
  };
  const path = saveCheckpoint(saveDir, data, s.hooks);
  rotateCheckpoints(saveDir, s.keep, s.hooks);
  return path;
}

export interface Restored {
  path: string;
  epoch: number;
  globalStep: number;
  history: EpochRecord[];
  best: BestState;
  stoppedEarly: boolean;
  partial: PartialEpoch | null;
}

/** Runs load; a deepnode error it throws becomes a CheckpointError saying what did not fit. */
function fitting(dir: string, what: string, load: () => void): void {
  try {
    load();
  } catch (error) {
    if (!(error instanceof DeepnodeError) || error instanceof CheckpointError) throw error;
    throw new CheckpointError("resume", dir, `${what}: ${error.message}`, error);
  }
}

function tensorFile(dir: string, data: CheckpointData, name: string): Record<string, Tensor> {
  const tensors = data.tensors[name];
  if (tensors === undefined) throw new CheckpointError("resume", dir, `lists no ${name}`);
  return tensors;
}

function restoreOptimizer(dir: string, data: CheckpointData, optimizer: AnyOptimizer): void {
  const saved = data.state.optimizer;
  if (saved.kind !== optimizer.constructor.name) {
    const message =
      `holds the state of a ${saved.kind}, but this run's optimizer is a ` +
      `${optimizer.constructor.name}`;
    throw new CheckpointError("resume", dir, message);
  }
  const state: Record<number, ParamState> = {};
  for (const [index, numbers] of Object.entries(data.state.optimizerNumbers)) {
    state[Number(index)] = { ...numbers };
  }
  for (const [key, t] of Object.entries(tensorFile(dir, data, OPTIMIZER_FILE))) {
    const [index, name] = key.split(".") as [string, string];
    (state[Number(index)] ??= {})[name] = t;
  }
  const dict = { state, paramGroups: saved.paramGroups } as OptimizerStateDict<object>;
  fitting(dir, `${OPTIMIZER_FILE} does not fit the optimizer`, () => optimizer.loadStateDict(dict));
}

function restoreScheduler(dir: string, data: CheckpointData, scheduler: AnyScheduler | null) {
  const saved = data.state.scheduler;
  if ((saved === null) !== (scheduler === null)) {
    const message =
      saved === null
        ? "was saved without a scheduler, but this run has one"
        : `holds the state of a ${saved.kind}, but this run has no scheduler`;
    throw new CheckpointError("resume", dir, message);
  }
  if (saved === null || scheduler === null) return;
  const state = saved as Parameters<typeof scheduler.loadStateDict>[0];
  fitting(dir, "the scheduler's state does not fit", () =>
    (scheduler.loadStateDict as (s: typeof state) => void)(state),
  );
}

function restoreBest(dir: string, data: CheckpointData, json: TrainerJson): BestState {
  const { value, epoch, file, badEpochs } = json.best;
  if (file === null) return { value, epoch, weights: null, badEpochs };
  const weights: Record<string, Tensor> = {};
  noGrad(() => {
    for (const [name, t] of Object.entries(tensorFile(dir, data, file))) {
      weights[name] = keep(t.clone());
    }
  });
  return { value, epoch, weights, badEpochs };
}

function checkTrainerJson(dir: string, json: TrainerJson, stepsPerEpoch: number): void {
  if (!Array.isArray(json.history) || typeof json.best !== "object" || json.best === null) {
    throw new CheckpointError("resume", dir, "trainer_state.json has no history or best");
  }
  if (json.stepsPerEpoch !== stepsPerEpoch) {
    const message =
      `was saved by a run with ${json.stepsPerEpoch} batches per epoch, this one has ` +
      `${stepsPerEpoch} (another data set or batch size?)`;
    throw new CheckpointError("resume", dir, message);
  }
}

/**
 * Loads the checkpoint at `path` (a checkpoint folder, or a saveDir: its newest) into the
 * run's model, optimizer and scheduler, sets the generator's state, and returns the rest.
 */
export function loadTrainerCheckpoint(
  path: string,
  built: Built,
  stepsPerEpoch: number,
  device: string,
): Restored {
  const dir = resolveCheckpoint(path);
  const data = loadCheckpoint(dir, device);
  try {
    const json = data.state.trainer as unknown as TrainerJson;
    checkTrainerJson(dir, json, stepsPerEpoch);
    const weights = tensorFile(dir, data, MODEL_FILE);
    fitting(dir, `${MODEL_FILE} does not fit the model`, () => built.model.loadStateDict(weights));
    restoreOptimizer(dir, data, built.optimizer);
    restoreScheduler(dir, data, built.scheduler);
    const best = restoreBest(dir, data, json);
    fitting(dir, "the generator state is invalid", () => setRngState(data.state.rng));
    const { epoch, globalStep } = data.state;
    const { history, stoppedEarly, partial = null } = json;
    return { path: dir, epoch, globalStep, history, best, stoppedEarly, partial };
  } finally {
    disposeCheckpoint(data);
  }
}

/** Where the run of a checkpoint stands, from its trainer_state.json alone. */
export interface CheckpointProgress {
  /** The checkpoint folder (the newest of a saveDir). */
  path: string;
  /** Epochs completed, and optimizer steps. */
  epoch: number;
  globalStep: number;
  /** Early stopping (or a callback) ended that run before its last epoch. */
  stoppedEarly: boolean;
}

/**
 * The progress of the checkpoint at `path` (a checkpoint folder, or a saveDir: its newest),
 * read without loading a tensor, so that a caller can check it before building anything.
 * Its files are checked too (present, sizes, SHA-256): what fails here needs no model.
 */
export function readCheckpointProgress(path: string): CheckpointProgress {
  const dir = resolveCheckpoint(path);
  const { epoch, globalStep, trainer, files } = readState(dir);
  checkCheckpointFiles(dir, files);
  return { path: dir, epoch, globalStep, stoppedEarly: trainer.stoppedEarly === true };
}

/** Whether a run resumed there with `epochs` epochs would train nothing. */
export function isFinished(progress: { epoch: number; stoppedEarly: boolean }, epochs: number) {
  return progress.stoppedEarly || progress.epoch >= epochs;
}
