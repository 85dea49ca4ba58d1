// The bar of the project: the MNIST example, trained as PyTorch's example trains it (Adam,
// lr 1e-3, batch 64, seed 0) for 3 epochs on the 8,004 training digits of the `mnist`
// package, scores at least 97% on the 1,996 test digits, and its training loss falls
// every epoch.

import { describe, expect, it } from "vitest";

import { trainMnist, type EpochStats } from "../examples/mnist.js";
import { formatEpoch } from "../lib/cli/index.js";

describe("MNIST end to end", () => {
  it("reaches 97% test accuracy in 3 epochs with a falling training loss", () => {
    const history: EpochStats[] = [];
    trainMnist({
      epochs: 3,
      batchSize: 64,
      lr: 1e-3,
      seed: 0,
      onEpoch: (stats) => {
        history.push(stats);
        // One line per epoch, so a slow or failing run shows how far it got.
        console.info(formatEpoch(stats, 3));
      },
    });

    expect(history.map((s) => s.epoch)).toEqual([1, 2, 3]);
    for (let e = 1; e < history.length; e++) {
      expect(history[e]!.trainLoss, `train loss of epoch ${e + 1}`).toBeLessThan(
        history[e - 1]!.trainLoss,
      );
    }
    expect(history[0]!.trainLoss).toBeLessThan(Math.log(10));
    expect(history[2]!.testAccuracy).toBeGreaterThanOrEqual(0.97);
    expect(history[2]!.testLoss).toBeLessThan(0.15);
  }, 600_000);
});
