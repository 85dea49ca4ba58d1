// One Adam step over 10M parameters (one tensor) whose gradient is already there: the
// optimizer's element-wise update, reading and writing the parameter and both moments.
// And one over many small tensors, where the cost per tensor (a call, a launch) shows.

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

/** One step over `tensors` parameters of `elements` each, their gradients already there. */
function adamTensorsCase(tensors: number, elements: number): BenchCase {
  return {
    name: `Adam step ${tensors} x [${elements}]`,
    group: "kernel",
    unit: "us",
    small: true,
    inner: 20,
    peer: { op: "adam tensors", params: { tensors, elements } },
    setup(device) {
      const params = Array.from({ length: tensors }, () => {
        const param = new nn.Parameter(randn([elements], { device }));
        param.setGrad(randn([elements], { device }));
        return param;
      });
      const optimizer = new optim.Adam(params, { lr: 1e-3 });
      return {
        run: () => optimizer.step(),
        dispose: () => {
          for (const param of params) {
            param.grad?.dispose();
            param.dispose();
          }
        },
      };
    },
  };
}

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 60;

export const cases: BenchCase[] = [adamCase(10_000_000), adamTensorsCase(64, 1000)];
