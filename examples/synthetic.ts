// Shared by the classic-model examples: a few Adam steps on one fixed batch of synthetic
// data (the loss must fall as the model fits it), and seeded random labels.

import { Tensor, fromTypedArray, manualSeed, nn, optim, randn, scope } from "../lib/index.js";

/** Runs `steps` Adam steps of `lossOf` on model in train mode; returns each step's loss. */
export function trainSteps(
  model: nn.Module,
  steps: number,
  lossOf: () => Tensor,
  lr = 1e-3,
): number[] {
  const optimizer = new optim.Adam(model.parameters(), { lr });
  model.train();
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    losses.push(
      scope(() => {
        optimizer.zeroGrad();
        const loss = lossOf();
        loss.backward();
        optimizer.step();
        return loss.item();
      }),
    );
  }
  return losses;
}

/** `count` labels in [low, classes), from a small seeded generator (not the global one). */
export function randomLabels(count: number, classes: number, seed: number, low = 0): number[] {
  let state = seed >>> 0 || 1;
  return Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return low + (state % (classes - low));
  });
}

/** int32 class indices as a tensor [count]. */
export function labelTensor(labels: readonly number[]): Tensor {
  return fromTypedArray(Int32Array.from(labels), [labels.length]);
}

/** Standard normal inputs of `shape` under `seed` (sets the global seed). */
export function inputs(shape: number[], seed: number): Tensor {
  manualSeed(seed);
  return randn(shape);
}

/** Prints a run's first and last losses; used by each example's main. */
export function report(name: string, losses: readonly number[]): void {
  const last = losses[losses.length - 1]!;
  console.log(
    `${name}: loss ${losses[0]!.toFixed(4)} -> ${last.toFixed(4)} in ${losses.length} steps`,
  );
}
