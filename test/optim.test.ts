// optim: SGD (momentum, dampening, Nesterov, weight decay) and Adam/AdamW (amsgrad, weight
// decay) against PyTorch's parameters after each of 3 steps (test/fixtures/ops.safetensors,
// made by make_fixtures.py), hyperparameter validation, skipped parameters, zeroGrad,
// parameter groups, and short training runs whose loss must fall below a bar.

import { afterEach, describe, expect, it, vi } from "vitest";

import {
  DTypeError,
  DeviceError,
  F,
  ShapeError,
  StateDictError,
  Tensor,
  ValueError,
  fromTypedArray,
  liveTensors,
  manualSeed,
  nn,
  optim,
  randn,
  scope,
  tensor,
  zeros,
} from "../lib/index.js";
import { backendFor, type Device } from "../lib/backend/registry.js";
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
    [
      () => new optim.SGD(params(), { lr: -0.1 }),
      "SGD: invalid lr: -0.1 (expected a finite number >= 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: NaN }),
      "SGD: invalid lr: NaN (expected a finite number >= 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, momentum: -0.5 }),
      "SGD: invalid momentum: -0.5 (expected a finite number >= 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, weightDecay: -1 }),
      "SGD: invalid weightDecay: -1 (expected a finite number >= 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, nesterov: true }),
      "SGD: invalid nesterov: true (expected momentum > 0 and dampening 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }),
      "SGD: invalid nesterov: true (expected momentum > 0 and dampening 0)",
    ],
    [
      () => new optim.Adam(params(), { lr: -1 }),
      "Adam: invalid lr: -1 (expected a finite number >= 0)",
    ],
    [
      () => new optim.Adam(params(), { eps: -1e-8 }),
      "Adam: invalid eps: -1e-8 (expected a finite number >= 0)",
    ],
    [
      () => new optim.Adam(params(), { betas: [1, 0.999] }),
      "Adam: invalid betas[0]: 1 (expected a number in [0, 1))",
    ],
    [
      () => new optim.Adam(params(), { betas: [0.9, -0.1] }),
      "Adam: invalid betas[1]: -0.1 (expected a number in [0, 1))",
    ],
    [
      () => new optim.Adam(params(), { weightDecay: -0.01 }),
      "Adam: invalid weightDecay: -0.01 (expected a finite number >= 0)",
    ],
    [
      () => new optim.AdamW(params(), { lr: -0.001 }),
      "AdamW: invalid lr: -0.001 (expected a finite number >= 0)",
    ],
    [
      () => new optim.AdamW(params(), { betas: [0.9, 1.5] }),
      "AdamW: invalid betas[1]: 1.5 (expected a number in [0, 1))",
    ],
    // Strings and infinities were taken here and failed at the first step in a native kernel.
    [
      () => new optim.Adam(params(), { lr: "1e-3" as never }),
      'Adam: invalid lr: "1e-3" (expected a finite number >= 0)',
    ],
    [
      () => new optim.Adam(params(), { eps: "1e-8" as never }),
      'Adam: invalid eps: "1e-8" (expected a finite number >= 0)',
    ],
    [
      () => new optim.Adam(params(), { betas: [0.9, "0.999" as never] }),
      'Adam: invalid betas[1]: "0.999" (expected a number in [0, 1))',
    ],
    [
      () => new optim.Adam(params(), { weightDecay: Infinity }),
      "Adam: invalid weightDecay: Infinity (expected a finite number >= 0)",
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, momentum: "0.9" as never }),
      'SGD: invalid momentum: "0.9" (expected a finite number >= 0)',
    ],
    [
      () => new optim.SGD(params(), { lr: 0.1, dampening: "0.1" as never }),
      'SGD: invalid dampening: "0.1" (expected a finite number)',
    ],
    [
      () => new optim.RMSprop(params(), { alpha: "0.99" as never }),
      'RMSprop: invalid alpha: "0.99" (expected a finite number >= 0)',
    ],
    [
      () => new optim.Adagrad(params(), { lrDecay: "0" as never }),
      'Adagrad: invalid lrDecay: "0" (expected a finite number >= 0)',
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
      "SGD: invalid momentum: -1 (expected a finite number >= 0)",
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

// ---- RMSprop, Adagrad, PyTorch-style groups, state dicts ------------------------------
// Golden values from test/fixtures/optim.safetensors (make_optim_fixtures.py).

const golden = loadFixture("optim.safetensors");

// OPTIM_CASES of make_optim_fixtures.py, with PyTorch's keyword arguments in our names.
const MORE_CASES: Record<string, Maker> = {
  "rmsprop.default": (ps) => new optim.RMSprop(ps),
  "rmsprop.alpha_eps": (ps) => new optim.RMSprop(ps, { lr: 0.02, alpha: 0.9, eps: 1e-3 }),
  "rmsprop.weight_decay": (ps) => new optim.RMSprop(ps, { lr: 0.01, weightDecay: 0.1 }),
  "rmsprop.momentum": (ps) => new optim.RMSprop(ps, { lr: 0.01, momentum: 0.9 }),
  "rmsprop.centered": (ps) => new optim.RMSprop(ps, { lr: 0.01, centered: true }),
  "rmsprop.all": (ps) =>
    new optim.RMSprop(ps, {
      lr: 0.005,
      alpha: 0.8,
      weightDecay: 0.05,
      momentum: 0.5,
      centered: true,
    }),
  "adagrad.default": (ps) => new optim.Adagrad(ps),
  "adagrad.lr_decay": (ps) => new optim.Adagrad(ps, { lr: 0.1, lrDecay: 0.5 }),
  "adagrad.weight_decay": (ps) => new optim.Adagrad(ps, { lr: 0.1, weightDecay: 0.2 }),
  "adagrad.initial_accumulator": (ps) =>
    new optim.Adagrad(ps, { lr: 0.1, initialAccumulatorValue: 0.5 }),
  "adagrad.all": (ps) =>
    new optim.Adagrad(ps, {
      lr: 0.3,
      lrDecay: 0.1,
      weightDecay: 0.1,
      initialAccumulatorValue: 0.2,
      eps: 1e-3,
    }),
};

/** The gradient of `step` (0-based) from the fixture's [3, 2, 3] gradients. */
function gradAt(step: number, c: DeviceCase, scale = 1): Tensor {
  const size = 6;
  const data = golden.values("optim.grads").slice(step * size, (step + 1) * size);
  return hostTensor(
    data.map((v) => v * scale),
    [2, 3],
    c.device,
    c.dtype,
  );
}

function expectedAt(key: string, step: number): number[] {
  return golden.values(key).slice(step * 6, (step + 1) * 6);
}

describe.each(DEVICE_CASES)("RMSprop and Adagrad against PyTorch on $device $dtype", (c) => {
  it.each(Object.keys(MORE_CASES))("%s: the parameter after each of 3 steps", (key) => {
    const param = new nn.Parameter(golden.tensor("optim.param", c.device, c.dtype));
    const optimizer = MORE_CASES[key]!([param]);
    for (let step = 0; step < 3; step++) {
      param.grad = gradAt(step, c);
      optimizer.step();
      expect(param.dtype).toBe(c.dtype);
      expectClose(param, expectedAt(`${key}.params`, step), c.tol, `${key} step ${step + 1}`);
    }
  });

  it("groups in PyTorch's form keep their own options (Adam, amsgrad in one group)", () => {
    const a = new nn.Parameter(golden.tensor("optim.param", c.device, c.dtype));
    const b = new nn.Parameter(golden.tensor("optim.param", c.device, c.dtype).mul(-0.5));
    const optimizer = new optim.Adam(
      [
        { params: [a], lr: 0.05, amsgrad: true },
        { params: [b], weightDecay: 0.1 },
      ],
      { lr: 0.01 },
    );
    expect(optimizer.paramGroups.map((g) => [g.options.lr, g.options.amsgrad])).toEqual([
      [0.05, true],
      [0.01, false],
    ]);
    const expected = golden.values("groups.adam.params"); // [3 steps, 2 groups, 2, 3]
    for (let step = 0; step < 3; step++) {
      a.grad = gradAt(step, c);
      b.grad = gradAt(step, c, 2);
      optimizer.step();
      const row = expected.slice(step * 12, (step + 1) * 12);
      expectClose(a, row.slice(0, 6), c.tol, `group 0 step ${step + 1}`);
      expectClose(b, row.slice(6), c.tol, `group 1 step ${step + 1}`);
    }
  });

  // Two steps, a state dict, a fresh optimizer over a parameter at step 2's value: the
  // third step must still be PyTorch's, so every moment and step count was restored.
  it.each(["sgd.momentum", "adam.amsgrad", "rmsprop.all", "adagrad.all", "adagrad.lr_decay"])(
    "%s: a loaded state dict continues the run as PyTorch's",
    (key) => {
      const maker = CASES[key] ?? MORE_CASES[key]!;
      const fixture = key in CASES ? ops : golden;
      const param = new nn.Parameter(fixture.tensor("optim.param", c.device, c.dtype));
      const first = maker([param]);
      for (let step = 0; step < 2; step++) {
        param.grad = gradAt(step, c);
        first.step();
      }
      const resumed = new nn.Parameter(param.detach().clone());
      const second = maker([resumed]);
      second.loadStateDict(first.stateDict());
      resumed.grad = gradAt(2, c);
      second.step();
      expectClose(
        resumed,
        fixture.values(`${key}.params`).slice(12, 18), // step 3 of [3, 2, 3]
        c.tol,
        `${key} resumed`,
      );
    },
  );
});

describe("AdamW against Adam with L2 after one step", () => {
  // betas (0.5, 0.75) make the bias corrections 0.5 and 0.25 and every intermediate a
  // power-of-two multiple, so both steps are exact: Adam's first step is lr * sign(g') with
  // g' = g + wd * p (the L2 term is normalised away), AdamW's is lr * sign(g) after the
  // decoupled shrink p * (1 - lr * wd) = p * 0.9375.
  const p0 = [2, -1, 0.5];
  const g = [0.5, 0.25, -1];
  const options = { lr: 0.125, betas: [0.5, 0.75] as [number, number], eps: 0, weightDecay: 0.5 };

  it.each(DEVICE_CASES)("on $device $dtype", (c) => {
    const adamParam = new nn.Parameter(hostTensor(p0, [3], c.device, c.dtype));
    const adamwParam = new nn.Parameter(hostTensor(p0, [3], c.device, c.dtype));
    const adam = new optim.Adam([adamParam], options);
    const adamw = new optim.AdamW([adamwParam], options);
    adamParam.grad = hostTensor(g, [3], c.device, c.dtype);
    adamwParam.grad = hostTensor(g, [3], c.device, c.dtype);
    adam.step();
    adamw.step();
    // g' = [1.5, -0.25, -0.75]: p - 0.125 * sign(g').
    expect(values(adamParam)).toEqual([1.875, -0.875, 0.625]);
    // [1.875, -0.9375, 0.46875] - 0.125 * sign(g).
    expect(values(adamwParam)).toEqual([1.75, -1.0625, 0.59375]);
  });
});

// Each optimizer's step is one call per device (and step count, or first step) over a group's
// parameters; the per-parameter steps they replaced (one call each, the base Optimizer's
// updateGroup) are the oracles: results must be the same bits.
function perParameter(optimizer: optim.Optimizer<object>): optim.Optimizer<object> {
  const base = optim.Optimizer.prototype as unknown as { updateGroup: unknown };
  return Object.assign(optimizer, { updateGroup: base.updateGroup });
}

type Make = (params: Tensor[]) => optim.Optimizer<object>;

// 30 parameters of one to three dimensions, 0- and 1-element ones among them.
const BATCH_SHAPES = Array.from({ length: 30 }, (_, k) => {
  if (k % 7 === 1) return k < 10 ? [0] : [2, 0];
  if (k % 5 === 2) return k < 10 ? [1] : [1, 1, 1];
  const n = k + 2;
  return [[n], [2, n], [n, 3, 2]][k % 3]!;
});

/** A batched optimizer and a per-parameter one over equal copies of the same parameters. */
interface Twins {
  batched: nn.Parameter[];
  perParam: nn.Parameter[];
  many: optim.Optimizer<object>;
  single: optim.Optimizer<object>;
}

function twins(device: string, make: Make): Twins {
  manualSeed(11);
  const initial = BATCH_SHAPES.map((shape) => randn(shape, { device }));
  const copies = () => initial.map((t) => new nn.Parameter(t.clone()));
  const [batched, perParam] = [copies(), copies()];
  initial.forEach((t) => t.dispose());
  return { batched, perParam, many: make(batched), single: perParameter(make(perParam)) };
}

/** Parameters and every state value, as bits: equal only when each float is the same. */
function bits(params: Tensor[], optimizer: optim.Optimizer<object>): number[][] {
  const asBits = (t: Tensor) => Array.from(new Uint32Array(Float32Array.from(values(t)).buffer));
  const state = Object.values(optimizer.stateDict().state).flatMap((s) =>
    Object.values(s).map((v) => (v instanceof Tensor ? asBits(v) : [v])),
  );
  return [...params.map(asBits), ...state];
}

/**
 * One step of both twins per entry of `plan`, which picks the parameters that get a gradient
 * (the same on both sides; the rest get none); after each, both must hold the same bits.
 */
function stepTwins(device: string, t: Twins, plan: ((k: number) => boolean)[]): void {
  plan.forEach((which, step) => {
    manualSeed(100 + step);
    BATCH_SHAPES.forEach((shape, k) => {
      const grad = which(k) ? randn(shape, { device }) : null;
      for (const params of [t.batched, t.perParam]) params[k]!.grad = grad?.clone() ?? null;
      grad?.dispose();
    });
    t.many.step();
    t.single.step();
    expect(bits(t.batched, t.many), `step ${step + 1}`).toEqual(bits(t.perParam, t.single));
  });
}

type StepsMethod = "adamSteps" | "sgdSteps" | "rmspropSteps" | "adagradSteps";

/** Watches a backend's many-params kernel: each call's item count and `key` of its options. */
function watchSteps(device: Device, method: StepsMethod) {
  type Steps = (items: readonly unknown[], options: Record<string, unknown>) => void;
  const spy = vi.spyOn(backendFor(device) as unknown as Record<StepsMethod, Steps>, method);
  return (key?: string) =>
    spy.mock.calls.map(([items, options]) =>
      key === undefined ? [items.length] : [items.length, options[key]],
    );
}

const EVERY = () => true;

const BATCHED_CASES: [string, StepsMethod, Make][] = [
  ["Adam", "adamSteps", (ps) => new optim.Adam(ps, { lr: 0.01, weightDecay: 0.05 })],
  ["Adam amsgrad", "adamSteps", (ps) => new optim.Adam(ps, { weightDecay: 0.05, amsgrad: true })],
  ["AdamW", "adamSteps", (ps) => new optim.AdamW(ps, { lr: 0.01, weightDecay: 0.05 })],
  ["AdamW amsgrad", "adamSteps", (ps) => new optim.AdamW(ps, { amsgrad: true })],
  ["SGD", "sgdSteps", (ps) => new optim.SGD(ps, { lr: 0.1 })],
  ["SGD weight decay", "sgdSteps", (ps) => new optim.SGD(ps, { lr: 0.1, weightDecay: 0.05 })],
  ["SGD momentum", "sgdSteps", (ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9 })],
  [
    "SGD dampening",
    "sgdSteps",
    (ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.01 }),
  ],
  [
    "SGD nesterov",
    "sgdSteps",
    (ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.8, nesterov: true, weightDecay: 0.1 }),
  ],
  ["RMSprop", "rmspropSteps", (ps) => new optim.RMSprop(ps, { weightDecay: 0.05 })],
  ["RMSprop momentum", "rmspropSteps", (ps) => new optim.RMSprop(ps, { momentum: 0.9 })],
  ["RMSprop centered", "rmspropSteps", (ps) => new optim.RMSprop(ps, { centered: true })],
  [
    "RMSprop all",
    "rmspropSteps",
    (ps) => new optim.RMSprop(ps, { centered: true, momentum: 0.5, alpha: 0.8, weightDecay: 0.1 }),
  ],
  ["Adagrad", "adagradSteps", (ps) => new optim.Adagrad(ps)],
  [
    "Adagrad all",
    "adagradSteps",
    (ps) => new optim.Adagrad(ps, { lrDecay: 0.5, weightDecay: 0.1, initialAccumulatorValue: 0.1 }),
  ],
];

// Step 1: the 10 with k % 3 == 0. Step 2: all 30, 10 on their second step, 20 on their first.
// Step 3: odd k only, the 5 that started first on their third step, the 10 others on their
// second. Those without a gradient are left as they were.
const PARTIAL_PLAN = [(k: number) => k % 3 === 0, EVERY, (k: number) => k % 2 === 1];
const BY_STEP = [
  [10, 1],
  [10, 2],
  [20, 1],
  [10, 2],
  [5, 3],
];

const PARTIAL_CASES: [string, StepsMethod, Make, string | undefined, unknown[][]][] = [
  ["Adam (amsgrad)", "adamSteps", (ps) => new optim.Adam(ps, { amsgrad: true }), "step", BY_STEP],
  ["Adagrad", "adagradSteps", (ps) => new optim.Adagrad(ps, { lrDecay: 0.1 }), "step", BY_STEP],
  [
    "SGD (momentum): a call for the new buffers",
    "sgdSteps",
    (ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.1 }),
    "firstStep",
    [
      [10, true],
      [10, false],
      [20, true],
      [15, false],
    ],
  ],
  [
    "RMSprop (centered, momentum): one call a step",
    "rmspropSteps",
    (ps) => new optim.RMSprop(ps, { centered: true, momentum: 0.9 }),
    undefined,
    [[10], [30], [15]],
  ],
];

describe.each(["cpu", "reference"] as const)("optimizers over many parameters on %s", (device) => {
  afterEach(() => vi.restoreAllMocks());

  it.each(BATCHED_CASES)(
    "%s: 3 steps in one %s call each, the same bits as one call per parameter",
    (_name, method, make) => {
      const t = twins(device, make);
      const calls = watchSteps(device, method);
      stepTwins(device, t, [EVERY, EVERY, EVERY]);
      expect(calls()).toEqual([[30], [30], [30]]);
    },
  );

  it.each(PARTIAL_CASES)(
    "%s: a group where only some parameters have gradients (%s)",
    (_name, method, make, key, expected) => {
      const t = twins(device, make);
      const calls = watchSteps(device, method);
      stepTwins(device, t, PARTIAL_PLAN);
      expect(calls(key)).toEqual(expected);
      expect(Object.keys(t.many.stateDict().state).length).toBe(30);
    },
  );
});

type OptimizerClass = new (
  params: optim.GroupSpec<object>[],
  options: object,
) => optim.Optimizer<object>;

/** Each optimizer, with options that make all its state, and what follows holds for each. */
const KINDS: [string, OptimizerClass, object][] = [
  ["Adam", optim.Adam as unknown as OptimizerClass, { amsgrad: true }],
  ["SGD", optim.SGD as unknown as OptimizerClass, { lr: 0.1, momentum: 0.9 }],
  ["RMSprop", optim.RMSprop as unknown as OptimizerClass, { momentum: 0.9, centered: true }],
  ["Adagrad", optim.Adagrad as unknown as OptimizerClass, {}],
];

describe.each(KINDS)("%s's batched step: bad gradients", (name, Kind, options) => {
  it("refuses a gradient unlike its parameter before it changes any state", () => {
    const a = new nn.Parameter(tensor([1, 2, 3]));
    const b = new nn.Parameter(tensor([1, 2, 3, 4]));
    const c = new nn.Parameter(tensor([5, 6]));
    const optimizer = new Kind([{ params: [a] }, { params: [c, b] }], options);
    a.grad = tensor([0.1, 0.2, 0.3]);
    c.grad = tensor([1, 1]);
    b.grad = tensor([1, 2, 3, 4, 5]);
    expectThrows(
      () => optimizer.step(),
      ShapeError,
      `${name}: parameter 1 of group 1 has shape [4] but its gradient [5]`,
    );
    b.grad = tensor([1, 2, 3, 4], { dtype: "int32" });
    expectThrows(
      () => optimizer.step(),
      DTypeError,
      `${name}: parameter 1 of group 1 is float32 but its gradient int32`,
    );
    b.grad = tensor([1, 2, 3, 4], { device: "reference" });
    expectThrows(
      () => optimizer.step(),
      DeviceError,
      `${name}: parameter 1 of group 1 is on cpu but its gradient on reference`,
    );
    // The first group was stepped before the second was checked; the second changed nothing.
    expect(Object.keys(optimizer.stateDict().state)).toEqual(["0"]);
    expect(values(c)).toEqual([5, 6]);
    expect(values(b)).toEqual([1, 2, 3, 4]);
    b.grad = tensor([1, 2, 3, 4]);
    optimizer.step();
    expect(Object.keys(optimizer.stateDict().state)).toEqual(["0", "1", "2"]);
  });

  it("keeps one call per parameter in a subclass that overrides update()", () => {
    const seen: number[] = [];
    const baseUpdate = (Kind.prototype as unknown as { update: (...args: unknown[]) => void })
      .update;
    // Abstract only to the type checker, which sees Kind as the abstract Optimizer.
    abstract class Logged extends Kind {
      protected override update(p: Tensor, grad: Tensor, o: object): void {
        seen.push(p.shape[0]!);
        baseUpdate.call(this, p, grad, o);
      }
    }
    const LoggedKind = Logged as unknown as OptimizerClass;
    const params = [2, 3].map((n) => new nn.Parameter(zeros([n])));
    const reference = [2, 3].map((n) => new nn.Parameter(zeros([n])));
    const optimizers = [
      new LoggedKind([{ params }], options),
      new Kind([{ params: reference }], options),
    ];
    for (const p of [...params, ...reference])
      p.grad = p.shape[0] === 2 ? tensor([1, -1]) : tensor([1, 2, 3]);
    for (const optimizer of optimizers) optimizer.step();
    expect(seen).toEqual([2, 3]);
    expect(params.map(values)).toEqual(reference.map(values));
  });
});

describe("RMSprop and Adagrad validation and defaults", () => {
  const params = () => [zeros([2], { requiresGrad: true })];

  it.each([
    [
      () => new optim.RMSprop(params(), { lr: -1 }),
      "RMSprop: invalid lr: -1 (expected a finite number >= 0)",
    ],
    [
      () => new optim.RMSprop(params(), { alpha: -0.5 }),
      "RMSprop: invalid alpha: -0.5 (expected a finite number >= 0)",
    ],
    [
      () => new optim.RMSprop(params(), { eps: -1 }),
      "RMSprop: invalid eps: -1 (expected a finite number >= 0)",
    ],
    [
      () => new optim.RMSprop(params(), { momentum: -0.9 }),
      "RMSprop: invalid momentum: -0.9 (expected a finite number >= 0)",
    ],
    [
      () => new optim.RMSprop(params(), { weightDecay: -2 }),
      "RMSprop: invalid weightDecay: -2 (expected a finite number >= 0)",
    ],
    [
      () => new optim.Adagrad(params(), { lr: -0.1 }),
      "Adagrad: invalid lr: -0.1 (expected a finite number >= 0)",
    ],
    [
      () => new optim.Adagrad(params(), { lrDecay: -1 }),
      "Adagrad: invalid lrDecay: -1 (expected a finite number >= 0)",
    ],
    [
      () => new optim.Adagrad(params(), { initialAccumulatorValue: -0.1 }),
      "Adagrad: invalid initialAccumulatorValue: -0.1 (expected a finite number >= 0)",
    ],
    [
      () => new optim.Adagrad(params(), { eps: -1e-10 }),
      "Adagrad: invalid eps: -1e-10 (expected a finite number >= 0)",
    ],
    [
      () => new optim.SGD([{ params: params(), lrr: 0.1 } as never], { lr: 0.1 }),
      "SGD: parameter group 0 has unknown options: lrr",
    ],
    [
      () => new optim.Adam([{ params: params() }, { params: params(), lr: -3 }]),
      "Adam: invalid lr: -3 (expected a finite number >= 0)",
    ],
  ] as const)("rejects %#: names the option and the value", (make, message) => {
    expectThrows(make, ValueError, message);
  });

  it("accepts PyTorch's defaults", () => {
    expect(new optim.RMSprop(params()).paramGroups[0]!.options).toEqual({
      lr: 1e-2,
      alpha: 0.99,
      eps: 1e-8,
      weightDecay: 0,
      momentum: 0,
      centered: false,
    });
    expect(new optim.Adagrad(params()).paramGroups[0]!.options).toEqual({
      lr: 1e-2,
      lrDecay: 0,
      weightDecay: 0,
      initialAccumulatorValue: 0,
      eps: 1e-10,
    });
  });
});

describe("optimizer state dicts", () => {
  function trained(): { param: Tensor; optimizer: optim.Adam } {
    const param = new nn.Parameter(
      tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]),
    );
    const optimizer = new optim.Adam([param], { lr: 0.1, amsgrad: true });
    param.grad = tensor([
      [1, -1, 1],
      [-1, 1, -1],
    ]);
    optimizer.step();
    return { param, optimizer };
  }

  it("has PyTorch's layout: state by index, groups with their options and indices", () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([3], { requiresGrad: true });
    const c = tensor([4], { requiresGrad: true });
    const optimizer = new optim.SGD([{ params: [a, b] }, { params: [c], lr: 0.5 }], {
      lr: 0.1,
      momentum: 0.9,
    });
    a.grad = tensor([1, 1]);
    c.grad = tensor([2]);
    optimizer.step();
    const dict = optimizer.stateDict();
    expect(Object.keys(dict.state)).toEqual(["0", "2"]);
    expect(values(dict.state[0]!.momentumBuffer as Tensor)).toEqual([1, 1]);
    expect(values(dict.state[2]!.momentumBuffer as Tensor)).toEqual([2]);
    expect(dict.paramGroups.map((g) => [g.params, g.options.lr])).toEqual([
      [[0, 1], 0.1],
      [[2], 0.5],
    ]);
  });

  it("restores the groups' options and copies the state onto the parameters' device", () => {
    const { optimizer } = trained();
    const dict = optimizer.stateDict();
    const target = new optim.Adam([new nn.Parameter(zeros([2, 3], { device: "reference" }))], {
      lr: 0.5,
      amsgrad: true,
    });
    target.loadStateDict(dict);
    expect(target.paramGroups[0]!.options.lr).toBe(0.1);
    const loaded = target.stateDict().state[0]!;
    expect(loaded.step).toBe(1);
    expect((loaded.expAvg as Tensor).device).toBe("reference");
    expectClose(
      loaded.expAvg as Tensor,
      values(dict.state[0]!.expAvg as Tensor),
      { rtol: 0, atol: 0 },
      "m",
    );
    // A copy: stepping the source does not move the target's state.
    optimizer.step();
    expect(target.stateDict().state[0]!.step).toBe(1);
  });

  it("names every missing, unexpected and mis-shaped entry, and changes nothing", () => {
    const { optimizer } = trained();
    const dict = optimizer.stateDict();
    const fresh = () =>
      new optim.Adam([new nn.Parameter(zeros([2, 3]))], { lr: 0.3, amsgrad: true });

    const twoGroups = { ...dict, paramGroups: [...dict.paramGroups, dict.paramGroups[0]!] };
    expectThrows(
      () => fresh().loadStateDict(twoGroups),
      StateDictError,
      "loadStateDict: unexpected keys: paramGroups.1",
    );

    const small = new optim.Adam([new nn.Parameter(zeros([3]))], { amsgrad: true });
    expectThrows(
      () => small.loadStateDict(dict),
      StateDictError,
      "loadStateDict: size mismatch for state.0.expAvg: expected [3], got [2, 3]; " +
        "size mismatch for state.0.expAvgSq: expected [3], got [2, 3]; " +
        "size mismatch for state.0.maxExpAvgSq: expected [3], got [2, 3]",
    );

    const { maxExpAvgSq: _dropped, ...partial } = dict.state[0]!;
    const extra = { ...dict, state: { 0: { ...partial, momentum: zeros([2, 3]) }, 5: {} } };
    const target = fresh();
    expectThrows(
      () => target.loadStateDict(extra),
      StateDictError,
      "loadStateDict: missing keys: state.0.maxExpAvgSq; unexpected keys: state.0.momentum, " +
        "state.5",
    );
    expect(target.paramGroups[0]!.options.lr).toBe(0.3);
    expect(target.stateDict().state).toEqual({});

    const sgdDict = new optim.SGD([zeros([2, 3], { requiresGrad: true })], { lr: 1 }).stateDict();
    expectThrows(
      () => fresh().loadStateDict(sgdDict as never),
      StateDictError,
      "loadStateDict: missing keys: paramGroups.0.options.betas, paramGroups.0.options.eps, " +
        "paramGroups.0.options.amsgrad; unexpected keys: paramGroups.0.options.momentum, " +
        "paramGroups.0.options.dampening, paramGroups.0.options.nesterov",
    );

    const badLr = {
      ...dict,
      paramGroups: [
        { ...dict.paramGroups[0]!, options: { ...dict.paramGroups[0]!.options, lr: -1 } },
      ],
    };
    expectThrows(
      () => fresh().loadStateDict(badLr),
      ValueError,
      "Adam: invalid lr: -1 (expected a finite number >= 0)",
    );
  });
});

// ---- learning-rate schedules -----------------------------------------------------------
// SCHEDULES of make_optim_fixtures.py: SGD (momentum 0.9) over two groups with lr 0.1 and
// 0.05; each group's lr after construction and after each of 30 steps, rows [31, 2].

type Schedule = optim.LRScheduler | optim.ReduceLROnPlateau;

const SCHEDULES: Record<string, (o: optim.SGD) => Schedule> = {
  step: (o) => new optim.StepLR(o, 7, 0.5),
  multistep: (o) => new optim.MultiStepLR(o, [3, 10, 10, 22], 0.3),
  exponential: (o) => new optim.ExponentialLR(o, 0.9),
  cosine: (o) => new optim.CosineAnnealingLR(o, 10, 0.001),
  cosine_long: (o) => new optim.CosineAnnealingLR(o, 30),
  onecycle_cos: (o) => new optim.OneCycleLR(o, [1.0, 0.5], { totalSteps: 30 }),
  onecycle_linear: (o) =>
    new optim.OneCycleLR(o, 0.8, {
      epochs: 3,
      stepsPerEpoch: 10,
      pctStart: 0.25,
      annealStrategy: "linear",
      divFactor: 10,
      finalDivFactor: 100,
      baseMomentum: 0.8,
      maxMomentum: 0.9,
    }),
  onecycle_three: (o) => new optim.OneCycleLR(o, 0.6, { totalSteps: 30, threePhase: true }),
  linear_warmup: (o) => new optim.LinearLR(o, { startFactor: 0.25, totalIters: 8 }),
  linear_decay: (o) => new optim.LinearLR(o, { startFactor: 1, endFactor: 0.1, totalIters: 20 }),
  warmup_linear: (o) => optim.warmupLinear(o, 5, 25),
  plateau_min: (o) =>
    new optim.ReduceLROnPlateau(o, {
      factor: 0.5,
      patience: 1,
      threshold: 1e-2,
      cooldown: 2,
      minLr: [0.01, 0.02],
    }),
  plateau_max_abs: (o) =>
    new optim.ReduceLROnPlateau(o, {
      mode: "max",
      factor: 0.3,
      patience: 1,
      threshold: 0.05,
      thresholdMode: "abs",
      minLr: 0.001,
    }),
  plateau_eps: (o) =>
    new optim.ReduceLROnPlateau(o, { factor: 0.9, patience: 0, minLr: 0.07, eps: 5e-3 }),
};

const SCHEDULE_TOL: Tolerance = { rtol: 1e-12, atol: 1e-15 };
const metrics = golden.values("plateau.metrics");

function twoGroups(): optim.SGD {
  return new optim.SGD(
    [
      { params: [zeros([2], { requiresGrad: true })] },
      { params: [zeros([1], { requiresGrad: true })], lr: 0.05 },
    ],
    { lr: 0.1, momentum: 0.9 },
  );
}

function stepSchedule(schedule: Schedule, step: number): void {
  if (schedule instanceof optim.ReduceLROnPlateau) schedule.step(metrics[step]!);
  else schedule.step();
}

/** Runs `steps` optimizer/schedule steps; returns each group's lr (and momentum) per row. */
function runSchedule(
  optimizer: optim.SGD,
  schedule: Schedule,
  from: number,
  to: number,
): { lrs: number[]; momenta: number[] } {
  const lrs: number[] = [];
  const momenta: number[] = [];
  const record = () => {
    for (const g of optimizer.paramGroups) {
      lrs.push(g.options.lr);
      momenta.push(g.options.momentum);
    }
  };
  if (from === 0) record();
  for (let step = from; step < to; step++) {
    optimizer.step();
    stepSchedule(schedule, step);
    record();
  }
  return { lrs, momenta };
}

describe("learning-rate schedules against PyTorch", () => {
  it.each(Object.keys(SCHEDULES))("%s: each group's lr over 30 steps", (name) => {
    const optimizer = twoGroups();
    const schedule = SCHEDULES[name]!(optimizer);
    const { lrs, momenta } = runSchedule(optimizer, schedule, 0, 30);
    expectClose(
      tensor(lrs, { dtype: "float64" }),
      golden.values(`sched.${name}.lr`),
      SCHEDULE_TOL,
      `${name} lr`,
    );
    if (name.startsWith("onecycle")) {
      const expected = golden.values(`sched.${name}.momentum`);
      expectClose(
        tensor(momenta, { dtype: "float64" }),
        expected,
        SCHEDULE_TOL,
        `${name} momentum`,
      );
    }
  });

  it.each(Object.keys(SCHEDULES))(
    "%s: a state dict saved at step 12 resumes the same sequence",
    (name) => {
      const first = twoGroups();
      const schedule = SCHEDULES[name]!(first);
      runSchedule(first, schedule, 0, 12);
      const saved = JSON.parse(JSON.stringify(schedule.stateDict())) as never;
      const savedOptimizer = first.stateDict();

      const second = twoGroups();
      const resumed = SCHEDULES[name]!(second);
      second.loadStateDict(savedOptimizer);
      resumed.loadStateDict(saved);
      const { lrs } = runSchedule(second, resumed, 12, 30);
      const expected = golden.values(`sched.${name}.lr`).slice(13 * 2);
      expectClose(tensor(lrs, { dtype: "float64" }), expected, SCHEDULE_TOL, `${name} resumed`);
    },
  );

  it("OneCycleLR cycles Adam's beta1 and refuses to step past totalSteps", () => {
    const adam = new optim.Adam([zeros([1], { requiresGrad: true })], { lr: 1 });
    const schedule = new optim.OneCycleLR(adam, 0.01, { totalSteps: 10 });
    expect(adam.paramGroups[0]!.options.betas).toEqual([0.95, 0.999]);
    expect(schedule.getLastLr()[0]).toBeCloseTo(0.01 / 25, 15);
    // As PyTorch: the counter may reach totalSteps, one step past the last phase's end.
    for (let i = 0; i < 10; i++) {
      adam.step();
      schedule.step();
    }
    expect(adam.paramGroups[0]!.options.betas[1]).toBe(0.999);
    expectThrows(
      () => schedule.step(),
      ValueError,
      "OneCycleLR: tried to step 12 times; the specified number of total steps is 10",
    );
  });
});

describe("schedule validation and the step-order warning", () => {
  it("warns once, with a code, when the schedule steps before the optimizer", () => {
    const warnings: [string, unknown][] = [];
    const spy = vi.spyOn(process, "emitWarning").mockImplementation((message, options) => {
      warnings.push([String(message), options]);
    });
    try {
      const optimizer = twoGroups();
      const schedule = new optim.StepLR(optimizer, 2);
      expect(warnings).toEqual([]); // construction steps once, as PyTorch, without a warning
      schedule.step();
      schedule.step();
      new optim.ExponentialLR(twoGroups(), 0.5).step();
      const ordered = twoGroups();
      const fine = new optim.StepLR(ordered, 2);
      ordered.step();
      fine.step();
      expect(warnings.length).toBe(1);
      expect(warnings[0]![0]).toContain("scheduler.step() was called before optimizer.step()");
      expect(warnings[0]![1]).toMatchObject({ code: "DEEPNODE_SCHEDULER_BEFORE_OPTIMIZER" });
    } finally {
      spy.mockRestore();
    }
  });

  it.each([
    [
      () => new optim.StepLR(twoGroups(), 0),
      "StepLR: invalid stepSize: 0 (expected an integer > 0)",
    ],
    [() => new optim.StepLR(twoGroups(), 3, -1), "StepLR: invalid gamma: -1 (expected >= 0)"],
    [
      () => new optim.MultiStepLR(twoGroups(), [2, -1]),
      "MultiStepLR: invalid milestones: [2,-1] (expected integers >= 0)",
    ],
    [
      () => new optim.ExponentialLR(twoGroups(), -0.5),
      "ExponentialLR: invalid gamma: -0.5 (expected >= 0)",
    ],
    [
      () => new optim.CosineAnnealingLR(twoGroups(), 2.5),
      "CosineAnnealingLR: invalid tMax: 2.5 (expected an integer > 0)",
    ],
    [
      () => new optim.LinearLR(twoGroups(), { startFactor: 0 }),
      "LinearLR: invalid startFactor: 0 (expected in (0, 1])",
    ],
    [
      () => new optim.LinearLR(twoGroups(), { endFactor: 2 }),
      "LinearLR: invalid endFactor: 2 (expected in [0, 1])",
    ],
    [
      () => optim.warmupLinear(twoGroups(), 10, 5),
      "warmupLinear: invalid totalSteps: 5 (expected an integer >= warmupSteps (10))",
    ],
    [
      () => new optim.OneCycleLR(twoGroups(), 1),
      "OneCycleLR: give totalSteps, or epochs and stepsPerEpoch",
    ],
    [
      () => new optim.OneCycleLR(twoGroups(), [1, 2, 3], { totalSteps: 10 }),
      "OneCycleLR: invalid maxLr: [1,2,3] (expected 2 values, one per group)",
    ],
    [
      () => new optim.OneCycleLR(twoGroups(), 1, { totalSteps: 10, pctStart: 1.5 }),
      "OneCycleLR: invalid pctStart: 1.5 (expected in [0, 1])",
    ],
    [
      () =>
        new optim.OneCycleLR(new optim.Adagrad([zeros([1], { requiresGrad: true })]), 1, {
          totalSteps: 5,
        }),
      "OneCycleLR: cycleMomentum needs an optimizer with momentum or betas",
    ],
    [
      () => new optim.ReduceLROnPlateau(twoGroups(), { factor: 1 }),
      "ReduceLROnPlateau: invalid factor: 1 (expected in [0, 1))",
    ],
    [
      () => new optim.ReduceLROnPlateau(twoGroups(), { mode: "up" as never }),
      'ReduceLROnPlateau: invalid mode: "up" (expected min or max)',
    ],
    [
      () => new optim.ReduceLROnPlateau(twoGroups(), { patience: -1 }),
      "ReduceLROnPlateau: invalid patience: -1 (expected an integer >= 0)",
    ],
    [
      () => new optim.ReduceLROnPlateau(twoGroups(), { minLr: [0.1] }),
      "ReduceLROnPlateau: invalid minLr: [0.1] (expected 2 values, one per group)",
    ],
    [
      () => new optim.ReduceLROnPlateau(twoGroups(), { minLr: [0.1, -0.1] }),
      "ReduceLROnPlateau: invalid minLr: [0.1,-0.1] (expected values >= 0)",
    ],
  ] as const)("rejects %#: names the option and the value", (make, message) => {
    expectThrows(make, ValueError, message);
  });

  it("a state dict of another kind or other settings is refused by name", () => {
    const step = new optim.StepLR(twoGroups(), 7, 0.5).stateDict();
    expectThrows(
      () => new optim.ExponentialLR(twoGroups(), 0.5).loadStateDict(step),
      ValueError,
      "ExponentialLR: loadStateDict: the state is of a StepLR, not a ExponentialLR",
    );
    expectThrows(
      () => new optim.StepLR(twoGroups(), 5, 0.5).loadStateDict(step),
      ValueError,
      "StepLR: loadStateDict: stepSize is 7 in the state, 5 here",
    );
    const single = new optim.SGD([zeros([1], { requiresGrad: true })], { lr: 0.1 });
    expectThrows(
      () => new optim.StepLR(single, 7, 0.5).loadStateDict(step),
      ValueError,
      "StepLR: loadStateDict: the state has 2 parameter groups, the optimizer 1",
    );
    const plateau = new optim.ReduceLROnPlateau(twoGroups(), { patience: 3 }).stateDict();
    expectThrows(
      () => new optim.ReduceLROnPlateau(twoGroups()).loadStateDict(plateau),
      ValueError,
      "ReduceLROnPlateau: loadStateDict: patience is 3 in the state, 10 here",
    );
  });
});

// ---- gradient clipping, non-finite gradients, penalties, decay groups ------------------

describe.each(["cpu", "reference"])("gradient clipping on %s", (device) => {
  // Gradients [3, 4] and [[12]]: 2-norm 13, 1-norm 19, max-norm 12.
  function withGrads(first = [3, 4]): Tensor[] {
    const a = zeros([2], { device, requiresGrad: true });
    const b = zeros([1, 1], { device, requiresGrad: true });
    const idle = zeros([3], { device, requiresGrad: true }); // no gradient: ignored
    a.grad = tensor(first, { device });
    b.grad = tensor([[12]], { device });
    return [a, b, idle];
  }
  const gradsOf = (ps: Tensor[]) => ps.slice(0, 2).flatMap((p) => values(p.grad!));
  const tol = { rtol: 1e-6, atol: 0 };

  it.each([
    [2, 13],
    [1, 19],
    [Infinity, 12],
    [3, Math.cbrt(27 + 64 + 1728)],
  ])(
    "normType %s: returns the total norm %s and scales to maxNorm as PyTorch",
    (normType, total) => {
      const ps = withGrads();
      const norm = optim.clipGradNorm(ps, 6.5, normType);
      expect(norm).toBeCloseTo(total, 4);
      // PyTorch's factor: maxNorm / (total + 1e-6).
      const factor = 6.5 / (total + 1e-6);
      expectClose(tensor(gradsOf(ps)), [3 * factor, 4 * factor, 12 * factor], tol, "clipped");
      expect(ps[2]!.grad).toBeNull();
    },
  );

  it("leaves gradients under maxNorm as they are, and nn.utils is the same function", () => {
    const ps = withGrads();
    expect(nn.utils.clipGradNorm).toBe(optim.clipGradNorm);
    const scale = vi.spyOn(backendFor(device as Device), "scaleInPlace");
    expect(nn.utils.clipGradNorm(ps, 100)).toBeCloseTo(13, 5);
    const scaled = scale.mock.calls.length;
    scale.mockRestore();
    expect(scaled, "a factor of 1: no pass over the gradients").toBe(0);
    expect(gradsOf(ps)).toEqual([3, 4, 12]);
  });

  it.each([
    [NaN, "NaN"],
    [Infinity, "Infinity"],
  ])("a %s gradient is reported and no gradient is scaled by it", (bad, label) => {
    const ps = withGrads([3, bad]);
    const norm = optim.clipGradNorm(ps, 1);
    expect(String(norm)).toBe(label);
    expect(values(ps[1]!.grad!)).toEqual([12]);
    expectThrows(
      () => optim.clipGradNorm(withGrads([bad, 1]), 1, 2, { errorIfNonfinite: true }),
      ValueError,
      `clipGradNorm: the total norm of order 2 of the gradients is ${label}, so they cannot be ` +
        `clipped`,
    );
  });

  it.each([2, 1, Infinity, 3])(
    "clipGradNormTensor, normType %s: the norm as a tensor, and the gradients as PyTorch's",
    (normType) => {
      const ps = withGrads();
      const norm = optim.clipGradNormTensor(ps, 6.5, normType);
      expect(norm.shape).toEqual([]);
      expect(norm.device).toBe(device);
      const expected = withGrads();
      expect(norm.item()).toBe(optim.clipGradNorm(expected, 6.5, normType));
      // The factor is taken in float32 on the device, as PyTorch takes it: a reciprocal times
      // maxNorm (6.5 is a float32).
      const f = Math.fround;
      const factor = f(f(1 / f(norm.item() + f(1e-6))) * 6.5);
      expect(gradsOf(ps)).toEqual([3, 4, 12].map((g) => Math.fround(g * factor)));
      expect(ps[2]!.grad).toBeNull();
    },
  );

  it("clipGradNormTensor leaves gradients under maxNorm or of a non-finite norm alone", () => {
    const under = withGrads();
    expect(nn.utils.clipGradNormTensor).toBe(optim.clipGradNormTensor);
    expect(optim.clipGradNormTensor(under, 100).item()).toBeCloseTo(13, 5);
    expect(gradsOf(under)).toEqual([3, 4, 12]);
    for (const [bad, label] of [
      [NaN, "NaN"],
      [Infinity, "Infinity"],
    ] as const) {
      const ps = withGrads([3, bad]);
      expect(String(optim.clipGradNormTensor(ps, 1).item())).toBe(label);
      expect(gradsOf(ps)).toEqual([3, bad, 12]);
    }
    const none = optim.clipGradNormTensor([zeros([2], { device, requiresGrad: true })], 1);
    expect(none.toArray()).toBe(0);
    expectThrows(
      () => optim.clipGradNormTensor(withGrads(), -1),
      ValueError,
      "clipGradNormTensor: invalid maxNorm: -1 (expected a number >= 0)",
    );
    expectThrows(
      () => optim.clipGradNormTensor(withGrads(), 1, -2),
      ValueError,
      "clipGradNormTensor: invalid normType: -2 (expected a number > 0, or Infinity)",
    );
  });

  it("clips to PyTorch's bits, whose maxNorm / (norm + 1e-6) is a reciprocal times maxNorm", () => {
    // torch 1.13: p.grad = torch.tensor([norm], dtype=dtype); clip_grad_norm_([p], 1.3);
    // p.grad.item(). Dividing instead gives another last bit for each of these norms.
    const cases = [
      ["float32", 1.5928155183792114, 1.2999991178512573],
      ["float32", 8.843719482421875, 1.2999998331069946],
      ["float32", 5.935456275939941, 1.299999713897705],
      ["float64", 5.849863338470459, 1.2999997777726242],
      ["float64", 1.4122456789016724, 1.2999990794809295],
    ] as const;
    for (const [dtype, norm, clipped] of cases) {
      for (const clip of [optim.clipGradNorm, optim.clipGradNormTensor]) {
        const p = zeros([1], { device, dtype, requiresGrad: true });
        p.grad = tensor([norm], { device, dtype });
        clip([p], 1.3);
        expect(values(p.grad), `${clip.name} ${dtype} ${norm}`).toEqual([clipped]);
      }
    }
  });

  it("maxNorm Infinity returns the norm and scales nothing, as PyTorch's clip_grad_norm_", () => {
    const ps = withGrads();
    expect(optim.clipGradNorm(ps, Infinity)).toBeCloseTo(13, 5);
    expect(optim.clipGradNormTensor(ps, Infinity).item()).toBeCloseTo(13, 5);
    expect(gradsOf(ps)).toEqual([3, 4, 12]);
    const infinite = withGrads([3, Infinity]);
    expect(optim.clipGradNormTensor(infinite, Infinity).item()).toBe(Infinity);
    expect(gradsOf(infinite)).toEqual([3, Infinity, 12]);
  });

  it("takes the norms in one backend call and scales in one, whatever the gradient count", () => {
    const backend = backendFor(device as Device);
    const norms = vi.spyOn(backend, "norms");
    const scale = vi.spyOn(backend, "scaleInPlace");
    optim.clipGradNormTensor(withGrads(), 6.5);
    optim.clipGradNorm(withGrads(), 6.5);
    // Each call: the gradients' norms, then the norm of those.
    const normCalls = norms.mock.calls.map(([, xs]) => xs.length);
    const scaleCalls = scale.mock.calls.map(([xs]) => xs.length);
    vi.restoreAllMocks();
    expect(normCalls).toEqual([2, 1, 2, 1]);
    expect(scaleCalls).toEqual([2, 2]);
  });

  it.each([2, 1, Infinity, 3])("normType %s: an empty gradient's norm is 0", (normType) => {
    const ps = withGrads();
    const empty = zeros([0], { device, requiresGrad: true });
    empty.grad = zeros([0], { device });
    const expected = optim.clipGradNorm(withGrads(), 6.5, normType);
    expect(optim.clipGradNorm([...ps, empty], 6.5, normType)).toBe(expected);
    expect(empty.grad.shape).toEqual([0]);
  });

  it("an infinite element makes the norm of order Infinity infinite, not NaN", () => {
    const ps = withGrads([3, -Infinity]);
    expect(optim.clipGradNorm(ps, 1, Infinity)).toBe(Infinity);
    expect(gradsOf(ps)).toEqual([3, -Infinity, 12]);
    expect(optim.clipGradNormTensor(ps, 1, Infinity).item()).toBe(Infinity);
    expect(gradsOf(ps)).toEqual([3, -Infinity, 12]);
  });

  it("clips float64 gradients in float64, and gradients of two dtypes each in its own", () => {
    const wide = zeros([2], { device, dtype: "float64", requiresGrad: true });
    wide.grad = tensor([3, 4], { device, dtype: "float64" });
    const norm = optim.clipGradNorm([wide], 1);
    expect(norm).toBe(5);
    expect(values(wide.grad)).toEqual([3, 4].map((g) => g * (1 / (5 + 1e-6))));
    wide.grad = tensor([3, 4], { device, dtype: "float64" });
    const normTensor = optim.clipGradNormTensor([wide], 1);
    expect([normTensor.dtype, normTensor.item()]).toEqual(["float64", 5]);
    expect(values(wide.grad)).toEqual([3, 4].map((g) => g * (1 / (5 + 1e-6))));

    // The total is taken in the widest dtype (as PyTorch's stack promotes); each gradient is
    // scaled in its own.
    const [a, b] = withGrads();
    const c = zeros([1], { device, dtype: "float64", requiresGrad: true });
    c.grad = tensor([0.1], { device, dtype: "float64" });
    const total = optim.clipGradNorm([a!, b!, c], 6.5);
    expect(total).toBe(Math.sqrt(169 + 0.1 ** 2));
    const factor = (1 / (total + 1e-6)) * 6.5; // PyTorch's division: a reciprocal times maxNorm
    expect(values(a!.grad!)).toEqual([3, 4].map((g) => Math.fround(g * Math.fround(factor))));
    expect(values(c.grad)).toEqual([0.1 * factor]);
  });

  it("takes one tensor as well as a list, as PyTorch does", () => {
    const [a] = withGrads();
    const [listed] = withGrads();
    expect(optim.clipGradNorm(a!, 1)).toBe(5);
    optim.clipGradNorm([listed!], 1);
    expect(values(a!.grad!)).toEqual(values(listed!.grad!));
    expect(values(a!.grad!)[0]).toBeCloseTo(0.6, 5);
    optim.clipGradValue(a!, 0.5);
    expect(gradsOf([a!]).every((g) => g <= 0.5)).toBe(true);
  });

  it("clipGradValue clamps every element", () => {
    const ps = withGrads([3, -4]);
    optim.clipGradValue(ps, 3.5);
    expect(gradsOf(ps)).toEqual([3, -3.5, 3.5]);
  });

  it("rejects bad arguments by name and value", () => {
    expectThrows(
      () => optim.clipGradNorm(withGrads(), -1),
      ValueError,
      "clipGradNorm: invalid maxNorm: -1 (expected a number >= 0)",
    );
    expectThrows(
      () => optim.clipGradNorm(withGrads(), "1" as never),
      ValueError,
      'clipGradNorm: invalid maxNorm: "1" (expected a number >= 0)',
    );
    expectThrows(
      () => optim.clipGradNorm(withGrads(), 1, 0),
      ValueError,
      "clipGradNorm: invalid normType: 0 (expected a number > 0, or Infinity)",
    );
    expectThrows(
      () => optim.clipGradNorm(withGrads(), 1, "2" as never),
      ValueError,
      'clipGradNorm: invalid normType: "2" (expected a number > 0, or Infinity)',
    );
    expectThrows(
      () => optim.clipGradValue(withGrads(), -0.5),
      ValueError,
      "clipGradValue: invalid clipValue: -0.5 (expected a number >= 0)",
    );
    // A string passed the >= check and failed in the clamp kernel as a NativeError.
    expectThrows(
      () => optim.clipGradValue(withGrads(), "1" as never),
      ValueError,
      'clipGradValue: invalid clipValue: "1" (expected a number >= 0)',
    );
  });
});

describe("gradient clipping across devices", () => {
  it("gradients on two devices: the DeviceError of joining their norms, as before", () => {
    const a = zeros([2], { requiresGrad: true });
    const b = zeros([1], { device: "reference", requiresGrad: true });
    a.grad = tensor([3, 4]);
    b.grad = tensor([12], { device: "reference" });
    for (const clip of [optim.clipGradNorm, optim.clipGradNormTensor]) {
      expectThrows(
        () => clip([a, b], 1),
        DeviceError,
        "cat: expected tensors on one device, got cpu and reference",
      );
    }
    expect([a, b].flatMap((p) => values(p.grad!))).toEqual([3, 4, 12]);
  });
});

describe.each(["cpu", "reference"])("a non-finite gradient and skipNonFinite on %s", (device) => {
  function setup(): { a: Tensor; b: Tensor; optimizer: optim.Adam } {
    const a = tensor([1, 2], { device, requiresGrad: true });
    const b = tensor([3], { device, requiresGrad: true });
    const optimizer = new optim.Adam([a, b], { lr: 0.1 });
    optimizer.skipNonFinite = true;
    return { a, b, optimizer };
  }

  it.each([NaN, Infinity, -Infinity])(
    "a %s gradient: nothing is written, no state starts",
    (bad) => {
      const { a, b, optimizer } = setup();
      a.grad = tensor([0.5, 0.5], { device });
      b.grad = tensor([bad], { device });
      expect(optimizer.step()).toBe(false);
      expect(values(a)).toEqual([1, 2]);
      expect(values(b)).toEqual([3]);
      expect(optimizer.stateDict().state).toEqual({});
      expect([optimizer.stepCount, optimizer.skippedSteps]).toEqual([1, 1]);

      // The next finite step is the first one: as a fresh optimizer's.
      b.grad = tensor([-1], { device });
      expect(optimizer.step()).toBe(true);
      const fresh = setup();
      fresh.a.grad = tensor([0.5, 0.5], { device });
      fresh.b.grad = tensor([-1], { device });
      fresh.optimizer.step();
      expect(values(a)).toEqual(values(fresh.a));
      expect(values(b)).toEqual(values(fresh.b));
    },
  );

  it("a huge but finite float64 gradient, whose square overflows a double, is finite", () => {
    const a = tensor([1, 2], { dtype: "float64", device, requiresGrad: true });
    const b = tensor([3], { device, requiresGrad: true });
    const optimizer = new optim.SGD([a, b], { lr: 0.1 });
    b.grad = tensor([1e30], { device }); // float32: its square fits a double
    a.grad = tensor([1e200, -1e300], { dtype: "float64", device });
    expect(optimizer.gradientsFinite()).toBe(true);
    a.grad = tensor([1e200, -Infinity], { dtype: "float64", device });
    expect(optimizer.gradientsFinite()).toBe(false);
  });

  it("clipGradNorm then a skipping optimizer: a model's weights stay finite", () => {
    manualSeed(5);
    const model = new nn.Linear(3, 2, { device });
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    optimizer.skipNonFinite = true;
    const before = model.parameters().map(values);
    const x = tensor([[1, Infinity, 0]], { device });
    model.forward(x).sum().backward();
    expect(Number.isFinite(optim.clipGradNorm(model.parameters(), 1))).toBe(false);
    expect(optimizer.step()).toBe(false);
    expect(model.parameters().map(values)).toEqual(before);
  });
});

describe("no tensor outlives a step", () => {
  it.each(["cpu", "reference"])(
    "%s: steps, clipping, checks and state loads keep the count",
    (device) => {
      const make = () => {
        const params = [randn([4, 3], { device }), randn([3], { device })].map(
          (t) => new nn.Parameter(t),
        );
        const optimizer = new optim.RMSprop(params, { momentum: 0.5, centered: true });
        optimizer.skipNonFinite = true;
        return { params, optimizer };
      };
      const { params, optimizer } = make();
      const other = make();
      for (const p of params) p.grad = p.detach().mul(0.5);
      const cycle = () => {
        optim.clipGradNorm(params, 0.1);
        optim.clipGradValue(params, 0.01);
        optimizer.step();
      };
      cycle(); // creates the state
      other.optimizer.loadStateDict(optimizer.stateDict());
      const before = liveTensors();
      for (let i = 0; i < 3; i++) cycle();
      other.optimizer.loadStateDict(optimizer.stateDict());
      expect(liveTensors()).toBe(before);
    },
  );
});

describe("penalties and weight-decay groups", () => {
  it("l1Penalty and l2Penalty: values and gradients", () => {
    const a = tensor([1, -2], { requiresGrad: true });
    const b = tensor([[0, 3]], { requiresGrad: true });
    const l1 = optim.l1Penalty([a, b], 0.5);
    expect(l1.item()).toBe(3); // 0.5 * (1 + 2 + 0 + 3)
    l1.backward();
    expect(values(a.grad!)).toEqual([0.5, -0.5]);
    expect(values(b.grad!)).toEqual([0, 0.5]); // sign(0) = 0
    a.zeroGrad();
    b.zeroGrad();
    const l2 = optim.l2Penalty([a, b], 0.25);
    expect(l2.item()).toBe(3.5); // 0.25 * (1 + 4 + 0 + 9)
    l2.backward();
    expect(values(a.grad!)).toEqual([0.5, -1]); // 2 * 0.25 * p
    expect(values(b.grad!)).toEqual([0, 1.5]);
  });

  it("l2Penalty with weightDecay / 2 steps as SGD's weightDecay", () => {
    const run = (usePenalty: boolean): number[] => {
      manualSeed(11);
      const model = new nn.Linear(4, 2);
      const optimizer = new optim.SGD(model.parameters(), {
        lr: 0.1,
        weightDecay: usePenalty ? 0 : 0.2,
      });
      const x = tensor([[1, -1, 0.5, 2]]);
      for (let step = 0; step < 3; step++) {
        optimizer.zeroGrad();
        let loss = model.forward(x).square().sum();
        if (usePenalty) loss = loss.add(optim.l2Penalty(model.parameters(), 0.1));
        loss.backward();
        optimizer.step();
      }
      return model.parameters().flatMap(values);
    };
    expectClose(
      tensor(run(true)),
      run(false),
      { rtol: 1e-6, atol: 1e-7 },
      "penalty vs weightDecay",
    );
  });

  it("paramGroupsWithDecay exempts biases and 1-d weights; AdamW then leaves them alone", () => {
    manualSeed(2);
    const model = new nn.Sequential(new nn.Linear(3, 4), new nn.ReLU(), new nn.Linear(4, 1));
    const groups = optim.paramGroupsWithDecay(model, 0.5);
    expect(groups.map((g) => [g.params.length, g.weightDecay])).toEqual([
      [2, 0.5],
      [2, 0],
    ]);
    expect(groups[0]!.params).toEqual([model.at(0).parameters()[0], model.at(2).parameters()[0]]);

    const optimizer = new optim.AdamW(groups, { lr: 0.1 });
    const before = model.parameters().map(values);
    for (const p of model.parameters()) p.grad = p.zerosLike(); // only the decay moves weights
    optimizer.step();
    const after = model.parameters().map(values);
    // weights shrink by 1 - lr * wd = 0.95; biases do not move.
    expectClose(
      tensor(after[0]!),
      before[0]!.map((w) => w * 0.95),
      { rtol: 1e-6, atol: 0 },
      "w0",
    );
    expect(after[1]).toEqual(before[1]);
    expect(after[3]).toEqual(before[3]);

    const custom = optim.paramGroupsWithDecay(model, 0.1, {
      exempt: (name) => name.startsWith("2."),
    });
    expect(custom.map((g) => g.params.length)).toEqual([2, 2]);
    expectThrows(
      () => optim.paramGroupsWithDecay(model, -1),
      ValueError,
      "paramGroupsWithDecay: invalid weightDecay: -1 (expected >= 0)",
    );
  });
});
