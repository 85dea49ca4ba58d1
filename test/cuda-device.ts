// The cuda backend's memory: values through device memory, the caching allocator's
// figures and cache, out-of-memory handling, and device numbers. Run on the host emulation
// (backend-cuda-emulated.test.ts) and, where there is one, on a GPU (backend-cuda.test.ts).

import { describe, expect, it } from "vitest";

import { MNISTNet } from "../examples/mnist.js";
import { native } from "../lib/backend/native.js";
import { backendFor } from "../lib/backend/registry.js";
import * as lib from "../lib/index.js";
import { sizeOf } from "../lib/shape.js";
import { expectClose, expectThrows, raw } from "./helpers.js";

/** The losses of three Adam steps of MNISTNet on 32 training images, on `device`. */
export function mnistLosses(device: string): number[] {
  const data = lib.data.loadMnist().train;
  const previous = lib.getDefaultDevice();
  lib.setDefaultDevice(device);
  try {
    lib.manualSeed(0);
    const model = new MNISTNet();
    const optimizer = new lib.optim.Adam(model.parameters(), { lr: 1e-3 });
    const x = lib.tensor(data.images.subarray(0, 32 * 784), { device }).reshape([32, 1, 28, 28]);
    const y = lib.tensor(Array.from(data.labels.subarray(0, 32)), { dtype: "int32", device });
    const losses: number[] = [];
    for (let step = 0; step < 3; step++) {
      lib.scope(() => {
        optimizer.zeroGrad();
        const loss = lib.nn.functional.nllLoss(model.forward(x), y);
        loss.backward();
        optimizer.step();
        losses.push(loss.item());
      });
    }
    return losses;
  } finally {
    lib.setDefaultDevice(previous);
  }
}

/** conv2d (padding 1) of seeded x and weight, and the gradients of its sum, on `device`. */
function convResults(device: string, xShape: number[], weightShape: number[]): number[][] {
  return lib.scope(() => {
    lib.manualSeed(7);
    const x = lib.randn(xShape).to(device).requiresGrad_(true);
    const weight = lib.randn(weightShape).to(device).requiresGrad_(true);
    const out = lib.nn.functional.conv2d(x, weight, null, { padding: 1 });
    out.sum().backward();
    return [out, x.grad!, weight.grad!].map((t) => Array.from(t.dataSync()));
  });
}

/**
 * A two-layer bidirectional LSTM over padded lengths on `device`: output, h_n, c_n and the
 * gradients of the input and of every weight.
 */
function lstmResults(device: string): number[][] {
  const previous = lib.getDefaultDevice();
  lib.setDefaultDevice(device);
  try {
    return lib.scope(() => {
      lib.manualSeed(3);
      const lstm = new lib.nn.LSTM(4, 5, { numLayers: 2, bidirectional: true });
      const x = lib.randn([6, 3, 4]).requiresGrad_(true);
      const [out, [hN, cN]] = lstm.forward(x, null, { lengths: [6, 2, 4] });
      out.mul(lib.randn(out.shape)).sum().add(hN.sum()).add(cN.sum()).backward();
      const grads = [x, ...lstm.parameters()].map((t) => t.grad!);
      return [out, hN, cN, ...grads].map((t) => Array.from(t.dataSync()));
    });
  } finally {
    lib.setDefaultDevice(previous);
  }
}

/** Asserts that cuda's conv2d results match the cpu's within `atol`. */
function expectConvLikeCpu(xShape: number[], weightShape: number[], atol: number): void {
  const expected = convResults("cpu", xShape, weightShape);
  const actual = convResults("cuda:0", xShape, weightShape);
  ["out", "gradX", "gradWeight"].forEach((label, i) => {
    expectClose(actual[i]!, expected[i]!, { atol, rtol: atol }, label);
  });
}

type Waits = ReturnType<typeof lib.cuda.hostWaits>;

/** What waited for cuda:0 while `body` ran: each count's increase, and the ops that waited. */
function waitsDuring(body: () => void): Omit<Waits, "opsLeftOut"> {
  const before = lib.cuda.hostWaits();
  body();
  const after = lib.cuda.hostWaits();
  const ops: Record<string, number> = {};
  for (const [op, count] of Object.entries(after.ops)) {
    const more = count - (before.ops[op] ?? 0);
    if (more > 0) ops[op] = more;
  }
  const keys = ["reads", "synchronizes", "uploads", "allocations", "other", "total"] as const;
  return { ...Object.fromEntries(keys.map((k) => [k, after[k] - before[k]])), ops } as Omit<
    Waits,
    "opsLeftOut"
  >;
}

const noWaits = {
  reads: 0,
  synchronizes: 0,
  uploads: 0,
  allocations: 0,
  other: 0,
  total: 0,
  ops: {},
};

/**
 * Two training steps of small models of each kind (conv, recurrent, attention), on cuda:0
 * with the default deferred checks: each step's batch is uploaded, nothing is read back.
 */
function trainingSteps(): void {
  const previousDevice = lib.getDefaultDevice();
  const previousChecks = lib.cuda.syncChecks();
  lib.setDefaultDevice("cuda:0");
  lib.cuda.setSyncChecks(false);
  try {
    lib.manualSeed(5);
    const { nn, optim } = lib;
    const F = nn.functional;
    const mnist = new MNISTNet();
    const embedding = new nn.Embedding(20, 6);
    const lstm = new nn.LSTM(6, 5, { bidirectional: true });
    const head = new nn.Linear(10, 3);
    const encoder = new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0.1 });
    const norm = new nn.BatchNorm2d(2);
    const optimizers = [
      new optim.Adam(mnist.parameters()),
      new optim.AdamW([...embedding.parameters(), ...lstm.parameters(), ...head.parameters()]),
      new optim.SGD([...encoder.parameters(), ...norm.parameters()], { lr: 0.1, momentum: 0.9 }),
    ];
    const images = lib.data.loadMnist().train.images;
    for (let step = 0; step < 2; step++) {
      lib.scope(() => {
        for (const o of optimizers) o.zeroGrad();
        const x = lib.tensor(images.subarray(0, 8 * 784)).reshape([8, 1, 28, 28]);
        const labels = lib.tensor([3, 1, 4, 1, 5, 9, 2, 6], { dtype: "int32" });
        F.nllLoss(mnist.forward(x), labels).backward();

        const tokens = lib.tensor(
          [
            [1, 2, 3],
            [4, 5, 0],
            [6, 0, 0],
            [7, 8, 0],
          ],
          { dtype: "int32" },
        );
        const [out] = lstm.forward(embedding.forward(tokens.transpose(0, 1)), null, {
          lengths: [3, 2, 1, 2],
        });
        const logits = head.forward(out.mean(0));
        const classes = lib.tensor([0, 2, 1, 2], { dtype: "int32" });
        F.crossEntropy(logits, classes, { labelSmoothing: 0.1 }).backward();
        optim.clipGradNormTensor([...lstm.parameters(), ...head.parameters()], 1);

        const src = lib.randn([3, 2, 8]);
        const padding = lib.tensor(
          [
            [false, false, true],
            [false, false, false],
          ],
          {
            dtype: "bool",
          },
        );
        encoder.forward(src, { srcKeyPaddingMask: padding }).square().mean().backward();
        const probabilities = norm.forward(lib.randn([2, 2, 3, 3])).sigmoid();
        const labels01 = lib.randn([2, 2, 3, 3]).gt(0).to("float32");
        F.binaryCrossEntropy(probabilities, labels01).backward();
        for (const o of optimizers) o.step();
      });
    }
  } finally {
    lib.cuda.setSyncChecks(previousChecks);
    lib.setDefaultDevice(previousDevice);
  }
}

/**
 * The kernels one call of `step` runs on cuda, by name (the plugin's run calls), after a
 * first call that warms the caches. On a GPU each is one launch or a few (a cuDNN call, or
 * norms' one or two per 24 tensors), and a small model's step costs about its launches, so these
 * counts guard the step's speed.
 */
function kernelsOfStep(step: () => void): Record<string, number> {
  const binding = native();
  const run = binding.cudaRun;
  lib.scope(step);
  const counts: Record<string, number> = {};
  binding.cudaRun = (...args: Parameters<typeof run>) => {
    counts[args[1]] = (counts[args[1]] ?? 0) + 1;
    return run.apply(binding, args);
  };
  try {
    lib.scope(step);
  } finally {
    binding.cudaRun = run;
  }
  return counts;
}

/** kernelsOfStep's total. */
function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

/**
 * A training step of each kind on cuda:0, built once: MNISTNet, an LSTM classifier, a
 * transformer layer.
 */
function stepsOnCuda(): Record<string, () => void> {
  const { nn, optim } = lib;
  const F = nn.functional;
  const device = "cuda:0";
  lib.manualSeed(9);
  const previous = lib.getDefaultDevice();
  lib.setDefaultDevice(device);
  const mnist = new MNISTNet(); // its layers take the default device
  lib.setDefaultDevice(previous);
  const adam = new optim.Adam(mnist.parameters());
  const images = lib.data.loadMnist().train.images;
  const emb = new nn.Embedding(50, 16, { device });
  const lstm = new nn.LSTM(16, 32, { batchFirst: true, device });
  const head = new nn.Linear(32, 2, { device });
  const lstmParams = [...emb.parameters(), ...lstm.parameters(), ...head.parameters()];
  const adamW = new optim.AdamW(lstmParams);
  const encoder = new nn.TransformerEncoderLayer(16, 4, {
    dimFeedforward: 32,
    batchFirst: true,
    device,
  });
  const sgd = new optim.SGD(encoder.parameters(), { lr: 0.1 });
  const labels = (values: number[]) => lib.tensor(values, { dtype: "int32", device });
  return {
    mnist: () => {
      adam.zeroGrad();
      const x = lib.tensor(images.subarray(0, 4 * 784), { device }).reshape([4, 1, 28, 28]);
      F.nllLoss(mnist.forward(x), labels([1, 2, 3, 4])).backward();
      adam.step();
    },
    lstm: () => {
      adamW.zeroGrad();
      const ids = labels([1, 2, 3, 4, 5, 6, 7, 8]).reshape([2, 4]);
      const [, [hN]] = lstm.forward(emb.forward(ids), null, { lengths: [4, 2] });
      F.crossEntropy(head.forward(hN.squeeze(0)), labels([0, 1])).backward();
      optim.clipGradNormTensor(lstmParams, 1);
      adamW.step();
    },
    transformer: () => {
      sgd.zeroGrad();
      encoder
        .forward(lib.randn([2, 5, 16], { device }))
        .square()
        .mean()
        .backward();
      sgd.step();
    },
  };
}

export function cudaDeviceSuite(title: string, available: boolean): void {
  describe.skipIf(!available)(title, () => {
    it("round-trips values through device memory, synchronously and asynchronously", async () => {
      const t = lib.tensor(
        [
          [1.5, -2],
          [3, 4.25],
        ],
        { device: "cuda:0" },
      );
      expect(t.device).toBe("cuda:0");
      expect(Array.from(t.dataSync())).toEqual([1.5, -2, 3, 4.25]);
      expect(Array.from(await t.data())).toEqual([1.5, -2, 3, 4.25]);
      const back = t.to("cpu");
      expect(back.toArray()).toEqual([
        [1.5, -2],
        [3, 4.25],
      ]);
      t.dispose();
      back.dispose();
    });

    it("uploads a typed array of its own dtype as it is, then owes it nothing", () => {
      const values = Float32Array.from([1, 2, 3]);
      const bytes = Uint8Array.from([0, 2, 255]);
      const t = lib.fromTypedArray(values, [3], { device: "cuda:0" });
      const flags = lib.fromTypedArray(bytes, [3], { device: "cuda:0", dtype: "bool" });
      values[0] = 99; // the caller may reuse the array at once
      expect(Array.from(t.dataSync())).toEqual([1, 2, 3]);
      expect(Array.from(flags.dataSync())).toEqual([0, 1, 1]);
      [t, flags].forEach((x) => x.dispose());
    });

    it("reads the values at the data() call, even if the tensor is freed meanwhile", async () => {
      const t = lib.tensor([1, 2, 3], { device: "cuda:0" });
      const pending = t.data();
      t.dispose();
      const reuse = lib.full([3], 7, { device: "cuda:0" }); // may take t's block from the cache
      expect(Array.from(await pending)).toEqual([1, 2, 3]);
      expect(Array.from(reuse.dataSync())).toEqual([7, 7, 7]);
      reuse.dispose();
    });

    it("counts live buffers and reuses freed blocks from its cache", () => {
      const before = lib.cuda.memoryStats();
      const a = lib.zeros([1000], { device: "cuda:0" });
      const during = lib.cuda.memoryStats();
      expect(during.liveBuffers).toBe(before.liveBuffers + 1);
      expect(during.allocated).toBe(before.allocated + 4096); // 4000 bytes in 512-byte blocks
      expect(during.peakAllocated).toBeGreaterThanOrEqual(during.allocated);
      a.dispose();
      const after = lib.cuda.memoryStats();
      expect(after.liveBuffers).toBe(before.liveBuffers);
      expect(after.allocated).toBe(before.allocated);
      expect(after.reserved).toBe(during.reserved); // kept in the cache
      const b = lib.zeros([1000], { device: "cuda:0" });
      expect(lib.cuda.memoryStats().cacheHits).toBe(after.cacheHits + 1);
      b.dispose();
      lib.cuda.emptyCache();
      expect(lib.cuda.memoryStats().reserved).toBe(lib.cuda.memoryStats().allocated);
    });

    it("empties its cache and retries before failing with OutOfMemoryError", () => {
      lib.cuda.emptyCache();
      const base = lib.cuda.memoryStats();
      lib.cuda.setMemoryLimit(base.reserved + 8 * 2 ** 20);
      try {
        const cached = lib.zeros([1024 * 1024], { device: "cuda:0" }); // 4 MiB
        cached.dispose(); // stays reserved in the cache
        // 6 MiB: fits only once the cache is emptied.
        const big = lib.zeros([1536 * 1024], { device: "cuda:0" });
        expect(lib.cuda.memoryStats().oomRetries).toBe(base.oomRetries + 1);
        expectThrows(
          () => lib.zeros([1024 * 1024], { device: "cuda:0" }),
          lib.OutOfMemoryError,
          new RegExp(
            "^alloc: cuda:0: out of memory allocating 4\\.0 MiB \\(a block of 4\\.0 MiB\\); " +
              "allocated [\\d.]+ MiB, reserved [\\d.]+ MiB after emptying the cache; the device " +
              "has [\\d.]+ MiB free of [\\d.]+ MiB, and the memory limit is [\\d.]+ MiB$",
          ),
        );
        big.dispose();
        const after = lib.zeros([1024 * 1024], { device: "cuda:0" }); // works again
        expect(after.shape).toEqual([1024 * 1024]);
        after.dispose();
      } finally {
        lib.cuda.setMemoryLimit(0);
      }
    });

    it("runs a conv whose first algorithm's workspace does not fit, with a smaller one", () => {
      lib.cuda.emptyCache();
      lib.cuda.setMemoryLimit(lib.cuda.memoryStats().reserved + 2 ** 20);
      try {
        expectConvLikeCpu([2, 3, 9, 7], [5, 3, 3, 3], 1e-4);
      } finally {
        lib.cuda.setMemoryLimit(0);
      }
    });

    it("runs each conv algorithm with the math type cuDNN chose it for, TF32 allowed", () => {
      lib.cuda.setAllowTf32(true);
      try {
        expectConvLikeCpu([2, 4, 6, 5], [3, 4, 3, 3], 3e-2); // TF32 keeps 10 mantissa bits
      } finally {
        lib.cuda.setAllowTf32(false);
      }
    });

    it("trains MNISTNet as the cpu does: the same losses over three Adam steps", () => {
      const cpu = mnistLosses("cpu");
      const cuda = mnistLosses("cuda:0");
      expect(cpu[2]!).toBeLessThan(cpu[0]!);
      cuda.forEach((loss, i) => expect(loss).toBeCloseTo(cpu[i]!, 4));
    });

    it("runs a bidirectional LSTM over padded lengths as the cpu does", () => {
      const expected = lstmResults("cpu");
      lstmResults("cuda:0").forEach((values, i) => {
        expectClose(values, expected[i]!, { atol: 1e-5, rtol: 1e-4 }, `result ${i}`);
      });
    });

    it("clips as the cpu does: the factor on the device, in float32, without a read", () => {
      const clipped = (device: string, values: number[], maxNorm: number) =>
        lib.scope(() => {
          const ps = [values.slice(0, 2), values.slice(2)].map((v) => {
            const p = lib.zeros([v.length], { device, requiresGrad: true });
            p.grad = lib.tensor(v, { device });
            return p;
          });
          const norm = lib.optim.clipGradNormTensor(ps, maxNorm).item();
          return [norm, ...ps.flatMap((p) => Array.from(p.grad!.dataSync()))];
        });
      for (const [values, maxNorm] of [
        [[3, 4, 12], 6.5],
        [[3, 4, 12], 100],
        [[3, NaN, 12], 1],
        [[0.1, -0.2, 1e-3], 1e-3],
      ] as const) {
        const got = clipped("cuda:0", [...values], maxNorm);
        expect(got).toEqual(clipped("cpu", [...values], maxNorm));
      }
    });

    it("takes the lengths' values from the caller where it gives them", () => {
      // The tensor holds good lengths; the values given beside it do not, and are the ones read.
      const b = backendFor("cuda:0");
      const zeros = (shape: number[]) => raw(b, "float32", shape, new Array(sizeOf(shape)).fill(0));
      const state = [1, 3, 2];
      const args = {
        output: zeros([5, 3, 2]),
        hN: zeros(state),
        cN: zeros(state),
        workspace: zeros([5, 3, 12]),
        xProj: zeros([5, 3, 8]),
        wHh: zeros([8, 2]),
        bHh: null,
        h0: zeros(state),
        c0: zeros(state),
        lengths: raw(b, "int32", [3], [1, 2, 3]),
      };
      const params = { mode: "lstm" as const, reverse: false, column: 0, slot: 0 };
      b.rnnForward(args, params);
      expectThrows(
        () => b.rnnForward(args, { ...params, lengthValues: [1, 9, 2] }),
        lib.IndexError,
        "rnnForward: length 9 is outside [0, 5]",
      );
      for (const t of Object.values(args)) if (t !== null) b.release?.(t.storage);
    });

    it("counts each time the host waits for the device, by what waited", async () => {
      const small = lib.randn([4]).to("cuda:0");
      expect(waitsDuring(() => small.add(1).dispose())).toEqual(noWaits);
      expect(waitsDuring(() => small.sum().item())).toEqual({ ...noWaits, reads: 1, total: 1 });
      const before = lib.cuda.hostWaits();
      await small.data();
      expect(lib.cuda.hostWaits().reads).toBe(before.reads + 1);
      expect(waitsDuring(() => lib.cuda.synchronize())).toEqual({
        ...noWaits,
        synchronizes: 1,
        total: 1,
      });
      // Past 16 MiB an upload is not staged: it waits before the caller may reuse its source.
      const large = new Float32Array(4 * 2 ** 20 + 1);
      expect(
        waitsDuring(() => lib.fromTypedArray(large, [large.length]).to("cuda:0").dispose()),
      ).toEqual({ ...noWaits, uploads: 1, total: 1 });
      // An integer power's exponents are checked on the device; with sync checks on, the op
      // waits for the answer.
      const a = lib.tensor([7, 9], { dtype: "int32", device: "cuda:0" });
      const b = lib.tensor([2, 1], { dtype: "int32", device: "cuda:0" });
      const previous = lib.cuda.syncChecks();
      try {
        lib.cuda.setSyncChecks(true);
        expect(waitsDuring(() => a.pow(b).dispose())).toEqual({
          ...noWaits,
          ops: { binary: 1 },
          total: 1,
        });
        lib.cuda.setSyncChecks(false);
        expect(waitsDuring(() => a.pow(b).dispose())).toEqual(noWaits);
      } finally {
        lib.cuda.setSyncChecks(previous);
      }
      [small, a, b].forEach((t) => t.dispose());
    });

    it.each(["hostWaits", "kernelLaunches"] as const)(
      "refuses a device number that is not one for %s",
      (name) => {
        expectThrows(
          () => lib.cuda[name](-1),
          lib.ValueError,
          `${name}: device must be a non-negative integer, got -1`,
        );
      },
    );

    it("trains conv, recurrent and attention models without waiting for the device", () => {
      trainingSteps(); // the first steps pick conv algorithms and fill the caches
      expect(waitsDuring(trainingSteps)).toEqual(noWaits);
    });

    it("trains with the Trainer given device 'cuda', the short name of cuda:0", async () => {
      lib.manualSeed(2);
      const inputs = lib.randn([16, 3]);
      const labels = inputs.sum(1).gt(0).to("int32");
      const trainData = new lib.data.TensorDataset(inputs, labels);
      const trainer = new lib.train.Trainer({
        model: () => new lib.nn.Linear(3, 2),
        trainData,
        epochs: 2,
        batchSize: 4,
        optimizer: (params) => new lib.optim.SGD(params, { lr: 0.1 }),
        lossFn: (outputs, targets) => lib.nn.functional.crossEntropy(outputs, targets),
        progress: false,
        device: "cuda",
      });
      expect(trainer.device).toBe("cuda:0");
      const { history } = await trainer.fit();
      expect(trainer.model.parameters().map((p) => p.device)).toEqual(["cuda:0", "cuda:0"]);
      expect(history[1]!.train.loss!).toBeLessThan(history[0]!.train.loss!);
    });

    it("runs the kernels a training step was measured at: no gradient copies, one clip", () => {
      const previous = lib.cuda.syncChecks();
      lib.cuda.setSyncChecks(false);
      try {
        // The counts of 2026-12-04; a change to a step's kernels updates them and says why.
        // transformer: 62 before split's backward became one pass (the packed heads' split
        // added three zeroed gradients of [3, N, H, L, d] with two binary adds).
        // lstm: 36 before the scaling kernel took clipping's factor from the norm itself (it
        // was ten element-wise calls). transformer: 60 before a number operand of add, sub
        // and mul became one affine call instead of a fill and the binary op.
        const expected = { mnist: 35, lstm: 26, transformer: 59 };
        for (const [name, step] of Object.entries(stepsOnCuda())) {
          const counts = kernelsOfStep(step);
          const label = `${name}: ${JSON.stringify(counts)}`;
          expect(total(counts), label).toBe(expected[name as keyof typeof expected]);
          if (name === "mnist") expect(counts.cast ?? 0, label).toBe(0);
          if (name === "lstm") {
            // Clipping: the norms of the gradients and of those norms, and one scaling.
            expect([counts.norms, counts.scale_in_place], label).toEqual([2, 1]);
          }
        }
      } finally {
        lib.cuda.setSyncChecks(previous);
      }
    });

    it("moves a model to the device with Module.to, and back", () => {
      lib.manualSeed(3);
      const model = new MNISTNet().eval();
      const x = lib.randn([2, 1, 28, 28]);
      const expected = lib.scope(() => Array.from(model.forward(x).dataSync()));
      const weight = model.parameters()[0]!;
      model.to("cuda");
      expect(model.parameters()[0]).toBe(weight);
      expect(new Set(model.parameters().map((p) => p.device))).toEqual(new Set(["cuda:0"]));
      const got = lib.scope(() => Array.from(model.forward(x.to("cuda")).dataSync()));
      expectClose(got, expected, { atol: 1e-5, rtol: 1e-4 }, "MNISTNet on cuda after to()");
      model.to("cpu");
      expect(weight.device).toBe("cpu");
      x.dispose();
    });

    it("runs batch norm in one call, its running statistics and batch count in one more", () => {
      const bn = new lib.nn.BatchNorm2d(8, { device: "cuda:0" });
      const x = lib.randn([4, 8, 5, 5], { device: "cuda:0" });
      const forward = () => void lib.noGrad(() => bn.forward(x));
      // Training was 18 calls: the running statistics took eight element-wise ops, the
      // counter three; eval was 3 (two copies of the running statistics).
      expect(kernelsOfStep(forward)).toEqual({ unary: 1, batch_norm: 1 });
      bn.eval();
      expect(kernelsOfStep(forward)).toEqual({ batch_norm: 1 });
      expect(bn.num_batches_tracked!.item()).toBe(2);
      x.dispose();
    });

    it("takes norms in a reduction and a merge per 24 tensors, no merge for small ones", () => {
      const device = "cuda:0";
      const b = backendFor(device);
      lib.manualSeed(5);
      // Empty tensors, and 30 of several chunks of 1,024 (a launch each before, two above 2,048).
      const sizes = Array.from({ length: 60 }, (_, k) => (k % 13 === 5 ? 0 : (k * 2657) % 5001));
      const small = Array.from({ length: 30 }, (_, k) => k * 35); // one chunk each: no merge
      const launchesOf = (shapes: number[]) => {
        const xs = shapes.map((size) => lib.randn([size], { device }));
        const out = lib.zeros([xs.length], { device });
        const before = lib.cuda.kernelLaunches();
        b.norms(out, xs, 2);
        const launches = lib.cuda.kernelLaunches() - before;
        const expected = xs.map((x) => Math.hypot(...x.dataSync()));
        expectClose(out, expected, { atol: 0, rtol: 1e-6 });
        [out, ...xs].forEach((t) => t.dispose());
        return launches;
      };
      const counts = [1, 24, 25, 60].map((count) => launchesOf(sizes.slice(0, count)));
      expect([...counts, launchesOf(small)]).toEqual([1, 2, 4, 6, 2]);
    });

    it("checks skipNonFinite's gradients in one norms call and one read", () => {
      const device = "cuda:0";
      lib.manualSeed(4);
      const params = new lib.nn.LSTM(4, 8, { numLayers: 2, device }).parameters();
      for (const p of params) p.grad = lib.randn(p.shape, { device });
      const optimizer = new lib.optim.SGD(params, { lr: 0.1 });
      optimizer.skipNonFinite = true;
      expect(params.length).toBe(8);
      const taken = () => {
        expect(optimizer.step()).toBe(true);
      };
      expect(kernelsOfStep(taken)).toEqual({
        norms: 1,
        sgd_steps: 1,
      });
      expect(waitsDuring(() => optimizer.step())).toEqual({ ...noWaits, reads: 1, total: 1 });

      params[5]!.grad = lib.full(params[5]!.shape, NaN, { device });
      const refused = () => {
        expect(optimizer.step()).toBe(false);
      };
      expect(kernelsOfStep(refused)).toEqual({ norms: 1 });
      params.forEach((p) => p.zeroGrad());
    });

    it("refuses a device the machine does not have", () => {
      const count = lib.cuda.deviceCount();
      expectThrows(
        () => lib.zeros([2], { device: `cuda:${count}` }),
        lib.DeviceError,
        `device: cuda:${count} does not exist: this machine has ${count} CUDA device(s) ` +
          `(cuda:0 to cuda:${count - 1})`,
      );
    });
  });
}
