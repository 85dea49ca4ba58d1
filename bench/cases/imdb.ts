// The IMDB sentiment LSTM beside PyTorch's (bench/peers/torch_peer.py, op "imdb lstm"):
// embedding 128, LSTM 128 over each review's true length, dropout 0.5, linear; Adam lr 3e-3,
// batch 64, gradients clipped to norm 5, flush-to-zero, the same thread count. Both sides
// train on the same encoded reviews in the same batches (bench/imdb_data.ts). The short job
// (200 steps on 12,800 reviews) is in every run; the whole epoch only with --full.

import {
  imdbBenchFile,
  prepareImdbBench,
  trainImdbBench,
  type ImdbBenchJob,
} from "../imdb_data.js";
import type { BenchCase, Measured } from "./types.js";

const settings = {
  epochs: 1,
  batchSize: 64,
  lr: 3e-3,
  seed: 0,
  maxLength: 256,
  vocabSize: 25_000,
  minFreq: 2,
  embeddingDim: 128,
  hiddenSize: 128,
  dropout: 0.5,
  clipNorm: 5,
};

/** 200 batches of 64; every test review is scored. */
export const SHORT_IMDB_JOB: ImdbBenchJob = { ...settings, limit: 12_800 };
export const FULL_IMDB_JOB: ImdbBenchJob = settings;

/** What the row holds: seconds per training step, or per epoch. */
type Per = "step" | "epoch";

function measureImdb(job: ImdbBenchJob, per: Per, device: string): Measured {
  const history = trainImdbBench(prepareImdbBench(job), job, device);
  const secondsPerStep = history.map((h) => h.seconds / h.steps);
  return {
    seconds: per === "step" ? secondsPerStep : history.map((h) => h.seconds),
    extra: {
      epochSeconds: history.map((h) => h.seconds),
      secondsPerStep,
      steps: history.map((h) => h.steps),
      testAccuracy: history.map((h) => h.testAccuracy),
    },
  };
}

/** A job case on `job`, its row in seconds per `per`, with the PyTorch peer on the same data. */
export function imdbCase(name: string, job: ImdbBenchJob, per: Per): BenchCase {
  return {
    name,
    group: "job",
    unit: "s",
    note: `s per ${per}`,
    peer: { op: "imdb lstm", params: () => ({ ...job, per, file: imdbBenchFile(job) }) },
    measure: (device) => measureImdb(job, per, device),
  };
}

// After the MNIST epoch of jobs.ts.
export const order = 110;

export const cases: BenchCase[] = [
  imdbCase("IMDB LSTM short job (200 steps of 64 of 12,800 reviews)", SHORT_IMDB_JOB, "step"),
  {
    ...imdbCase("IMDB LSTM epoch (40,000 reviews), batch 64", FULL_IMDB_JOB, "epoch"),
    full: true,
  },
];
