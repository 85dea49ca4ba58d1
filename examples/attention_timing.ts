// Times nn.MultiheadAttention forward + backward (self-attention, batchFirst) at a stated
// shape: the hook bench/ calls for its multi-head attention line. As a script it prints
// the median milliseconds per step: `node dist/examples/attention_timing.js [device]`.
// examples/attention_timing_torch.py times PyTorch at the same shape.

import { pathToFileURL } from "node:url";
import { manualSeed, nn, randn, scope } from "../lib/index.js";

export interface AttentionTimingShape {
  batch: number;
  seqLen: number;
  embedDim: number;
  numHeads: number;
}

/** The shape the figures in the README were measured at. */
export const ATTENTION_BENCH_SHAPE: AttentionTimingShape = {
  batch: 32,
  seqLen: 128,
  embedDim: 256,
  numHeads: 8,
};

export interface AttentionTiming {
  shape: AttentionTimingShape;
  device: string;
  /** Median wall time of one forward + backward, in milliseconds. */
  medianMs: number;
  timesMs: number[];
}

/** Runs `warmup` untimed then `iterations` timed steps of forward, sum, backward. */
export function timeMultiheadAttention(
  shape: AttentionTimingShape = ATTENTION_BENCH_SHAPE,
  options: { device?: string; iterations?: number; warmup?: number } = {},
): AttentionTiming {
  const device = options.device ?? "cpu";
  const { batch, seqLen, embedDim, numHeads } = shape;
  manualSeed(0);
  const mha = new nn.MultiheadAttention(embedDim, numHeads, { batchFirst: true, device });
  const x = randn([batch, seqLen, embedDim], { device }).requiresGrad_(true);
  const step = () =>
    scope(() => {
      mha.zeroGrad();
      x.zeroGrad();
      const [out] = mha.forward(x, x, x, { needWeights: false });
      out.sum().backward();
      x.grad!.dataSync();
    });
  for (let i = 0; i < (options.warmup ?? 2); i++) step();
  const timesMs: number[] = [];
  for (let i = 0; i < (options.iterations ?? 10); i++) {
    const start = performance.now();
    step();
    timesMs.push(performance.now() - start);
  }
  const sorted = [...timesMs].sort((a, b) => a - b);
  return { shape, device, medianMs: sorted[Math.floor(sorted.length / 2)]!, timesMs };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const timing = timeMultiheadAttention(ATTENTION_BENCH_SHAPE, { device: process.argv[2] });
  const s = timing.shape;
  console.log(
    `MultiheadAttention fwd+bwd [${s.batch}, ${s.seqLen}, ${s.embedDim}] heads ${s.numHeads} on ` +
      `${timing.device}: ${timing.medianMs.toFixed(2)} ms`,
  );
}
