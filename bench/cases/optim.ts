// One Adam step over 10M parameters (one tensor) whose gradient is already there: the
// optimizer's element-wise update, reading and writing the parameter and both moments.

import { nn, optim, randn } from "../../lib/index.js";
import type { BenchCase } from "./types.js";

function adamCase(elements: number): BenchCase {
  return {
    name: `Adam step [${elements}]`,
    group: "kernel",
    unit: "ms",
    peer: { op: "adam", params: { elements } },
    setup(device) {
      const param = new nn.Parameter(randn([elements], { device }));
      param.setGrad(randn([elements], { device }));
      const optimizer = new optim.Adam([param], { lr: 1e-3 });
      return {
        run: () => optimizer.step(),
        dispose: () => {
          param.grad?.dispose();
          param.dispose();
        },
      };
    },
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 60;

export const cases: BenchCase[] = [adamCase(10_000_000)];
