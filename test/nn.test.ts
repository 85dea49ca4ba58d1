// nn: Module behaviour (names, order, modes, state dicts, printing), PyTorch's default
// init bounds, layer forwards, the functional layer against PyTorch's values in
// test/fixtures/ops.safetensors, and MNISTNet's output and every parameter gradient
// against test/fixtures/mnist_net.safetensors. Regenerate the fixtures with
// `/usr/bin/python3 test/fixtures/make_fixtures.py`.

import { afterEach, describe, expect, it } from "vitest";

import { MNISTNet } from "../examples/mnist.js";
import {
  DeviceError,
  F,
  IndexError,
  NotSupportedError,
  ShapeError,
  StateDictError,
  StateError,
  Tensor,
  ValueError,
  fromTypedArray,
  getDefaultDevice,
  manualSeed,
  cuda,
  nn,
  noGrad,
  scope,
  ones,
  setDefaultDevice,
  tensor,
  zeros,
} from "../lib/index.js";
import type { DType } from "../lib/dtype.js";
import { loadFixture, maxAbs, pattern } from "./fixtures/golden.js";
import { expectClose, expectThrows, type Tolerance } from "./helpers.js";

const ops = loadFixture("ops.safetensors");
const golden = loadFixture("mnist_net.safetensors");

const PARAMETER_NAMES = [
  "conv1.weight",
  "conv1.bias",
  "conv2.weight",
  "conv2.bias",
  "fc1.weight",
  "fc1.bias",
  "fc2.weight",
  "fc2.bias",
];

// print(MNISTNet()) in PyTorch 1.13 (test/fixtures/make_fixtures.py prints it).
const TORCH_MNIST_REPR = `MNISTNet(
  (conv1): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))
  (conv2): Conv2d(32, 64, kernel_size=(3, 3), stride=(1, 1))
  (dropout1): Dropout(p=0.25, inplace=False)
  (dropout2): Dropout(p=0.5, inplace=False)
  (fc1): Linear(in_features=9216, out_features=128, bias=True)
  (fc2): Linear(in_features=128, out_features=10, bias=True)
)`;
// sum(p.numel() for p in model.parameters()) in PyTorch.
const TORCH_MNIST_PARAMETERS = 1_199_882;

// print(nn.Sequential(...)) of the same layers as sequentialForRepr() below.
const TORCH_SEQUENTIAL_REPR = [
  "Sequential(",
  "  (0): Conv2d(4, 6, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), dilation=(2, 2), " +
    "groups=2, bias=False)",
  "  (1): ReLU()",
  "  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
  "  (3): MaxPool2d(kernel_size=(2, 3), stride=(1, 2), padding=1, dilation=1, ceil_mode=True)",
  "  (4): Flatten(start_dim=1, end_dim=-1)",
  "  (5): Dropout(p=0.5, inplace=False)",
  "  (6): Linear(in_features=8, out_features=3, bias=False)",
  ")",
].join("\n");

function sequentialForRepr(): nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(4, 6, [3, 2], { stride: 2, padding: 1, dilation: 2, groups: 2, bias: false }),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.MaxPool2d([2, 3], { stride: [1, 2], padding: 1, ceilMode: true }),
    new nn.Flatten(),
    new nn.Dropout(),
    new nn.Linear(8, 3, { bias: false }),
  );
}

function values(t: Tensor): number[] {
  return Array.from(t.dataSync() as ArrayLike<number>);
}

/** Copies `data` into a parameter (or any tensor) in place, outside the graph. */
function assign(target: Tensor, data: ArrayLike<number>): void {
  noGrad(() => target.copy_(fromTypedArray(Float32Array.from(data), target.shape)));
}

const initialDevice = getDefaultDevice();
afterEach(() => setDefaultDevice(initialDevice));

// ---- Module behaviour ------------------------------------------------------------------

describe("Module structure of MNISTNet", () => {
  manualSeed(0);
  const model = new MNISTNet();

  it("lists parameters by dotted name in declaration order", () => {
    const named = [...model.namedParameters()];
    expect(named.map(([name]) => name)).toEqual(PARAMETER_NAMES);
    expect(named.map(([, p]) => p.shape)).toEqual([
      [32, 1, 3, 3],
      [32],
      [64, 32, 3, 3],
      [64],
      [128, 9216],
      [128],
      [10, 128],
      [10],
    ]);
    expect(model.parameters()).toEqual(named.map(([, p]) => p));
    expect(model.parameters().every((p) => p instanceof nn.Parameter && p.requiresGrad)).toBe(true);
    expect(model.numParameters()).toBe(TORCH_MNIST_PARAMETERS);
  });

  it("lists children and modules in declaration order", () => {
    const children = [...model.namedChildren()];
    expect(children.map(([name]) => name)).toEqual([
      "conv1",
      "conv2",
      "dropout1",
      "dropout2",
      "fc1",
      "fc2",
    ]);
    expect(children.map(([, m]) => m.constructor.name)).toEqual([
      "Conv2d",
      "Conv2d",
      "Dropout",
      "Dropout",
      "Linear",
      "Linear",
    ]);
    expect([...model.children()]).toEqual(children.map(([, m]) => m));
    expect([...model.namedModules()].map(([name]) => name)).toEqual([
      "",
      "conv1",
      "conv2",
      "dropout1",
      "dropout2",
      "fc1",
      "fc2",
    ]);
    expect(model.fc1).toBeInstanceOf(nn.Linear);
  });

  it("propagates train and eval to every submodule", () => {
    const modes = () => [...model.modules()].map((m) => m.training);
    expect(modes()).toEqual(Array(7).fill(true));
    expect(model.eval()).toBe(model);
    expect(modes()).toEqual(Array(7).fill(false));
    model.train();
    expect(modes()).toEqual(Array(7).fill(true));
    model.train(false);
    expect(modes()).toEqual(Array(7).fill(false));
    model.dropout1.train();
    expect(modes()).toEqual([false, false, false, true, false, false, false]);
    model.train();
  });

  it("prints exactly as PyTorch prints the same model", () => {
    expect(model.toString()).toBe(TORCH_MNIST_REPR);
    expect(String(model)).toBe(TORCH_MNIST_REPR);
  });

  it("adds the parameter count line in summary()", () => {
    expect(model.summary()).toBe(
      `${TORCH_MNIST_REPR}\nparameters: 1,199,882 (trainable: 1,199,882)`,
    );
    model.fc1.weight.requiresGrad_(false);
    try {
      expect(model.summary().split("\n").at(-1)).toBe("parameters: 1,199,882 (trainable: 20,234)");
    } finally {
      model.fc1.weight.requiresGrad_(true);
    }
  });

  it("prints a Sequential of every layer as PyTorch does", () => {
    expect(sequentialForRepr().toString()).toBe(TORCH_SEQUENTIAL_REPR);
  });
});

describe("Module.to(device)", () => {
  it("moves parameters, buffers and gradients in place, each the same object", () => {
    const shared = new nn.Linear(3, 3);
    const model = new nn.Sequential(shared, new nn.BatchNorm1d(3), new nn.ReLU(), shared);
    const x = tensor([
      [1, -2, 3],
      [0.5, 4, -1],
    ]);
    model.eval();
    const before = scope(() => Array.from(model.forward(x).dataSync()));
    scope(() => model.forward(x).sum().backward());
    const params = model.parameters();
    const grads = params.map((p) => p.grad!.toArray());
    const live = liveTensors();
    expect(model.to("reference")).toBe(model);
    expect(model.parameters()).toEqual(params); // the same Parameter objects, tied once
    expect(params.every((p) => p === model.parameters()[params.indexOf(p)])).toBe(true);
    expect([...params, ...params.map((p) => p.grad!)].map((t) => t.device)).toEqual(
      Array(2 * params.length).fill("reference"),
    );
    expect([...model.namedBuffers()].map(([, b]) => b.device)).toEqual(Array(3).fill("reference"));
    expect(params.map((p) => p.grad!.toArray())).toEqual(grads);
    const after = scope(() => Array.from(model.forward(x.to("reference")).dataSync()));
    expectClose(after, before, { atol: 1e-6, rtol: 1e-6 }, "the same outputs");
    model.to("cpu");
    expect(liveTensors()).toBe(live); // the old storages are released, no copy is left
  });

  it("refuses a bad or unavailable device and leaves the module as it was", () => {
    const model = new nn.Linear(2, 2);
    expectThrows(
      () => model.to("gpu"),
      ValueError,
      `device: unknown device 'gpu' (expected "cpu", "reference", "cuda" or "cuda:N")`,
    );
    if (!cuda.isAvailable()) {
      expect(() => model.to("cuda")).toThrow(DeviceError);
    }
    expect(model.parameters().map((p) => p.device)).toEqual(["cpu", "cpu"]);
  });

  it("keeps a gradient that is already on the device, and moves the rest", () => {
    const model = new nn.Linear(2, 1);
    const [weight, bias] = model.parameters();
    weight!.grad = tensor([[1, 2]], { device: "reference" });
    const onTarget = weight!.grad;
    model.to("reference");
    expect(weight!.grad).toBe(onTarget);
    expect(weight!.grad.toArray()).toEqual([[1, 2]]);
    expect([weight!.device, bias!.device]).toEqual(["reference", "reference"]);
  });

  it("refuses a buffer made by a recorded op before moving anything", () => {
    class Holder extends nn.Module {
      fc = new nn.Linear(2, 2);
      constructor() {
        super();
        this.registerBuffer("scale", this.fc.weight.mul(2));
      }
      forward(x: Tensor): Tensor {
        return this.fc.forward(x);
      }
    }
    const model = new Holder();
    expectThrows(
      () => model.to("reference"),
      StateError,
      "to: 'scale' is the output of a recorded op (mul), so it cannot be moved in place; " +
        "detach() it first",
    );
    expect(model.parameters().map((p) => p.device)).toEqual(["cpu", "cpu"]);
  });
});

describe("stateDict and loadStateDict", () => {
  it("round-trips every parameter into a differently initialised model", () => {
    manualSeed(1);
    const source = new MNISTNet();
    manualSeed(2);
    const target = new MNISTNet();
    expect(values(target.fc2.weight)).not.toEqual(values(source.fc2.weight));

    const state = source.stateDict();
    expect(Object.keys(state)).toEqual(PARAMETER_NAMES);
    expect(state["fc1.weight"]).toBe(source.fc1.weight);
    expect(target.loadStateDict(state)).toEqual({ missing: [], unexpected: [] });
    for (const name of PARAMETER_NAMES) {
      expect(values(target.stateDict()[name]!), name).toEqual(values(state[name]!));
    }

    // The values were copied, not shared: changing the source leaves the target alone.
    const before = values(target.conv1.bias!);
    noGrad(() => source.conv1.bias!.fill_(7));
    expect(values(target.conv1.bias!)).toEqual(before);
    expect(target.conv1.bias).not.toBe(source.conv1.bias);
  });

  it("saves buffers after parameters and leaves them out of parameters()", () => {
    class Scaled extends nn.Module {
      fc = new nn.Linear(2, 2);
      constructor() {
        super();
        this.registerBuffer("scale", tensor([2, 3]));
      }
      forward(x: Tensor): Tensor {
        return this.fc.forward(x);
      }
    }
    const model = new Scaled();
    expect(Object.keys(model.stateDict())).toEqual(["fc.weight", "fc.bias", "scale"]);
    expect([...model.namedParameters()].map(([name]) => name)).toEqual(["fc.weight", "fc.bias"]);
    const other = new Scaled();
    other.loadStateDict({ ...model.stateDict(), scale: tensor([5, 6]) });
    expect(values((other as unknown as { scale: Tensor }).scale)).toEqual([5, 6]);
  });

  it("lists missing, unexpected and mis-shaped keys at once and copies nothing", () => {
    manualSeed(3);
    const model = new MNISTNet();
    const state: Record<string, Tensor> = { ...new MNISTNet().stateDict() };
    delete state["fc2.bias"];
    delete state["conv1.bias"];
    state["fc3.weight"] = zeros([2, 2]);
    state["fc2.weight"] = zeros([10, 127]);
    state["conv1.weight"] = zeros([32, 1, 5, 5]);
    const before = values(model.fc1.weight).slice(0, 16);

    const error = expectThrows(
      () => model.loadStateDict(state),
      StateDictError,
      "loadStateDict: missing keys: conv1.bias, fc2.bias; unexpected keys: fc3.weight; " +
        "size mismatch for conv1.weight: expected [32, 1, 3, 3], got [32, 1, 5, 5]; " +
        "size mismatch for fc2.weight: expected [10, 128], got [10, 127]",
    );
    expect(error.code).toBe("ERR_STATE_DICT");
    expect(error.missing).toEqual(["conv1.bias", "fc2.bias"]);
    expect(error.unexpected).toEqual(["fc3.weight"]);
    expect(error.mismatched).toEqual([
      { key: "conv1.weight", expected: [32, 1, 3, 3], got: [32, 1, 5, 5] },
      { key: "fc2.weight", expected: [10, 128], got: [10, 127] },
    ]);
    expect(values(model.fc1.weight).slice(0, 16)).toEqual(before);
  });

  it("accepts missing and unexpected keys when not strict, but never a wrong shape", () => {
    manualSeed(4);
    const model = new MNISTNet();
    const partial = { "fc2.bias": ones([10]), "extra.weight": zeros([1]) };
    expect(model.loadStateDict(partial, false)).toEqual({
      missing: PARAMETER_NAMES.filter((name) => name !== "fc2.bias"),
      unexpected: ["extra.weight"],
    });
    expect(values(model.fc2.bias!)).toEqual(Array(10).fill(1));
    expectThrows(
      () => model.loadStateDict({ "fc2.bias": ones([11]) }, false),
      StateDictError,
      "loadStateDict: size mismatch for fc2.bias: expected [10], got [11]",
    );
    expectThrows(
      () => model.loadStateDict({ "fc2.bias": ones([10]) }),
      StateDictError,
      `loadStateDict: missing keys: ${PARAMETER_NAMES.slice(0, 7).join(", ")}`,
    );
  });
});

// ---- default init -------------------------------------------------------------------

describe("PyTorch's default init", () => {
  // Rows: conv1, conv2, fc1, fc2 -> [fanIn, bound, torch max|w|, torch max|b|, torch std(w)].
  const rows = ops.values("init.rows");
  const layerNames = ["conv1", "conv2", "fc1", "fc2"] as const;

  it("draws weights and biases within 1/sqrt(fanIn), spread to the bound", () => {
    manualSeed(0);
    const model = new MNISTNet();
    layerNames.forEach((name, i) => {
      const [fanIn, bound, torchMaxW, torchMaxB, torchStd] = rows.slice(5 * i, 5 * i + 5);
      expect(bound!, name).toBeCloseTo(1 / Math.sqrt(fanIn!), 12);
      expect(torchMaxW!).toBeLessThanOrEqual(bound!);
      expect(torchMaxB!).toBeLessThanOrEqual(bound!);

      const layer = model[name];
      for (const p of [layer.weight, layer.bias!]) {
        const v = values(p);
        const m = maxAbs(v);
        // Of n uniform draws, the largest |x| falls short of the bound by about bound / n
        // and the smallest x of -bound by about 2 bound / n: allow 6 and 12 times that.
        const smallest = v.reduce((a, b) => Math.min(a, b));
        expect(m, `${name} max`).toBeLessThanOrEqual(bound!);
        expect(m, `${name} max`).toBeGreaterThan(bound! * (1 - 6 / v.length));
        expect(smallest, `${name} min`).toBeLessThan(-bound! * (1 - 12 / v.length));
      }
      const w = values(layer.weight);
      const mean = w.reduce((a, b) => a + b, 0) / w.length;
      const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / (w.length - 1));
      // U(-b, b) has std b / sqrt(3); torch's draw is within sampling error of it as well.
      const tolerance = 4 / Math.sqrt(w.length);
      expect(Math.abs(std / (bound! / Math.sqrt(3)) - 1), `${name} std`).toBeLessThan(tolerance);
      expect(Math.abs(torchStd! / (bound! / Math.sqrt(3)) - 1)).toBeLessThan(tolerance);
    });
  });

  it("gives the same weights for the same seed and others for another seed", () => {
    manualSeed(11);
    const a = new nn.Linear(5, 4);
    manualSeed(11);
    const b = new nn.Linear(5, 4);
    manualSeed(12);
    const c = new nn.Linear(5, 4);
    expect(values(a.weight)).toEqual(values(b.weight));
    expect(values(a.bias!)).toEqual(values(b.bias!));
    expect(values(a.weight)).not.toEqual(values(c.weight));
  });

  it("initialises a layer identically on cpu and reference for one seed", () => {
    manualSeed(5);
    const cpu = new nn.Conv2d(3, 4, 3, { device: "cpu" });
    manualSeed(5);
    const reference = new nn.Conv2d(3, 4, 3, { device: "reference" });
    expect(reference.weight.device).toBe("reference");
    expect(values(reference.weight)).toEqual(values(cpu.weight));
    expect(values(reference.bias!)).toEqual(values(cpu.bias!));
  });
});

// ---- layers -------------------------------------------------------------------------

describe("layer forwards", () => {
  it("Linear computes x W^T + b over any leading dimensions", () => {
    const layer = new nn.Linear(3, 2);
    assign(layer.weight, [1, 2, 3, 4, 5, 6]);
    assign(layer.bias!, [0.5, -1]);
    const y = layer.forward(
      tensor([
        [1, 0, -1],
        [2, 1, 0],
      ]),
    );
    expect(y.shape).toEqual([2, 2]);
    expect(y.toArray()).toEqual([
      [-1.5, -3],
      [4.5, 12],
    ]);
    const batched = layer.forward(tensor([[[1, 0, -1]], [[2, 1, 0]], [[0, 0, 0]]]));
    expect(batched.shape).toEqual([3, 1, 2]);
    expect(batched.toArray()).toEqual([[[-1.5, -3]], [[4.5, 12]], [[0.5, -1]]]);

    const noBias = new nn.Linear(3, 2, { bias: false });
    expect(noBias.bias).toBeNull();
    assign(noBias.weight, [1, 2, 3, 4, 5, 6]);
    expect(noBias.forward(tensor([[1, 1, 1]])).toArray()).toEqual([[6, 15]]);
    expect([...noBias.namedParameters()].map(([name]) => name)).toEqual(["weight"]);
  });

  it("Conv2d with stride, padding, dilation and groups matches PyTorch", () => {
    const layer = new nn.Conv2d(4, 6, [3, 2], { stride: 2, padding: 1, dilation: 2, groups: 2 });
    expect(layer.weight.shape).toEqual([6, 2, 3, 2]);
    assign(layer.weight, ops.values("conv.a.weight"));
    assign(layer.bias!, ops.values("conv.a.bias"));
    const y = layer.forward(ops.tensor("conv.a.x", "cpu"));
    expect(y.shape).toEqual(ops.shape("conv.a.out"));
    expectClose(y, ops.values("conv.a.out"), { rtol: 1e-5, atol: 1e-5 }, "conv.a");

    const plain = new nn.Conv2d(3, 4, [2, 3], { stride: [1, 2], padding: [0, 1], bias: false });
    assign(plain.weight, ops.values("conv.b.weight"));
    const z = plain.forward(ops.tensor("conv.b.x", "cpu"));
    expectClose(z, ops.values("conv.b.out"), { rtol: 1e-5, atol: 1e-5 }, "conv.b");
  });

  it("MaxPool2d with padding and ceil mode matches PyTorch, ties included", () => {
    const layer = new nn.MaxPool2d(3, { stride: 2, padding: 1, ceilMode: true });
    const y = layer.forward(ops.tensor("pool.a.x", "cpu"));
    expect(y.shape).toEqual(ops.shape("pool.a.out"));
    expect(values(y)).toEqual(ops.values("pool.a.out"));
    const plain = new nn.MaxPool2d(2);
    const x = tensor([
      [
        [
          [1, 5, 2, 0],
          [3, 4, 8, 8],
          [0, 0, -1, -2],
          [9, 0, -3, -4],
        ],
      ],
    ]);
    expect(plain.forward(x).toArray()).toEqual([
      [
        [
          [5, 8],
          [9, -1],
        ],
      ],
    ]);
  });

  it("Flatten joins startDim..endDim and keeps the values", () => {
    const x = fromTypedArray(
      Float32Array.from({ length: 120 }, (_, i) => i),
      [2, 3, 4, 5],
    );
    const y = new nn.Flatten().forward(x);
    expect(y.shape).toEqual([2, 60]);
    expect(values(y)).toEqual(values(x));
    expect(new nn.Flatten(0, 1).forward(x).shape).toEqual([6, 4, 5]);
    expect(new nn.Flatten(1, 2).forward(x).shape).toEqual([2, 12, 5]);
    expect(new nn.Flatten(0).forward(x).shape).toEqual([120]);
  });

  it("ReLU zeroes negatives", () => {
    const y = new nn.ReLU().forward(tensor([-2, -0.5, 0, 0.5, 3]));
    expect(values(y)).toEqual([0, 0, 0, 0.5, 3]);
  });

  it("Sequential runs its modules in order and names them by index", () => {
    const first = new nn.Linear(2, 3);
    assign(first.weight, [1, 0, 0, 1, 1, -1]);
    assign(first.bias!, [0, 0, -10]);
    const second = new nn.Linear(3, 1);
    assign(second.weight, [1, 2, 3]);
    assign(second.bias!, [0.25]);
    const model = new nn.Sequential(first, new nn.ReLU(), second);
    // h = relu([x0, x1, x0 - x1 - 10]); y = h0 + 2 h1 + 3 h2 + 0.25
    expect(
      model
        .forward(
          tensor([
            [1, 2],
            [-3, 4],
            [20, 1],
          ]),
        )
        .toArray(),
    ).toEqual([[5.25], [8.25], [49.25]]);
    expect(model.length).toBe(3);
    expect(model.at(0)).toBe(first);
    expect(model.at(-1)).toBe(second);
    expect([...model.namedParameters()].map(([name]) => name)).toEqual([
      "0.weight",
      "0.bias",
      "2.weight",
      "2.bias",
    ]);
    expectThrows(
      () => model.at(3),
      ValueError,
      "Sequential: index 3 is out of range for 3 modules",
    );
  });
});

describe("Dropout", () => {
  const p = 0.3;
  const count = 20_000;

  function dropoutOnes(seed: number, device = "cpu"): number[] {
    manualSeed(seed);
    const layer = new nn.Dropout(p);
    return values(layer.forward(ones([count], { device })));
  }

  it("is the identity in eval mode", () => {
    const layer = new nn.Dropout(p).eval();
    const x = tensor([1, -2, 3]);
    expect(values(layer.forward(x))).toEqual([1, -2, 3]);
    expect(F.dropout(x, 0.9, false)).toBe(x);
  });

  it("zeroes about p of the elements in training and scales the rest by 1/(1-p)", () => {
    const y = dropoutOnes(21);
    const zeros = y.filter((v) => v === 0).length;
    // Binomial(20000, 0.3): standard deviation 65, so 5 sd is 0.016 of the count.
    expect(Math.abs(zeros / count - p)).toBeLessThan(0.016);
    const kept = y.filter((v) => v !== 0);
    expect(new Set(kept)).toEqual(new Set([Math.fround(1 / (1 - p))]));
  });

  it("draws the same mask for the same seed, another for another seed", () => {
    expect(dropoutOnes(21)).toEqual(dropoutOnes(21));
    expect(dropoutOnes(21)).not.toEqual(dropoutOnes(22));
    manualSeed(21);
    new nn.Dropout(p).forward(ones([count]));
    const second = values(new nn.Dropout(p).forward(ones([count])));
    expect(second).not.toEqual(dropoutOnes(21)); // the generator moved on
  });

  it("draws the same mask on cpu and reference", () => {
    expect(dropoutOnes(33, "reference")).toEqual(dropoutOnes(33, "cpu"));
  });

  it("sends the gradient through the kept elements only, scaled", () => {
    manualSeed(8);
    const x = ones([1000], { requiresGrad: true });
    const y = F.dropout(x, 0.5);
    y.sum().backward();
    expect(values(x.grad!)).toEqual(values(y));
  });

  it("keeps everything at p = 0 and nothing at p = 1", () => {
    const x = tensor([1, 2, 3]);
    expect(values(new nn.Dropout(0).forward(x))).toEqual([1, 2, 3]);
    expect(values(new nn.Dropout(1).forward(x))).toEqual([0, 0, 0]);
  });
});

// ---- functional layer against PyTorch ---------------------------------------------

interface DeviceCase {
  device: string;
  dtype: DType;
  tol: Tolerance; // for values of order 1 computed from O(10) terms
}

const DEVICE_CASES: DeviceCase[] = [
  { device: "cpu", dtype: "float32", tol: { rtol: 2e-6, atol: 2e-6 } },
  { device: "reference", dtype: "float32", tol: { rtol: 2e-6, atol: 2e-6 } },
  { device: "reference", dtype: "float64", tol: { rtol: 1e-12, atol: 1e-12 } },
];

describe.each(DEVICE_CASES)("F against PyTorch on $device $dtype", ({ device, dtype, tol }) => {
  const input = (key: string, requiresGrad = false): Tensor => {
    const t = ops.tensor(key, device, dtype);
    return requiresGrad ? t.requiresGrad_(true) : t;
  };
  const check = (actual: Tensor | null, key: string, tolerance = tol) => {
    expect(actual, key).not.toBeNull();
    expect(actual!.dtype).toBe(dtype);
    expect(actual!.device).toBe(device);
    expect(actual!.shape, key).toEqual(ops.shape(key));
    expectClose(actual!, ops.values(key), tolerance, key);
  };

  it.each(["conv.a", "conv.b"])("conv2d forward and all gradients (%s)", (key) => {
    const hasBias = key === "conv.a";
    const options = hasBias
      ? { stride: 2, padding: 1, dilation: 2, groups: 2 }
      : { stride: [1, 2] as const, padding: [0, 1] as const };
    const x = input(`${key}.x`, true);
    const weight = input(`${key}.weight`, true);
    const bias = hasBias ? input(`${key}.bias`, true) : null;
    const out = F.conv2d(x, weight, bias, options);
    check(out, `${key}.out`);
    out.backward(input(`${key}.upstream`));
    check(x.grad, `${key}.grad_x`);
    check(weight.grad, `${key}.grad_weight`);
    if (bias !== null) check(bias.grad, `${key}.grad_bias`);
  });

  const poolOptions: Record<string, [F.Pair, F.MaxPool2dOptions]> = {
    "pool.a": [3, { stride: 2, padding: 1, ceilMode: true }],
    "pool.b": [2, { stride: 2, ceilMode: true }],
    "pool.c": [[2, 3], { stride: [1, 2], padding: [1, 1] }],
    "pool.d": [2, { stride: 2, padding: 1, dilation: 2 }],
  };
  it.each(Object.keys(poolOptions))("maxPool2d forward and gradient with ties (%s)", (key) => {
    const [kernelSize, options] = poolOptions[key]!;
    const x = input(`${key}.x`, true);
    const out = F.maxPool2d(x, kernelSize, options);
    check(out, `${key}.out`);
    out.backward(input(`${key}.upstream`));
    check(x.grad, `${key}.grad_x`);
  });

  it.each([
    ["softmax", 1],
    ["softmax", 0],
    ["log_softmax", 1],
    ["log_softmax", 0],
  ] as const)("%s over dim %i of extreme rows, and its gradient", (name, dim) => {
    const x = input("softmax.x", true);
    const out = name === "softmax" ? F.softmax(x, dim) : F.logSoftmax(x, dim);
    // log-softmax of +-1e30 rows is -2e30: relative tolerance covers it.
    check(out, `${name}.dim${dim}.out`, tol);
    out.backward(input("softmax.upstream"));
    check(x.grad, `${name}.dim${dim}.grad`, tol);
  });

  it.each(["none", "mean", "sum"] as const)(
    "crossEntropy with ignoreIndex and class weights (reduction %s)",
    (reduction) => {
      for (const weighted of [false, true]) {
        const key = `ce.${reduction}.${weighted ? "weighted" : "plain"}`;
        const logits = input("ce.logits", true);
        const loss = F.crossEntropy(logits, input("ce.targets"), {
          ignoreIndex: -1,
          reduction,
          weight: weighted ? input("ce.weight") : null,
        });
        check(loss, `${key}.loss`);
        loss.backward(reduction === "none" ? loss.onesLike() : undefined);
        check(logits.grad, `${key}.grad`);
      }
    },
  );

  it.each(["none", "mean", "sum"] as const)(
    "nllLoss over [N, C, H, W] with ignored pixels (reduction %s)",
    (reduction) => {
      for (const weighted of [false, true]) {
        const key = `nll.${reduction}.${weighted ? "weighted" : "plain"}`;
        const logProbs = input("nll.input", true);
        const loss = F.nllLoss(logProbs, input("nll.targets"), {
          reduction,
          weight: weighted ? input("nll.weight") : null,
        });
        check(loss, `${key}.loss`);
        loss.backward(reduction === "none" ? input("nll.none.upstream") : undefined);
        check(logProbs.grad, `${key}.grad`);
      }
    },
  );
});

// ---- MNISTNet golden --------------------------------------------------------------

/** Replaces the parameter at a dotted path (the model's own dtype may differ). */
function replaceParameter(model: nn.Module, path: string, value: Tensor): void {
  const parts = path.split(".");
  let owner = model as unknown as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) owner = owner[part] as Record<string, unknown>;
  owner[parts.at(-1)!] = new nn.Parameter(value);
}

/** MNISTNet with the fixture's weights: sin(i * 0.37 + i * i * 1e-3 + k) / sqrt(fanIn). */
function goldenModel(device: string, dtype: DType): MNISTNet {
  setDefaultDevice(device);
  const model = new MNISTNet().eval();
  const state = model.stateDict();
  PARAMETER_NAMES.forEach((name, k) => {
    const weight = state[name.replace(/bias$/, "weight")]!;
    const fanIn = weight.numel / weight.shape[0]!;
    const data = pattern(state[name]!.numel, 1 / Math.sqrt(fanIn), k, 0.37, 1e-3);
    const values = dtype === "float64" ? Float64Array.from(data) : data;
    replaceParameter(model, name, fromTypedArray(values, state[name]!.shape, { device }));
  });
  return model;
}

function goldenInput(device: string, dtype: DType): Tensor {
  const data = pattern(2 * 28 * 28, 1.5, 0, 0.11, 1e-3);
  // The recipe must rebuild exactly the input PyTorch saw.
  expect(Array.from(data)).toEqual(golden.values("x"));
  const values = dtype === "float64" ? Float64Array.from(data) : data;
  return fromTypedArray(values, [2, 1, 28, 28], { device });
}

describe.each([
  { device: "cpu", dtype: "float32" as DType, rtol: 1e-4 },
  { device: "reference", dtype: "float64" as DType, rtol: 1e-9 },
])("MNISTNet against PyTorch on $device $dtype", ({ device, dtype, rtol }) => {
  // Each tensor's tolerance is rtol relative to its largest element, so the near-zero
  // entries of a gradient are held to the same absolute accuracy as its large ones.
  const close = (actual: ArrayLike<number> | Tensor, expected: number[], label: string) =>
    expectClose(actual, expected, { rtol, atol: rtol * maxAbs(expected) }, label);

  it("gives PyTorch's log-probabilities, loss and every parameter gradient", () => {
    const model = goldenModel(device, dtype);
    const output = model.forward(goldenInput(device, dtype));
    expect(output.shape).toEqual([2, 10]);
    expect(output.dtype).toBe(dtype);
    close(output, golden.values("output"), "output");

    const targets = fromTypedArray(Int32Array.from(golden.values("targets")), [2], { device });
    const loss = F.nllLoss(output, targets);
    close([loss.item()], [golden.scalar("loss")], "loss");
    loss.backward();

    const named = Object.fromEntries(model.namedParameters());
    for (const name of PARAMETER_NAMES.filter((n) => n !== "fc1.weight")) {
      const grad = named[name]!.grad;
      expect(grad, name).not.toBeNull();
      expect(grad!.shape).toEqual(golden.shape(`grad.${name}`));
      close(grad!, golden.values(`grad.${name}`), `grad.${name}`);
    }

    // fc1.weight's gradient (4.7 MB) is checked by checksums and 200 sampled entries.
    const g = values(named["fc1.weight"]!.grad!);
    let sum = 0;
    let sumSquares = 0;
    let dot = 0;
    for (let i = 0; i < g.length; i++) {
      sum += g[i]!;
      sumSquares += g[i]! * g[i]!;
      dot += g[i]! * Math.cos(i * 0.13);
    }
    const sampled = golden.values("fc1.weight.grad.index").map((i) => g[i]!);
    close(sampled, golden.values("fc1.weight.grad.values"), "fc1.weight.grad sampled");
    close([sum], [golden.scalar("fc1.weight.grad.sum")], "fc1.weight.grad sum");
    close([sumSquares], [golden.scalar("fc1.weight.grad.sumsq")], "fc1.weight.grad sumsq");
    // The probe sum cancels to ~1e-2 of sum |g|, so its absolute accuracy is what counts.
    const scale = g.reduce((a, v) => a + Math.abs(v), 0);
    expectClose(
      [dot],
      [golden.scalar("fc1.weight.grad.dot_cos013")],
      {
        rtol,
        atol: rtol * scale,
      },
      "fc1.weight.grad dot",
    );
  });
});

// ---- errors -------------------------------------------------------------------------

describe("errors name the operation, the shapes and the values", () => {
  it("conv2d with the wrong channel count names both shapes", () => {
    const conv = new nn.Conv2d(1, 32, 3);
    const error = expectThrows(
      () => conv.forward(zeros([2, 3, 28, 28])),
      ShapeError,
      "conv2d: input [2, 3, 28, 28] has 3 channels but weight [32, 1, 3, 3] expects 1 " +
        "(groups=1)",
    );
    expect(error.shapes).toEqual([
      [2, 3, 28, 28],
      [32, 1, 3, 3],
    ]);
    expect(error.dim).toBe(1);
  });

  it("linear with the wrong in_features names both shapes", () => {
    const fc = new nn.Linear(9216, 128);
    const error = expectThrows(
      () => fc.forward(zeros([64, 9215])),
      ShapeError,
      "linear: input [64, 9215] and weight [128, 9216] do not fit: the input's last " +
        "dimension must equal the weight's in_features (dimension 1)",
    );
    expect(error.shapes).toEqual([
      [64, 9215],
      [128, 9216],
    ]);
  });

  it.each(["cpu", "reference"])("nllLoss with an out-of-range target on %s", (device) => {
    const logProbs = zeros([2, 10], { device });
    const targets = tensor([3, 10], { dtype: "int32", device });
    expectThrows(
      () => F.nllLoss(logProbs, targets),
      IndexError,
      "nllLoss: target 10 is out of bounds for 10 classes",
    );
    const negative = tensor([-2, 0], { dtype: "int32", device });
    expectThrows(
      () => F.crossEntropy(logProbs, negative),
      IndexError,
      "nllLoss: target -2 is out of bounds for 10 classes",
    );
  });

  it("rejects a dropout probability outside [0, 1]", () => {
    const error = expectThrows(
      () => new nn.Dropout(1.5),
      ValueError,
      "Dropout: p must be in [0, 1], got 1.5",
    );
    expect(error.param).toBe("p");
    expect(error.code).toBe("ERR_VALUE");
    expectThrows(() => new nn.Dropout(-0.1), ValueError, "Dropout: p must be in [0, 1], got -0.1");
    expectThrows(() => new nn.Dropout(NaN), ValueError, "Dropout: p must be in [0, 1], got NaN");
    expectThrows(() => F.dropout(ones([2]), 2), ValueError, "dropout: p must be in [0, 1], got 2");
  });

  it("rejects bad layer configurations by name and value", () => {
    expectThrows(
      () => new nn.Linear(0, 3),
      ValueError,
      "Linear: inFeatures must be a positive integer, got 0",
    );
    // A number given as a string, or an options object where a number goes, shows as given.
    expectThrows(
      () => new nn.Linear("3" as never, 2),
      ValueError,
      'Linear: inFeatures must be a positive integer, got "3"',
    );
    expectThrows(
      () => F.dropout(ones([2]), { p: 1.5 } as never),
      ValueError,
      'dropout: p must be in [0, 1], got {"p":1.5}',
    );
    // Not a TypeError from destructuring: a kernel size that is neither a number nor a pair.
    expectThrows(
      () => new nn.Conv2d(1, 4, {} as never),
      ValueError,
      "Conv2d: kernelSize must be an integer >= 1 or a pair of them, got {}",
    );
    expectThrows(
      () => new nn.Conv2d(1, 4, [3, 3, 3] as never),
      ValueError,
      "Conv2d: kernelSize must be an integer >= 1 or a pair of them, got [3,3,3]",
    );
    expectThrows(
      () => new nn.Conv2d(3, 4, 3, { groups: 2 }),
      ValueError,
      "Conv2d: inChannels (3) and outChannels (4) must be divisible by groups (2)",
    );
    expectThrows(
      () => new nn.Conv2d(2, 4, 2.5),
      ValueError,
      "Conv2d: kernelSize must be an integer >= 1 or a pair of them, got 2.5",
    );
  });
});

describe.each(["cpu", "reference"])("numerically hard losses on %s", (device) => {
  it("binaryCrossEntropyWithLogits is exact at logits of +-1000, and so is its gradient", () => {
    const logits = tensor([1000, 1000, -1000, -1000, 0], { device, requiresGrad: true });
    const targets = tensor([1, 0, 1, 0, 1], { device });
    const losses = F.binaryCrossEntropyWithLogits(logits, targets, { reduction: "none" });
    expect(Array.from(losses.dataSync())).toEqual([0, 1000, 1000, 0, Math.fround(Math.LN2)]);
    F.binaryCrossEntropyWithLogits(logits, targets, { reduction: "sum" }).backward();
    // d/dx = sigmoid(x) - y
    expect(Array.from(logits.grad!.dataSync())).toEqual([0, 1, -1, 0, -0.5]);
  });

  it("binaryCrossEntropyWithLogits weighs positives by posWeight and averages by default", () => {
    const logits = tensor([[0, 2]], { device });
    const targets = tensor([[1, 0]], { device });
    const posWeight = tensor([3, 3], { device });
    const loss = F.binaryCrossEntropyWithLogits(logits, targets, { posWeight }).item();
    // (3 * ln 2 + (2 + ln(1 + e^-2))) / 2
    const expected = (3 * Math.LN2 + 2 + Math.log1p(Math.exp(-2))) / 2;
    expect(loss).toBeCloseTo(expected, 6);
    expectThrows(
      () => F.binaryCrossEntropyWithLogits(logits, tensor([1, 0], { device })),
      ShapeError,
      "binaryCrossEntropyWithLogits: targets [2] must have the shape of the logits [1, 2]",
    );
  });

  it("softmax of equal values is uniform and crossEntropy of huge logits is finite", () => {
    const equal = F.softmax(tensor([[7, 7, 7, 7]], { device }), 1);
    expect(Array.from(equal.dataSync())).toEqual([0.25, 0.25, 0.25, 0.25]);
    const logits = tensor(
      [
        [1e30, 0, -1e30],
        [-1e30, -1e30, 5],
      ],
      { device, requiresGrad: true },
    );
    const targets = tensor([0, 1], { device, dtype: "int32" });
    const loss = F.crossEntropy(logits, targets, { reduction: "none" });
    // -log(1) is -0, as in PyTorch; + 0 folds it into 0 for the comparison.
    expect(Array.from(loss.dataSync(), (v) => v + 0)).toEqual([0, Math.fround(1e30 + 5)]);
    loss.sum().backward();
    expect(Array.from(logits.grad!.dataSync())).toEqual([0, 0, 0, 0, -1, 1]);
  });
});

// ---- recurrent layers -----------------------------------------------------------------

import { DTypeError, liveTensors, optim } from "../lib/index.js";
import { seededRandom } from "./helpers.js";

describe("recurrent layers", () => {
  const rnnGolden = loadFixture("rnn.safetensors");
  type Mode = "lstm" | "gru" | "rnn_tanh" | "rnn_relu";
  const MODES: Mode[] = ["lstm", "gru", "rnn_tanh", "rnn_relu"];

  function makeModule(mode: Mode, options: nn.RNNBaseOptions): nn.RNNBase {
    if (mode === "lstm") return new nn.LSTM(3, 3, options);
    if (mode === "gru") return new nn.GRU(3, 3, options);
    return new nn.RNN(3, 3, { ...options, nonlinearity: mode === "rnn_tanh" ? "tanh" : "relu" });
  }

  /** forward of any of the three, with LSTM's [h, c] flattened into [output, h, c]. */
  function run(
    module: nn.RNNBase,
    x: Tensor,
    h0: Tensor | null,
    c0: Tensor | null,
    lengths?: nn.Lengths,
  ): [Tensor, Tensor, Tensor | null] {
    if (module instanceof nn.LSTM) {
      const [out, [h, c]] = module.forward(x, h0 === null ? null : [h0, c0!], { lengths });
      return [out, h, c];
    }
    const [out, h] = (module as nn.GRU).forward(x, h0, { lengths });
    return [out, h, null];
  }

  describe.each([
    { device: "cpu", dtype: "float32" as DType, rtol: 1e-4 },
    { device: "reference", dtype: "float64" as DType, rtol: 1e-9 },
  ])("against PyTorch on $device $dtype", ({ device, dtype, rtol }) => {
    const close = (actual: Tensor | null, key: string) => {
      expect(actual, key).not.toBeNull();
      expect(actual!.shape, key).toEqual(rnnGolden.shape(key));
      const expected = rnnGolden.values(key);
      expectClose(actual!, expected, { rtol, atol: rtol * maxAbs(expected) }, key);
    };
    const cases = MODES.flatMap((mode) => [
      [`${mode}.batch_first`, mode, false] as const,
      [`${mode}.packed`, mode, true] as const,
    ]);

    it.each(cases)("%s: output, h_n, c_n and every gradient", (key, mode, packed) => {
      const module = makeModule(mode, {
        numLayers: 2,
        bidirectional: true,
        batchFirst: !packed,
        device,
        dtype,
      });
      const state = Object.fromEntries(
        Object.keys(module.stateDict()).map((name) => [
          name,
          rnnGolden.tensor(`${key}.param.${name}`, device, dtype),
        ]),
      );
      module.loadStateDict(state);
      const input = (name: string) =>
        rnnGolden.tensor(`${key}.${name}`, device, dtype).requiresGrad_(true);
      const x = input("x");
      const h0 = input("h0");
      const c0 = mode === "lstm" ? input("c0") : null;
      const lengths = packed ? rnnGolden.values(`${key}.lengths`) : undefined;
      const [output, hN, cN] = run(module, x, h0, c0, lengths);
      const upstream = (name: string) => rnnGolden.tensor(`${key}.${name}`, device, dtype);
      let loss = output
        .mul(upstream("up_output"))
        .sum()
        .add(hN.mul(upstream("up_h_n")).sum());
      if (cN !== null) loss = loss.add(cN.mul(upstream("up_c_n")).sum());
      loss.backward();

      close(output, `${key}.output`);
      close(hN, `${key}.h_n`);
      close(x.grad, `${key}.grad.x`);
      close(h0.grad, `${key}.grad.h0`);
      if (c0 !== null) {
        close(cN, `${key}.c_n`);
        close(c0.grad, `${key}.grad.c0`);
      }
      for (const [name, p] of module.namedParameters()) close(p.grad, `${key}.grad.${name}`);
    });
  });

  it("names and shapes its parameters as PyTorch does", () => {
    const lstm = new nn.LSTM(10, 20, { numLayers: 2, bidirectional: true });
    const shapes = Object.entries(lstm.stateDict()).map(([name, t]) => [name, t.shape]);
    const layer = (suffix: string, inputSize: number) => [
      [`weight_ih_${suffix}`, [80, inputSize]],
      [`weight_hh_${suffix}`, [80, 20]],
      [`bias_ih_${suffix}`, [80]],
      [`bias_hh_${suffix}`, [80]],
    ];
    expect(shapes).toEqual([
      ...layer("l0", 10),
      ...layer("l0_reverse", 10),
      ...layer("l1", 40),
      ...layer("l1_reverse", 40),
    ]);
    const gru = new nn.GRU(4, 5, { bias: false });
    expect(Object.entries(gru.stateDict()).map(([n, t]) => [n, t.shape])).toEqual([
      ["weight_ih_l0", [15, 4]],
      ["weight_hh_l0", [15, 5]],
    ]);
    expect(new nn.RNN(4, 5).numParameters()).toBe(5 * 4 + 5 * 5 + 5 + 5);
  });

  it("prints its configuration as PyTorch does", () => {
    const lstm = new nn.LSTM(10, 20, {
      numLayers: 2,
      batchFirst: true,
      dropout: 0.5,
      bidirectional: true,
    });
    // print(...) of the same modules in PyTorch 1.13.
    expect(lstm.toString()).toBe(
      "LSTM(10, 20, num_layers=2, batch_first=True, dropout=0.5, bidirectional=True)",
    );
    expect(new nn.RNN(4, 5, { nonlinearity: "relu", bias: false }).toString()).toBe(
      "RNN(4, 5, bias=False)",
    );
    expect(new nn.GRU(4, 5).toString()).toBe("GRU(4, 5)");
  });

  it("initialises every parameter uniformly in +-1/sqrt(hiddenSize)", () => {
    manualSeed(5);
    const gru = new nn.GRU(6, 16, { numLayers: 2 });
    for (const [name, p] of gru.namedParameters()) {
      const v = values(p);
      expect(Math.max(...v.map(Math.abs)), name).toBeLessThanOrEqual(0.25);
      expect(Math.max(...v.map(Math.abs)), name).toBeGreaterThan(0.2);
      expect(new Set(v).size, name).toBeGreaterThan(v.length / 2);
    }
  });

  it("gives PyTorch's output layouts, batchFirst or not", () => {
    const lstm = new nn.LSTM(3, 4, { numLayers: 3, bidirectional: true, batchFirst: true });
    const [out, [h, c]] = lstm.forward(ones([2, 5, 3]));
    expect(out.shape).toEqual([2, 5, 8]);
    expect(h.shape).toEqual([6, 2, 4]);
    expect(c.shape).toEqual([6, 2, 4]);
    const rnn = new nn.RNN(3, 4);
    const [out2, h2] = rnn.forward(ones([5, 2, 3]));
    expect(out2.shape).toEqual([5, 2, 4]);
    expect(h2.shape).toEqual([1, 2, 4]);
    // The last step's output of a one-layer forward RNN is its final state.
    expectClose(values(out2).slice(4 * 8), values(h2), { rtol: 0, atol: 0 });
  });

  it.each(["cpu", "reference"])(
    "with lengths, outputs zero past each length and h_n at the last real step (%s)",
    (device) => {
      manualSeed(2);
      const gru = new nn.GRU(2, 3, { device, bidirectional: true });
      const x = tensor(
        Array.from({ length: 4 * 3 * 2 }, (_, i) => Math.sin(i)),
        { device },
      ).reshape([4, 3, 2]);
      const lengths = [4, 1, 2];
      const [out, h] = gru.forward(x, null, { lengths });
      const o = values(out);
      const at = (t: number, n: number, j: number) => o[(t * 3 + n) * 6 + j]!;
      for (let n = 0; n < 3; n++) {
        for (let t = lengths[n]!; t < 4; t++) {
          for (let j = 0; j < 6; j++) expect(at(t, n, j)).toBe(0);
        }
        const hv = values(h);
        for (let j = 0; j < 3; j++) {
          expect(hv[n * 3 + j]).toBe(at(lengths[n]! - 1, n, j)); // forward direction
          expect(hv[9 + n * 3 + j]).toBe(at(0, n, 3 + j)); // reverse ends at step 0
        }
      }
      // Sequence 1 (length 1) gives what it gives alone, in both directions.
      const rows = x.reshape([12, 2]).toArray() as number[][];
      const single = tensor([rows[1]!], { device }).reshape([1, 1, 2]);
      const [outAlone] = gru.forward(single);
      expectClose(
        values(outAlone),
        [0, 1, 2, 3, 4, 5].map((j) => at(0, 1, j)),
        {
          rtol: 1e-5,
          atol: 1e-6,
        },
      );
      // An int32 tensor of lengths gives the same.
      const [outTensor] = gru.forward(x, null, {
        lengths: tensor(lengths, { dtype: "int32", device }),
      });
      expect(values(outTensor)).toEqual(o);
    },
  );

  it("applies dropout between layers only in train mode, never after the last", () => {
    manualSeed(3);
    const lstm = new nn.LSTM(3, 4, { numLayers: 2, dropout: 0.5 });
    const plain = new nn.LSTM(3, 4, { numLayers: 2 });
    plain.loadStateDict(lstm.stateDict());
    const x = tensor(
      Array.from({ length: 4 * 2 * 3 }, (_, i) => Math.cos(i)),
      {},
    ).reshape([4, 2, 3]);
    const [reference] = plain.forward(x);
    const [trained] = lstm.forward(x);
    expect(values(trained)).not.toEqual(values(reference));
    lstm.eval();
    const [evaluated] = lstm.forward(x);
    expect(values(evaluated)).toEqual(values(reference));
    const single = new nn.GRU(3, 4, { dropout: 0.5 });
    const [a] = single.forward(x);
    single.eval();
    const [b] = single.forward(x);
    expect(values(a)).toEqual(values(b));
  });

  it("runs an unbatched sequence [T, inputSize] as a batch of one", () => {
    manualSeed(4);
    const gru = new nn.GRU(3, 4, { numLayers: 2, bidirectional: true, batchFirst: true });
    const data = Array.from({ length: 5 * 3 }, (_, i) => Math.sin(i * 0.7));
    const h0 = tensor(Array.from({ length: 4 * 4 }, (_, i) => Math.cos(i))).reshape([4, 4]);
    const [out, h] = gru.forward(tensor(data).reshape([5, 3]), h0);
    expect(out.shape).toEqual([5, 8]);
    expect(h.shape).toEqual([4, 4]);
    const [outBatched, hBatched] = gru.forward(
      tensor(data).reshape([1, 5, 3]),
      h0.reshape([4, 1, 4]),
    );
    expect(values(out)).toEqual(values(outBatched));
    expect(values(h)).toEqual(values(hBatched));
  });

  it.each(["lstm", "gru"] as const)(
    "%s learns to remember the first step of a padded batch (the loss falls)",
    (mode) => {
      manualSeed(8);
      const Layer = mode === "lstm" ? nn.LSTM : nn.GRU;
      const rnn = new Layer(1, 8, { batchFirst: true });
      const head = new nn.Linear(8, 1);
      const params = [...rnn.parameters(), ...head.parameters()];
      const optimizer = new optim.Adam(params, { lr: 0.05 });
      const random = seededRandom(3);
      const [batch, steps] = [32, 8];
      const losses: number[] = [];
      for (let step = 0; step < 40; step++) {
        const xs = Array.from({ length: batch * steps }, () => (random() < 0.5 ? -1 : 1));
        const lengths = Array.from({ length: batch }, () => 3 + Math.floor(random() * 6));
        const labels = Array.from({ length: batch }, (_, n) => (xs[n * steps]! > 0 ? 1 : 0));
        optimizer.zeroGrad();
        const x = tensor(xs).reshape([batch, steps, 1]);
        const out = rnn.forward(x, null, { lengths });
        const hN = (mode === "lstm" ? (out[1] as [Tensor, Tensor])[0] : (out[1] as Tensor)).reshape(
          [batch, 8],
        );
        const logits = head.forward(hN).reshape([batch]);
        const loss = F.binaryCrossEntropyWithLogits(logits, tensor(labels));
        loss.backward();
        optimizer.step();
        losses.push(loss.item());
      }
      const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
      const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
      expect(last).toBeLessThan(0.3 * first);
    },
  );

  it("leaves only its outputs alive when no gradient is recorded", () => {
    const lstm = new nn.LSTM(3, 4, { numLayers: 2, bidirectional: true, batchFirst: true });
    const x = ones([2, 5, 3]);
    const before = liveTensors();
    const [out, [h, c]] = noGrad(() => lstm.forward(x, null, { lengths: [5, 2] }));
    expect(liveTensors() - before).toBe(3);
    for (const t of [out, h, c]) t.dispose();
  });

  it("rejects bad inputs with errors that name the op and the shapes", () => {
    const lstm = new nn.LSTM(10, 20, { numLayers: 2 });
    expectThrows(
      () => lstm.forward(zeros([5, 3, 10, 1])),
      ShapeError,
      "LSTM: input must be [T, N, inputSize] or [T, inputSize] (unbatched), got [5, 3, 10, 1]",
    );
    expectThrows(
      () => lstm.forward(zeros([5, 10]), [zeros([2, 1, 20]), zeros([2, 1, 20])]),
      ShapeError,
      "LSTM: h0 must be [numLayers * numDirections, hiddenSize] for an unbatched input [5, 10], " +
        "got [2, 1, 20]",
    );
    expectThrows(
      () => lstm.forward(zeros([5, 3, 7])),
      ShapeError,
      "LSTM: input [5, 3, 7] has 7 features, expected inputSize 10",
    );
    expectThrows(
      () => lstm.forward(zeros([5, 3, 10]), [zeros([1, 3, 20]), zeros([2, 3, 20])]),
      ShapeError,
      "LSTM: h0 must be [numLayers * numDirections, N, hiddenSize] = [2, 3, 20], got [1, 3, 20]",
    );
    const gru = new nn.GRU(2, 3, { batchFirst: true });
    expectThrows(
      () => gru.forward(zeros([3, 4, 2]), null, { lengths: [4, 0, 2] }),
      ValueError,
      "GRU: every length must be an integer in [1, 4] (the sequence length), got 0",
    );
    expectThrows(
      () => gru.forward(zeros([3, 4, 2]), null, { lengths: [4, 2] }),
      ShapeError,
      "GRU: lengths must hold one length per sequence, [3], got [2]",
    );
    expectThrows(
      () => new nn.RNN(2, 3, { nonlinearity: "sigmoid" as "tanh" }),
      ValueError,
      'RNN: nonlinearity must be "tanh" or "relu", got "sigmoid"',
    );
    expectThrows(
      () => gru.forward(zeros([3, 4, 2]), null, { lengths: zeros([3]) }),
      DTypeError,
      "GRU: lengths must be int32, got float32",
    );
    expectThrows(
      () => gru.forward(zeros([3, 4, 2], { dtype: "float64" })),
      DTypeError,
      "GRU: expected one dtype, got float64 and float32",
    );
    expectThrows(
      () => F.recurrent("gru", zeros([2, 1, 2]), gru.flatWeights, null, zeros([1, 1, 3])),
      ValueError,
      "GRU: a cell state c0 is only taken by LSTM",
    );
    expectThrows(
      () => F.recurrent("gru", zeros([2, 1, 2]), gru.flatWeights.slice(0, 3)),
      ValueError,
      "GRU: expected 2 or 4 weights per layer and direction (1 of them), got 3 weights",
    );
    expectThrows(
      () => F.recurrent("lstm2" as "lstm", zeros([2, 1, 2]), []),
      ValueError,
      'recurrent: mode must be one of rnn_tanh, rnn_relu, lstm, gru, got "lstm2"',
    );
    expectThrows(
      () => new nn.GRU(2, 0),
      ValueError,
      "GRU: hiddenSize must be a positive integer, got 0",
    );
  });
});

// ---- layers against PyTorch: activations, normalisation, losses, embedding ------------
// Golden values from test/fixtures/layers.safetensors; regenerate with
// `/usr/bin/python3 test/fixtures/make_layers_fixtures.py`.

const layers = loadFixture("layers.safetensors");

/** Copies `data` into `target` in place on target's device, outside the graph. */
function assignOn(target: Tensor, data: ArrayLike<number>): void {
  const source = fromTypedArray(Float64Array.from(data), target.shape, { device: target.device });
  noGrad(() => target.copy_(source));
}

// Normalisation divides by a standard deviation and sums a whole channel: float32 keeps
// about 1e-6 of the larger terms.
const LAYER_CASES: DeviceCase[] = [
  { device: "cpu", dtype: "float32", tol: { rtol: 1e-5, atol: 1e-5 } },
  { device: "reference", dtype: "float32", tol: { rtol: 1e-5, atol: 1e-5 } },
  { device: "reference", dtype: "float64", tol: { rtol: 1e-10, atol: 1e-10 } },
];

describe.each(LAYER_CASES)("layers against PyTorch on $device $dtype", ({ device, dtype, tol }) => {
  const input = (key: string, requiresGrad = false): Tensor => {
    const t = layers.tensor(key, device, dtype);
    return requiresGrad ? t.requiresGrad_(true) : t;
  };
  const check = (actual: Tensor | null, key: string, tolerance = tol) => {
    expect(actual, key).not.toBeNull();
    expect(actual!.device).toBe(device);
    expect(actual!.shape, key).toEqual(layers.shape(key));
    expectClose(actual!, layers.values(key), tolerance, key);
  };
  const factory = { device, dtype };

  const activations: [string, (x: Tensor) => Tensor][] = [
    ["leaky_relu", (x) => F.leakyRelu(x)],
    ["leaky_relu_0.2", (x) => new nn.LeakyReLU(0.2).forward(x)],
    ["gelu", (x) => new nn.GELU().forward(x)],
    ["gelu_tanh", (x) => F.gelu(x, "tanh")],
    ["silu", (x) => new nn.SiLU().forward(x)],
    ["sigmoid", (x) => new nn.Sigmoid().forward(x)],
    ["tanh", (x) => new nn.Tanh().forward(x)],
  ];

  it.each(activations)("%s forward and gradient", (name, fn) => {
    const x = input("act.x", true);
    const y = fn(x);
    check(y, `act.${name}.out`);
    y.backward(input("act.upstream"));
    check(x.grad, `act.${name}.grad`);
  });

  it.each([0, 1, 2])("softmax and log-softmax along dim %d of a 3-d tensor", (dim) => {
    const modules = [new nn.Softmax(dim), new nn.LogSoftmax(dim - 3)];
    ["softmax", "log_softmax"].forEach((name, i) => {
      const x = input("act.x", true);
      const y = modules[i]!.forward(x);
      check(y, `act.${name}.dim${dim}.out`);
      y.backward(input("act.upstream"));
      check(x.grad, `act.${name}.dim${dim}.grad`);
    });
  });

  const batchNorms: [string, (o: nn.BatchNormModuleOptions) => nn.BatchNorm1d | nn.BatchNorm2d][] =
    [
      ["bn1d_2d", (o) => new nn.BatchNorm1d(3, { ...o, momentum: 0.1 })],
      ["bn1d_3d", (o) => new nn.BatchNorm1d(3, { ...o, momentum: null })],
      ["bn2d", (o) => new nn.BatchNorm2d(3, { ...o, momentum: 0.3 })],
    ];

  it.each(batchNorms)("%s: two training steps, running statistics, then eval", (key, make) => {
    const bn = make(factory);
    assignOn(bn.weight!, layers.values(`${key}.weight`));
    assignOn(bn.bias!, layers.values(`${key}.bias`));
    bn.forward(input(`${key}.x1`));
    const x = input(`${key}.x2`, true);
    const y = bn.forward(x);
    check(y, `${key}.train.out`);
    y.backward(input(`${key}.upstream`));
    check(x.grad, `${key}.train.grad_x`);
    check(bn.weight!.grad, `${key}.train.grad_weight`);
    check(bn.bias!.grad, `${key}.train.grad_bias`);
    check(bn.running_mean, `${key}.running_mean`);
    check(bn.running_var, `${key}.running_var`);
    expect(bn.num_batches_tracked!.item()).toBe(layers.scalar(`${key}.num_batches_tracked`));

    bn.eval();
    bn.zeroGrad();
    const xe = input(`${key}.x1`, true);
    const ye = bn.forward(xe);
    check(ye, `${key}.eval.out`);
    ye.backward(input(`${key}.upstream`));
    check(xe.grad, `${key}.eval.grad_x`);
    check(bn.weight!.grad, `${key}.eval.grad_weight`);
    check(bn.bias!.grad, `${key}.eval.grad_bias`);
    expect(bn.num_batches_tracked!.item()).toBe(2); // eval does not count batches
  });

  it.each([
    ["ln.last", [4]],
    ["ln.two", [3, 4]],
  ])("LayerNorm %s forward and every gradient", (key, shape) => {
    const ln = new nn.LayerNorm(shape as number[], { ...factory, eps: 1e-4 });
    assignOn(ln.weight!, layers.values(`${key}.weight`));
    assignOn(ln.bias!, layers.values(`${key}.bias`));
    const x = input("ln.x", true);
    const y = ln.forward(x);
    check(y, `${key}.out`);
    y.backward(input("ln.upstream"));
    check(x.grad, `${key}.grad_x`);
    check(ln.weight!.grad, `${key}.grad_weight`);
    check(ln.bias!.grad, `${key}.grad_bias`);
  });

  it("GroupNorm forward and every gradient", () => {
    const gn = new nn.GroupNorm(3, 6, factory);
    assignOn(gn.weight!, layers.values("gn.weight"));
    assignOn(gn.bias!, layers.values("gn.bias"));
    const x = input("gn.x", true);
    const y = gn.forward(x);
    check(y, "gn.out");
    y.backward(input("gn.upstream"));
    check(x.grad, "gn.grad_x");
    check(gn.weight!.grad, "gn.grad_weight");
    check(gn.bias!.grad, "gn.grad_bias");
  });

  const regression: [string, string, (x: Tensor, r: F.LossOptions["reduction"]) => Tensor][] = [
    ["mse", "loss.x", (x, r) => F.mseLoss(x, input("loss.y"), { reduction: r })],
    ["l1", "loss.x", (x, r) => F.l1Loss(x, input("loss.y"), { reduction: r })],
    ["smooth_l1", "loss.x", (x, r) => F.smoothL1Loss(x, input("loss.y"), { reduction: r })],
    [
      "smooth_l1_b05",
      "loss.x",
      (x, r) => F.smoothL1Loss(x, input("loss.y"), { reduction: r, beta: 0.5 }),
    ],
    [
      "smooth_l1_b0",
      "loss.x",
      (x, r) => F.smoothL1Loss(x, input("loss.y"), { reduction: r, beta: 0 }),
    ],
    [
      "bce",
      "loss.probs",
      (x, r) => F.binaryCrossEntropy(x, input("loss.labels"), { reduction: r }),
    ],
    [
      "bce_w",
      "loss.probs",
      (x, r) =>
        F.binaryCrossEntropy(x, input("loss.labels"), {
          weight: input("loss.weight"),
          reduction: r,
        }),
    ],
    [
      "bcel",
      "loss.logits",
      (x, r) => F.binaryCrossEntropyWithLogits(x, input("loss.labels"), { reduction: r }),
    ],
    [
      "bcel_wp",
      "loss.logits",
      (x, r) =>
        F.binaryCrossEntropyWithLogits(x, input("loss.labels"), {
          weight: input("loss.weight"),
          posWeight: input("loss.pos_weight"),
          reduction: r,
        }),
    ],
  ];
  const reductions = ["none", "mean", "sum"] as const;

  it.each(regression)("%s loss and gradient, every reduction", (key, inputKey, fn) => {
    for (const reduction of reductions) {
      const x = input(inputKey, true);
      const loss = fn(x, reduction);
      check(loss, `loss.${key}.${reduction}.loss`);
      if (reduction === "none") loss.backward(input("loss.upstream"));
      else loss.backward();
      check(x.grad, `loss.${key}.${reduction}.grad`);
    }
  });

  it.each([false, true])("klDiv (logTarget %s), every reduction including batchmean", (log) => {
    const target = input(log ? "kl.log_target" : "kl.target");
    for (const reduction of [...reductions, "batchmean"] as const) {
      const x = input("kl.input", true);
      const loss = F.klDiv(x, target, { reduction, logTarget: log });
      const key = `kl.${log ? "log" : "prob"}.${reduction}`;
      check(loss, `${key}.loss`);
      if (reduction === "none") loss.backward(input("kl.upstream"));
      else loss.backward();
      check(x.grad, `${key}.grad`);
    }
  });

  it("crossEntropy with labelSmoothing, class weights and ignoreIndex, every reduction", () => {
    const targets = layers.tensor("lsce.targets", device);
    for (const reduction of reductions) {
      for (const weighted of [false, true]) {
        const x = input("lsce.logits", true);
        const weight = weighted ? input("lsce.weight") : null;
        const options = { weight, ignoreIndex: -1, reduction, labelSmoothing: 0.2 };
        const loss = F.crossEntropy(x, targets, options);
        const key = `lsce.${reduction}.${weighted ? "weighted" : "plain"}`;
        check(loss, `${key}.loss`);
        if (reduction === "none") loss.backward(input("lsce.upstream"));
        else loss.backward();
        check(x.grad, `${key}.grad`);
      }
    }
    const x = input("lsce.spatial", true);
    const weight = fromTypedArray(
      Float64Array.from(layers.values("lsce.weight").slice(0, 3)),
      [3],
      {
        device,
      },
    ).to(dtype);
    const loss = F.crossEntropy(x, layers.tensor("lsce.spatial_targets", device), {
      weight,
      ignoreIndex: -1,
      labelSmoothing: 0.3,
    });
    check(loss, "lsce.spatial.loss");
    loss.backward();
    check(x.grad, "lsce.spatial.grad");
  });

  it("loss modules forward into the functions, with weights as buffers", () => {
    const ce = new nn.CrossEntropyLoss({
      weight: input("lsce.weight"),
      ignoreIndex: -1,
      reduction: "sum",
      labelSmoothing: 0.2,
    });
    expect(Object.keys(ce.stateDict())).toEqual(["weight"]);
    const x = input("lsce.logits", true);
    const loss = ce.forward(x, layers.tensor("lsce.targets", device));
    check(loss, "lsce.sum.weighted.loss");
    loss.backward();
    check(x.grad, "lsce.sum.weighted.grad");
    const bcel = new nn.BCEWithLogitsLoss({
      weight: input("loss.weight"),
      posWeight: input("loss.pos_weight"),
    });
    expect(Object.keys(bcel.stateDict())).toEqual(["weight", "pos_weight"]);
    check(bcel.forward(input("loss.logits"), input("loss.labels")), "loss.bcel_wp.mean.loss");
    const pairs: [nn.Module, string, string, string][] = [
      [new nn.MSELoss({ reduction: "sum" }), "loss.x", "loss.y", "loss.mse.sum.loss"],
      [new nn.L1Loss(), "loss.x", "loss.y", "loss.l1.mean.loss"],
      [new nn.SmoothL1Loss({ beta: 0.5 }), "loss.x", "loss.y", "loss.smooth_l1_b05.mean.loss"],
      [
        new nn.BCELoss({ weight: input("loss.weight") }),
        "loss.probs",
        "loss.labels",
        "loss.bce_w.mean.loss",
      ],
      [
        new nn.KLDivLoss({ reduction: "batchmean" }),
        "kl.input",
        "kl.target",
        "kl.prob.batchmean.loss",
      ],
    ];
    for (const [module, a, b, key] of pairs) {
      const forward = (module as unknown as { forward(x: Tensor, y: Tensor): Tensor }).forward;
      check(forward.call(module, input(a), input(b)), key);
    }
    const nll = new nn.NLLLoss({ ignoreIndex: -1 });
    const logProbs = F.logSoftmax(input("lsce.logits"), 1);
    const expected = F.crossEntropy(input("lsce.logits"), layers.tensor("lsce.targets", device), {
      ignoreIndex: -1,
    });
    expectClose(
      nll.forward(logProbs, layers.tensor("lsce.targets", device)),
      values(expected),
      tol,
      "nll",
    );
    expect(String(new nn.CrossEntropyLoss())).toBe("CrossEntropyLoss()");
  });

  it("crossEntropy against class probabilities, weighted and smoothed, every reduction", () => {
    for (const reduction of reductions) {
      const x = input("lsce.logits", true);
      const options = { weight: input("lsce.weight"), reduction, labelSmoothing: 0.1 };
      const loss = F.crossEntropy(x, input("pce.targets"), options);
      check(loss, `pce.${reduction}.loss`);
      if (reduction === "none") loss.backward(input("lsce.upstream"));
      else loss.backward();
      check(x.grad, `pce.${reduction}.grad`);
    }
    const x = input("lsce.spatial", true);
    const loss = F.crossEntropy(x, input("pce.spatial_targets"));
    check(loss, "pce.spatial.loss");
    loss.backward();
    check(x.grad, "pce.spatial.grad");
  });

  it.each([
    ["plain", {}],
    ["pad", { paddingIdx: 2 }],
    ["maxnorm", { maxNorm: 1.2 }],
  ] as const)("embedding (%s): output, weight gradient and weight after", (key, options) => {
    const weight = input("emb.weight", true);
    const out = noGrad(() => weight.clone()).requiresGrad_(true);
    const y = F.embedding(layers.tensor("emb.indices", device), out, options);
    check(y, `emb.${key}.out`);
    y.backward(input("emb.upstream"));
    check(out.grad, `emb.${key}.grad`);
    check(
      noGrad(() => out.clone()),
      `emb.${key}.weight_after`,
    );
  });

  it("nn.Embedding with maxNorm in the 1-norm renormalises the looked-up rows in place", () => {
    const emb = new nn.Embedding(6, 4, { ...factory, maxNorm: 2, normType: 1 });
    assignOn(emb.weight, layers.values("emb.weight"));
    emb.forward(layers.tensor("emb.indices", device));
    check(emb.weight, "emb.maxnorm_l1.weight_after");
  });
});

describe("layer modules: configuration, buffers, modes and errors", () => {
  it("print as PyTorch prints them (make_layers_fixtures.py prints the same modules)", () => {
    const printed = [
      new nn.LeakyReLU(0.2),
      new nn.GELU({ approximate: "tanh" }),
      new nn.SiLU(),
      new nn.Softmax(1),
      new nn.LogSoftmax(-1),
      new nn.BatchNorm1d(3),
      new nn.BatchNorm2d(8, { eps: 1e-3, momentum: null, affine: false, trackRunningStats: false }),
      new nn.LayerNorm([3, 4], { eps: 1e-6, elementwiseAffine: false }),
      new nn.GroupNorm(2, 6),
      new nn.Embedding(10, 3, { paddingIdx: 0, maxNorm: 1, normType: 1 }),
    ].map(String);
    expect(printed).toEqual([
      "LeakyReLU(negative_slope=0.2)",
      "GELU(approximate='tanh')",
      "SiLU()",
      "Softmax(dim=1)",
      "LogSoftmax(dim=-1)",
      "BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",
      "BatchNorm2d(8, eps=0.001, momentum=None, affine=False, track_running_stats=False)",
      "LayerNorm((3, 4), eps=1e-06, elementwise_affine=False)",
      "GroupNorm(2, 6, eps=1e-05, affine=True)",
      "Embedding(10, 3, padding_idx=0, max_norm=1.0, norm_type=1.0)",
    ]);
  });

  it("batch norm keeps PyTorch's parameter and buffer names, values and order", () => {
    const bn = new nn.BatchNorm2d(2);
    const state = bn.stateDict();
    expect(Object.keys(state)).toEqual([
      "weight",
      "bias",
      "running_mean",
      "running_var",
      "num_batches_tracked",
    ]);
    expect(values(state.weight!)).toEqual([1, 1]);
    expect(values(state.bias!)).toEqual([0, 0]);
    expect(values(state.running_mean!)).toEqual([0, 0]);
    expect(values(state.running_var!)).toEqual([1, 1]);
    expect(state.num_batches_tracked!.item()).toBe(0);
    expect(bn.parameters().length).toBe(2); // buffers are not trained
  });

  it("loadStateDict restores the running statistics; resetRunningStats clears them", () => {
    const source = new nn.BatchNorm1d(3);
    source.forward(
      tensor([
        [1, 2, 3],
        [3, 5, 9],
      ]),
    );
    const target = new nn.BatchNorm1d(3);
    target.loadStateDict(source.stateDict());
    expect(values(target.running_mean!)).toEqual(values(source.running_mean!));
    expect(values(target.running_var!)).toEqual(values(source.running_var!));
    expect(target.num_batches_tracked!.item()).toBe(1);
    target.resetRunningStats();
    expect(values(target.running_mean!)).toEqual([0, 0, 0]);
    expect(target.num_batches_tracked!.item()).toBe(0);
  });

  it("momentum null averages the batches seen so far equally", () => {
    const bn = new nn.BatchNorm1d(1, { momentum: null });
    bn.forward(tensor([[1], [3]])); // batch mean 2
    bn.forward(tensor([[5], [7]])); // batch mean 6
    bn.forward(tensor([[0], [2]])); // batch mean 1
    expectClose(bn.running_mean!, [3], { atol: 1e-6, rtol: 0 }, "cumulative mean");
    expectClose(bn.running_var!, [2], { atol: 1e-6, rtol: 0 }, "cumulative unbiased variance");
  });

  it("without running statistics, eval uses the batch's; affine false has no parameters", () => {
    const bn = new nn.BatchNorm1d(2, { trackRunningStats: false, affine: false });
    expect(Object.keys(bn.stateDict())).toEqual([]);
    bn.eval();
    const y = bn.forward(
      tensor([
        [1, 10],
        [3, 30],
      ]),
    );
    expectClose(y, [-1, -1, 1, 1], { atol: 1e-4, rtol: 0 }, "batch statistics in eval");
  });

  it("eval uses the running statistics and leaves them alone", () => {
    const bn = new nn.BatchNorm1d(1).eval();
    const y = bn.forward(tensor([[2], [4]]));
    expectClose(y, [2 / Math.sqrt(1 + 1e-5), 4 / Math.sqrt(1 + 1e-5)], { atol: 1e-6, rtol: 0 }, "");
    expect(values(bn.running_mean!)).toEqual([0]);
    expect(bn.num_batches_tracked!.item()).toBe(0);
  });

  it("eval's backward reads the statistics of its forward, even after training moved them", () => {
    const bn = new nn.BatchNorm1d(1, { affine: false }).eval();
    const x = tensor([[2], [4]], { requiresGrad: true });
    const y = bn.forward(x);
    bn.train().forward(tensor([[10], [30]])); // running variance moves to 0.9 + 0.1 * 200
    y.sum().backward();
    const expected = 1 / Math.sqrt(1 + 1e-5);
    expectClose(x.grad!, [expected, expected], { atol: 1e-6, rtol: 0 }, "the eval variance, 1");
  });

  it("the functional batchNorm checks momentum", () => {
    expectThrows(
      () => F.batchNorm(ones([2, 1]), zeros([1]), ones([1]), { training: true, momentum: 1.5 }),
      ValueError,
      "batchNorm: momentum must be a number in [0, 1], got 1.5",
    );
    expectThrows(
      () =>
        F.batchNorm(ones([2, 1]), zeros([1]), ones([1]), {
          training: true,
          momentum: "0.1" as never,
        }),
      ValueError,
      'batchNorm: momentum must be a number in [0, 1], got "0.1"',
    );
  });

  it("training on one value per channel throws as PyTorch does; eval does not", () => {
    const bn = new nn.BatchNorm1d(3);
    expectThrows(
      () => bn.forward(ones([1, 3])),
      ValueError,
      "BatchNorm1d: Expected more than 1 value per channel when training, got input size [1, 3]",
    );
    expectThrows(
      () => F.batchNorm(ones([1, 2, 1]), null, null, { training: true }),
      ValueError,
      "batchNorm: Expected more than 1 value per channel when training, got input size [1, 2, 1]",
    );
    expect(bn.eval().forward(ones([1, 3])).shape).toEqual([1, 3]);
  });

  it("batch norm checks the input's rank and channel count", () => {
    expectThrows(
      () => new nn.BatchNorm1d(3).forward(ones([2, 3, 4, 5])),
      ValueError,
      "BatchNorm1d: expected 2D or 3D input (got 4D input)",
    );
    expectThrows(
      () => new nn.BatchNorm2d(3).forward(ones([2, 3, 4])),
      ValueError,
      "BatchNorm2d: expected 4D input (got 3D input)",
    );
    expectThrows(
      () => new nn.BatchNorm1d(3).forward(ones([2, 4])),
      ShapeError,
      "batchNorm: weight [3] must be [4] for input [2, 4]",
    );
    expectThrows(
      () => new nn.BatchNorm1d(3, { momentum: 2 }),
      ValueError,
      "BatchNorm1d: momentum must be in [0, 1] or null, got 2",
    );
  });

  it("layer norm and group norm check their shapes", () => {
    expectThrows(
      () => new nn.LayerNorm([3, 4]).forward(ones([2, 4, 3])),
      ShapeError,
      "layerNorm: input [2, 4, 3] does not end with normalizedShape [3, 4]",
    );
    expectThrows(
      () => new nn.GroupNorm(4, 6),
      ValueError,
      "GroupNorm: numChannels (6) must be divisible by numGroups (4)",
    );
    expectThrows(
      () => F.groupNorm(ones([2, 6, 3]), 4),
      ShapeError,
      "groupNorm: input must be [N, C, ...] with C divisible by numGroups (4), got [2, 6, 3]",
    );
    const ln = new nn.LayerNorm(4, { elementwiseAffine: false });
    expect(ln.parameters().length).toBe(0);
    expectClose(ln.forward(tensor([1, 2, 3, 4])).sum(), [0], { atol: 1e-6, rtol: 0 }, "mean 0");
  });

  it("Embedding starts N(0, 1) with a zero padding row that gets no gradient", () => {
    manualSeed(3);
    const emb = new nn.Embedding(200, 16, { paddingIdx: -1 });
    expect(emb.paddingIdx).toBe(199);
    const w = values(emb.weight);
    expect(w.slice(199 * 16)).toEqual(new Array(16).fill(0));
    const mean = w.reduce((a, v) => a + v, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, v) => a + (v - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(std - 1)).toBeLessThan(0.05);
    const y = emb.forward(tensor([[199, 3, 199]], { dtype: "int32" }));
    expect(y.shape).toEqual([1, 3, 16]);
    y.sum().backward();
    const grad = values(emb.weight.grad!);
    expect(grad.slice(199 * 16)).toEqual(new Array(16).fill(0));
    expect(grad.slice(3 * 16, 4 * 16)).toEqual(new Array(16).fill(1));
  });

  it("Embedding.fromPretrained copies the table and freezes it unless told not to", () => {
    const table = tensor([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const frozen = nn.Embedding.fromPretrained(table);
    expect(frozen.weight.requiresGrad).toBe(false);
    expect(values(frozen.forward(tensor([2, 0], { dtype: "int32" })))).toEqual([5, 6, 1, 2]);
    const trained = nn.Embedding.fromPretrained(table, { freeze: false, paddingIdx: 1 });
    expect(trained.weight.requiresGrad).toBe(true);
    expect(values(trained.weight)).toEqual([1, 2, 3, 4, 5, 6]); // the padding row is kept
    expect(trained.toString()).toBe("Embedding(3, 2, padding_idx=1)");
  });

  it("Embedding rejects bad indices and options by name", () => {
    expectThrows(
      () => new nn.Embedding(4, 2).forward(tensor([1, 4], { dtype: "int32" })),
      IndexError,
      "embedding: index 4 is out of bounds for 4 embeddings",
    );
    // With maxNorm the indices are checked before any row is renormalised.
    const capped = new nn.Embedding(4, 2, { maxNorm: 0.5 });
    const before = capped.weight.toArray();
    expectThrows(
      () => capped.forward(tensor([1, -1], { dtype: "int32" })),
      IndexError,
      "embedding: index -1 is out of bounds for 4 embeddings",
    );
    expect(capped.weight.toArray()).toEqual(before);
    expectThrows(
      () => new nn.Embedding(4, 2).forward(tensor([1.5])),
      Error,
      "embedding: indices must be int32, got float32",
    );
    expectThrows(
      () => new nn.Embedding(4, 2, { paddingIdx: 4 }),
      ValueError,
      "Embedding: paddingIdx must be an integer in [-4, 4), got 4",
    );
  });

  it("losses check shapes, reductions and ranges", () => {
    expectThrows(
      () => F.mseLoss(ones([2, 3]), ones([3])),
      ShapeError,
      "mseLoss: target [3] must have the shape of the input [2, 3]",
    );
    expectThrows(
      () => F.l1Loss(ones([2]), ones([2]), { reduction: "avg" as never }),
      ValueError,
      'l1Loss: reduction must be "none", "mean", "sum", got "avg"',
    );
    for (const bad of [1.5, -0.25, NaN]) {
      const error = expectThrows(
        () => F.binaryCrossEntropy(tensor([0.5, 1, bad]), tensor([0, 1, 1])),
        ValueError,
        "binaryCrossEntropy: all elements of input should be between 0 and 1, but element 2 " +
          "is not",
      );
      expect(error.param).toBe("input");
    }
    expectThrows(
      () => F.smoothL1Loss(ones([2]), ones([2]), { beta: -1 }),
      ValueError,
      "smoothL1Loss: beta must be a number >= 0, got -1",
    );
    expectThrows(
      () => F.crossEntropy(ones([2, 3]), tensor([0, 1], { dtype: "int32" }), { labelSmoothing: 2 }),
      ValueError,
      "crossEntropy: labelSmoothing must be in [0, 1], got 2",
    );
  });

  it("activation modules reject bad options by name", () => {
    expectThrows(
      () => new nn.GELU({ approximate: "erf" as never }),
      ValueError,
      'GELU: approximate must be "none" or "tanh", got "erf"',
    );
    expectThrows(() => new nn.Softmax(0.5), ValueError, "Softmax: dim must be an integer, got 0.5");
    // F's too: a default of -1 would take another dim than PyTorch's implicit one on 4-d input.
    for (const op of ["softmax", "logSoftmax"] as const) {
      expectThrows(
        () => F[op](ones([2, 3, 4, 4]), undefined as never),
        ValueError,
        `${op}: dim is required (pass -1 for the last dim; PyTorch's implicit dim is deprecated)`,
      );
    }
  });
});

describe("ModuleList, ModuleDict and init.orthogonal_", () => {
  it("ModuleList names its modules 0, 1, ... and keeps their parameters, modes and order", () => {
    const list = new nn.ModuleList([new nn.Linear(2, 3), new nn.ReLU()]);
    list.append(new nn.Linear(3, 1, { bias: false }));
    list.insert(1, new nn.Tanh());
    expect(list.length).toBe(4);
    expect([...list].map((m) => m.constructor.name)).toEqual(["Linear", "Tanh", "ReLU", "Linear"]);
    expect(Object.keys(list.stateDict())).toEqual(["0.weight", "0.bias", "3.weight"]);
    expect(list.at(-1)).toBe(list.at(3));
    list.eval();
    expect([...list].every((m) => !m.training)).toBe(true);
    expect(String(list)).toBe(
      "ModuleList(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): Tanh()\n" +
        "  (2): ReLU()\n  (3): Linear(in_features=3, out_features=1, bias=False)\n)",
    );
    expectThrows(
      () => list.at(4),
      ValueError,
      "ModuleList.at: index 4 is out of range for 4 modules",
    );
    expectThrows(
      () => list.forward(),
      NotSupportedError,
      "ModuleList: ModuleList has no forward; call its modules",
    );
  });

  it("ModuleDict keeps modules by key, rejects keys that would clash", () => {
    const dict = new nn.ModuleDict({ encoder: new nn.Linear(4, 2), act: new nn.GELU() });
    dict.set("decoder", new nn.Linear(2, 4));
    expect(dict.keys()).toEqual(["encoder", "act", "decoder"]);
    expect(dict.size).toBe(3);
    expect(Object.keys(dict.stateDict())).toEqual([
      "encoder.weight",
      "encoder.bias",
      "decoder.weight",
      "decoder.bias",
    ]);
    expect(dict.pop("act")).toBeInstanceOf(nn.GELU);
    expect(dict.has("act")).toBe(false);
    expect(dict.keys()).toEqual(["encoder", "decoder"]);
    expectThrows(
      () => dict.set("a.b", new nn.ReLU()),
      ValueError,
      'ModuleDict: a key must be a non-empty string without ".", got "a.b"',
    );
    expectThrows(
      () => dict.set("forward", new nn.ReLU()),
      ValueError,
      'ModuleDict: key "forward" is a property of the module',
    );
    expectThrows(() => dict.get("act"), ValueError, 'ModuleDict.get: no module named "act"');
  });

  it.each([
    [[5, 3], 1],
    [[3, 5], 2],
    [[4, 2, 3], 0.5],
  ])("orthogonal_ of %o (gain %d) has orthonormal rows or columns", (shape, gain) => {
    manualSeed(11);
    const t = nn.init.orthogonal_(zeros(shape as number[]), gain as number);
    const rows = (shape as number[])[0]!;
    const cols = t.numel / rows;
    const m = values(t).map((v) => v / (gain as number));
    const [outer, inner] = rows >= cols ? [cols, rows] : [rows, cols];
    const at = (i: number, k: number) => (rows >= cols ? m[k * cols + i]! : m[i * cols + k]!);
    for (let i = 0; i < outer; i++) {
      for (let j = 0; j < outer; j++) {
        let dot = 0;
        for (let k = 0; k < inner; k++) dot += at(i, k) * at(j, k);
        expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-5);
      }
    }
    expectThrows(
      () => nn.init.orthogonal_(zeros([3])),
      ShapeError,
      "orthogonal_: only tensors with 2 or more dimensions are supported, got [3]",
    );
  });

  it("orthogonal_ is the positive-diagonal Q of the same seeded normal draw", () => {
    manualSeed(5);
    const a = values(nn.init.normal_(zeros([4, 3])));
    manualSeed(5);
    const q = values(nn.init.orthogonal_(zeros([4, 3])));
    // R = Q^T A must be upper triangular with a positive diagonal.
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        let r = 0;
        for (let k = 0; k < 4; k++) r += q[k * 3 + i]! * a[k * 3 + j]!;
        if (i > j) expect(Math.abs(r)).toBeLessThan(1e-5);
        if (i === j) expect(r).toBeGreaterThan(0);
      }
    }
  });
});

// ---- attention and transformers (lib/nn/attention.ts, lib/nn/transformer.ts) -------------
// Golden values from test/fixtures/attention.safetensors; regenerate with
// `/usr/bin/python3 test/fixtures/make_attention_fixtures.py`. Dropout is 0 there.

const attention = loadFixture("attention.safetensors");

const ATTENTION_CASES: DeviceCase[] = [
  { device: "cpu", dtype: "float32", tol: { rtol: 1e-4, atol: 1e-5 } },
  { device: "reference", dtype: "float64", tol: { rtol: 1e-10, atol: 1e-10 } },
];

describe.each(ATTENTION_CASES)(
  "attention and transformers against PyTorch on $device $dtype",
  ({ device, dtype, tol }) => {
    const input = (key: string): Tensor => attention.tensor(key, device, dtype);
    const mask = (key: string): Tensor => attention.tensor(key, device).ne(0);
    const check = (actual: Tensor | null, key: string) => {
      expect(actual, key).not.toBeNull();
      expect(actual!.shape, key).toEqual(attention.shape(key));
      expectClose(actual!, attention.values(key), tol, key);
    };
    const loadParams = (key: string, module: nn.Module) => {
      for (const [name, p] of module.namedParameters())
        assignOn(p, attention.values(`${key}.param.${name}`));
    };
    const checkGrads = (key: string, module: nn.Module) => {
      const names = [...module.namedParameters()].map(([name]) => name);
      expect(names.length).toBeGreaterThan(3);
      for (const [name, p] of module.namedParameters()) check(p.grad, `${key}.grad.${name}`);
    };
    const factory = { device, dtype };

    const mhaCases: [string, () => nn.MultiheadAttention, string[]][] = [
      ["mha_self", () => new nn.MultiheadAttention(4, 2, factory), []],
      ["mha_self_masks", () => new nn.MultiheadAttention(4, 2, factory), ["kpm", "attn"]],
      [
        "mha_cross_batch_first",
        () => new nn.MultiheadAttention(4, 2, { ...factory, batchFirst: true, kdim: 3, vdim: 5 }),
        ["kpm", "floatAttn"],
      ],
      ["mha_float_mask_per_head", () => new nn.MultiheadAttention(6, 3, factory), ["floatAttn"]],
    ];

    it.each(mhaCases)("%s: output, weights and every parameter gradient", (key, make, masks) => {
      const mha = make();
      loadParams(key, mha);
      const options: nn.MultiheadAttentionForwardOptions = {};
      if (masks.includes("kpm")) options.keyPaddingMask = mask(`${key}.key_padding_mask`);
      if (masks.includes("attn")) options.attnMask = mask(`${key}.attn_mask`);
      if (masks.includes("floatAttn")) options.attnMask = input(`${key}.attn_mask`);
      const [q, k, v] = ["query", "key", "value"].map((n) => input(`${key}.${n}`));
      const [out, weights] = mha.forward(q!, k!, v!, options);
      check(out, `${key}.out`);
      check(weights, `${key}.weights`);
      const loss = out
        .mul(input(`${key}.upstream`))
        .sum()
        .add(weights!.mul(input(`${key}.weights_upstream`)).sum());
      loss.backward();
      checkGrads(key, mha);
    });

    const encoderCases: [string, nn.TransformerLayerOptions][] = [
      ["enc_post_relu", { activation: "relu" }],
      ["enc_pre_gelu", { activation: "gelu", normFirst: true }],
      ["enc_post_gelu_batch_first", { activation: "gelu", batchFirst: true }],
      ["enc_pre_relu", { activation: "relu", normFirst: true }],
    ];

    it.each(encoderCases)("%s: TransformerEncoderLayer output and gradients", (key, options) => {
      const layer = new nn.TransformerEncoderLayer(4, 2, {
        ...factory,
        ...options,
        dimFeedforward: 6,
        dropout: 0,
      });
      loadParams(key, layer);
      const out = layer.forward(input(`${key}.src`), {
        srcMask: mask(`${key}.src_mask`),
        srcKeyPaddingMask: mask(`${key}.src_key_padding_mask`),
      });
      check(out, `${key}.out`);
      out
        .mul(input(`${key}.upstream`))
        .sum()
        .backward();
      checkGrads(key, layer);
    });

    it.each([
      ["dec_post_relu", { activation: "relu" }],
      ["dec_pre_gelu", { activation: "gelu", normFirst: true }],
    ] as [string, nn.TransformerLayerOptions][])(
      "%s: TransformerDecoderLayer output and gradients",
      (key, options) => {
        const layer = new nn.TransformerDecoderLayer(4, 2, {
          ...factory,
          ...options,
          dimFeedforward: 6,
          dropout: 0,
        });
        loadParams(key, layer);
        const out = layer.forward(input(`${key}.tgt`), input(`${key}.memory`), {
          tgtMask: mask(`${key}.tgt_mask`),
          memoryKeyPaddingMask: mask(`${key}.memory_key_padding_mask`),
        });
        check(out, `${key}.out`);
        out
          .mul(input(`${key}.upstream`))
          .sum()
          .backward();
        checkGrads(key, layer);
      },
    );
  },
);

describe("attention modules", () => {
  const seeded = (shape: number[], seed: number): Tensor => {
    manualSeed(seed);
    return nn.init.normal_(zeros(shape));
  };
  const boolTensor = (rows: boolean[][]): Tensor => tensor(rows, { dtype: "bool" });

  it("scaledDotProductAttention: mask kinds agree and an all-masked row gives zeros", () => {
    const [q, k, v] = [seeded([2, 3, 4], 1), seeded([2, 5, 4], 2), seeded([2, 5, 3], 3)];
    const keep = boolTensor([
      [true, true, false, true, false],
      [false, false, false, false, false],
      [true, false, true, true, true],
    ]);
    const additive = F.scaledDotProductAttention(q, k, v, {
      attnMask: tensor(keep.toArray() as boolean[][])
        .float()
        .sub(1)
        .mul(1e9),
    });
    const byBool = F.scaledDotProductAttention(q, k, v, { attnMask: keep });
    const rows = byBool.toArray() as number[][][];
    expect(rows[0]![1]).toEqual([0, 0, 0]);
    expect(rows[1]![1]).toEqual([0, 0, 0]);
    const a = additive.toArray() as number[][][];
    for (const b of [0, 1])
      for (const i of [0, 2]) expectClose(rows[b]![i]!, a[b]![i]!, { rtol: 1e-5, atol: 1e-6 });
    const padding = boolTensor([
      [false, false, true, false, true],
      [false, true, false, false, false],
    ]);
    const byPadding = F.scaledDotProductAttention(q, k, v, { keyPaddingMask: padding });
    const asMask = F.scaledDotProductAttention(q, k, v, {
      attnMask: padding.eq(0).reshape([2, 1, 5]),
    });
    expectClose(byPadding, asMask, { rtol: 1e-6, atol: 1e-7 });
  });

  it("isCausal equals a lower-triangular bool mask; all -inf float rows give zeros too", () => {
    const [q, k, v] = [seeded([3, 4], 4), seeded([3, 4], 5), seeded([3, 2], 6)];
    const tril = boolTensor([
      [true, false, false],
      [true, true, false],
      [true, true, true],
    ]);
    const causal = F.scaledDotProductAttention(q, k, v, { isCausal: true });
    expectClose(causal, F.scaledDotProductAttention(q, k, v, { attnMask: tril }), {
      rtol: 1e-6,
      atol: 1e-7,
    });
    expectClose((causal.toArray() as number[][])[0]!, (v.toArray() as number[][])[0]!, {
      rtol: 1e-6,
      atol: 1e-7,
    });
    const minusInf = tensor([
      [0, 0, 0],
      [-Infinity, -Infinity, -Infinity],
      [0, -Infinity, 0],
    ]);
    const qg = q.clone().requiresGrad_(true);
    const out = F.scaledDotProductAttention(qg, k, v, { attnMask: minusInf });
    expect((out.toArray() as number[][])[1]).toEqual([0, 0]);
    out.sum().backward();
    expect(values(qg.grad!).every(Number.isFinite)).toBe(true);
    expect((qg.grad!.toArray() as number[][])[1]).toEqual([0, 0, 0, 0]);
  });

  it("scaledDotProductAttention drops weights only when training, scaling the rest", () => {
    const [q, k, v] = [seeded([4, 6, 4], 11), seeded([4, 6, 4], 12), ones([4, 6, 1])];
    const plain = values(F.scaledDotProductAttention(q, k, v));
    expect(plain.every((x) => Math.abs(x - 1) < 1e-6)).toBe(true); // weights sum to 1
    const off = F.scaledDotProductAttention(q, k, v, { dropoutP: 0.5 });
    expect(values(off)).toEqual(plain);
    manualSeed(3);
    const dropped = values(F.scaledDotProductAttention(q, k, v, { dropoutP: 0.5, training: true }));
    expect(dropped).not.toEqual(plain);
    // Each output is 2 * (the kept weights' sum): on average 1 over the 24 rows.
    const mean = dropped.reduce((a, b) => a + b, 0) / dropped.length;
    expect(mean).toBeGreaterThan(0.6);
    expect(mean).toBeLessThan(1.4);
  });

  it("scaledDotProductAttention rejects bad shapes and options, naming them", () => {
    const [q, k] = [zeros([2, 3, 4]), zeros([2, 5, 4])];
    expectThrows(
      () => F.scaledDotProductAttention(q, zeros([2, 5, 3]), zeros([2, 5, 3])),
      ShapeError,
      "scaledDotProductAttention: query [2, 3, 4] and key [2, 5, 3] differ in the last dim",
    );
    expectThrows(
      () => F.scaledDotProductAttention(q, k, zeros([2, 4, 3])),
      ShapeError,
      "scaledDotProductAttention: key [2, 5, 4] and value [2, 4, 3] differ in the number of keys " +
        "(dim -2)",
    );
    expectThrows(
      () => F.scaledDotProductAttention(q, k, k, { attnMask: zeros([4, 5]) }),
      ShapeError,
      "scaledDotProductAttention: attnMask [4, 5] does not broadcast to the scores [2, 3, 5] " +
        "[..., L, S]",
    );
    expectThrows(
      () => F.scaledDotProductAttention(q, k, k, { keyPaddingMask: zeros([3, 5]) }),
      ShapeError,
      "scaledDotProductAttention: keyPaddingMask [3, 5] must be [N, S] = [2, 5] or [S] for " +
        "scores [2, 3, 5]",
    );
    expectThrows(
      () => F.scaledDotProductAttention(q, k, k, { dropoutP: 1.5 }),
      ValueError,
      "scaledDotProductAttention: dropoutP must be in [0, 1], got 1.5",
    );
  });

  it("MultiheadAttention: PyTorch's names, shapes, init and repr", () => {
    manualSeed(0);
    const mha = new nn.MultiheadAttention(8, 2);
    expect([...mha.namedParameters()].map(([n, p]) => [n, p.shape])).toEqual([
      ["in_proj_weight", [24, 8]],
      ["in_proj_bias", [24]],
      ["out_proj.weight", [8, 8]],
      ["out_proj.bias", [8]],
    ]);
    expect(mha.toString()).toBe(
      "MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear(in_features=8, " +
        "out_features=8, bias=True)\n)",
    );
    const bound = Math.sqrt(6 / (8 + 24)); // xavier_uniform on [3E, E]
    expect(maxAbs(values(mha.in_proj_weight!))).toBeLessThanOrEqual(bound);
    expect(maxAbs(values(mha.in_proj_weight!))).toBeGreaterThan(bound * 0.8);
    expect(maxAbs(values(mha.in_proj_bias!))).toBe(0);
    expect(maxAbs(values(mha.out_proj.bias!))).toBe(0);
    const separate = new nn.MultiheadAttention(4, 2, { kdim: 3, vdim: 5, bias: false });
    expect([...separate.namedParameters()].map(([n, p]) => [n, p.shape])).toEqual([
      ["q_proj_weight", [4, 4]],
      ["k_proj_weight", [4, 3]],
      ["v_proj_weight", [4, 5]],
      ["out_proj.weight", [4, 4]],
    ]);
    const [out, weights] = separate.forward(zeros([6, 2, 4]), zeros([7, 2, 3]), zeros([7, 2, 5]));
    expect(out.shape).toEqual([6, 2, 4]);
    expect(weights!.shape).toEqual([2, 6, 7]);
    const perHead = separate.forward(zeros([6, 4]), zeros([7, 3]), zeros([7, 5]), {
      averageAttnWeights: false,
    });
    expect(perHead[0].shape).toEqual([6, 4]);
    expect(perHead[1]!.shape).toEqual([2, 6, 7]);
    const noWeights = mha.forward(zeros([3, 1, 8]), zeros([3, 1, 8]), zeros([3, 1, 8]), {
      needWeights: false,
    });
    expect(noWeights[1]).toBeNull();
  });

  it("MultiheadAttention rejects bad configurations and inputs, naming them", () => {
    expectThrows(
      () => new nn.MultiheadAttention(6, 4),
      ValueError,
      "MultiheadAttention: embedDim (6) must be divisible by numHeads (4)",
    );
    const mha = new nn.MultiheadAttention(4, 2, { batchFirst: true });
    expectThrows(
      () => mha.forward(zeros([2, 3, 5]), zeros([2, 3, 4]), zeros([2, 3, 4])),
      ShapeError,
      "MultiheadAttention: query [2, 3, 5] must end in 4 features",
    );
    expectThrows(
      () => mha.forward(zeros([2, 3, 4]), zeros([3, 3, 4]), zeros([3, 3, 4])),
      ShapeError,
      "MultiheadAttention: key [3, 3, 4] and value [3, 3, 4] must match query [2, 3, 4] in batch " +
        "and each other in length",
    );
    expectThrows(
      () =>
        mha.forward(zeros([2, 3, 4]), zeros([2, 3, 4]), zeros([2, 3, 4]), {
          attnMask: zeros([2, 3, 3]),
        }),
      ShapeError,
      "MultiheadAttention: attnMask [2, 3, 3] must be [L, S] = [3, 3] or [N * numHeads, L, S] = " +
        "[4, 3, 3]",
    );
    expectThrows(
      () =>
        mha.forward(zeros([2, 3, 4]), zeros([2, 3, 4]), zeros([2, 3, 4]), {
          keyPaddingMask: zeros([2, 2], { dtype: "bool" }),
        }),
      ShapeError,
      "MultiheadAttention: keyPaddingMask [2, 2] must be [N, S] = [2, 3]",
    );
    expectThrows(
      () =>
        mha.forward(zeros([2, 4]), zeros([5, 4]), zeros([5, 4]), { keyPaddingMask: zeros([2, 5]) }),
      ShapeError,
      "MultiheadAttention: keyPaddingMask [2, 5] must be [S] = [5]",
    );
  });

  it("a key-padding row that masks every key gives zeros, not NaN, with finite gradients", () => {
    manualSeed(3);
    const mha = new nn.MultiheadAttention(4, 2);
    const x = seeded([3, 2, 4], 7).requiresGrad_(true);
    const padding = boolTensor([
      [true, true, true],
      [false, true, false],
    ]);
    const [, weights] = mha.forward(x, x, x, { keyPaddingMask: padding });
    const w = weights!.toArray() as number[][][];
    expect(w[0]).toEqual([
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ]);
    expectClose(
      w[1]!.map((row) => row.reduce((s, e) => s + e, 0)),
      [1, 1, 1],
    );
    weights!.sum().backward();
    expect(values(x.grad!).every(Number.isFinite)).toBe(true);
  });

  it("TransformerEncoderLayer and DecoderLayer: names, repr, options and errors", () => {
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 6 });
    expect([...layer.namedParameters()].map(([n]) => n)).toEqual([
      "self_attn.in_proj_weight",
      "self_attn.in_proj_bias",
      "self_attn.out_proj.weight",
      "self_attn.out_proj.bias",
      "linear1.weight",
      "linear1.bias",
      "linear2.weight",
      "linear2.bias",
      "norm1.weight",
      "norm1.bias",
      "norm2.weight",
      "norm2.bias",
    ]);
    expect(layer.toString()).toBe(
      [
        "TransformerEncoderLayer(",
        "  (self_attn): MultiheadAttention(",
        "    (out_proj): NonDynamicallyQuantizableLinear(in_features=4, out_features=4, bias=True)",
        "  )",
        "  (linear1): Linear(in_features=4, out_features=6, bias=True)",
        "  (dropout): Dropout(p=0.1, inplace=False)",
        "  (linear2): Linear(in_features=6, out_features=4, bias=True)",
        "  (norm1): LayerNorm((4,), eps=1e-05, elementwise_affine=True)",
        "  (norm2): LayerNorm((4,), eps=1e-05, elementwise_affine=True)",
        "  (dropout1): Dropout(p=0.1, inplace=False)",
        "  (dropout2): Dropout(p=0.1, inplace=False)",
        ")",
      ].join("\n"),
    );
    const decoder = new nn.TransformerDecoderLayer(4, 2, { dimFeedforward: 6 });
    expect([...decoder.namedChildren()].map(([n]) => n)).toEqual([
      "self_attn",
      "multihead_attn",
      "linear1",
      "dropout",
      "linear2",
      "norm1",
      "norm2",
      "norm3",
      "dropout1",
      "dropout2",
      "dropout3",
    ]);
    expect(decoder.forward(zeros([3, 2, 4]), zeros([5, 2, 4])).shape).toEqual([3, 2, 4]);
    expectThrows(
      () => new nn.TransformerEncoderLayer(4, 2, { activation: "tanh" as "relu" }),
      ValueError,
      'TransformerEncoderLayer: activation must be "relu" or "gelu", got tanh',
    );
  });

  it("TransformerEncoder copies the layer (options, weights) into layers.0, layers.1", () => {
    manualSeed(1);
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 6, batchFirst: true });
    const encoder = new nn.TransformerEncoder(layer, 2, { norm: new nn.LayerNorm(4) });
    const names = [...encoder.namedParameters()].map(([n]) => n);
    expect(names.slice(0, 3)).toEqual([
      "layers.0.self_attn.in_proj_weight",
      "layers.0.self_attn.in_proj_bias",
      "layers.0.self_attn.out_proj.weight",
    ]);
    expect(names).toContain("layers.1.norm2.bias");
    expect(names.slice(-2)).toEqual(["norm.weight", "norm.bias"]);
    const first = encoder.layers.at(0) as nn.TransformerEncoderLayer;
    const second = encoder.layers.at(1) as nn.TransformerEncoderLayer;
    expect(first).not.toBe(layer);
    expect(first.self_attn.in_proj_weight).not.toBe(second.self_attn.in_proj_weight);
    expect(values(first.linear1.weight)).toEqual(values(layer.linear1.weight));
    expect(values(second.linear1.weight)).toEqual(values(layer.linear1.weight));
    expect(first.config.batchFirst).toBe(true);
    expect(encoder.forward(zeros([2, 3, 4])).shape).toEqual([2, 3, 4]);
  });

  it("outputs are equal in eval, under noGrad and in train with dropout 0", () => {
    manualSeed(2);
    const src = seeded([3, 2, 4], 8);
    const memory = seeded([5, 2, 4], 9);
    const runs: [string, (train: boolean) => Tensor][] = [
      ["encoder", (t) => encoderOf(t).forward(src, { isCausal: true })],
      ["decoder", (t) => decoderOf(t).forward(src, memory, { tgtIsCausal: true })],
    ];
    const options = { dimFeedforward: 6, dropout: 0, normFirst: true };
    const encoderOf = (train: boolean) => {
      manualSeed(4);
      return new nn.TransformerEncoder(new nn.TransformerEncoderLayer(4, 2, options), 2).train(
        train,
      );
    };
    const decoderOf = (train: boolean) => {
      manualSeed(5);
      return new nn.TransformerDecoderLayer(4, 2, options).train(train);
    };
    for (const [name, run] of runs) {
      const train = run(true);
      expect(train.requiresGrad, name).toBe(true);
      expectClose(run(false), train, { rtol: 0, atol: 0 }, `${name} eval`);
      expectClose(
        noGrad(() => run(true)),
        train,
        { rtol: 0, atol: 0 },
        `${name} noGrad`,
      );
    }
  });

  it("dropout in train mode changes the output; eval does not", () => {
    manualSeed(6);
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 6, dropout: 0.5 });
    const src = seeded([3, 2, 4], 10);
    const a = layer.forward(src);
    const b = layer.forward(src);
    expect(values(a)).not.toEqual(values(b));
    layer.eval();
    expect(values(layer.forward(src))).toEqual(values(layer.forward(src)));
  });
});

// ---- convolution, pooling and CTC against PyTorch ---------------------------------------
// Golden values from test/fixtures/conv.safetensors; regenerate with
// `/usr/bin/python3 test/fixtures/make_conv_fixtures.py`.

const convs = loadFixture("conv.safetensors");

describe.each(LAYER_CASES)(
  "convolution, pooling and CTC against PyTorch on $device $dtype",
  ({ device, dtype, tol }) => {
    const input = (key: string, requiresGrad = false): Tensor => {
      const t = convs.tensor(key, device, dtype);
      return requiresGrad ? t.requiresGrad_(true) : t;
    };
    const check = (actual: Tensor | null, key: string, tolerance = tol) => {
      expect(actual, key).not.toBeNull();
      expect(actual!.shape, key).toEqual(convs.shape(key));
      expectClose(actual!, convs.values(key), tolerance, key);
    };
    const factory = { device, dtype };
    const load = (module: nn.Module, key: string, hasBias: boolean) => {
      const params = new Map(module.namedParameters());
      assignOn(params.get("weight")!, convs.values(`${key}.weight`));
      if (hasBias) assignOn(params.get("bias")!, convs.values(`${key}.bias`));
      return params;
    };

    const modules: [string, () => nn.Module, boolean][] = [
      [
        "conv1d",
        () => new nn.Conv1d(4, 6, 3, { ...factory, stride: 2, padding: 1, dilation: 2, groups: 2 }),
        true,
      ],
      ["grouped", () => new nn.Conv2d(4, 6, 3, { ...factory, padding: 1, groups: 2 }), true],
      [
        "depthwise",
        () => new nn.Conv2d(3, 6, 3, { ...factory, stride: 2, padding: 1, groups: 3, bias: false }),
        false,
      ],
      [
        "transpose",
        () =>
          new nn.ConvTranspose2d(4, 6, [3, 2], {
            ...factory,
            stride: 2,
            padding: 1,
            outputPadding: 1,
            groups: 2,
            dilation: [1, 2],
          }),
        true,
      ],
      [
        "transpose_plain",
        () => new nn.ConvTranspose2d(3, 2, 2, { ...factory, stride: 2, bias: false }),
        false,
      ],
    ];

    it.each(modules)("%s: output and every gradient", (key, make, hasBias) => {
      const module = make();
      const params = load(module, key, hasBias);
      const x = input(`${key}.x`, true);
      const out = (module as nn.Conv1d).forward(x);
      check(out, `${key}.out`);
      out.backward(input(`${key}.upstream`));
      check(x.grad, `${key}.grad_x`);
      check(params.get("weight")!.grad, `${key}.grad_weight`);
      if (hasBias) check(params.get("bias")!.grad, `${key}.grad_bias`);
    });

    const pools: [string, nn.Module][] = [
      [
        "avg_ceil_nopad",
        new nn.AvgPool2d(3, { stride: 2, padding: 1, ceilMode: true, countIncludePad: false }),
      ],
      ["avg_ceil_pad", new nn.AvgPool2d(3, { stride: 2, padding: 1, ceilMode: true })],
      [
        "avg_divisor",
        new nn.AvgPool2d([2, 3], { stride: [1, 2], padding: [1, 0], divisorOverride: 4 }),
      ],
      ["avg_plain", new nn.AvgPool2d(2)],
      ["adaptive_down", new nn.AdaptiveAvgPool2d([3, 2])],
      ["adaptive_up", new nn.AdaptiveAvgPool2d(4)],
      ["adaptive_none", new nn.AdaptiveAvgPool2d([null, 2])],
    ];

    it.each(pools)("%s: output and gradient", (key, module) => {
      const x = input(`${key}.x`, true);
      const out = (module as nn.AvgPool2d).forward(x);
      check(out, `${key}.out`);
      out.backward(input(`${key}.upstream`));
      check(x.grad, `${key}.grad`);
    });

    const ctcArgs = () =>
      [convs.tensor("ctc.targets", device), convs.tensor("ctc.input_lengths", device)] as const;

    it.each(["none", "mean", "sum"] as const)(
      "ctcLoss reduction %s, with and without zeroInfinity",
      (reduction) => {
        const [targets, inputLengths] = ctcArgs();
        const targetLengths = convs.values("ctc.target_lengths");
        for (const zeroInfinity of [false, true]) {
          const key = `ctc.${reduction}${zeroInfinity ? ".zero_inf" : ""}`;
          const logits = input("ctc.logits", true);
          const loss = new nn.CTCLoss({ reduction, zeroInfinity }).forward(
            F.logSoftmax(logits, 2),
            targets,
            inputLengths,
            targetLengths,
          );
          const expected = convs.values(`${key}.loss`);
          if (!zeroInfinity) {
            // The last sample cannot be aligned: its loss (and so mean and sum) is infinite.
            expect(Array.from(loss.dataSync() as ArrayLike<number>).at(-1)).toBe(Infinity);
            continue;
          }
          expectClose(loss, expected, tol, `${key}.loss`);
          if (reduction === "none") loss.backward(input("ctc.upstream"));
          else loss.backward();
          check(logits.grad, `${key}.grad`);
        }
      },
    );

    it("ctcLoss with blank 4 and concatenated 1-D targets", () => {
      const logits = input("ctc.logits").slice(1, 0, 3).detach().requiresGrad_(true);
      const padded = convs.values("ctc.blank4.targets");
      const lengths = convs.values("ctc.blank4.target_lengths");
      const flat = lengths.flatMap((length, n) => padded.slice(n * 4, n * 4 + length));
      const targets = fromTypedArray(Int32Array.from(flat), [flat.length], { device });
      const inputLengths = convs.values("ctc.input_lengths").slice(0, 3);
      const loss = F.ctcLoss(F.logSoftmax(logits, 2), targets, inputLengths, lengths, { blank: 4 });
      expectClose(loss, convs.values("ctc.blank4.loss"), tol, "blank4 loss");
      loss.backward();
      check(logits.grad, "ctc.blank4.grad");
    });
  },
);

describe("convolution and pooling modules", () => {
  it("print as PyTorch prints them", () => {
    expect(String(new nn.Conv1d(4, 6, 3, { stride: 2, padding: 1, dilation: 2, groups: 2 }))).toBe(
      "Conv1d(4, 6, kernel_size=(3,), stride=(2,), padding=(1,), dilation=(2,), groups=2)",
    );
    expect(String(new nn.Conv1d(2, 3, 5, { bias: false }))).toBe(
      "Conv1d(2, 3, kernel_size=(5,), stride=(1,), bias=False)",
    );
    const transpose = new nn.ConvTranspose2d(4, 6, [3, 2], {
      stride: 2,
      padding: 1,
      outputPadding: 1,
      groups: 2,
      dilation: [1, 2],
    });
    expect(String(transpose)).toBe(
      "ConvTranspose2d(4, 6, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), dilation=(1, 2), " +
        "output_padding=(1, 1), groups=2)",
    );
    expect(String(new nn.ConvTranspose2d(3, 2, 2, { stride: 2, bias: false }))).toBe(
      "ConvTranspose2d(3, 2, kernel_size=(2, 2), stride=(2, 2), bias=False)",
    );
    expect(String(new nn.AvgPool2d(3, { stride: 2, padding: 1 }))).toBe(
      "AvgPool2d(kernel_size=3, stride=2, padding=1)",
    );
    expect(String(new nn.AdaptiveAvgPool2d([3, null]))).toBe(
      "AdaptiveAvgPool2d(output_size=(3, None))",
    );
    expect(String(new nn.AdaptiveAvgPool2d(1))).toBe("AdaptiveAvgPool2d(output_size=1)");
  });

  it("keep PyTorch's parameter names and shapes, and init bounds from fan-in", () => {
    const conv = new nn.Conv1d(4, 6, 3, { groups: 2 });
    expect([...new Map(conv.namedParameters()).keys()]).toEqual(["weight", "bias"]);
    expect(conv.weight.shape).toEqual([6, 2, 3]);
    const transpose = new nn.ConvTranspose2d(4, 6, 3, { groups: 2 });
    expect(transpose.weight.shape).toEqual([4, 3, 3, 3]);
    const bound = 1 / Math.sqrt(3 * 9); // fan-in of a transposed weight is dim 1 * k * k
    const biases = Array.from(transpose.bias!.dataSync() as ArrayLike<number>);
    expect(Math.max(...biases.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(
      Math.max(...Array.from(transpose.weight.dataSync() as ArrayLike<number>)),
    ).toBeLessThanOrEqual(bound);
  });

  it("maxPool2d exposes padding, dilation and ceilMode", () => {
    const x = fromTypedArray(pattern(2 * 8 * 8), [1, 2, 8, 8]);
    const pool = new nn.MaxPool2d(3, { stride: 2, padding: 1, dilation: 2, ceilMode: true });
    expect(pool.forward(x).shape).toEqual([1, 2, 4, 4]);
  });

  it("reject bad arguments with typed errors", () => {
    const x = zeros([1, 2, 4, 4]);
    expectThrows(
      () => F.convTranspose2d(x, zeros([2, 1, 3, 3]), null, { stride: 2, outputPadding: 2 }),
      ValueError,
      "convTranspose2d: outputPadding [2, 2] must be smaller than stride [2, 2] or dilation [1, 1]",
    );
    expectThrows(
      () => F.avgPool2d(x, 2, { padding: 2 }),
      ValueError,
      "avgPool2d: padding [2, 2] must be at most half the kernel size [2, 2]",
    );
    expectThrows(
      () => F.conv1d(x, zeros([2, 2, 3])),
      ShapeError,
      "conv1d: expected input [N, C, L] and weight [outChannels, C / groups, k], got [1, 2, 4, " +
        "4] and [2, 2, 3]",
    );
    expectThrows(
      () => new nn.Conv1d(3, 4, 3, { groups: 2 }),
      ValueError,
      "Conv1d: inChannels (3) and outChannels (4) must be divisible by groups (2)",
    );
    const lp = zeros([3, 1, 4]);
    expectThrows(
      () => F.ctcLoss(lp, [[1, 0]], [3], [2], { blank: 0 }),
      IndexError,
      "ctcLoss: target 0 of sample 0 must be in [0, 4) and not the blank 0",
    );
    expectThrows(
      () => F.ctcLoss(lp, [[1]], [4], [1]),
      ValueError,
      "ctcLoss: inputLengths[0] must be in [1, 3], got 4",
    );
  });

  it("decode CTC greedily: repeats collapse, blanks go", () => {
    const steps = [0, 1, 1, 0, 1, 2, 2, 0];
    const values = new Float32Array(steps.length * 3).fill(-5);
    steps.forEach((k, t) => (values[t * 3 + k] = 0));
    const logProbs = fromTypedArray(values, [steps.length, 1, 3]);
    expect(F.ctcGreedyDecode(logProbs)).toEqual([[1, 1, 2]]);
    expect(F.ctcGreedyDecode(logProbs, [4])).toEqual([[1]]);
  });
});

// ---- fused attention (lib/nn/fused_attention.ts) -------------------------------------------

import { attentionWithWeights } from "../lib/nn/attention.js";
import { canFuse } from "../lib/nn/fused_attention.js";
import { randn } from "../lib/index.js";

/** The names of the recorded ops behind t. */
function opsBehind(t: Tensor, names = new Set<string>(), seen = new Set<unknown>()): Set<string> {
  const node = t.gradFn;
  if (node === null || seen.has(node)) return names;
  seen.add(node);
  names.add(node.name);
  for (const input of node.inputs) if (input !== null) opsBehind(input, names, seen);
  return names;
}

describe("fused attention: what the composed path computes, without the weights", () => {
  const padding = fromTypedArray(Uint8Array.from([0, 0, 0, 1, 1, 0, 0, 0, 0, 0]), [2, 5], {
    dtype: "bool",
  });
  const options = { keyPaddingMask: padding, dropoutP: 0.25, training: true, isCausal: true };

  it("scaledDotProductAttention takes it, with the same output, dropout and gradients", () => {
    manualSeed(8);
    const [q, k, v] = [
      [2, 3, 4, 8],
      [2, 3, 5, 8],
      [2, 3, 5, 6],
    ].map((s) => randn(s).requiresGrad_(true)) as [Tensor, Tensor, Tensor];
    expect(canFuse(q, k, v, options)).toBe(true);
    const g = randn([2, 3, 4, 6]);
    const run = (attend: () => Tensor) => {
      manualSeed(3);
      const out = attend();
      out.backward(g);
      const grads = [q, k, v].map((t) => Array.from(t.grad!.dataSync()));
      for (const t of [q, k, v]) t.zeroGrad();
      return { out, grads };
    };
    const fused = run(() => F.scaledDotProductAttention(q, k, v, options));
    const composed = run(() => attentionWithWeights(q, k, v, options)[0]);
    expect(opsBehind(fused.out).has("fusedAttention")).toBe(true);
    expect(opsBehind(composed.out).has("fusedAttention")).toBe(false);
    const tol = { atol: 1e-6, rtol: 1e-5 };
    expectClose(Array.from(fused.out.dataSync()), Array.from(composed.out.dataSync()), tol);
    fused.grads.forEach((grad, i) => expectClose(grad, composed.grads[i]!, tol));
    // Dropout took weights away: without it the output differs.
    const plain = noGrad(() => F.scaledDotProductAttention(q, k, v, { ...options, dropoutP: 0 }));
    const dropped = fused.out.dataSync();
    const change = maxAbs(Array.from(plain.dataSync(), (value, i) => value - dropped[i]!));
    expect(change).toBeGreaterThan(1e-3);
  });

  it("MultiheadAttention without weights gives what it gives with them, in training", () => {
    manualSeed(5);
    const mha = new nn.MultiheadAttention(8, 2, { dropout: 0.3, batchFirst: true });
    const x = randn([2, 5, 8]);
    const forward = (needWeights: boolean) => {
      manualSeed(6);
      return mha.forward(x, x, x, { keyPaddingMask: padding, needWeights });
    };
    const [fast, none] = forward(false);
    const [slow, weights] = forward(true);
    expect(none).toBeNull();
    expect(weights!.shape).toEqual([2, 5, 5]);
    expectClose(Array.from(fast.dataSync()), Array.from(slow.dataSync()), {
      atol: 1e-6,
      rtol: 1e-5,
    });
  });

  it("is not taken where it does not apply: float64, an attnMask, a float padding mask", () => {
    const [q, k, v] = [randn([2, 4, 8]), randn([2, 5, 8]), randn([2, 5, 6])];
    expect(canFuse(q, k, v, {})).toBe(true);
    const [q64, k64, v64] = [q, k, v].map((t) => t.to("float64")) as [Tensor, Tensor, Tensor];
    expect(canFuse(q64, k64, v64, {})).toBe(false);
    expect(canFuse(q, k, v, { attnMask: randn([4, 5]) })).toBe(false);
    expect(canFuse(q, k, v, { keyPaddingMask: randn([2, 5]) })).toBe(false);
    expect(canFuse(q, k, v, { keyPaddingMask: padding.reshape([10]) })).toBe(false);
    expect(canFuse(q, k, v, { dropoutP: 1 })).toBe(false);
  });
});
