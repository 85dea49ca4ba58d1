// Max pooling forward: the MNIST net's 2x2 pool and a ResNet stem's 3x3 stride-2 pool.
// Measured as bandwidth: the input read once and the output written once.

import { F, randn, scope } from "../../lib/index.js";
import type { BenchCase } from "./types.js";

interface PoolShape {
  label: string;
  batch: number;
  channels: number;
  size: number;
  kernel: number;
  stride: number;
  padding: number;
}

function poolCase(s: PoolShape, extra: Partial<BenchCase> = {}): BenchCase {
  const { label, ...params } = s;
  const out = Math.floor((s.size + 2 * s.padding - s.kernel) / s.stride) + 1;
  const elements = s.batch * s.channels * (s.size * s.size + out * out);
  return {
    name: `maxPool2d ${label} [${s.batch},${s.channels},${s.size},${s.size}] k${s.kernel} s${s.stride}`,
    group: "kernel",
    unit: "GB/s",
    work: 4 * elements,
    peer: { op: "maxPool2d", params },
    setup(device) {
      const x = randn([s.batch, s.channels, s.size, s.size], { device });
      const options = { stride: s.stride, padding: s.padding };
      return {
        run: () => scope(() => void F.maxPool2d(x, s.kernel, options)),
        dispose: () => x.dispose(),
      };
    },
    ...extra,
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 30;

export const cases: BenchCase[] = [
  poolCase(
    { label: "MNIST", batch: 64, channels: 64, size: 24, kernel: 2, stride: 2, padding: 0 },
    {
      small: true,
    },
  ),
  poolCase(
    { label: "ResNet stem", batch: 32, channels: 64, size: 112, kernel: 3, stride: 2, padding: 1 },
    { slow: true },
  ),
];
