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
import { ValueError } from "../lib/errors.js";
import { F, Tensor, liveTensors, manualSeed, nn, noGrad, optim, randn } from "../lib/index.js";
import { decodeSafetensors } from "../lib/io/safetensors.js";
import { fromTypedArray } from "../lib/tensor.js";
import {
  CheckpointError,
  listCheckpoints,
  loadCheckpoint,
  Trainer,
  accuracy,
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
          onStepEnd: (_s, t) => lrs.push(lrOf(t as Trainer)),
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
