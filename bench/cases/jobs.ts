// Whole jobs: an MNIST training epoch (the examples/ network, Adam, batch 64) on the
// mnist package's 8,004 training digits, with its test accuracy and the job's peak memory;
// and IMDB sentiment-LSTM training steps (batch 64, reviews at their true length).

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { liveTensors } from "../../lib/index.js";
import { trainMnist } from "../../examples/mnist.js";
import { benchImdbSteps } from "../../examples/imdb.js";
import type { BenchCase, Plan } from "./types.js";

function mnistPlan(plan: Plan): { epochs: number; limit?: number } {
  return plan.quick ? { epochs: 1, limit: 1024 } : { epochs: 3 };
}

function digitsDir(): string {
  const pkg = createRequire(import.meta.url).resolve("mnist/package.json");
  return join(dirname(pkg), "src", "digits");
}

const mnistEpoch: BenchCase = {
  name: "MNIST epoch (8,004 images; --quick: 1,024), batch 64",
  group: "job",
  unit: "s",
  peer: {
    op: "mnist",
    params: (plan) => ({ digits: digitsDir(), batch: 64, lr: 1e-3, seed: 0, ...mnistPlan(plan) }),
  },
  measure(device, plan) {
    const live: number[] = [];
    const { history } = trainMnist({
      batchSize: 64,
      lr: 1e-3,
      seed: 0,
      device,
      ...mnistPlan(plan),
      onEpoch: () => live.push(liveTensors()),
    });
    return {
      seconds: history.map((h) => h.seconds),
      extra: { testAccuracy: history.map((h) => h.testAccuracy), liveTensorsAfterEachEpoch: live },
    };
  },
};

// Seconds per step: steps/s is its inverse. The reviews are the training split's first
// bucketed batches (all 40,000 are encoded; --quick encodes 2,000).
const imdbSteps: BenchCase = {
  name: "IMDB LSTM training step (batch 64, up to 256 tokens)",
  group: "job",
  unit: "s",
  note: "s per step; steps/s is its inverse",
  measure(device, plan) {
    const steps = plan.quick ? 5 : 30;
    const options = { epochs: 1, batchSize: 64, lr: 3e-3, seed: 0, steps };
    const rate = benchImdbSteps(plan.quick ? { ...options, limit: 2000 } : options);
    return { seconds: [1 / rate], extra: { stepsPerSecond: rate, device } };
  },
};

export const cases: BenchCase[] = [mnistEpoch, imdbSteps];
