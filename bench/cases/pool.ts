// Max pooling forward and backward: the MNIST net's 2x2 pool and a ResNet stem's 3x3
// stride-2 pool. Measured as bandwidth: the input and the output (or their gradients) each
// passed once. The backward case times only the backward: the forward runs untimed first.

import { F, randn, scope, type Tensor } from "../../lib/index.js";
import type { BenchCase, BenchRun } from "./types.js";

interface PoolShape {
  label: string;
  batch: number;
  channels: number;
  size: number;
  kernel: number;
  stride: number;
  padding: number;
}

function outSize(s: PoolShape): number {
  return Math.floor((s.size + 2 * s.padding - s.kernel) / s.stride) + 1;
}

function setupBackward(s: PoolShape, device: string): BenchRun {
  const x = randn([s.batch, s.channels, s.size, s.size], { device }).requiresGrad_(true);
  const grad = randn([s.batch, s.channels, outSize(s), outSize(s)], { device });
  const options = { stride: s.stride, padding: s.padding };
  let out: Tensor | null = null;
  return {
    before: () => (out = F.maxPool2d(x, s.kernel, options)),
    run: () => out!.backward(grad),
    after: () => {
      out!.dispose();
      x.grad?.dispose();
      x.setGrad(null);
    },
    dispose: () => [x, grad].forEach((t) => t.dispose()),
  };
}

function setupForward(s: PoolShape, device: string): BenchRun {
  const x = randn([s.batch, s.channels, s.size, s.size], { device });
  const options = { stride: s.stride, padding: s.padding };
  return {
    run: () => scope(() => void F.maxPool2d(x, s.kernel, options)),
    dispose: () => x.dispose(),
  };
}

function poolCase(s: PoolShape, backward: boolean, extra: Partial<BenchCase> = {}): BenchCase {
  const { label, ...params } = s;
  const elements = s.batch * s.channels * (s.size * s.size + outSize(s) * outSize(s));
  const shape = `[${s.batch},${s.channels},${s.size},${s.size}] k${s.kernel} s${s.stride}`;
  return {
    name: `maxPool2d ${backward ? "bwd" : "fwd"} ${label} ${shape}`,
    group: "kernel",
    unit: "GB/s",
    work: 4 * elements,
    peer: { op: backward ? "maxPool2d backward" : "maxPool2d", params },
    setup: (device) => (backward ? setupBackward(s, device) : setupForward(s, device)),
    ...extra,
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 30;

const mnist: PoolShape = {
  label: "MNIST",
  batch: 64,
  channels: 64,
  size: 24,
  kernel: 2,
  stride: 2,
  padding: 0,
};
const stem: PoolShape = {
  ...mnist,
  label: "ResNet stem",
  batch: 32,
  size: 112,
  kernel: 3,
  padding: 1,
};

export const cases: BenchCase[] = [
  poolCase(mnist, false, { small: true }),
  poolCase(mnist, true, { small: true }),
  poolCase(stem, false, { slow: true }),
  poolCase(stem, true, { slow: true }),
];
