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

import { native, packageRoot } from "../lib/backend/native.js";
import { expectClose, expectThrows } from "./helpers.js";

const emulation = join(packageRoot(), "build", "Release", "deepnode_cuda_emu.so");
const built = existsSync(emulation);
if (built) process.env.DEEPNODE_CUDA_PLUGIN = emulation;

const lib = await import("../lib/index.js");
const { backendFor } = await import("../lib/backend/registry.js");
const { probeCudaStatus } = await import("../lib/backend/cuda/plugin.js");
const { conformanceSuite } = await import("./conformance.js");
const { cudaDeviceSuite } = await import("./cuda-device.js");

const status = built
  ? lib.cuda.status()
  : { available: false, reason: `the host emulation was not built (no ${emulation})` };

// The suites assert each error at the op that meets it, as on cpu; cuda-checks.ts tests the
// default, where the device's checks are reported at the next wait.
if (status.available) lib.cuda.setSyncChecks(true);

conformanceSuite(
  { name: "cuda (host emulation)", device: "cuda:0", backend: () => backendFor("cuda:0") },
  status,
);

describe.skipIf(!status.available)("the host emulation", () => {
  it("reports the emulated device as the plugin found it", () => {
    const current = lib.cuda.status();
    expect(current.flavour).toBe("host emulation");
    expect(current.devices.map((d) => d.name)).toEqual(["deepnode host emulation (not a GPU)"]);
    expect(lib.buildInfo().devices).toContain("cuda:0");
  });

  it("names a DEEPNODE_CUDA_PLUGIN that failed when the next plugin file answered", () => {
    const missing = join(packageRoot(), "build", "no-such-plugin.so");
    process.env.DEEPNODE_CUDA_PLUGIN = missing;
    try {
      const probe = probeCudaStatus([missing, emulation]);
      expect([probe.available, probe.plugin, probe.reason]).toEqual([true, emulation, ""]);
      expect(probe.pluginError).toBe(
        `DEEPNODE_CUDA_PLUGIN names ${missing}, which could not be loaded (no such file)`,
      );
      expect(probeCudaStatus([emulation]).pluginError).toBeNull();
    } finally {
      process.env.DEEPNODE_CUDA_PLUGIN = emulation;
    }
  });

  it("falls back to the conv algorithm that needs no workspace when no memory is left", () => {
    // The fake cuDNN's algorithms need 8 MiB, 256 bytes and no workspace. The cache holds
    // one block, of the output's size, and the limit lets nothing more be reserved.
    const x = lib.randn([1, 2, 6, 6], { device: "cuda:0" });
    const weight = lib.randn([3, 2, 3, 3], { device: "cuda:0" });
    const expected = lib.nn.functional.conv2d(x.to("cpu"), weight.to("cpu")).toArray();
    lib.cuda.emptyCache();
    lib.zeros([1, 3, 4, 4], { device: "cuda:0" }).dispose();
    lib.cuda.setMemoryLimit(lib.cuda.memoryStats().reserved);
    try {
      const out = lib.nn.functional.conv2d(x, weight);
      expectClose(out, expected, { atol: 1e-5, rtol: 1e-5 });
    } finally {
      lib.cuda.setMemoryLimit(0);
    }
  });

  it("has a kernel for every kernel of the cpu backend, under the same name", () => {
    const addon = native();
    const kernels = addon.cudaOpen(lib.cuda.status().plugin!).kernels.split(",");
    expect(kernels.sort()).toEqual(addon.kernels().sort());
  });

  it("cudaRun gives each call its own attributes, also when a getter runs the op inside it", () => {
    const addon = native();
    const upload = (values: number[]) => {
      const handle = addon.cudaAlloc(0, "float32", values.length);
      addon.cudaUpload(handle, Float32Array.from(values));
      return handle;
    };
    const [a, b] = [upload([3]), upload([2])];
    const sizes = {
      batch: 1,
      batchA: 1,
      batchB: 1,
      m: 1,
      n: 1,
      k: 1,
      transA: false,
      transB: false,
    };
    // alpha * 3 * 2 + beta * 10 through the plugin's matmul, as a 1x1 product.
    const run = (attrs: Record<string, unknown>) => {
      const out = upload([10]);
      const host = new Float32Array(1);
      try {
        addon.cudaRun(0, "matmul", [out, a, b], attrs);
        addon.cudaDownload(out, host);
      } finally {
        addon.cudaFree(out);
      }
      return host[0]!;
    };
    const product = (attrs: Record<string, unknown>) => run({ ...sizes, ...attrs });
    expect([product({ alpha: 2, beta: 0 }), product({}), product({ beta: 1 })]).toEqual([
      12, 6, 16,
    ]);

    let inner = Number.NaN;
    const attrs: Record<string, unknown> = { ...sizes, beta: 0 };
    Object.defineProperty(attrs, "alpha", {
      enumerable: true,
      get: () => {
        inner = product({ alpha: 5, beta: 0 });
        return 2;
      },
    });
    expect([run(attrs), inner]).toEqual([12, 30]);

    const name = `long${"é".repeat(200)}`;
    const error = expectThrows(
      () => product({ [name]: [1, "2"] }),
      Error,
      `attribute '${name}' must hold numbers`,
    );
    expect((error as Error & { code?: string }).code).toBe("ERR_ARGUMENT");
    [a, b].forEach((handle) => addon.cudaFree(handle));
  });
});

cudaDeviceSuite("cuda memory on the host emulation", status.available);

const { cudaChecksSuite } = await import("./cuda-checks.js");

cudaChecksSuite("cuda data checks on the host emulation", status.available);

// Only where the emulation is missing: a skipped test that says so.
if (!built) {
  describe("cuda host emulation", () => {
    it.skip(`is not built here: ${status.reason}`, () => {});
  });
}

// ---- the element-wise kernel family (native/cuda/kernels/) ----------------------------------

const { cudaElementwiseSuite } = await import("./cuda-elementwise.js");

cudaElementwiseSuite("cuda element-wise kernels on the host emulation", status.available);

// ---- the reduction kernel family (native/cuda/kernels/) -------------------------------------

const { cudaReductionsSuite } = await import("./cuda-reductions.js");

cudaReductionsSuite("cuda reduction kernels on the host emulation", status.available);
