// The cuda backend on the CUDA plugin's host emulation (deepnode_cuda_emu.so: the plugin's
// kernel sources compiled by the C++ compiler, running each kernel as a loop over host
// memory). Where no GPU is present this is how the cuda backend's JavaScript, the addon's
// bridge, the plugin's C interface, the caching allocator and every kernel's indexing are
// checked against the reference backend. The plugin is chosen once per process, so this
// is its own file: it points DEEPNODE_CUDA_PLUGIN at the emulation before anything asks
// for cuda. On a machine with a GPU, test/backend-cuda.test.ts runs the same suite on it.

import { existsSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { packageRoot } from "../lib/backend/native.js";

const emulation = join(packageRoot(), "build", "Release", "deepnode_cuda_emu.so");
const built = existsSync(emulation);
if (built) process.env.DEEPNODE_CUDA_PLUGIN = emulation;

const lib = await import("../lib/index.js");
const { backendFor } = await import("../lib/backend/registry.js");
const { conformanceSuite } = await import("./conformance.js");
const { expectThrows } = await import("./helpers.js");

const status = built
  ? lib.cuda.status()
  : { available: false, reason: `the host emulation was not built (no ${emulation})` };

conformanceSuite(
  { name: "cuda (host emulation)", device: "cuda:0", backend: () => backendFor("cuda:0") },
  status,
);

describe.skipIf(!status.available)("cuda memory on the host emulation", () => {
  it("reports the emulated device as the plugin found it", () => {
    const current = lib.cuda.status();
    expect(current.flavour).toBe("host emulation");
    expect(current.devices.map((d) => d.name)).toEqual(["deepnode host emulation (not a GPU)"]);
    expect(lib.buildInfo().devices).toContain("cuda:0");
  });

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
      const big = lib.zeros([1536 * 1024], { device: "cuda:0" }); // 6 MiB: needs the cache emptied
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

  it("refuses a device the machine does not have", () => {
    expectThrows(
      () => lib.zeros([2], { device: "cuda:1" }),
      lib.DeviceError,
      "device: cuda:1 does not exist: this machine has 1 CUDA device(s) (cuda:0 to cuda:0)",
    );
  });
});

describe.runIf(!built)("cuda host emulation", () => {
  it.skip(`is not built here: ${status.reason}`, () => {});
});
