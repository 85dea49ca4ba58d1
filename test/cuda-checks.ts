// The cuda backend's data checks: by default an op does not wait for the device to check an
// index, a target, an integer divisor or a probability; the device records the first bad one
// and the error, naming the op, is thrown at the next wait (a read, cuda.synchronize). Run on
// the host emulation (backend-cuda-emulated.test.ts) and, where there is one, on a GPU
// (backend-cuda.test.ts), whose files turn sync checks on for their other suites; this one
// turns them off.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { backendFor } from "../lib/backend/registry.js";
import * as lib from "../lib/index.js";
import { mnistLosses } from "./cuda-device.js";
import { expectThrows, raw, readRaw } from "./helpers.js";

const device = "cuda:0";
const F = lib.nn.functional;

/**
 * The message of an error the device found for `op`, thrown at a wait by `waiter`, when
 * `later` checks after it failed too.
 */
function lateMessage(waiter: string, op: string, detail: string, later = 0): string {
  const more = later === 0 ? "" : `; ${later} later check${later === 1 ? "" : "s"} failed too`;
  return (
    `${waiter}: the ${op} queued earlier on cuda:0 met bad data: ${detail} (found on the ` +
    `device and reported at this wait${more}; cuda.setSyncChecks(true) reports it at the op)`
  );
}

/** nllLoss of [2, 3] log-probabilities against `targets`, on cuda. */
function nll(targets: number[]): lib.Tensor {
  const logProbs = lib.tensor([-1, -2, -3, -0.5, -1.5, -2.5], { device }).reshape([2, 3]);
  return F.nllLoss(logProbs, lib.tensor(targets, { dtype: "int32", device }));
}

/** gather's complaint about `index`, along a dimension of size 3. */
function badGather(index: number): string {
  return `index ${index} is out of bounds for dimension of size 3 (valid range [0, 3))`;
}

/** Asserts that cuda.synchronize throws the error `op` met on the device. */
function expectLateAtSync(op: string, detail: string, later = 0): void {
  const message = lateMessage("synchronize", op, detail, later);
  expectThrows(() => lib.cuda.synchronize(), lib.IndexError, message);
}

function gatherOf(index: number[]): lib.Tensor {
  const x = lib.tensor([10, 20, 30], { device });
  return x.gather(0, lib.tensor(index, { dtype: "int32", device }));
}

export function cudaChecksSuite(title: string, available: boolean): void {
  describe.skipIf(!available)(title, () => {
    let before = false;
    beforeAll(() => {
      before = lib.cuda.syncChecks();
      lib.cuda.setSyncChecks(false);
    });
    afterAll(() => lib.cuda.setSyncChecks(before));

    it("does not wait at the op: a bad target is thrown at the next read, naming the op", () => {
      lib.scope(() => {
        const loss = nll([0, 3]);
        expectThrows(
          () => loss.item(),
          lib.IndexError,
          lateMessage("read", "nllLoss", "target 3 is out of bounds for 3 classes"),
        );
        // Reported once; the device and later ops go on as before.
        expect(nll([0, 2]).item()).toBeCloseTo(1.75, 6);
        lib.cuda.synchronize();
      });
    });

    it("throws the earliest of several failures at cuda.synchronize, then none", () => {
      lib.scope(() => {
        const table = lib.tensor([1, 2, 3, 4, 5, 6], { device }).reshape([3, 2]);
        F.embedding(lib.tensor([1, 5], { dtype: "int32", device }), table);
        gatherOf([0, 7]);
        nll([9, 0]);
        expectLateAtSync("embedding", "index 5 is out of bounds for 3 embeddings", 2);
        lib.cuda.synchronize();
      });
    });

    it("finds the first bad element of a long check", () => {
      lib.scope(() => {
        const index = Array.from({ length: 9000 }, (_, i) =>
          i === 7000 ? -4 : i === 8500 ? 3 : i % 3,
        );
        gatherOf(index);
        expectLateAtSync("gather", badGather(-4));
      });
    });

    it("rejects data() with the failure", async () => {
      const out = lib.scope(() => lib.keep(gatherOf([0, 3])));
      try {
        await expect(out.data()).rejects.toThrow(lateMessage("read", "gather", badGather(3)));
        await expect(out.data()).resolves.toEqual(new Float32Array([10, 0]));
      } finally {
        out.dispose();
      }
    });

    it("skips a bad index in the op's kernels: that element is 0, the rest are right", () => {
      lib.scope(() => {
        const out = gatherOf([2, 5, 0]);
        expect(() => out.toArray()).toThrow(lib.IndexError);
        expect(out.toArray()).toEqual([30, 0, 10]);
      });
    });

    it("reports a max-pool backward index outside its plane at the next wait", () => {
      const b = backendFor(device);
      const gradX = raw(b, "float32", [1, 2, 2, 2], new Array(8).fill(0));
      const gradOut = raw(b, "float32", [1, 2, 1, 1], [1, 2]);
      const indices = raw(b, "int32", [1, 2, 1, 1], [3, 4]);
      b.maxPool2dBackward(gradX, gradOut, indices);
      expectThrows(
        () => readRaw(b, gradX),
        lib.IndexError,
        new RegExp(
          "^read: the maxPool2dBackward queued earlier on cuda:0 met bad data: " +
            "an index lies outside its h \\* w plane of 4: ",
        ),
      );
      // The good index was added; the bad one skipped.
      expect(readRaw(b, gradX)).toEqual([0, 0, 0, 1, 0, 0, 0, 0]);
      [gradX, gradOut, indices].forEach((t) => b.release?.(t.storage));
    });

    it("reports an integer division by zero at the next wait; that quotient is 0", () => {
      const b = backendFor(device);
      const out = raw(b, "int32", [3]);
      const divisors = raw(b, "int32", [3], [2, 0, -3]);
      b.binary("floordiv", out, raw(b, "int32", [3], [7, 5, 7]), divisors);
      expectThrows(
        () => readRaw(b, out),
        lib.ValueError,
        lateMessage("read", "floordiv", "integer division by zero"),
      );
      expect(readRaw(b, out)).toEqual([3, 0, -3]);
      b.binary("pow", out, raw(b, "int32", [3], [2, 3, 4]), divisors);
      expectThrows(
        () => lib.cuda.synchronize(),
        lib.ValueError,
        lateMessage("synchronize", "pow", "integers to negative integer powers are not allowed"),
      );
      expect(readRaw(b, out)).toEqual([4, 1, 1]);
    });

    it("reports a binaryCrossEntropy input outside [0, 1] at the next read", () => {
      lib.scope(() => {
        const input = lib.tensor([0.25, 0.5, 1.25], { device });
        const loss = F.binaryCrossEntropy(input, lib.tensor([0, 1, 1], { device }));
        expectThrows(
          () => loss.item(),
          lib.ValueError,
          lateMessage(
            "read",
            "binaryCrossEntropy",
            "all elements of input should be between 0 and 1, but element 2 is not",
          ),
        );
      });
    });

    it("reports nothing at an empty read, which does not wait, and all at the next wait", () => {
      lib.scope(() => {
        gatherOf([0, 5]);
        expect(lib.zeros([0], { device }).dataSync()).toHaveLength(0);
        expectLateAtSync("gather", badGather(5));
      });
    });

    it("goes on past thousands of checks in flight, keeping a failure for the next wait", () => {
      // Past 4096 checks in flight the host waits for the device to free their slots; the
      // failure that wait finds is thrown at the next wait, not by the op that waited.
      for (let i = 0; i < 5000; i++) lib.scope(() => void gatherOf([i === 100 ? 4 : i % 3]));
      lib.scope(() => {
        gatherOf([5]);
        expectLateAtSync("gather", badGather(4), 1);
        lib.cuda.synchronize();
      });
    });

    it("trains MNISTNet as the cpu does without waiting at each loss", () => {
      const cpu = mnistLosses("cpu");
      mnistLosses(device).forEach((loss, i) => expect(loss).toBeCloseTo(cpu[i]!, 4));
    });

    it("with sync checks on, throws at the op itself, as the cpu does", () => {
      lib.cuda.setSyncChecks(true);
      try {
        expect(lib.cuda.syncChecks()).toBe(true);
        lib.scope(() => {
          expectThrows(
            () => nll([0, 3]),
            lib.IndexError,
            "nllLoss: target 3 is out of bounds for 3 classes",
          );
        });
      } finally {
        lib.cuda.setSyncChecks(false);
      }
      expect(lib.cuda.syncChecks()).toBe(false);
    });

    it("refuses a switch that is not a boolean", () => {
      expectThrows(
        () => lib.cuda.setSyncChecks(1 as unknown as boolean),
        lib.ValueError,
        "setSyncChecks: on must be true or false, got 1",
      );
    });
  });
}
