// Matrix products: square sizes from cache-resident to memory-bound, and the MNIST net's
// skinny fc1 product (batch 64, 9216 features in, 128 out).

import { matmul, randn, scope } from "../../lib/index.js";
import type { BenchCase } from "./types.js";

function matmulCase(m: number, k: number, n: number, extra: Partial<BenchCase> = {}): BenchCase {
  return {
    name: m === k && k === n ? `matmul ${m}^3` : `matmul ${m}x${k}x${n}`,
    group: "kernel",
    unit: "GFLOP/s",
    work: 2 * m * k * n,
    peer: { op: "matmul", params: { m, k, n } },
    setup(device) {
      const lhs = randn([m, k], { device });
      const rhs = randn([k, n], { device });
      return {
        run: () => scope(() => void matmul(lhs, rhs)),
        dispose: () => [lhs, rhs].forEach((t) => t.dispose()),
      };
    },
    ...extra,
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 10;

export const cases: BenchCase[] = [
  matmulCase(128, 128, 128, { small: true, inner: 10 }),
  matmulCase(512, 512, 512),
  matmulCase(1024, 1024, 1024),
  matmulCase(2048, 2048, 2048, { slow: true, repeats: 5 }),
  // The size of the CUDA backend's GEMM goal (at least 0.9 of PyTorch's on an H200).
  matmulCase(4096, 4096, 4096, { slow: true, repeats: 3 }),
  matmulCase(64, 9216, 128, { note: "MNIST fc1" }),
];
