// Element-wise add as memory bandwidth (two inputs read, one output written, 16M floats
// each), and the cost of a tiny op called from JavaScript: one add of two [1] tensors,
// its output disposed, which is the dispatch overhead every op pays.

import { randn, type Tensor } from "../../lib/index.js";
import type { BenchCase } from "./types.js";

function addCase(elements: number, extra: Partial<BenchCase>): BenchCase {
  return {
    name: `add [${elements}]`,
    group: "kernel",
    unit: "GB/s",
    work: 3 * 4 * elements,
    peer: { op: "add", params: { elements } },
    setup(device) {
      const lhs = randn([elements], { device });
      const rhs = randn([elements], { device });
      return {
        run: () => lhs.add(rhs).dispose(),
        dispose: () => [lhs, rhs].forEach((t: Tensor) => t.dispose()),
      };
    },
    ...extra,
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 50;

export const cases: BenchCase[] = [
  addCase(16 * 1024 * 1024, { note: "bandwidth" }),
  {
    ...addCase(1, { note: "dispatch overhead", small: true, inner: 2000 }),
    name: "tiny add [1]+[1]",
    unit: "us",
    work: undefined,
  },
];
