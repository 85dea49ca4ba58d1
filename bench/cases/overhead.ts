// The framework's own cost per op, on tensors so small that the kernel is next to nothing:
// an add with a graph recorded, a matmul, a batch of small matmuls, a linear layer, and a
// whole MLP training step (forward, backward, Adam); the add without a graph is
// elementwise.ts's "tiny add [1]+[1]". On a GPU a small batch is bound by this cost plus a
// launch per op, so these rows say how far deepnode's dispatch is from PyTorch's.

import { F, fromTypedArray, manualSeed, nn, optim, randn, scope } from "../../lib/index.js";
import type { BenchCase } from "./types.js";

function addGradCase(elements: number): BenchCase {
  return {
    name: `overhead: add [${elements}] recording grad`,
    group: "kernel",
    unit: "us",
    small: true,
    inner: 2000,
    peer: { op: "add grad", params: { elements } },
    note: "the input requires grad: the graph node is built",
    setup(device) {
      const lhs = randn([elements], { device }).requiresGrad_(true);
      const rhs = randn([elements], { device });
      return {
        run: () => lhs.add(rhs).dispose(),
        dispose: () => [lhs, rhs].forEach((t) => t.dispose()),
      };
    },
  };
}

function matmulCase(size: number): BenchCase {
  return {
    name: `overhead: matmul [${size},${size}]x[${size},${size}]`,
    group: "kernel",
    unit: "us",
    small: true,
    inner: 1000,
    peer: { op: "matmul", params: { m: size, k: size, n: size } },
    setup(device) {
      const lhs = randn([size, size], { device });
      const rhs = randn([size, size], { device });
      return {
        run: () => lhs.matmul(rhs).dispose(),
        dispose: () => [lhs, rhs].forEach((t) => t.dispose()),
      };
    },
  };
}

/** Many products too small to thread over, as attention's per-head ones can be. */
function batchedMatmulCase(batch: number, size: number): BenchCase {
  return {
    name: `overhead: matmul [${batch},${size},${size}]x[${batch},${size},${size}]`,
    group: "kernel",
    unit: "us",
    small: true,
    inner: 200,
    peer: { op: "batched matmul", params: { batch, m: size, k: size, n: size } },
    setup(device) {
      const lhs = randn([batch, size, size], { device });
      const rhs = randn([batch, size, size], { device });
      return {
        run: () => lhs.matmul(rhs).dispose(),
        dispose: () => [lhs, rhs].forEach((t) => t.dispose()),
      };
    },
  };
}

/** A small layer's forward: x @ weight^T + bias, no graph. */
function linearCase(batch: number, inFeatures: number, outFeatures: number): BenchCase {
  return {
    name: `overhead: linear [${batch},${inFeatures}] -> ${outFeatures} with bias`,
    group: "kernel",
    unit: "us",
    small: true,
    inner: 1000,
    peer: { op: "linear", params: { batch, inFeatures, outFeatures } },
    setup(device) {
      const x = randn([batch, inFeatures], { device });
      const weight = randn([outFeatures, inFeatures], { device });
      const bias = randn([outFeatures], { device });
      return {
        run: () => F.linear(x, weight, bias).dispose(),
        dispose: () => [x, weight, bias].forEach((t) => t.dispose()),
      };
    },
  };
}

interface MlpSizes {
  batch: number;
  features: number;
  hidden: number;
  classes: number;
}

/** Linear, ReLU, Linear, logSoftmax and nllLoss, its backward and an Adam step. */
function mlpStepCase(sizes: MlpSizes): BenchCase {
  const { batch, features, hidden, classes } = sizes;
  return {
    name: `overhead: MLP ${features}->${hidden}->${classes} train step [${batch}]`,
    group: "kernel",
    unit: "us",
    small: true,
    inner: 100,
    peer: { op: "mlp step", params: { ...sizes } },
    note: "zeroGrad, forward, backward, Adam step",
    setup(device) {
      manualSeed(0);
      const model = new nn.Sequential(
        new nn.Linear(features, hidden, { device }),
        new nn.ReLU(),
        new nn.Linear(hidden, classes, { device }),
      );
      const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });
      const x = randn([batch, features], { device });
      const labels = Int32Array.from({ length: batch }, (_, i) => i % classes);
      const targets = fromTypedArray(labels, [batch], { device, dtype: "int32" });
      const step = () => {
        optimizer.zeroGrad();
        F.nllLoss(F.logSoftmax(model.forward(x), 1), targets).backward();
        optimizer.step();
      };
      return {
        run: () => scope(step),
        dispose: () => {
          optimizer.zeroGrad();
          for (const p of model.parameters()) p.dispose();
          [x, targets].forEach((t) => t.dispose());
        },
      };
    },
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 55;

export const cases: BenchCase[] = [
  addGradCase(4),
  matmulCase(4),
  batchedMatmulCase(8, 32),
  linearCase(4, 8, 16),
  mlpStepCase({ batch: 4, features: 8, hidden: 16, classes: 4 }),
];
