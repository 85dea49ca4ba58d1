// Uninitialised allocation and its poison switch (lib/backend/uninit.ts). With poisoning on,
// every buffer allocated with init "none" starts as 0xFF bytes (NaN, -1, 255), so a kernel
// or op that reads an output element it did not write gives a wrong value. This file turns
// it on and runs the conformance suite on cpu and on the CUDA plugin's host emulation, the
// emulation's memory suite and kernel families, and autograd, optimizer and training cases
// whose results must be the same bits as with poisoning off. The plugin is chosen once per
// process, so, as in backend-cuda-emulated.test.ts, DEEPNODE_CUDA_PLUGIN is set first.

import { existsSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { native, packageRoot } from "../lib/backend/native.js";

const emulation = join(packageRoot(), "build", "Release", "deepnode_cuda_emu.so");
const built = existsSync(emulation);
if (built) process.env.DEEPNODE_CUDA_PLUGIN = emulation;

const lib = await import("../lib/index.js");
const { backendFor } = await import("../lib/backend/registry.js");
const { cpuBackend } = await import("../lib/backend/cpu/index.js");
const { BufferPool } = await import("../lib/backend/cpu/pool.js");
const { POISON_BYTE, poisonUninit, setPoisonUninit } = await import("../lib/backend/uninit.js");
const { conformanceSuite } = await import("./conformance.js");
const { expectThrows } = await import("./helpers.js");
const { cudaDeviceSuite } = await import("./cuda-device.js");
const { cudaElementwiseSuite } = await import("./cuda-elementwise.js");
const { cudaReductionsSuite } = await import("./cuda-reductions.js");

const cpuAvailable = lib.buildInfo().native !== null;
const cudaStatus = built
  ? lib.cuda.status()
  : { available: false, reason: `the host emulation was not built (no ${emulation})` };

/** Runs `body` with poisoning set to `on`, restoring the previous setting after. */
function withPoison<T>(on: boolean, body: () => T): T {
  const previous = poisonUninit();
  setPoisonUninit(on);
  try {
    return body();
  } finally {
    setPoisonUninit(previous);
  }
}

const LARGE = 70_000; // elements: >= 64 KiB in every dtype, so the cpu pool keeps it

describe.skipIf(!cpuAvailable)("uninitialised cpu storage", () => {
  it("is poisoned, fresh and reused, when poisoning is on: NaN, -1 and 255", () => {
    withPoison(true, () => {
      const pool = new BufferPool(64);
      for (const size of [5, LARGE]) {
        const fresh = pool.acquire("float32", size, "none");
        expect(fresh.every(Number.isNaN)).toBe(true);
        fresh.fill(3);
        pool.release(fresh);
        const reused = pool.acquire("float32", size, "none");
        expect(reused.every(Number.isNaN), `reused, ${size} elements`).toBe(true);
      }
      expect(Array.from(pool.acquire("float64", 2, "none"))).toEqual([NaN, NaN]);
      expect(Array.from(pool.acquire("int32", 2, "none"))).toEqual([-1, -1]);
      expect(Array.from(pool.acquire("int8", 2, "none"))).toEqual([-1, -1]);
      expect(Array.from(pool.acquire("uint8", 2, "none"))).toEqual([POISON_BYTE, POISON_BYTE]);
    });
  });

  it("is zero-filled with init 'zero' even when poisoning is on", () => {
    withPoison(true, () => {
      const pool = new BufferPool(64);
      const first = pool.acquire("int32", LARGE, "none");
      pool.release(first);
      const zeroed = pool.acquire("int32", LARGE, "zero");
      expect(zeroed.buffer).toBe(first.buffer);
      expect(zeroed.every((v) => v === 0)).toBe(true);
      expect(pool.acquire("float32", 3).every((v) => v === 0)).toBe(true);
    });
  });

  it("keeps a reused buffer's old values when poisoning is off: no pass over it", () => {
    withPoison(false, () => {
      const pool = new BufferPool(64);
      const first = pool.acquire("float32", LARGE, "none");
      first.fill(7);
      pool.release(first);
      const reused = pool.acquire("float32", LARGE, "none");
      expect(reused.buffer).toBe(first.buffer);
      expect(reused.every((v) => v === 7)).toBe(true);
    });
  });

  it("comes from the cpu backend's pool, and empty() asks for it", () => {
    withPoison(true, () => {
      const storage = cpuBackend.alloc("float32", LARGE, "none") as Float32Array;
      expect(storage.every(Number.isNaN)).toBe(true);
      cpuBackend.release(storage);
      expect((cpuBackend.alloc("float32", 4) as Float32Array).every((v) => v === 0)).toBe(true);
      const zeros = lib.zeros([LARGE]);
      const ones = lib.ones([3], { dtype: "int32" });
      expect(zeros.dataSync().every((v) => v === 0)).toBe(true);
      expect(Array.from(ones.dataSync())).toEqual([1, 1, 1]);
      zeros.dispose();
      ones.dispose();
    });
  });
});

describe.skipIf(!cudaStatus.available)("uninitialised storage on the CUDA host emulation", () => {
  it("is poisoned by the plugin when asked, zero-filled otherwise, and fromArray is whole", () => {
    withPoison(true, () => {
      const cuda = backendFor("cuda:0");
      const poisoned = cuda.alloc("float32", 6, "none");
      const ints = cuda.alloc("int32", 2, "none");
      const zeroed = cuda.alloc("uint8", 3);
      const uploaded = cuda.fromArray("float64", [1.5, -2]);
      expect(Array.from(cuda.read({ storage: poisoned, shape: [6], dtype: "float32" }))).toEqual(
        Array(6).fill(NaN),
      );
      expect(Array.from(cuda.read({ storage: ints, shape: [2], dtype: "int32" }))).toEqual([
        -1, -1,
      ]);
      expect(Array.from(cuda.read({ storage: zeroed, shape: [3], dtype: "uint8" }))).toEqual([
        0, 0, 0,
      ]);
      expect(Array.from(cuda.read({ storage: uploaded, shape: [2], dtype: "float64" }))).toEqual([
        1.5, -2,
      ]);
      for (const storage of [poisoned, ints, zeroed, uploaded]) cuda.release?.(storage);
    });
  });

  it("rejects a fill byte outside -1..255 in the addon's bridge, with a code", () => {
    const addon = native();
    for (const fillByte of [256, -2, 0.5]) {
      const error = expectThrows(
        () => addon.cudaAlloc(0, "float32", 4, fillByte),
        Error,
        "cudaAlloc: fillByte must be -1 (uninitialised) or an integer in [0, 255]",
      );
      expect((error as Error & { code: string }).code).toBe("ERR_ARGUMENT");
    }
  });
});

// ---- every suite below runs with poisoning on ------------------------------------------------

setPoisonUninit(true);
// The suites assert each error at the op that meets it (see cuda-checks.ts for the default).
if (cudaStatus.available) lib.cuda.setSyncChecks(true);

conformanceSuite(
  { name: "cpu (poisoned uninitialised storage)", device: "cpu", backend: () => cpuBackend },
  { available: cpuAvailable, reason: "the native addon did not load" },
);

conformanceSuite(
  {
    name: "cuda host emulation (poisoned uninitialised storage)",
    device: "cuda:0",
    backend: () => backendFor("cuda:0"),
  },
  cudaStatus,
);

cudaDeviceSuite("cuda memory on the host emulation, poisoned", cudaStatus.available);
cudaElementwiseSuite("cuda element-wise kernels, poisoned", cudaStatus.available);
cudaReductionsSuite("cuda reduction kernels, poisoned", cudaStatus.available);

// ---- autograd, optimizers and training: the same bits with and without poison ---------------

type Tensor = InstanceType<typeof lib.Tensor>;
const { nn, optim, F } = lib;

/** A convolutional classifier over pooling, batch norm, dropout and a transposed conv. */
function convNet(device: string): { model: InstanceType<typeof nn.Module>; loss: () => Tensor } {
  const model = new nn.Sequential(
    new nn.Conv2d(1, 4, 3, { padding: 1, device }),
    new nn.BatchNorm2d(4, { device }),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.ConvTranspose2d(4, 3, 3, { stride: 2, device }),
    new nn.AvgPool2d(2, { stride: 1, padding: 1 }),
    new nn.AdaptiveAvgPool2d([3, 2]),
    new nn.Dropout(0.25),
    new nn.Flatten(),
    new nn.Linear(18, 5, { device }),
  );
  const x = lib.randn([6, 1, 12, 12], { device });
  const y = lib.tensor([0, 1, 2, 3, 4, 0], { dtype: "int32", device });
  return { model, loss: () => F.crossEntropy(model.forward(x), y) };
}

/**
 * Embedding, a bidirectional two-layer LSTM with dropout and lengths, a GRU, layer norm, a
 * transformer encoder layer, gather and scatterAdd, and a CTC loss.
 */
function sequenceNet(device: string) {
  const embedding = new nn.Embedding(12, 6, { paddingIdx: 0, device });
  const lstm = new nn.LSTM(6, 5, { numLayers: 2, bidirectional: true, dropout: 0.3, device });
  const gru = new nn.GRU(10, 4, { device });
  const norm = new nn.LayerNorm(4, { device });
  const encoder = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 8, dropout: 0.1, device });
  const head = new nn.Linear(4, 5, { device });
  const model = new nn.ModuleList([embedding, lstm, gru, norm, encoder, head]);
  const tokens = lib.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 0, 0, 0, 11, 10, 0], {
    dtype: "int32",
    device,
  });
  const index = lib.tensor([[0], [2], [1]], { dtype: "int32", device });
  const loss = () => {
    const x = embedding.forward(tokens.reshape([7, 3]));
    const [h] = lstm.forward(x, null, { lengths: [7, 5, 6] });
    const [g] = gru.forward(h);
    const z = encoder.forward(norm.forward(g));
    const logProbs = F.logSoftmax(head.forward(z), 2);
    const picked = lib.gather(z.sum(0), 1, index).sum();
    const spread = lib.scatterAdd(
      lib.zeros([3, 4], { device }),
      1,
      index,
      z.mean(0).narrow(1, 0, 1),
    );
    const ctc = F.ctcLoss(logProbs, [[1, 2], [3], [4, 4]], [7, 5, 6], [2, 1, 2]);
    return ctc.add(picked.mul(0.01)).add(spread.pow(2).sum());
  };
  return { model, loss };
}

const OPTIMIZERS = [
  (params: Tensor[]) => new optim.SGD(params, { lr: 0.05, momentum: 0.9, nesterov: true }),
  (params: Tensor[]) => new optim.Adam(params, { lr: 0.01, amsgrad: true, weightDecay: 0.01 }),
  (params: Tensor[]) => new optim.RMSprop(params, { lr: 0.01, centered: true, momentum: 0.5 }),
  (params: Tensor[]) => new optim.Adagrad(params, { lr: 0.1 }),
];

/** Losses, then every gradient and parameter after two steps of each optimizer. */
function trainingNumbers(device: string, poisoned: boolean): number[][] {
  return withPoison(poisoned, () => {
    const numbers: number[][] = [];
    for (const build of [convNet, sequenceNet]) {
      for (const makeOptimizer of OPTIMIZERS) {
        lib.manualSeed(3);
        const { model, loss } = build(device);
        const optimizer = makeOptimizer(model.parameters());
        for (let step = 0; step < 2; step++) {
          lib.scope(() => {
            optimizer.zeroGrad();
            const value = loss();
            value.backward();
            optimizer.step();
            numbers.push([value.item()]);
          });
        }
        for (const p of model.parameters()) {
          numbers.push(Array.from(p.dataSync()), Array.from(p.grad?.dataSync() ?? []));
        }
      }
    }
    return numbers;
  });
}

const smokeDevices = [
  { device: "cpu", available: cpuAvailable },
  { device: "cuda:0", available: cudaStatus.available },
];

describe.each(smokeDevices)(
  "training with poisoned storage on $device",
  ({ device, available }) => {
    it.skipIf(!available)("gives the same losses, gradients and weights as without", () => {
      const plain = trainingNumbers(device, false);
      const poisoned = trainingNumbers(device, true);
      expect(plain.flat().every(Number.isFinite)).toBe(true);
      expect(poisoned).toEqual(plain);
    });
  },
);

// gradcheck perturbs host storage in place, so it runs on cpu only.
describe.skipIf(!cpuAvailable)("autograd with poisoned storage on cpu", () => {
  it("passes gradcheck through the accumulating backward kernels", () => {
    withPoison(true, () => {
      lib.manualSeed(4);
      // Distinct values 0.1 apart: max pooling stays differentiable at gradcheck's float32 eps.
      const values = Array.from({ length: 120 }, (_, i) => ((i * 37) % 120) / 10);
      const x = lib.tensor(values, { device: "cpu" }).reshape([2, 2, 6, 5]).requiresGrad_(true);
      const table = lib.randn([5, 3], { device: "cpu", requiresGrad: true });
      const ids = lib.tensor([4, 0, 4, 2], { dtype: "int32", device: "cpu" });
      const fn = (input: Tensor, weights: Tensor) => {
        const pooled = F.maxPool2d(input, 2, { stride: 1 }).add(
          F.avgPool2d(input, 2, { stride: 1 }),
        );
        const rows = F.embedding(ids, weights);
        return pooled
          .sum()
          .add(
            F.adaptiveAvgPool2d(input, [4, 3])
              .mul(pooled.narrow(3, 0, 3).narrow(2, 0, 4))
              .sum(),
          )
          .add(rows.pow(2).sum());
      };
      expect(lib.gradcheck(fn, [x, table])).toBe(true);
    });
  });
});
