// One Adam step over 10M parameters (one tensor) whose gradient is already there: the
// optimizer's element-wise update, reading and writing the parameter and both moments.
// And Adam's, SGD's (with momentum), RMSprop's and Adagrad's over many small tensors, where
// the cost per tensor (a call, a launch) shows.

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

/** The optimizers of the many-tensor rows, as PyTorch's peer builds them too. */
const MANY_TENSORS = {
  Adam: (params: nn.Parameter[]) => new optim.Adam(params, { lr: 1e-3 }),
  SGD: (params: nn.Parameter[]) => new optim.SGD(params, { lr: 1e-3, momentum: 0.9 }),
  RMSprop: (params: nn.Parameter[]) => new optim.RMSprop(params, { lr: 1e-3 }),
  Adagrad: (params: nn.Parameter[]) => new optim.Adagrad(params, { lr: 1e-3 }),
};

/** One step over `tensors` parameters of `elements` each, their gradients already there. */
function tensorsCase(
  kind: keyof typeof MANY_TENSORS,
  tensors: number,
  elements: number,
): BenchCase {
  return {
    name: `${kind} step ${tensors} x [${elements}]`,
    group: "kernel",
    unit: "us",
    small: true,
    inner: 20,
    peer: { op: `${kind.toLowerCase()} tensors`, params: { tensors, elements } },
    setup(device) {
      const params = Array.from({ length: tensors }, () => {
        const param = new nn.Parameter(randn([elements], { device }));
        param.setGrad(randn([elements], { device }));
        return param;
      });
      const optimizer = MANY_TENSORS[kind](params);
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

export const cases: BenchCase[] = [
  adamCase(10_000_000),
  tensorsCase("Adam", 64, 1000),
  tensorsCase("SGD", 64, 1000),
  tensorsCase("RMSprop", 64, 1000),
  tensorsCase("Adagrad", 64, 1000),
];
