// optim: SGD (momentum, dampening, Nesterov, weight decay) and Adam/AdamW (amsgrad, weight
// decay) against PyTorch's parameters after each of 3 steps (test/fixtures/ops.safetensors,
// made by make_fixtures.py), hyperparameter validation, skipped parameters, zeroGrad,
// parameter groups, and short training runs whose loss must fall below a bar.

import { describe, expect, it } from "vitest";

import {
  F,
  Tensor,
  ValueError,
  fromTypedArray,
  manualSeed,
  nn,
  optim,
  randn,
  scope,
  tensor,
  zeros,
} from "../lib/index.js";
import type { DType } from "../lib/dtype.js";
import { loadFixture } from "./fixtures/golden.js";
import { expectClose, expectThrows, type Tolerance } from "./helpers.js";

const ops = loadFixture("ops.safetensors");

type Maker = (params: Tensor[]) => optim.Optimizer<object>;

// OPTIM_CASES of make_fixtures.py, with PyTorch's keyword arguments in our names.
const CASES: Record<string, Maker> = {
  "sgd.plain": (ps) => new optim.SGD(ps, { lr: 0.1 }),
  "sgd.momentum": (ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9 }),
  "sgd.dampening": (ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.3 }),
  "sgd.nesterov": (ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true }),
  "sgd.weight_decay": (ps) => new optim.SGD(ps, { lr: 0.1, weightDecay: 0.05 }),
  "sgd.all": (ps) =>
    new optim.SGD(ps, { lr: 0.05, momentum: 0.8, weightDecay: 0.1, nesterov: true }),
  "adam.default": (ps) => new optim.Adam(ps, { lr: 0.01 }),
  "adam.weight_decay": (ps) => new optim.Adam(ps, { lr: 0.01, weightDecay: 0.1 }),
  "adam.amsgrad": (ps) =>
    new optim.Adam(ps, { lr: 0.02, betas: [0.8, 0.99], eps: 1e-6, amsgrad: true }),
  "adamw.default": (ps) => new optim.AdamW(ps, { lr: 0.01 }),
  "adamw.amsgrad": (ps) =>
    new optim.AdamW(ps, { lr: 0.05, betas: [0.5, 0.9], weightDecay: 0.2, amsgrad: true }),
};

interface DeviceCase {
  device: string;
  dtype: DType;
  tol: Tolerance;
}

// Parameters are O(1); a float32 step rounds the parameter and each state buffer once.
const DEVICE_CASES: DeviceCase[] = [
  { device: "cpu", dtype: "float32", tol: { rtol: 1e-6, atol: 1e-6 } },
  { device: "reference", dtype: "float32", tol: { rtol: 1e-6, atol: 1e-6 } },
  { device: "reference", dtype: "float64", tol: { rtol: 1e-13, atol: 1e-13 } },
];

function values(t: Tensor): number[] {
  return Array.from(t.dataSync() as ArrayLike<number>);
}

function hostTensor(data: number[], shape: number[], device: string, dtype: DType): Tensor {
  const array = dtype === "float64" ? Float64Array.from(data) : Float32Array.from(data);
  return fromTypedArray(array, shape, { device });
}

describe.each(DEVICE_CASES)("optimizers against PyTorch on $device $dtype", (c) => {
  const shape = ops.shape("optim.param"); // [2, 3]
  const size = shape[0]! * shape[1]!;
  const grads = ops.values("optim.grads"); // [3 steps, 2, 3]

  it.each(Object.keys(CASES))("%s: the parameter after each of 3 steps", (key) => {
    const param = new nn.Parameter(ops.tensor("optim.param", c.device, c.dtype));
    const optimizer = CASES[key]!([param]);
    const expected = ops.values(`${key}.params`); // [3 steps, 2, 3]
    for (let step = 0; step < 3; step++) {
      param.grad = hostTensor(
        grads.slice(step * size, (step + 1) * size),
        shape,
        c.device,
        c.dtype,
      );
      optimizer.step();
      expect(param.dtype).toBe(c.dtype);
      expectClose(
        param,
        expected.slice(step * size, (step + 1) * size),
        c.tol,
        `${key} step ${step + 1}`,
      );
    }
  });

  it.each(["sgd.momentum", "adam.amsgrad"])(
    "%s: a parameter without a gradient is skipped and its state starts later",
    (key) => {
      const first = new nn.Parameter(ops.tensor("optim.param", c.device, c.dtype));
      const idle = new nn.Parameter(ops.tensor("optim.param", c.device, c.dtype));
      const optimizer = CASES[key]!([first, idle]);
      const initial = values(idle);
      for (let step = 0; step < 2; step++) {
        first.grad = hostTensor(grads.slice(0, size), shape, c.device, c.dtype);
        optimizer.step();
        expect(values(idle)).toEqual(initial);
        expect(idle.grad).toBeNull();
      }
      // Its first gradient now is its first step: PyTorch's value after step 1.
      idle.grad = hostTensor(grads.slice(0, size), shape, c.device, c.dtype);
      optimizer.step();
      expectClose(idle, ops.values(`${key}.params`).slice(0, size), c.tol, `${key} late start`);
    },
  );
});

describe("hyperparameter validation", () => {
  const params = () => [zeros([2], { requiresGrad: true })];

  it.each([
    [() => new optim.SGD(params(), { lr: -0.1 }), "SGD: invalid lr: -0.1 (expected a number >= 0)"],
    [() => new optim.SGD(params(), { lr: NaN }), "SGD: invalid lr: NaN (expected a number >= 0)"],
    [
      () => new optim.SGD(params(), { lr: 0.1, momentum: -0.5 }),
      "SGD: invalid momentum: -0.5 (expected >= 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, weightDecay: -1 }),
      "SGD: invalid weightDecay: -1 (expected >= 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, nesterov: true }),
      "SGD: invalid nesterov: true (expected momentum > 0 and dampening 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }),
      "SGD: invalid nesterov: true (expected momentum > 0 and dampening 0)",
    ],
    [() => new optim.Adam(params(), { lr: -1 }), "Adam: invalid lr: -1 (expected a number >= 0)"],
    [() => new optim.Adam(params(), { eps: -1e-8 }), "Adam: invalid eps: -1e-8 (expected >= 0)"],
    [
      () => new optim.Adam(params(), { betas: [1, 0.999] }),
      "Adam: invalid betas[0]: 1 (expected in [0, 1))",
    ],
    [
      () => new optim.Adam(params(), { betas: [0.9, -0.1] }),
      "Adam: invalid betas[1]: -0.1 (expected in [0, 1))",
    ],
    [
      () => new optim.Adam(params(), { weightDecay: -0.01 }),
      "Adam: invalid weightDecay: -0.01 (expected >= 0)",
    ],
    [
      () => new optim.AdamW(params(), { lr: -0.001 }),
      "AdamW: invalid lr: -0.001 (expected a number >= 0)",
    ],
    [
      () => new optim.AdamW(params(), { betas: [0.9, 1.5] }),
      "AdamW: invalid betas[1]: 1.5 (expected in [0, 1))",
    ],
  ] as const)("rejects %#: names the option and the value", (make, message) => {
    const error = expectThrows(make, ValueError, message);
    expect(error.code).toBe("ERR_VALUE");
    expect(message).toContain(`invalid ${error.param}: `);
  });

  it("rejects a bad value in one parameter group", () => {
    const groups = [
      { params: params(), options: { lr: 0.1 } },
      { params: params(), options: { momentum: -1 } },
    ];
    expectThrows(
      () => new optim.SGD(groups, { lr: 0.1 }),
      ValueError,
      "SGD: invalid momentum: -1 (expected >= 0)",
    );
  });

  it("rejects an empty parameter list and a parameter in two groups", () => {
    expectThrows(() => new optim.Adam([]), ValueError, "Adam: got an empty parameter list");
    const shared = zeros([1], { requiresGrad: true });
    expectThrows(
      () => new optim.SGD([{ params: [shared] }, { params: [shared] }], { lr: 1 }),
      ValueError,
      "SGD: some parameters appear in more than one group",
    );
  });

  it("accepts PyTorch's defaults: Adam lr 1e-3, AdamW weight decay 1e-2", () => {
    const adam = new optim.Adam(params());
    expect(adam.paramGroups[0]!.options).toEqual({
      lr: 1e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
      amsgrad: false,
    });
    expect(new optim.AdamW(params()).paramGroups[0]!.options.weightDecay).toBe(1e-2);
    const sgd = new optim.SGD(params(), { lr: 0.5 });
    expect(sgd.paramGroups[0]!.options).toEqual({
      lr: 0.5,
      momentum: 0,
      dampening: 0,
      weightDecay: 0,
      nesterov: false,
    });
  });
});

describe("gradients and parameter groups", () => {
  it("zeroGrad sets gradients to null, or to zeros when asked", () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([3], { requiresGrad: true });
    const optimizer = new optim.SGD([a, b], { lr: 0.1 });
    a.mul(a).sum().add(b.mul(3).sum()).backward();
    expect(values(a.grad!)).toEqual([2, 4]);
    expect(values(b.grad!)).toEqual([3]);

    optimizer.zeroGrad(false);
    expect(values(a.grad!)).toEqual([0, 0]);
    expect(values(b.grad!)).toEqual([0]);
    optimizer.zeroGrad();
    expect(a.grad).toBeNull();
    expect(b.grad).toBeNull();
  });

  it("steps each group with its own options", () => {
    const slow = tensor([1, 1], { requiresGrad: true });
    const fast = tensor([1, 1], { requiresGrad: true });
    const optimizer = new optim.SGD(
      [{ params: [slow] }, { params: [fast], options: { lr: 0.5 } }],
      { lr: 0.1 },
    );
    slow.grad = tensor([1, -2]);
    fast.grad = tensor([1, -2]);
    optimizer.step();
    expectClose(slow, [0.9, 1.2], { rtol: 1e-7, atol: 0 }, "slow");
    expectClose(fast, [0.5, 2], { rtol: 1e-7, atol: 0 }, "fast");
  });

  it("steps a whole model's parameters through backward", () => {
    manualSeed(3);
    const model = new nn.Linear(3, 1);
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.25 });
    const before = values(model.weight);
    const x = tensor([[1, 2, 3]]);
    model.forward(x).sum().backward();
    optimizer.step();
    // d(sum(x W^T + b))/dW = x, so W moves by -lr * x and b by -lr.
    expectClose(
      model.weight,
      before.map((w, i) => w - 0.25 * (i + 1)),
      { rtol: 1e-6, atol: 1e-7 },
      "weight",
    );
  });
});

// ---- short training runs -------------------------------------------------------------

describe.each(["cpu", "reference"])("training on %s", (device) => {
  it("SGD with momentum fits a linear regression", () => {
    manualSeed(42);
    const x = randn([64, 3], { device });
    const trueWeight = tensor([[3], [-2], [0.5]], { device });
    const y = x.matmul(trueWeight).add(0.75);
    const model = new nn.Linear(3, 1, { device });
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const losses: number[] = [];
    for (let step = 0; step < 150; step++) {
      losses.push(
        scope(() => {
          optimizer.zeroGrad();
          const loss = model.forward(x).sub(y).square().mean();
          loss.backward();
          optimizer.step();
          return loss.item();
        }),
      );
    }
    expect(losses[0]!).toBeGreaterThan(1);
    expect(losses.at(-1)!).toBeLessThan(1e-4);
    expectClose(model.weight, [3, -2, 0.5], { rtol: 0, atol: 1e-2 }, "learned weight");
    expectClose(model.bias!, [0.75], { rtol: 0, atol: 1e-2 }, "learned bias");
  });

  it("Adam trains an MLP on XOR", () => {
    manualSeed(7);
    const x = tensor(
      [
        [0, 0],
        [0, 1],
        [1, 0],
        [1, 1],
      ],
      { device },
    );
    const targets = tensor([0, 1, 1, 0], { dtype: "int32", device });
    const model = new nn.Sequential(
      new nn.Linear(2, 16, { device }),
      new nn.ReLU(),
      new nn.Linear(16, 2, { device }),
    );
    const optimizer = new optim.Adam(model.parameters(), { lr: 0.05 });
    let loss = Infinity;
    for (let step = 0; step < 200; step++) {
      loss = scope(() => {
        optimizer.zeroGrad();
        const value = F.crossEntropy(model.forward(x), targets);
        value.backward();
        optimizer.step();
        return value.item();
      });
    }
    expect(loss).toBeLessThan(0.05);
    expect(values(model.forward(x).argmax(1))).toEqual([0, 1, 1, 0]);
  });
});
