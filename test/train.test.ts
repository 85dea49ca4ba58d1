// The Trainer: values it reports against direct computation, the schedule it drives, no
// tensor leaked and no read back per step, early stopping and the best model restored to
// the exact weights of the best epoch, option errors, checkpoints that name what is wrong,
// resuming in process and after a real SIGKILL (during an epoch, during a save, at random
// times) to the same final weights bit for bit, the metrics file and the curves' PNG.

import { spawn, execFileSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { TensorDataset } from "../lib/data/dataset.js";
import { DeviceError, StateDictError, ValueError } from "../lib/errors.js";
import {
  F,
  Tensor,
  getDefaultDevice,
  liveTensors,
  manualSeed,
  nn,
  noGrad,
  optim,
  randn,
  zeros,
} from "../lib/index.js";
import { fromTypedArray } from "../lib/tensor.js";
import {
  CheckpointError,
  EpochProgress,
  listCheckpoints,
  loadCheckpoint,
  Trainer,
  accuracy,
  isFinished,
  readCheckpointProgress,
  type EpochRecord,
  type TrainerOptions,
} from "../lib/train/index.js";
import { disposeCheckpoint } from "../lib/train/checkpoint.js";
import { expectThrows } from "./helpers.js";

const root = join(import.meta.dirname, "..");
const scratch = mkdtempSync(join(tmpdir(), "deepnode-train-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let dirCount = 0;
function freshDir(): string {
  return join(scratch, `run-${dirCount++}`);
}

/** Labels from a fixed rule over seeded normal inputs: [count, 4] -> class in {0, 1, 2}. */
function classification(count: number, seed: number): TensorDataset {
  manualSeed(seed);
  const inputs = randn([count, 4]);
  const x = inputs.dataSync() as Float32Array;
  inputs.dispose();
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const score = x[i * 4]! - x[i * 4 + 1]! + 0.5 * x[i * 4 + 2]!;
    labels[i] = score > 0.5 ? 2 : score < -0.5 ? 0 : 1;
  }
  return new TensorDataset({ data: x, shape: [count, 4] }, labels);
}

const trainSet = classification(64, 11);
const evalSet = classification(24, 12);

function mlp(): nn.Sequential {
  return new nn.Sequential(new nn.Linear(4, 8), new nn.ReLU(), new nn.Linear(8, 3));
}

function baseOptions(overrides: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    model: mlp,
    trainData: trainSet,
    evalData: evalSet,
    epochs: 3,
    batchSize: 8,
    optimizer: (params) => new optim.Adam(params, { lr: 0.01 }),
    lossFn: (outputs, targets) => F.crossEntropy(outputs, targets),
    metrics: { accuracy },
    seed: 5,
    progress: false,
    ...overrides,
  };
}

function weightsOf(model: nn.Module): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(model.stateDict())) out[name] = Array.from(t.dataSync());
  return out;
}

function lrOf(trainer: Trainer): number {
  return (trainer.optimizer!.paramGroups[0]!.options as { lr: number }).lr;
}

describe("Trainer.fit, evaluate and predict", () => {
  it("reports evaluation loss and accuracy equal to a direct computation", async () => {
    const trainer = new Trainer(baseOptions({ evalBatchSize: 5 }));
    const result = await trainer.fit();
    expect(result.history.map((r) => r.epoch)).toEqual([1, 2, 3]);
    expect(result.globalStep).toBe(24);

    const model = trainer.model;
    model.eval();
    const inputs = fromTypedArray(evalSet.inputs.data, [24, 4]);
    const targets = fromTypedArray(evalSet.targets.data, [24]);
    const { loss, correct } = noGrad(() => {
      const outputs = model.forward(inputs);
      return {
        loss: F.crossEntropy(outputs, targets).item(),
        correct: outputs.argmax(1).eq(targets).float().sum().item(),
      };
    });
    const last = result.history[2]!.eval!;
    expect(last.loss).toBeCloseTo(loss, 6);
    expect(last.accuracy).toBe(correct / 24);
    expect(trainer.evaluate()).toEqual(last);
    expect(result.history[2]!.train.loss).toBeLessThan(result.history[0]!.train.loss!);
  });

  it("starts over on a second fit: a new model, the same seeded history", async () => {
    const trainer = new Trainer(baseOptions({ epochs: 2, model: () => dropoutMlp() }));
    const first = await trainer.fit();
    const firstModel = trainer.model;
    const second = await trainer.fit();
    expect(trainer.model).not.toBe(firstModel);
    expect(second.history.map(withoutTimes)).toEqual(first.history.map(withoutTimes));
    expect(second.globalStep).toBe(16);
  });

  it("trains on the device it is given, and refuses a model built on another", async () => {
    const cpu = new Trainer(baseOptions({ epochs: 1 }));
    await cpu.fit();
    const reference = new Trainer(baseOptions({ epochs: 1, device: "reference" }));
    await reference.fit();
    expect(reference.model.parameters().map((p) => p.device)).toEqual(
      new Array(4).fill("reference"),
    );
    expect(getDefaultDevice()).toBe("cpu");
    const [a, b] = [weightsOf(cpu.model), weightsOf(reference.model)];
    for (const name of Object.keys(a)) {
      a[name]!.forEach((v, i) => expect(Math.abs(v - b[name]![i]!), name).toBeLessThan(1e-5));
    }
    expectThrows(
      () => new Trainer(baseOptions({ device: "gpu" })),
      ValueError,
      `device: unknown device 'gpu' (expected "cpu", "reference", "cuda" or "cuda:N")`,
    );
    const onCpu = new Trainer(baseOptions({ model: mlp(), device: "reference" }));
    const error = await onCpu.fit().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeviceError);
    expect((error as Error).message).toBe(
      "Trainer: the model has parameters on cpu but the trainer runs on reference; " +
        "build the model there, or pass a function that builds it",
    );
    expect(getDefaultDevice()).toBe("cpu");
  });

  it("predicts the forward pass of every sample, in order", async () => {
    const trainer = new Trainer(baseOptions({ epochs: 1 }));
    await trainer.fit();
    const predicted = trainer.predict(evalSet);
    expect(predicted.shape).toEqual([24, 3]);
    const inputs = fromTypedArray(evalSet.inputs.data, [24, 4]);
    trainer.model.eval();
    const direct = noGrad(() => trainer.model.forward(inputs));
    expect(Array.from(predicted.dataSync())).toEqual(Array.from(direct.dataSync()));
  });

  it("drives warmupSteps as a linear warmup then decay, one value per step", async () => {
    const lrs: number[] = [];
    const trainer = new Trainer(
      baseOptions({
        epochs: 2,
        warmupSteps: 4,
        callbacks: {
          onStepEnd: (_s, t) => lrs.push(lrOf(t)),
        },
      }),
    );
    await trainer.fit();
    // 16 steps: after step s the schedule is at s; lr = 0.01 * (s < 4 ? s / 4 : (16 - s) / 12).
    const expected = Array.from({ length: 16 }, (_, i) => {
      const s = i + 1;
      return 0.01 * (s < 4 ? s / 4 : (16 - s) / 12);
    });
    lrs.forEach((lr, i) => expect(lr).toBeCloseTo(expected[i]!, 12));
    expect(lrs).toHaveLength(16);
  });

  it("leaks no tensor from epoch to epoch and reads nothing back between steps", async () => {
    const live: number[] = [];
    const readsBetweenSteps: number[] = [];
    let reads = 0;
    const original = Tensor.prototype.dataSync;
    Tensor.prototype.dataSync = function (this: Tensor) {
      reads++;
      return original.call(this);
    };
    try {
      const trainer = new Trainer(
        baseOptions({
          epochs: 3,
          logEvery: 1000,
          callbacks: {
            onStepEnd: (step) => {
              if (step.batch > 1 && step.batch < step.batches) readsBetweenSteps.push(reads);
              reads = 0;
            },
            onEpochEnd: () => void live.push(liveTensors()),
          },
        }),
      );
      await trainer.fit();
    } finally {
      Tensor.prototype.dataSync = original;
    }
    expect(readsBetweenSteps.length).toBeGreaterThan(0);
    expect(readsBetweenSteps.every((n) => n === 0)).toBe(true);
    expect(live[2]).toBe(live[1]);
  });

  it("stops after the epoch in which a callback asks it to", async () => {
    const result = await new Trainer(
      baseOptions({ epochs: 5, callbacks: { onEpochEnd: (record) => record.epoch === 2 } }),
    ).fit();
    expect(result.history.map((r) => r.epoch)).toEqual([1, 2]);
    expect(result.stoppedEarly).toBe(true);
    expect(result.restoredBest).toBe(false);
  });

  it("rejects bad options by name", () => {
    const cases: [Partial<TrainerOptions> & Record<string, unknown>, RegExp][] = [
      [{ epochs: 0 }, /^Trainer: epochs must be a positive integer, got 0$/],
      [{ batchSize: 2.5 }, /^Trainer: batchSize must be a positive integer, got 2\.5$/],
      [{ learningRate: 1 }, /^Trainer: unknown option learningRate$/],
      [
        { trainData: [1, 2] as never },
        /trainData must be a Dataset \(length and get\) or a DataLoader/,
      ],
      [
        { optimizer: new optim.SGD(mlp().parameters(), { lr: 0.1 }), weightDecay: 0.1 },
        /weightDecay needs an optimizer factory/,
      ],
      [{ earlyStopping: { patience: 0 } }, /earlyStopping\.patience must be a positive integer/],
      [{ metrics: { loss: accuracy } }, /metrics must be named other than loss/],
      [{ clipGradNorm: NaN }, /^Trainer: clipGradNorm must be a number > 0, got NaN$/],
      [{ clipGradNorm: "5" as never }, /^Trainer: clipGradNorm must be a number > 0, got "5"$/],
    ];
    for (const [overrides, message] of cases) {
      expectThrows(
        () => new Trainer(baseOptions(overrides as Partial<TrainerOptions>)),
        ValueError,
        message,
      );
    }
  });
});

describe("Trainer: decay groups, clipping, skipped steps and plateaus", () => {
  it("gives an optimizer factory groups with weightDecay, biases exempt", async () => {
    const seen: { weightDecay: number; shapes: number[][] }[] = [];
    const trainer = new Trainer(
      baseOptions({
        epochs: 1,
        weightDecay: 0.1,
        optimizer: (groups) => {
          for (const g of groups as optim.DecayGroup[]) {
            seen.push({ weightDecay: g.weightDecay, shapes: g.params.map((p) => [...p.shape]) });
          }
          return new optim.AdamW(groups as optim.DecayGroup[], { lr: 0.01 });
        },
      }),
    );
    await trainer.fit();
    expect(seen).toEqual([
      {
        weightDecay: 0.1,
        shapes: [
          [8, 4],
          [3, 8],
        ],
      },
      { weightDecay: 0, shapes: [[8], [3]] },
    ]);
    const decays = trainer.optimizer!.paramGroups.map(
      (g) => (g.options as optim.AdamOptions).weightDecay,
    );
    expect(decays).toEqual([0.1, 0]);
  });

  it("clips the gradients' norm before each step", async () => {
    const norms: number[] = [];
    await new Trainer(
      baseOptions({
        epochs: 1,
        clipGradNorm: 0.05,
        callbacks: {
          onStepEnd: (_s, t) => void norms.push(optim.totalGradNorm(t.model.parameters())),
        },
      }),
    ).fit();
    expect(norms).toHaveLength(8);
    for (const norm of norms) expect(norm).toBeLessThanOrEqual(0.05 * (1 + 1e-5));
  });

  it("skips a step whose gradients are not finite, leaving the weights as they were", async () => {
    let calls = 0;
    const snapshots: Record<string, number[]>[] = [];
    const result = await new Trainer(
      baseOptions({
        epochs: 1,
        clipGradNorm: 10,
        lossFn: (outputs, targets) => {
          const loss = F.crossEntropy(outputs, targets);
          return ++calls === 3 ? loss.mul(NaN) : loss;
        },
        callbacks: { onStepEnd: (_s, t) => void snapshots.push(weightsOf(t.model)) },
      }),
    ).fit();
    expect(result.history[0]!.skippedSteps).toBe(1);
    expect(snapshots[2]).toEqual(snapshots[1]);
    expect(snapshots[3]).not.toEqual(snapshots[2]);
  });

  it("steps ReduceLROnPlateau with the monitored metric after each evaluation", async () => {
    const result = await new Trainer(
      slopeOptions({
        epochs: 14,
        scheduler: (o) => new optim.ReduceLROnPlateau(o, { patience: 1, factor: 0.5 }),
      }),
    ).fit();
    // The same schedule fed the same losses by hand: an epoch trains with the lr that the
    // evaluations before it left.
    const probe = new optim.SGD([zeros([1], { requiresGrad: true })], { lr: 0.05 });
    const plateau = new optim.ReduceLROnPlateau(probe, { patience: 1, factor: 0.5 });
    const expected = result.history.map((r) => {
      const lr = (probe.paramGroups[0]!.options as { lr: number }).lr;
      plateau.step(r.eval!.loss!);
      return lr;
    });
    expect(result.history.map((r) => r.lr)).toEqual(expected);
    expect(new Set(expected).size).toBeGreaterThan(1);
  });

  it("evaluates a model it was given before any fit", () => {
    manualSeed(3);
    const model = mlp();
    const trainer = new Trainer(baseOptions({ model }));
    const metrics = trainer.evaluate(evalSet);
    expect(Object.keys(metrics)).toEqual(["loss", "accuracy"]);
    expect(metrics.loss).toBeGreaterThan(0);
    expectThrows(
      () => new Trainer(baseOptions({ evalData: undefined })).evaluate(),
      ValueError,
      /^Trainer\.evaluate: no data: pass some or set evalData$/,
    );
  });
});

// ---------------------------------------------------------------------------------------
// Early stopping and the best model

/** y = 2x to train on, y = x to evaluate: the weight walks from 0 towards 2 and passes 1. */
function regression(slope: number): TensorDataset {
  const x = Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 4);
  const y = x.map((v) => slope * v);
  return new TensorDataset({ data: x, shape: [16, 1] }, { data: y, shape: [16, 1] });
}

function slopeOptions(overrides: Partial<TrainerOptions>): TrainerOptions {
  return {
    model: () => {
      const model = new nn.Linear(1, 1, { bias: false });
      noGrad(() => model.weight.fill_(0));
      return model;
    },
    trainData: regression(2),
    evalData: regression(1),
    epochs: 30,
    batchSize: 16,
    shuffle: false,
    optimizer: (params) => new optim.SGD(params, { lr: 0.05 }),
    lossFn: (outputs, targets) => outputs.sub(targets).square().mean(),
    progress: false,
    ...overrides,
  };
}

/** Fits, keeping a copy of the weight after every epoch. */
async function fitRecording(options: TrainerOptions) {
  const weights: number[] = [];
  const trainer = new Trainer({
    ...options,
    callbacks: {
      onEpochEnd: (_r, t) => void weights.push(t.model.parameters()[0]!.item()),
    },
  });
  const result = await trainer.fit();
  const evalLosses = result.history.map((r) => r.eval!.loss!);
  const bestEpoch = evalLosses.indexOf(Math.min(...evalLosses)) + 1;
  return { result, weights, bestEpoch, final: trainer.model.parameters()[0]!.item() };
}

describe("early stopping and the best model", () => {
  it("stops after patience epochs without improvement and restores the best weights", async () => {
    const run = await fitRecording(slopeOptions({ earlyStopping: { patience: 3 } }));
    expect(run.result.stoppedEarly).toBe(true);
    expect(run.result.restoredBest).toBe(true);
    expect(run.bestEpoch).toBeGreaterThan(1);
    expect(run.result.history).toHaveLength(run.bestEpoch + 3);
    expect(run.result.bestEpoch).toBe(run.bestEpoch);
    // Exactly the weight the model had after the best epoch, not the last one.
    expect(run.final).toBe(run.weights[run.bestEpoch - 1]);
    expect(run.final).not.toBe(run.weights.at(-1));
    expect(Math.abs(run.final - 1)).toBeLessThan(0.1);
  });

  it("restores the best weights when it runs out of epochs too", async () => {
    const run = await fitRecording(slopeOptions({ epochs: 12, earlyStopping: { patience: 50 } }));
    expect(run.result.stoppedEarly).toBe(false);
    expect(run.result.history).toHaveLength(12);
    expect(run.bestEpoch).toBeLessThan(12);
    expect(run.final).toBe(run.weights[run.bestEpoch - 1]);
    expect(run.final).not.toBe(run.weights[11]);
  });

  it("counts only improvements larger than minDelta", async () => {
    const plain = await fitRecording(slopeOptions({ earlyStopping: { patience: 2 } }));
    const strict = await fitRecording(
      slopeOptions({ earlyStopping: { patience: 2, minDelta: 0.05 } }),
    );
    // The eval loss falls by less than 0.05 per epoch near its minimum, so it stops sooner.
    expect(strict.result.history.length).toBeLessThan(plain.result.history.length);
    const losses = strict.result.history.map((r) => r.eval!.loss);
    const best = strict.result.bestEpoch!;
    for (const later of losses.slice(best)) expect(later).toBeGreaterThan(losses[best - 1]! - 0.05);
  });

  it("names a metricForBest that the run does not report", async () => {
    const trainer = new Trainer(baseOptions({ loadBestModelAtEnd: true, metricForBest: "acc" }));
    const error = await trainer.fit().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValueError);
    expect((error as Error).message).toBe(
      "Trainer: metricForBest acc is not among the evaluation numbers (loss, accuracy)",
    );
  });

  it("loads the best model by a metric where greater is better", async () => {
    const weights: number[][] = [];
    const trainer = new Trainer(
      baseOptions({
        epochs: 6,
        loadBestModelAtEnd: true,
        metricForBest: "accuracy",
        callbacks: {
          onEpochEnd: (_r, t) => void weights.push(Array.from(t.model.parameters()[0]!.dataSync())),
        },
      }),
    );
    const result = await trainer.fit();
    const accuracies = result.history.map((r) => r.eval!.accuracy!);
    const best = accuracies.indexOf(Math.max(...accuracies)) + 1;
    expect(result.bestEpoch).toBe(best);
    expect(result.bestValue).toBe(accuracies[best - 1]);
    expect(Array.from(trainer.model.parameters()[0]!.dataSync())).toEqual(weights[best - 1]);
  });
});

// ---------------------------------------------------------------------------------------
// Checkpoints

describe("checkpoints", () => {
  it("resumes in process to the weights and history of an uninterrupted run", async () => {
    const whole = new Trainer(baseOptions({ epochs: 4, model: () => dropoutMlp() }));
    const full = await whole.fit();
    const saveDir = freshDir();
    await new Trainer(baseOptions({ epochs: 2, model: () => dropoutMlp(), saveDir })).fit();
    const resumed = new Trainer(
      baseOptions({ epochs: 4, model: () => dropoutMlp(), saveDir, resume: saveDir }),
    );
    const rest = await resumed.fit();
    expect(weightsOf(resumed.model)).toEqual(weightsOf(whole.model));
    expect(rest.history.map(withoutTimes)).toEqual(full.history.map(withoutTimes));
    expect(listCheckpoints(saveDir).map((p) => p.split("/").at(-1))).toEqual([
      "checkpoint-32",
      "checkpoint-24",
    ]);
    expect([full.epochsRun, full.resumedFrom]).toEqual([4, null]);
    expect([rest.epochsRun, rest.resumedFrom]).toEqual([2, join(saveDir, "checkpoint-16")]);
  });

  it("resumes a finished run to nothing, and the result says nothing was left", async () => {
    const saveDir = freshDir();
    const first = new Trainer(baseOptions({ epochs: 2, saveDir }));
    await first.fit();
    const dir = join(saveDir, "checkpoint-16");
    expect(readCheckpointProgress(saveDir)).toEqual({
      path: dir,
      epoch: 2,
      globalStep: 16,
      stoppedEarly: false,
    });
    const progress = readCheckpointProgress(dir);
    expect([1, 2, 3].map((epochs) => isFinished(progress, epochs))).toEqual([true, true, false]);

    const begun: number[] = [];
    const callbacks = { onEpochBegin: (epoch: number) => void begun.push(epoch) };
    for (const epochs of [2, 1]) {
      const again = new Trainer(baseOptions({ epochs, saveDir, resume: saveDir, callbacks }));
      const result = await again.fit();
      expect([result.epochsRun, result.resumedFrom, result.globalStep]).toEqual([0, dir, 16]);
      expect(result.history.map((r) => r.epoch)).toEqual([1, 2]);
      expect(weightsOf(again.model)).toEqual(weightsOf(first.model));
    }
    expect(begun).toEqual([]);
    expect(listCheckpoints(saveDir)).toEqual([dir, join(saveDir, "checkpoint-8")]);
  });

  it("resumes a run that stopped early to nothing, even with more epochs", async () => {
    const saveDir = freshDir();
    const stopAtOne = { onEpochEnd: (record: EpochRecord) => record.epoch === 1 };
    await new Trainer(baseOptions({ epochs: 3, saveDir, callbacks: stopAtOne })).fit();
    const progress = readCheckpointProgress(saveDir);
    expect(progress).toMatchObject({ epoch: 1, stoppedEarly: true });
    expect(isFinished(progress, 5)).toBe(true);
    const result = await new Trainer(baseOptions({ epochs: 5, resume: saveDir })).fit();
    expect([result.epochsRun, result.stoppedEarly]).toEqual([0, true]);
  });

  const schedules: [string, Partial<TrainerOptions>][] = [
    ["a warmup (LambdaLR)", { warmupSteps: 6, clipGradNorm: 0.5 }],
    [
      "ReduceLROnPlateau",
      { scheduler: (o) => new optim.ReduceLROnPlateau(o, { patience: 0, factor: 0.5 }) },
    ],
    [
      "OneCycleLR",
      { scheduler: (o, c) => new optim.OneCycleLR(o, 0.05, { totalSteps: c.totalSteps }) },
    ],
  ];

  it.each(schedules)("resumes with %s to the same weights", async (_, schedule) => {
    const options = (extra: Partial<TrainerOptions>) =>
      baseOptions({ epochs: 4, model: () => dropoutMlp(), ...schedule, ...extra });
    const whole = new Trainer(options({}));
    const full = await whole.fit();
    const saveDir = freshDir();
    await new Trainer(options({ saveDir, saveSteps: 12, keepCheckpoints: 10 })).fit();
    const names = () => listCheckpoints(saveDir).map((p) => p.split("/").at(-1));
    expect(names()).toEqual([
      "checkpoint-32",
      "checkpoint-24",
      "checkpoint-16",
      "checkpoint-12",
      "checkpoint-8",
    ]);
    // Resume from the checkpoint in the middle of epoch 2 (step 12 of 8-step epochs).
    for (const step of [16, 24, 32])
      rmSync(join(saveDir, `checkpoint-${step}`), { recursive: true });
    const resumed = new Trainer(options({ resume: saveDir }));
    const rest = await resumed.fit();
    expect(weightsOf(resumed.model)).toEqual(weightsOf(whole.model));
    expect(rest.history.map(withoutTimes)).toEqual(full.history.map(withoutTimes));
  });

  it("holds the model, the optimizer's state, the generator and the counters", async () => {
    const saveDir = freshDir();
    const trainer = new Trainer(baseOptions({ epochs: 1, saveDir }));
    await trainer.fit();
    const dir = listCheckpoints(saveDir)[0]!;
    expect(readdirSync(dir).sort()).toEqual([
      "model.safetensors",
      "optimizer.safetensors",
      "trainer_state.json",
    ]);
    const data = loadCheckpoint(dir);
    expect(data.state.epoch).toBe(1);
    expect(data.state.globalStep).toBe(8);
    expect(data.state.optimizer.kind).toBe("Adam");
    expect(Object.keys(data.tensors["optimizer.safetensors"]!)).toContain("0.expAvg");
    expect(data.state.optimizerNumbers["0"]).toEqual({ step: 8 });
    const model = data.tensors["model.safetensors"]!;
    expect(Array.from(model["0.weight"]!.dataSync())).toEqual(
      Array.from(trainer.model.parameters()[0]!.dataSync()),
    );
    disposeCheckpoint(data);
  });

  async function savedRun(): Promise<string> {
    const saveDir = freshDir();
    await new Trainer(baseOptions({ epochs: 1, saveDir })).fit();
    return listCheckpoints(saveDir)[0]!;
  }

  const damaged: [string, (dir: string) => void, RegExp][] = [
    [
      "a flipped byte",
      (dir) => {
        const file = join(dir, "model.safetensors");
        const bytes = readFileSync(file);
        bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
        writeFileSync(file, bytes);
      },
      /model\.safetensors does not match its SHA-256 in trainer_state\.json \(the file is corrupt\)$/,
    ],
    [
      "a truncated file",
      (dir) => {
        const file = join(dir, "optimizer.safetensors");
        writeFileSync(file, readFileSync(file).subarray(0, 100));
      },
      /optimizer\.safetensors has 100 bytes, trainer_state\.json says \d+$/,
    ],
    [
      "a missing file",
      (dir) => rmSync(join(dir, "model.safetensors")),
      /model\.safetensors is missing$/,
    ],
    [
      "a state file that is not JSON",
      (dir) => writeFileSync(join(dir, "trainer_state.json"), '{"format": "deepnode-ch'),
      /trainer_state\.json is not valid JSON: /,
    ],
    [
      "a state file of lines that are not JSON, named on one line",
      (dir) => writeFileSync(join(dir, "trainer_state.json"), "garbage\nmore\n"),
      /trainer_state\.json is not valid JSON: Unexpected token[^\n]*garbage more[^\n]*$/,
    ],
    [
      "another format version",
      (dir) => {
        const file = join(dir, "trainer_state.json");
        const json = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
        writeFileSync(file, JSON.stringify({ ...json, version: 99 }));
      },
      /has version 99; this deepnode reads version 1$/,
    ],
  ];

  it.each(damaged)("names %s", async (_, damage, message) => {
    const dir = await savedRun();
    damage(dir);
    expectThrows(() => loadCheckpoint(dir), CheckpointError, message);
    // What needs no model is found before one is built (the CLI checks it before printing).
    expectThrows(() => readCheckpointProgress(dir), CheckpointError, message);
    const resume = new Trainer(baseOptions({ epochs: 2, resume: dir }));
    await expect(resume.fit()).rejects.toThrow(message);
  });

  const misfits: [string, Partial<TrainerOptions>, RegExp][] = [
    [
      "another model",
      { model: () => new nn.Sequential(new nn.Linear(4, 3)) },
      /model\.safetensors does not fit the model: .*unexpected keys: 2\.weight, 2\.bias/,
    ],
    [
      "another optimizer",
      { optimizer: (params) => new optim.SGD(params, { lr: 0.1 }) },
      /holds the state of a Adam, but this run's optimizer is a SGD$/,
    ],
    [
      "another batch size",
      { batchSize: 16 },
      /was saved by a run with 8 batches per epoch, this one has 4 \(another data set or batch size\?\)$/,
    ],
    [
      "a scheduler it was saved without",
      { scheduler: (o) => new optim.StepLR(o, 1) },
      /was saved without a scheduler, but this run has one$/,
    ],
  ];

  it.each(misfits)(
    "refuses to resume with %s, naming the misfit",
    async (_, overrides, message) => {
      const dir = await savedRun();
      const trainer = new Trainer(baseOptions({ epochs: 2, resume: dir, ...overrides }));
      const error = await trainer.fit().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CheckpointError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message.startsWith(`resume: ${dir}: `)).toBe(true);
    },
  );

  it("refuses another architecture in a short message; the cause keeps every key", async () => {
    const dir = await savedRun();
    const deep = () => new nn.Sequential(...Array.from({ length: 11 }, () => new nn.Linear(4, 4)));
    const trainer = new Trainer(baseOptions({ epochs: 2, resume: dir, model: deep }));
    const error = (await trainer.fit().catch((e: unknown) => e)) as CheckpointError;
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toMatch(
      new RegExp(
        `^resume: ${dir}: model\\.safetensors does not fit the model: loadStateDict: missing ` +
          "keys: 1\\.weight, 1\\.bias, 3\\.weight, 3\\.bias, 4\\.weight, 4\\.bias, 5\\.weight, " +
          "5\\.bias, and 10 more keys; size mismatch for 0\\.weight: expected \\[4, 4\\], got " +
          "\\[8, 4\\]; ",
      ),
    );
    const cause = error.cause as StateDictError;
    expect(cause).toBeInstanceOf(StateDictError);
    const layers = [1, ...Array.from({ length: 8 }, (_, i) => i + 3)];
    expect(cause.missing).toEqual(layers.flatMap((i) => [`${i}.weight`, `${i}.bias`]));
    expect(cause.mismatched.map((m) => m.key)).toEqual([
      "0.weight",
      "0.bias",
      "2.weight",
      "2.bias",
    ]);
  });

  it("names a folder without checkpoints, and makes nothing when it refuses", async () => {
    const empty = freshDir();
    await expect(new Trainer(baseOptions({ resume: empty })).fit()).rejects.toThrow(
      `resume: ${empty}: no such checkpoint or folder`,
    );
    // The README's options on a fresh run: no folder is made for the files before refusing.
    const files = { metricsFile: join(empty, "metrics.jsonl"), plotFile: join(empty, "c.png") };
    const trainer = new Trainer(baseOptions({ saveDir: empty, resume: empty, ...files }));
    await expect(trainer.fit()).rejects.toThrow(`resume: ${empty}: no such checkpoint or folder`);
    expect(existsSync(empty)).toBe(false);
  });
});

function dropoutMlp(): nn.Sequential {
  return new nn.Sequential(
    new nn.Linear(4, 8),
    new nn.ReLU(),
    new nn.Dropout(0.3),
    new nn.Linear(8, 3),
  );
}

function withoutTimes({ seconds: _s, samplesPerSecond: _r, ...rest }: EpochRecord) {
  return rest;
}

// ---------------------------------------------------------------------------------------
// Killed runs: a child process (test/fixtures/train_child.mjs, over dist/) killed with
// SIGKILL, then resumed from its saveDir.

const CHILD = join(root, "test", "fixtures", "train_child.mjs");

/** dist/ must hold this tree's library: build it when a compiled file is missing or older. */
function distIsStale(): boolean {
  return ["lib"].some((dir) =>
    readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
      .filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))
      .some((name) => {
        const compiled = join(root, "dist", dir, name.replace(/\.ts$/, ".js"));
        return (
          !existsSync(compiled) ||
          statSync(compiled).mtimeMs < statSync(join(root, dir, name)).mtimeMs
        );
      }),
  );
}

interface ChildConfig {
  saveDir: string;
  out: string;
  epochs: number;
  hangAtStep?: number;
  hangInSaveOfEpoch?: number;
  stepDelayMs?: number;
  saveSteps?: number;
  hangInRotation?: boolean;
}

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the child; kills it with SIGKILL when it prints HANG, or after killAfterMs. */
function runChild(config: ChildConfig, killAfterMs?: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(config)], {
      cwd: root,
      env: { ...process.env, DEEPNODE_NUM_THREADS: "2" },
    });
    let stdout = "";
    let stderr = "";
    const timer =
      killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/^HANG /m.test(stdout)) child.kill("SIGKILL");
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function childConfig(dir: string, extra: Partial<ChildConfig> = {}): ChildConfig {
  return { saveDir: join(dir, "ckpt"), out: join(dir, "final.safetensors"), epochs: 6, ...extra };
}

/** Every committed checkpoint of a folder passes loadCheckpoint's size and SHA-256 checks. */
function expectCheckpointsWhole(saveDir: string): string[] {
  const committed = listCheckpoints(saveDir);
  for (const dir of committed) disposeCheckpoint(loadCheckpoint(dir));
  return committed.map((p) => p.split("/").at(-1)!);
}

function metricLines(saveDir: string): Record<string, unknown>[] {
  const text = readFileSync(join(saveDir, "metrics.jsonl"), "utf8");
  return text
    .trimEnd()
    .split("\n")
    .map((line) => {
      const { seconds: _s, samplesPerSecond: _r, ...rest } = JSON.parse(line) as EpochRecord;
      return rest;
    });
}

describe("resuming a run killed with SIGKILL", () => {
  let reference: { weights: Buffer; summary: string; metrics: Record<string, unknown>[] };

  beforeAll(async () => {
    if (distIsStale()) {
      execFileSync("npm", ["run", "build:ts"], { cwd: root, stdio: "pipe", timeout: 120_000 });
    }
    const config = childConfig(freshDir());
    const run = await runChild(config);
    expect(run.stderr).toBe("");
    expect(run.stdout).toBe("DONE\n");
    reference = {
      weights: readFileSync(config.out),
      summary: readFileSync(`${config.out}.json`, "utf8"),
      metrics: metricLines(config.saveDir),
    };
    expect(reference.metrics).toHaveLength(6);
  });

  /** Resumes to the end and checks the result is the uninterrupted run's, bit for bit. */
  async function resumeAndCompare(config: ChildConfig): Promise<void> {
    const resumed = await runChild(config);
    expect(resumed.stderr).toBe("");
    expect(resumed.stdout).toBe("DONE\n");
    expect(Buffer.compare(readFileSync(config.out), reference.weights)).toBe(0);
    expect(readFileSync(`${config.out}.json`, "utf8")).toBe(reference.summary);
    expect(metricLines(config.saveDir)).toEqual(reference.metrics);
    expect(readdirSync(config.saveDir).filter((n) => n.includes(".tmp-"))).toEqual([]);
  }

  it("during an epoch", async () => {
    const config = childConfig(freshDir(), { hangAtStep: 30 }); // epoch 3 of 12-step epochs
    const killed = await runChild(config);
    expect(killed.signal).toBe("SIGKILL");
    expect(killed.stdout).toBe("HANG step 30\n");
    expect(expectCheckpointsWhole(config.saveDir)).toEqual(["checkpoint-24", "checkpoint-12"]);
    expect(existsSync(config.out)).toBe(false);
    await resumeAndCompare({ ...config, hangAtStep: undefined });
  });

  it("during an epoch, resuming from a checkpoint made inside the epoch (saveSteps)", async () => {
    const config = childConfig(freshDir(), { hangAtStep: 30, saveSteps: 5 });
    const killed = await runChild(config);
    expect(killed.signal).toBe("SIGKILL");
    // Step 25 is the first batch of epoch 3; step 24 ended epoch 2.
    expect(expectCheckpointsWhole(config.saveDir)).toEqual(["checkpoint-25", "checkpoint-24"]);
    const state = JSON.parse(
      readFileSync(join(config.saveDir, "checkpoint-25", "trainer_state.json"), "utf8"),
    ) as { epoch: number; trainer: { partial: { batch: number } } };
    expect(state.epoch).toBe(2);
    expect(state.trainer.partial.batch).toBe(1);
    await resumeAndCompare({ ...config, hangAtStep: undefined });
  });

  it("during a save, between writing the files and the rename that commits them", async () => {
    const config = childConfig(freshDir(), { hangInSaveOfEpoch: 3 });
    const killed = await runChild(config);
    expect(killed.signal).toBe("SIGKILL");
    const temp = /^HANG save (.*)$/m.exec(killed.stdout)![1]!;
    expect(temp).toMatch(/checkpoint-36\.tmp-\d+-[0-9a-f]+$/);
    // The half-made checkpoint is there, complete but never committed; the others are whole.
    expect(readdirSync(temp).sort()).toContain("trainer_state.json");
    expect(expectCheckpointsWhole(config.saveDir)).toEqual(["checkpoint-24", "checkpoint-12"]);
    expect(metricLines(config.saveDir)).toHaveLength(3); // epoch 3 was logged, not saved
    await resumeAndCompare({ ...config, hangInSaveOfEpoch: undefined });
    expect(existsSync(temp)).toBe(false);
  });

  it("while removing an old checkpoint", async () => {
    const config = childConfig(freshDir(), { hangInRotation: true });
    const killed = await runChild(config);
    expect(killed.signal).toBe("SIGKILL");
    const aside = /^HANG rotation (.*)$/m.exec(killed.stdout)![1]!;
    expect(aside).toMatch(/checkpoint-12\.old-\d+-[0-9a-f]+$/);
    expect(expectCheckpointsWhole(config.saveDir)).toEqual(["checkpoint-36", "checkpoint-24"]);
    await resumeAndCompare({ ...config, hangInRotation: undefined });
    expect(existsSync(aside)).toBe(false);
  });

  it("during the first save, so that the rerun starts afresh", async () => {
    const config = childConfig(freshDir(), { hangInSaveOfEpoch: 1 });
    const killed = await runChild(config);
    expect(killed.signal).toBe("SIGKILL");
    expect(expectCheckpointsWhole(config.saveDir)).toEqual([]);
    expect(metricLines(config.saveDir)).toHaveLength(1);
    await resumeAndCompare({ ...config, hangInSaveOfEpoch: undefined });
  });

  it("at several times in a row, resuming after each kill", async () => {
    const config = childConfig(freshDir(), { stepDelayMs: 8 });
    const kills: string[] = [];
    for (const delay of [250, 400, 550, 700]) {
      const run = await runChild(config, delay);
      if (run.signal !== "SIGKILL") break;
      kills.push(expectCheckpointsWhole(config.saveDir)[0] ?? "none");
    }
    expect(kills.length).toBeGreaterThan(1);
    await resumeAndCompare(config);
  });
});

// ---------------------------------------------------------------------------------------
// Monitoring

/** Width and height from a PNG's IHDR chunk, after checking the signature. */
function pngSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
  expect(bytes.subarray(12, 16).toString("latin1")).toBe("IHDR");
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

describe("monitoring", () => {
  it("appends one JSON line per epoch, equal to the history", async () => {
    const dir = freshDir();
    const metricsFile = join(dir, "metrics.jsonl");
    const result = await new Trainer(baseOptions({ epochs: 3, metricsFile })).fit();
    const lines = readFileSync(metricsFile, "utf8").trimEnd().split("\n");
    expect(lines.map((line) => JSON.parse(line) as EpochRecord)).toEqual(result.history);
    expect(Object.keys(result.history[0]!.eval!)).toEqual(["loss", "accuracy"]);
  });

  it("draws loss and accuracy curves, train and validation, to a PNG", async () => {
    const dir = freshDir();
    const plotFile = join(dir, "curves.png");
    await new Trainer(baseOptions({ epochs: 4, plotFile })).fit();
    const { width, height } = pngSize(readFileSync(plotFile));
    // Two panels of 320 x 220 side by side, with axes and a legend, at scale 2.
    expect(width).toBeGreaterThan(2 * 2 * 320);
    expect(height).toBeGreaterThan(2 * 220);
    expect(readdirSync(dir)).toEqual(["curves.png"]);
  });

  it("shows a progress bar with loss, throughput and time left on a terminal only", () => {
    const written: string[] = [];
    const terminal = {
      isTTY: true,
      columns: 120,
      write: (chunk: string) => written.push(chunk) > 0,
      cursorTo: () => true,
      clearLine: () => true,
      moveCursor: () => true,
      on: () => terminal,
      removeListener: () => terminal,
    } as unknown as NodeJS.WriteStream;
    const bar = new EpochProgress(true, terminal);
    bar.start("1/3", 10);
    bar.update(5, 0.12345, 640.4);
    bar.stop();
    const text = written.join("");
    expect(text).toMatch(/epoch 1\/3 .* 5\/10 \| loss 0\.1235 \| 640 samples\/s \| \S+ left/);

    const pipe = { ...terminal, isTTY: false } as unknown as NodeJS.WriteStream;
    written.length = 0;
    const silent = new EpochProgress(true, pipe);
    silent.start("1/3", 10);
    silent.update(5, 0.5, 1);
    silent.stop();
    expect(silent.active).toBe(false);
    expect(written).toEqual([]);
    expect(new EpochProgress(false, terminal).active).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------
// Models whose forward takes more than the inputs: a batch source whose batches carry an
// extra tensor, and the forward option that hands it to the model.

import { DataLoader } from "../lib/data/dataloader.js";
import type { BatchSource } from "../lib/train/index.js";
import { full } from "../lib/index.js";

/** dropoutMlp of its inputs times a second tensor the batch carries: forward(x, scale). */
class ScaledMlp extends nn.Module {
  net = dropoutMlp();

  forward(inputs: Tensor, scale: Tensor): Tensor {
    return this.net.forward(inputs.mul(scale));
  }
}

/** The same network on doubled inputs, for a plain DataLoader: forward(x). */
class DoubledMlp extends nn.Module {
  net = dropoutMlp();

  forward(inputs: Tensor): Tensor {
    return this.net.forward(inputs.mul(2));
  }
}

interface ScaledBatch {
  readonly inputs: Tensor;
  readonly targets: Tensor;
  readonly scale: Tensor;
}

/** The batches of a DataLoader over the dataset, each with scale [B, 1] filled with 2. */
function scaledBatches(dataset: TensorDataset, shuffle: boolean): BatchSource<ScaledBatch> {
  const loader = new DataLoader(dataset, { batchSize: 8, shuffle });
  return {
    length: loader.length,
    *[Symbol.iterator]() {
      for (const batch of loader) {
        yield { ...batch, scale: full([batch.targets.shape[0]!, 1], 2) };
      }
    },
  };
}

function scaledOptions(
  overrides: Partial<TrainerOptions<ScaledBatch, ScaledMlp>> = {},
): TrainerOptions<ScaledBatch, ScaledMlp> {
  const { model: _m, trainData: _t, evalData: _e, callbacks: _c, ...rest } = baseOptions();
  return {
    ...rest,
    epochs: 4,
    model: () => new ScaledMlp(),
    trainData: scaledBatches(trainSet, true),
    evalData: scaledBatches(evalSet, false),
    forward: (model, batch) => model.forward(batch.inputs, batch.scale),
    ...overrides,
  };
}

describe("Trainer: a forward option over batches that carry more than the inputs", () => {
  it("trains as the same network on doubled inputs, and disposes every batch tensor", async () => {
    const start = liveTensors();
    const doubled = new Trainer(baseOptions({ epochs: 4, model: () => new DoubledMlp() }));
    const expected = await doubled.fit();
    const middle = liveTensors();
    const scaled = new Trainer(scaledOptions());
    const result = await scaled.fit();
    // What outlives fit (weights, Adam's state) is the same: no batch's scale was left.
    expect(liveTensors() - middle).toBe(middle - start);
    expect(result.history.map(withoutTimes)).toEqual(expected.history.map(withoutTimes));
    expect(weightsOf(scaled.model)).toEqual(weightsOf(doubled.model));
    const predicted = scaled.predict(scaledBatches(evalSet, false));
    const direct = doubled.predict(evalSet);
    expect(Array.from(predicted.dataSync())).toEqual(Array.from(direct.dataSync()));
  });

  it("resumes mid-epoch (saveSteps) to the weights of an uninterrupted run", async () => {
    const whole = new Trainer(scaledOptions());
    const full = await whole.fit();
    const saveDir = freshDir();
    await new Trainer(scaledOptions({ saveDir, saveSteps: 12, keepCheckpoints: 10 })).fit();
    for (const step of [16, 24, 32]) {
      rmSync(join(saveDir, `checkpoint-${step}`), { recursive: true });
    }
    const resumed = new Trainer(scaledOptions({ resume: saveDir }));
    const rest = await resumed.fit();
    expect(weightsOf(resumed.model)).toEqual(weightsOf(whole.model));
    expect(rest.history.map(withoutTimes)).toEqual(full.history.map(withoutTimes));
  });

  it("rejects a forward that is not a function, and an array of batches", () => {
    expectThrows(
      () => new Trainer(baseOptions({ forward: 5 as never })),
      ValueError,
      "Trainer: forward must be a function (model, batch) => outputs, got 5",
    );
    const batches = [...scaledBatches(trainSet, false)];
    expectThrows(
      () => new Trainer(scaledOptions({ trainData: batches as never })),
      ValueError,
      /^Trainer: trainData must be a Dataset \(length and get\) or a DataLoader \(or a batch/,
    );
    for (const batch of batches) for (const t of Object.values(batch)) t.dispose();
  });
});
