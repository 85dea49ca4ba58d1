// Whole jobs: an MNIST training epoch (the examples/ network, Adam, batch 64) on the
// mnist package's 8,004 training digits, with its test accuracy and the job's peak memory.
// The IMDB sentiment-LSTM jobs are imdb.ts.

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { liveTensors } from "../../lib/index.js";
import { trainMnist } from "../../examples/mnist.js";
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

export const cases: BenchCase[] = [mnistEpoch];
