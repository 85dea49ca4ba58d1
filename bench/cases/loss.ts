// Softmax with cross-entropy, forward and backward: nllLoss of logSoftmax over 1000 classes
// (an ImageNet classifier's head), the gradient to the logits included.

import { F, fromTypedArray, randn, scope } from "../../lib/index.js";
import type { BenchCase } from "./types.js";

function crossEntropyCase(batch: number, classes: number): BenchCase {
  return {
    name: `logSoftmax+nllLoss fwd+bwd [${batch},${classes}]`,
    group: "kernel",
    unit: "ms",
    small: true,
    peer: { op: "cross entropy", params: { batch, classes } },
    setup(device) {
      const logits = randn([batch, classes], { device }).requiresGrad_(true);
      const labels = Int32Array.from({ length: batch }, (_, i) => (i * 7919) % classes);
      const targets = fromTypedArray(labels, [batch], { device, dtype: "int32" });
      return {
        run: () => scope(() => F.nllLoss(F.logSoftmax(logits, 1), targets).backward()),
        after: () => {
          logits.grad?.dispose();
          logits.setGrad(null);
        },
        dispose: () => [logits, targets].forEach((t) => t.dispose()),
      };
    },
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 40;

export const cases: BenchCase[] = [crossEntropyCase(512, 1000)];
