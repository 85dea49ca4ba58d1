// Layers forward and backward, each step a fresh graph: an LSTM at the IMDB example's
// shapes (batch-first), batch norm in training mode and layer norm at transformer shapes,
// and multi-head self-attention. The loss is the output's mean, so the backward reaches
// every parameter; parameter gradients are dropped after each timed step.

import { manualSeed, nn, randn, scope, type Tensor } from "../../lib/index.js";
import type { BenchCase, BenchRun } from "./types.js";

/** Times forward + backward of `forward` with its module's gradients cleared after. */
function layerRun(module: nn.Module, input: Tensor, forward: () => Tensor): BenchRun {
  const clear = () => {
    for (const p of module.parameters()) {
      p.grad?.dispose();
      p.setGrad(null);
    }
  };
  return {
    run: () => scope(() => forward().mean().backward()),
    after: clear,
    dispose: () => {
      clear();
      input.dispose();
    },
  };
}

function lstmCase(batch: number, steps: number, features: number, hidden: number): BenchCase {
  return {
    name: `LSTM ${features}->${hidden} fwd+bwd [${batch},${steps}]`,
    group: "kernel",
    unit: "ms",
    peer: { op: "lstm", params: { batch, steps, features, hidden } },
    note: "flush-to-zero on for both, as deepnode's threads run",
    setup(device) {
      manualSeed(0);
      const lstm = new nn.LSTM(features, hidden, { batchFirst: true, device });
      const x = randn([batch, steps, features], { device });
      return layerRun(lstm, x, () => lstm.forward(x)[0]);
    },
  };
}

function batchNormCase(shape: [number, number, number, number]): BenchCase {
  return {
    name: `BatchNorm2d fwd+bwd [${shape.join(",")}]`,
    group: "kernel",
    unit: "ms",
    peer: { op: "batch norm", params: { shape } },
    setup(device) {
      const norm = new nn.BatchNorm2d(shape[1], { device });
      const x = randn(shape, { device }).requiresGrad_(true);
      return layerRun(norm, x, () => norm.forward(x));
    },
  };
}

function layerNormCase(shape: [number, number, number]): BenchCase {
  return {
    name: `LayerNorm fwd+bwd [${shape.join(",")}]`,
    group: "kernel",
    unit: "ms",
    peer: { op: "layer norm", params: { shape } },
    setup(device) {
      const norm = new nn.LayerNorm(shape[2], { device });
      const x = randn(shape, { device }).requiresGrad_(true);
      return layerRun(norm, x, () => norm.forward(x));
    },
  };
}

function attentionCase(batch: number, length: number, embed: number, heads: number): BenchCase {
  return {
    name: `MultiheadAttention fwd+bwd [${batch},${length},${embed}] ${heads} heads`,
    group: "kernel",
    unit: "ms",
    peer: { op: "multihead attention", params: { batch, length, embed, heads } },
    setup(device) {
      manualSeed(0);
      const attention = new nn.MultiheadAttention(embed, heads, { batchFirst: true, device });
      const x = randn([batch, length, embed], { device });
      const forward = () => attention.forward(x, x, x, { needWeights: false })[0];
      return layerRun(attention, x, forward);
    },
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 45;

export const cases: BenchCase[] = [
  lstmCase(64, 256, 128, 128),
  batchNormCase([32, 64, 32, 32]),
  layerNormCase([64, 128, 512]),
  attentionCase(32, 128, 256, 8),
];
