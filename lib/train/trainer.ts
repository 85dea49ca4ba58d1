// The Trainer: fit a model over epochs of batches with an optimizer, an optional schedule,
// clipping, evaluation, the best model kept by a metric, early stopping, callbacks and
// checkpoints that a killed run resumes from. Each step runs in a scope, so nothing it makes
// outlives it; the loss and metrics are added up on the device and read back every logEvery
// steps and once per epoch, never per step.

import { noGrad } from "../autograd/grad-mode.js";
import { activityLine, hostWaits } from "../backend/cuda/index.js";
import {
  getDefaultDevice,
  parseDevice,
  setDefaultDevice,
  type Device,
} from "../backend/registry.js";
import { DataLoader, type Batch } from "../data/dataloader.js";
import type { Dataset, Sample } from "../data/dataset.js";
import type { Module } from "../nn/module.js";
import type { TypedArray } from "../dtype.js";
import { DeviceError, ValueError } from "../errors.js";
import { keep, scope } from "../memory.js";
import { zeros } from "../ops/creation.js";
import { clipGradNorm } from "../optim/clip.js";
import { LRScheduler, warmupLinear, type AnyOptimizer } from "../optim/lr_scheduler.js";
import { ReduceLROnPlateau } from "../optim/plateau.js";
import { paramGroupsWithDecay } from "../optim/regularization.js";
import { getRngState, manualSeed, setRngState } from "../random.js";
import { Tensor, fromTypedArray } from "../tensor.js";
import { EpochProgress, JsonLines } from "./monitor.js";
import {
  checkTrainerOptions,
  type AnyScheduler,
  type BatchSource,
  type Callbacks,
  type DataSource,
  type EpochRecord,
  type FitResult,
  type Model,
  type TrainerOptions,
} from "./options.js";
import { plotHistory } from "./plot.js";
import * as log from "../log.js";
import {
  isFinished,
  loadTrainerCheckpoint,
  saveTrainerCheckpoint,
  type BestState,
  type PartialEpoch,
} from "./resume.js";
import { removeLeftovers } from "./checkpoint.js";

/** N for cuda:N, else null. */
function cudaOrdinal(device: Device): number | null {
  return device.startsWith("cuda:") ? Number(device.slice(5)) : null;
}

/** The loss and each metric added up over an epoch's batches, on the device. */
class RunningSums {
  private loss: Tensor;
  private readonly metrics: Tensor[];

  /** Zeros, or the sums a mid-epoch checkpoint saved. */
  constructor(count: number, saved?: PartialEpoch["sums"]) {
    this.loss = zeros([]).fill_(saved?.loss ?? 0);
    this.metrics = Array.from({ length: count }, (_, i) => zeros([]).fill_(saved?.metrics[i] ?? 0));
  }

  /** The sums as numbers, for a checkpoint (float32 values, so they round-trip exactly). */
  values(): PartialEpoch["sums"] {
    return { loss: this.loss.item(), metrics: this.metrics.map((m) => m.item()) };
  }

  /** Adds a batch's mean loss and metric sums; call it inside the step's scope. */
  add(loss: Tensor, metricSums: Tensor[]): void {
    noGrad(() => {
      const previous = this.loss;
      this.loss = keep(previous.add(loss.detach()));
      previous.dispose();
      metricSums.forEach((sum, i) => {
        const old = this.metrics[i]!;
        this.metrics[i] = keep(old.add(sum));
        old.dispose();
      });
    });
  }

  /** The mean of the batch losses so far (one read back). */
  meanLoss(batches: number): number {
    return this.loss.item() / Math.max(batches, 1);
  }

  metricValues(samples: number): number[] {
    return this.metrics.map((m) => m.item() / Math.max(samples, 1));
  }

  dispose(): void {
    this.loss.dispose();
    for (const m of this.metrics) m.dispose();
  }
}

/** Counts of the epoch in progress. */
interface Tally {
  start: number;
  batch: number;
  samples: number;
  skippedSteps: number;
}

function newTally(): Tally {
  return { start: performance.now(), batch: 0, samples: 0, skippedSteps: 0 };
}

function partialTally(p: PartialEpoch): Tally {
  const { batch, samples, skippedSteps } = p;
  return { start: performance.now() - p.seconds * 1000, batch, samples, skippedSteps };
}

function isModule(value: unknown): value is Module {
  return typeof value === "object" && value !== null && "parameters" in value;
}

/** Disposes every Tensor field of a batch (inputs, targets and any a batch source adds). */
function disposeBatch(batch: Batch): void {
  for (const value of Object.values(batch)) if (value instanceof Tensor) value.dispose();
}

/**
 * Trains a model M on batches B; see TrainerOptions. The defaults (a DataLoader's batches, a
 * model whose forward takes the inputs) need no type arguments.
 */
export class Trainer<B extends Batch = Batch, M extends Module = Model> {
  readonly options: TrainerOptions<B, M>;
  /** The device trained on, by its canonical name ("cuda" is cuda:0). */
  readonly device: Device;
  /** Completed epochs and optimizer steps (restored by resume). */
  epoch = 0;
  globalStep = 0;
  history: EpochRecord[] = [];
  best: BestState = { value: null, epoch: null, weights: null, badEpochs: 0 };
  private built: { model: M; optimizer: AnyOptimizer; scheduler: AnyScheduler | null } | null =
    null;
  private readonly callbacks: Callbacks<B, M>[];
  private stopRequested = false;
  private stoppedEarly = false;
  private lastCheckpoint: string | null = null;
  private progress = new EpochProgress(false);
  private stepsPerEpoch = 0;
  /** Where a mid-epoch checkpoint left the epoch that resume continues. */
  private partial: PartialEpoch | null = null;
  private metricsLog: JsonLines | null = null;

  constructor(options: TrainerOptions<B, M>) {
    checkTrainerOptions(options);
    this.options = options;
    this.device = parseDevice(options.device ?? getDefaultDevice());
    const { callbacks = [] } = options;
    this.callbacks = Array.isArray(callbacks) ? callbacks : [callbacks];
  }

  get model(): M {
    if (this.built !== null) return this.built.model;
    if (!isModule(this.options.model)) {
      throw new ValueError("Trainer", "the model is built by fit(); call fit() first", "model");
    }
    return this.options.model;
  }

  get optimizer(): AnyOptimizer | null {
    return this.built?.optimizer ?? null;
  }

  get scheduler(): AnyScheduler | null {
    return this.built?.scheduler ?? null;
  }

  /** Asks the loop to stop after the current epoch (from a callback). */
  stop(): void {
    this.stopRequested = true;
  }

  /** Trains for the remaining epochs; see TrainerOptions. */
  async fit(): Promise<FitResult> {
    return this.onDevice(async () => {
      const { train, evaluation } = this.setup();
      const resumedFrom = this.options.resume === undefined ? null : this.lastCheckpoint;
      const firstEpoch = this.epoch;
      if (resumedFrom !== null) this.logFinished(resumedFrom);
      for (const c of this.callbacks) c.onTrainBegin?.(this);
      while (this.epoch < this.options.epochs && !this.stoppedEarly) {
        await this.runEpoch(train, evaluation);
      }
      const result = { ...this.finish(), epochsRun: this.epoch - firstEpoch, resumedFrom };
      for (const c of this.callbacks) c.onTrainEnd?.(result, this);
      return result;
    });
  }

  /** Loss and metrics of the model on data (default: evalData), in eval mode. */
  evaluate(data?: DataSource<B>): Record<string, number> {
    const source = data ?? this.options.evalData;
    if (source === undefined) {
      throw new ValueError("Trainer.evaluate", "no data: pass some or set evalData", "data");
    }
    return this.onDevice(() =>
      this.evaluateLoader(this.loaderFor(source, this.evalBatch(), false)),
    );
  }

  /** The model's outputs for every sample of data, in order: [N, ...outputShape]. */
  predict(data: DataSource<B>): Tensor {
    return this.onDevice(() => {
      const model = this.model;
      model.eval();
      const chunks: TypedArray[] = [];
      let shape: readonly number[] = [0];
      noGrad(() => {
        for (const batch of this.loaderFor(data, this.evalBatch(), false)) {
          scope(() => {
            const outputs = this.forwardBatch(model, batch);
            chunks.push(outputs.dataSync());
            shape = outputs.shape;
          });
          disposeBatch(batch);
        }
      });
      return joinRows(chunks, shape);
    });
  }

  /** A resumed run that has nothing left to do says so (DEEPNODE_LOG=info). */
  private logFinished(path: string): void {
    const { epoch, stoppedEarly } = this;
    if (!isFinished({ epoch, stoppedEarly }, this.options.epochs)) return;
    const where = stoppedEarly
      ? `stopped early at epoch ${epoch}`
      : `is at epoch ${epoch} and epochs is ${this.options.epochs}`;
    log.info(`Trainer: ${path} ${where}; nothing left to train`);
  }

  // ---- setup --------------------------------------------------------------------------

  private onDevice<T>(run: () => T): T {
    const previous = getDefaultDevice();
    setDefaultDevice(this.device);
    let result: T;
    try {
      result = run();
    } catch (error) {
      setDefaultDevice(previous);
      throw error;
    }
    if (result instanceof Promise) {
      return result.finally(() => setDefaultDevice(previous)) as T;
    }
    setDefaultDevice(previous);
    return result;
  }

  private evalBatch(): number {
    return this.options.evalBatchSize ?? this.options.batchSize ?? 32;
  }

  /** A second fit() starts over (with a new model when the option is a factory). */
  private reset(): void {
    this.disposeBest();
    this.epoch = 0;
    this.globalStep = 0;
    this.history = [];
    this.best = { value: null, epoch: null, weights: null, badEpochs: 0 };
    this.stopRequested = false;
    this.stoppedEarly = false;
    this.lastCheckpoint = null;
    this.partial = null;
  }

  private disposeBest(): void {
    for (const t of Object.values(this.best.weights ?? {})) t.dispose();
    this.best.weights = null;
  }

  /** The model's outputs for a batch: the forward option, or model.forward(inputs). */
  private forwardBatch(model: M, batch: B): Tensor {
    if (this.options.forward !== undefined) return this.options.forward(model, batch);
    return (model as unknown as Model).forward(batch.inputs);
  }

  private setup(): { train: BatchSource<B>; evaluation: BatchSource<B> | null } {
    const o = this.options;
    this.reset();
    if (o.seed !== undefined) manualSeed(o.seed);
    const model = typeof o.model === "function" ? o.model() : o.model;
    this.checkModelDevice(model);
    const train = this.loaderFor(o.trainData, o.batchSize ?? 32, o.shuffle ?? true);
    const evaluation =
      o.evalData === undefined ? null : this.loaderFor(o.evalData, this.evalBatch(), false);
    const optimizer = this.buildOptimizer(model);
    const scheduler = this.buildScheduler(optimizer, train.length);
    this.built = { model, optimizer, scheduler };
    this.stepsPerEpoch = train.length;
    this.progress = new EpochProgress(o.progress ?? true);
    if (o.saveDir !== undefined) removeLeftovers(o.saveDir);
    if (o.resume !== undefined) this.resume(o.resume, train.length);
    // Opened after resuming (it makes the file's folders), so a refused checkpoint leaves
    // nothing made; a fresh run starts the file afresh, a resumed one keeps its epochs.
    if (o.metricsFile !== undefined) this.metricsLog = new JsonLines(o.metricsFile);
    const resumedEpochs = o.resume === undefined ? 0 : this.epoch;
    this.metricsLog?.filter((record) => Number(record.epoch) <= resumedEpochs);
    return { train, evaluation };
  }

  private resume(path: string, stepsPerEpoch: number): void {
    const restored = loadTrainerCheckpoint(path, this.built!, stepsPerEpoch, this.device);
    this.epoch = restored.epoch;
    this.globalStep = restored.globalStep;
    this.history = restored.history;
    this.best = restored.best;
    this.stoppedEarly = restored.stoppedEarly;
    this.lastCheckpoint = restored.path;
    this.partial = restored.partial;
  }

  private checkModelDevice(model: Module): void {
    const stray = model.parameters().find((p) => p.device !== this.device);
    if (stray !== undefined) {
      throw new DeviceError(
        "Trainer",
        `the model has parameters on ${stray.device} but the trainer runs on ${this.device};` +
          " build the model there, or pass a function that builds it",
        [stray.device, this.device],
      );
    }
  }

  /** A batch source as it is; a Dataset in a DataLoader (whose batches are B's inputs). */
  private loaderFor(data: DataSource<B>, batchSize: number, shuffle: boolean): BatchSource<B> {
    if (data instanceof DataLoader || typeof (data as Dataset<Sample>).get !== "function") {
      return data as BatchSource<B>;
    }
    const options = { batchSize, shuffle, device: this.device };
    return new DataLoader(data as Dataset<Sample>, options) as unknown as BatchSource<B>;
  }

  private buildOptimizer(model: M): AnyOptimizer {
    const { optimizer, weightDecay } = this.options;
    if (typeof optimizer !== "function") return optimizer;
    const params =
      weightDecay === undefined ? model.parameters() : paramGroupsWithDecay(model, weightDecay);
    return optimizer(params);
  }

  private buildScheduler(optimizer: AnyOptimizer, stepsPerEpoch: number): AnyScheduler | null {
    const { scheduler, warmupSteps = 0, epochs } = this.options;
    const totalSteps = stepsPerEpoch * epochs;
    if (typeof scheduler === "function") {
      return scheduler(optimizer, { totalSteps, stepsPerEpoch, warmupSteps });
    }
    if (scheduler !== undefined) return scheduler;
    if (this.options.warmupSteps === undefined) return null;
    return warmupLinear(optimizer, warmupSteps, Math.max(totalSteps, warmupSteps));
  }

  // ---- the loop -----------------------------------------------------------------------

  private async runEpoch(train: BatchSource<B>, evaluation: BatchSource<B> | null): Promise<void> {
    const o = this.options;
    const epoch = this.epoch + 1;
    for (const c of this.callbacks) c.onEpochBegin?.(epoch, this);
    const cuda = log.infoEnabled() ? cudaOrdinal(this.device) : null;
    const waits = cuda === null ? null : hostWaits(cuda);
    const record = this.trainEpoch(train, epoch);
    if (cuda !== null)
      log.info(`Trainer: epoch ${epoch} on cuda:${cuda}: ${activityLine(cuda, waits!)}`);
    const isLast = epoch === o.epochs;
    if (evaluation !== null && (epoch % (o.evalEvery ?? 1) === 0 || isLast)) {
      record.eval = this.evaluateLoader(evaluation);
      for (const c of this.callbacks) c.onEvaluate?.(record.eval, this);
    }
    this.epoch = epoch;
    this.track(record);
    this.history.push(record);
    this.metricsLog?.append(record);
    for (const c of this.callbacks) if (c.onEpochEnd?.(record, this) === true) this.stop();
    if (this.stopRequested && !isLast) this.stoppedEarly = true;
    const saveEvery = o.saveEvery ?? 1;
    if (o.saveDir !== undefined && (epoch % saveEvery === 0 || isLast || this.stoppedEarly)) {
      this.save(o.saveDir);
    }
    if (o.plotFile !== undefined) await plotHistory(this.history, o.plotFile);
  }

  private trainEpoch(loader: BatchSource<B>, epoch: number): EpochRecord {
    const partial = this.partial;
    this.partial = null;
    const sums = new RunningSums(Object.keys(this.options.metrics ?? {}).length, partial?.sums);
    const tally = partial === null ? newTally() : partialTally(partial);
    const epochStartRng = partial?.rngAtEpochStart ?? getRngState();
    this.built!.model.train();
    this.progress.start(`${epoch}/${this.options.epochs}`, loader.length);
    try {
      const batches = this.batchesFrom(loader, partial);
      for (let next = batches.next(); next.done !== true; next = batches.next()) {
        const batch = next.value;
        tally.batch++;
        tally.samples += batch.targets.shape[0] ?? 1;
        this.globalStep++;
        if (!this.step(batch, sums)) tally.skippedSteps++;
        disposeBatch(batch);
        this.afterStep(epoch, loader.length, tally, sums);
        this.maybeSaveMidEpoch(loader.length, tally, sums, epochStartRng);
      }
      this.stepScheduler("epoch");
      return this.epochRecord(epoch, tally, sums);
    } finally {
      this.progress.stop();
      sums.dispose();
    }
  }

  /**
   * The epoch's batches; when resuming mid-epoch, the generator is set back to the epoch's
   * start so the shuffle is redrawn, the batches done are skipped, and then it is set to
   * where the checkpoint left it (so dropout continues as it would have).
   */
  private batchesFrom(loader: BatchSource<B>, partial: PartialEpoch | null): Iterator<B> {
    if (partial !== null) setRngState(partial.rngAtEpochStart);
    const batches = loader[Symbol.iterator]();
    if (partial === null) return batches;
    for (let b = 0; b < partial.batch; b++) {
      const next = batches.next();
      if (next.done === true) break;
      disposeBatch(next.value);
    }
    setRngState(partial.rngAtSave);
    return batches;
  }

  private maybeSaveMidEpoch(
    batches: number,
    tally: Tally,
    sums: RunningSums,
    rngAtEpochStart: { seed: number; offset: number },
  ): void {
    const { saveDir, saveSteps } = this.options;
    if (saveDir === undefined || saveSteps === undefined) return;
    if (this.globalStep % saveSteps !== 0 || tally.batch === batches) return;
    const seconds = (performance.now() - tally.start) / 1000;
    const { batch, samples, skippedSteps } = tally;
    this.save(saveDir, {
      batch,
      samples,
      skippedSteps,
      seconds,
      sums: sums.values(),
      rngAtEpochStart,
      rngAtSave: getRngState(),
    });
  }

  /** An LRScheduler steps at its interval (per step by default). */
  private stepScheduler(at: "step" | "epoch"): void {
    const { scheduler } = this.built!;
    const interval = this.options.schedulerInterval ?? "step";
    if (scheduler instanceof LRScheduler && interval === at) scheduler.step();
  }

  /** The schedule, the progress bar and onStepEnd; the loss is read every logEvery steps. */
  private afterStep(epoch: number, batches: number, tally: Tally, sums: RunningSums): void {
    this.stepScheduler("step");
    const { batch } = tally;
    const logged = batch % (this.options.logEvery ?? 10) === 0 || batch === batches;
    const loss = logged ? sums.meanLoss(batch) : undefined;
    this.progress.update(batch, loss, tally.samples / ((performance.now() - tally.start) / 1000));
    const info = { epoch, batch, batches, globalStep: this.globalStep, loss };
    for (const c of this.callbacks) c.onStepEnd?.(info, this);
  }

  private epochRecord(epoch: number, tally: Tally, sums: RunningSums): EpochRecord {
    const names = Object.keys(this.options.metrics ?? {});
    const train: Record<string, number> = { loss: sums.meanLoss(tally.batch) };
    sums.metricValues(tally.samples).forEach((value, i) => (train[names[i]!] = value));
    const seconds = (performance.now() - tally.start) / 1000;
    const lr = (this.built!.optimizer.paramGroups[0]!.options as { lr: number }).lr;
    const { globalStep } = this;
    const { skippedSteps } = tally;
    return {
      epoch,
      globalStep,
      lr,
      train,
      seconds,
      samplesPerSecond: tally.samples / seconds,
      skippedSteps,
    };
  }

  /** One optimizer step on a batch; false when the gradients were not finite and not applied. */
  private step(batch: B, sums: RunningSums): boolean {
    const { model, optimizer } = this.built!;
    const { lossFn, metrics = {}, clipGradNorm: maxNorm } = this.options;
    const { targets } = batch;
    return scope(() => {
      optimizer.zeroGrad();
      const outputs = this.forwardBatch(model, batch);
      const loss = lossFn(outputs, targets);
      loss.backward();
      const metricSums = noGrad(() =>
        Object.values(metrics).map((metric) => metric(outputs.detach(), targets)),
      );
      sums.add(loss, metricSums);
      if (maxNorm !== undefined) {
        const norm = clipGradNorm(model.parameters(), maxNorm);
        if (!Number.isFinite(norm)) return false;
      }
      return optimizer.step();
    });
  }

  private evaluateLoader(loader: BatchSource<B>): Record<string, number> {
    const model = this.model;
    const metrics = this.options.metrics ?? {};
    const parts: { loss: Tensor; count: number; metrics: Tensor[] }[] = [];
    model.eval();
    noGrad(() => {
      for (const batch of loader) {
        const { targets } = batch;
        const count = targets.shape[0] ?? 1;
        parts.push(
          scope(() => {
            const outputs = this.forwardBatch(model, batch);
            const loss = this.options.lossFn(outputs, targets);
            return { loss, count, metrics: Object.values(metrics).map((m) => m(outputs, targets)) };
          }),
        );
        disposeBatch(batch);
      }
    });
    return readEvaluation(parts, Object.keys(metrics));
  }

  // ---- the best model, early stopping, saving ------------------------------------------

  /** The value of metricForBest in a record, or undefined when the record lacks it. */
  private monitored(record: EpochRecord): number | undefined {
    const name = this.options.metricForBest ?? "loss";
    if (name.startsWith("train.")) return record.train[name.slice(6)];
    if (name.startsWith("eval.")) return record.eval?.[name.slice(5)];
    return this.options.evalData === undefined ? record.train[name] : record.eval?.[name];
  }

  private greaterIsBetter(): boolean {
    const name = this.options.metricForBest ?? "loss";
    return this.options.greaterIsBetter ?? !name.endsWith("loss");
  }

  /** Throws when the record has the numbers metricForBest reads but not that name. */
  private checkMonitored(record: EpochRecord): void {
    const name = this.options.metricForBest ?? "loss";
    const fromTrain = name.startsWith("train.") || this.options.evalData === undefined;
    const numbers = fromTrain ? record.train : record.eval;
    if (numbers === undefined) return; // an epoch without evaluation
    const bare = name.replace(/^(train|eval)\./, "");
    if (bare in numbers) return;
    const names = Object.keys(numbers).join(", ");
    const message =
      `metricForBest ${name} is not among the ` +
      `${fromTrain ? "training" : "evaluation"} numbers (${names})`;
    throw new ValueError("Trainer", message, "metricForBest");
  }

  private track(record: EpochRecord): void {
    const { scheduler } = this.built!;
    const plateau = scheduler instanceof ReduceLROnPlateau ? scheduler : null;
    const tracking = this.options.loadBestModelAtEnd === true || this.options.earlyStopping;
    if (plateau !== null || tracking) this.checkMonitored(record);
    const value = this.monitored(record);
    if (value === undefined) return;
    plateau?.step(value);
    if (!tracking) return;
    const minDelta = this.options.earlyStopping?.minDelta ?? 0;
    const best = this.best.value;
    const improved =
      best === null || (this.greaterIsBetter() ? value > best + minDelta : value < best - minDelta);
    if (improved) {
      this.keepBestWeights(value, record.epoch);
      return;
    }
    this.best.badEpochs++;
    const patience = this.options.earlyStopping?.patience;
    if (patience !== undefined && this.best.badEpochs >= patience) this.stop();
  }

  private keepBestWeights(value: number, epoch: number): void {
    const old = this.best.weights;
    const weights: Record<string, Tensor> = {};
    noGrad(() => {
      for (const [name, t] of Object.entries(this.model.stateDict()))
        weights[name] = keep(t.clone());
    });
    if (old !== null) for (const t of Object.values(old)) t.dispose();
    this.best = { value, epoch, weights, badEpochs: 0 };
  }

  private save(saveDir: string, partial: PartialEpoch | null = null): void {
    const path = saveTrainerCheckpoint(saveDir, {
      partial,
      built: this.built!,
      epoch: this.epoch,
      globalStep: this.globalStep,
      history: this.history,
      best: this.best,
      stoppedEarly: this.stoppedEarly,
      stepsPerEpoch: this.stepsPerEpoch,
      keep: this.options.keepCheckpoints ?? 2,
      hooks: this.options.checkpointHooks ?? {},
    });
    this.lastCheckpoint = path;
    for (const c of this.callbacks) c.onSave?.(path, this);
  }

  private finish(): Omit<FitResult, "epochsRun" | "resumedFrom"> {
    const restore =
      this.options.loadBestModelAtEnd === true || this.options.earlyStopping !== undefined;
    const weights = this.best.weights;
    if (restore && weights !== null) this.model.loadStateDict(weights);
    this.disposeBest();
    return {
      history: this.history,
      globalStep: this.globalStep,
      bestEpoch: this.best.epoch,
      bestValue: this.best.value,
      stoppedEarly: this.stoppedEarly,
      restoredBest: restore && weights !== null,
      lastCheckpoint: this.lastCheckpoint,
    };
  }
}

/** The mean loss (weighted by batch size) and metrics of an evaluation; disposes the parts. */
function readEvaluation(
  parts: { loss: Tensor; count: number; metrics: Tensor[] }[],
  names: string[],
): Record<string, number> {
  let samples = 0;
  let lossSum = 0;
  const sums = names.map(() => 0);
  for (const part of parts) {
    samples += part.count;
    lossSum += part.loss.item() * part.count;
    part.metrics.forEach((m, i) => (sums[i]! += m.item()));
    part.loss.dispose();
    for (const m of part.metrics) m.dispose();
  }
  const result: Record<string, number> = { loss: lossSum / Math.max(samples, 1) };
  names.forEach((name, i) => (result[name] = sums[i]! / Math.max(samples, 1)));
  return result;
}

/** Batches of outputs, read back, as one tensor [N, ...rest of shape]. */
function joinRows(chunks: TypedArray[], shape: readonly number[]): Tensor {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const Ctor = (chunks[0]?.constructor ?? Float32Array) as new (n: number) => TypedArray;
  const out = new Ctor(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  const rowSize = shape.slice(1).reduce((a, b) => a * b, 1);
  return fromTypedArray(out, [rowSize === 0 ? 0 : total / rowSize, ...shape.slice(1)]);
}

/** new Trainer(options).fit(). */
export async function fit<B extends Batch = Batch, M extends Module = Model>(
  options: TrainerOptions<B, M>,
): Promise<FitResult> {
  return new Trainer(options).fit();
}
