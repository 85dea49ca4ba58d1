// Timings of single layers, forward and backward, for the benchmark suite to call (bench/
// reports them beside PyTorch): conv2d and batch norm at stated shapes. Each repeat builds
// the graph, times the forward, then times backward from a fixed upstream gradient; the
// median over repeats after warm-up is reported.
// Run: node dist/examples/layer_timings.js

import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { Tensor, manualSeed, nn, noGrad, ones, randn, scope } from "../lib/index.js";

export interface LayerTiming {
  name: string;
  /** The input's shape. */
  shape: number[];
  forwardMs: number;
  backwardMs: number;
  repeats: number;
}

export interface TimingOptions {
  repeats?: number;
  warmup?: number;
  device?: string;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Reads one element (no copy of the whole tensor), so a device that queues work finishes it. */
function waitFor(t: Tensor): void {
  noGrad(() => t.reshape([t.numel]).slice(0, 0, 1).item());
}

/** Times forward (x -> y) and y.backward(ones) of `layer`; x requires grad. */
function timeLayer(
  name: string,
  module: nn.Module,
  layer: (x: Tensor) => Tensor,
  shape: number[],
  options: TimingOptions,
): LayerTiming {
  const { repeats = 5, warmup = 1, device } = options;
  const forward: number[] = [];
  const backward: number[] = [];
  for (let i = 0; i < warmup + repeats; i++) {
    scope(() => {
      const x = randn(shape, device === undefined ? {} : { device }).requiresGrad_(true);
      const start = performance.now();
      const y = layer(x);
      waitFor(y);
      const middle = performance.now();
      y.backward(ones(y.shape, device === undefined ? {} : { device }));
      waitFor(x.grad!);
      const end = performance.now();
      module.zeroGrad();
      x.zeroGrad();
      if (i >= warmup) {
        forward.push(middle - start);
        backward.push(end - middle);
      }
    });
  }
  return { name, shape, forwardMs: median(forward), backwardMs: median(backward), repeats };
}

export interface Conv2dTimingShape {
  batch: number;
  inChannels: number;
  outChannels: number;
  size: number;
  kernel: number;
  padding: number;
}

/** conv2d with bias; default: batch 32, 64 -> 64 channels, 32x32, 3x3, padding 1. */
export function timeConv2d(
  shape: Partial<Conv2dTimingShape> = {},
  options: TimingOptions = {},
): LayerTiming {
  const s = {
    batch: 32,
    inChannels: 64,
    outChannels: 64,
    size: 32,
    kernel: 3,
    padding: 1,
    ...shape,
  };
  manualSeed(0);
  const factory = options.device === undefined ? {} : { device: options.device };
  const conv = new nn.Conv2d(s.inChannels, s.outChannels, s.kernel, {
    padding: s.padding,
    ...factory,
  });
  const name = `conv2d ${s.inChannels}->${s.outChannels} k${s.kernel} p${s.padding}`;
  const timing = timeLayer(
    name,
    conv,
    (x) => conv.forward(x),
    [s.batch, s.inChannels, s.size, s.size],
    options,
  );
  for (const p of conv.parameters()) p.dispose();
  return timing;
}

export interface BatchNormTimingShape {
  batch: number;
  channels: number;
  size: number;
}

/** BatchNorm2d in training mode; default: batch 32, 64 channels, 32x32. */
export function timeBatchNorm2d(
  shape: Partial<BatchNormTimingShape> = {},
  options: TimingOptions = {},
): LayerTiming {
  const s = { batch: 32, channels: 64, size: 32, ...shape };
  const factory = options.device === undefined ? {} : { device: options.device };
  const bn = new nn.BatchNorm2d(s.channels, factory);
  bn.train();
  const timing = timeLayer(
    `batchNorm2d ${s.channels}`,
    bn,
    (x) => bn.forward(x),
    [s.batch, s.channels, s.size, s.size],
    options,
  );
  for (const t of [...bn.parameters(), ...[...bn.namedBuffers()].map(([, b]) => b)]) t.dispose();
  return timing;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const t of [timeConv2d(), timeBatchNorm2d()]) {
    console.log(
      `${t.name} ${JSON.stringify(t.shape)}: forward ${t.forwardMs.toFixed(2)} ms, backward ` +
        `${t.backwardMs.toFixed(2)} ms`,
    );
  }
}
