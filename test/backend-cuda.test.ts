// The cuda backend on a real GPU: where one is present (the GPU check), the conformance suite
// (test/conformance.ts) and the device suites run on it; elsewhere they show as skipped with
// the reason, and asking for a cuda tensor must fail with a DeviceError that says why. The
// plugin that finds the driver, GPUs and libraries is tested for real: it is built wherever
// nvcc is, and fake NVIDIA libraries made here check its search order. Without a GPU the
// same suites run on the plugin's host emulation (backend-cuda-emulated.test.ts).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { libraryDirs, pluginCandidates, probeCudaStatus } from "../lib/backend/cuda/plugin.js";
import { backendFor } from "../lib/backend/registry.js";
import { DeviceError, buildInfo, cuda, zeros } from "../lib/index.js";
import { conformanceSuite } from "./conformance.js";
import { cudaChecksSuite } from "./cuda-checks.js";
import { cudaDeviceSuite } from "./cuda-device.js";
import { cudaElementwiseSuite } from "./cuda-elementwise.js";
import { cudaReductionsSuite } from "./cuda-reductions.js";
import { expectThrows } from "./helpers.js";

const status = cuda.status();
const pluginBuilt = status.plugin !== null;

describe(`cuda backend (conformance suite skipped: ${status.reason})`, () => {
  it.runIf(!status.available)(`is reported unavailable, with the reason: ${status.reason}`, () => {
    expect(cuda.isAvailable()).toBe(false);
    expect(buildInfo().cuda).toEqual(status);
    expect(buildInfo().devices).toEqual(["cpu", "reference"]);
    for (const device of ["cuda", "cuda:0", "cuda:3"]) {
      const name = device === "cuda" ? "cuda:0" : device;
      expectThrows(
        () => zeros([2], { device }),
        DeviceError,
        `device: ${name} is not available: ${status.reason}; use device "cpu"`,
      );
    }
    const calls = {
      memoryStats: () => cuda.memoryStats(),
      hostWaits: () => cuda.hostWaits(),
      kernelLaunches: () => cuda.kernelLaunches(),
      emptyCache: () => cuda.emptyCache(),
      synchronize: () => cuda.synchronize(),
    };
    for (const [name, call] of Object.entries(calls)) {
      expectThrows(call, DeviceError, `${name}: cuda is not available: ${status.reason}`);
    }
  });
});

describe("the CUDA plugin", () => {
  const scratch = mkdtempSync(join(tmpdir(), "deepnode-cuda-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it.runIf(pluginBuilt)("loads and names the driver it lacks on a machine without a GPU", () => {
    expect(status.plugin).toMatch(/deepnode_cuda\.so$/);
    expect(status.runtimeVersion).toMatch(/^\d+\.\d+$/);
    expect(status.libraries.map((library) => library.name)).toEqual([
      "cublasLt",
      "cublas",
      "cudnn",
    ]);
    if (status.driverVersion === null) {
      expect(status.reason).toMatch(
        /^the CUDA plugin found no usable GPU: no NVIDIA driver: libcuda\.so\.1: .+; install the NVIDIA driver/,
      );
      expect(status.devices).toEqual([]);
    }
  });

  it("says which plugin files it tried and why each failed", () => {
    const notAPlugin = join(scratch, "deepnode_cuda.so");
    writeFileSync(notAPlugin, "not a shared library");
    const missing = join(scratch, "missing", "deepnode_cuda.so");
    const probe = probeCudaStatus([missing, notAPlugin]);
    expect(probe.available).toBe(false);
    expect(probe.plugin).toBeNull();
    expect(probe.reason).toContain("this build of deepnode has no usable CUDA plugin");
    expect(probe.reason).toContain(`${missing}: no such file; ${notAPlugin}: `);
    expect(probe.reason).toMatch(/invalid ELF header|file too short/);
  });

  it("searches DEEPNODE_CUDA_LIBRARY_PATH first, then the plugin's folder", () => {
    const saved = process.env.DEEPNODE_CUDA_LIBRARY_PATH;
    process.env.DEEPNODE_CUDA_LIBRARY_PATH = ["/first", "/second"].join(":");
    try {
      const dirs = libraryDirs("/opt/deepnode/deepnode_cuda.so");
      expect(dirs.slice(0, 3)).toEqual(["/first", "/second", "/opt/deepnode"]);
    } finally {
      if (saved === undefined) delete process.env.DEEPNODE_CUDA_LIBRARY_PATH;
      else process.env.DEEPNODE_CUDA_LIBRARY_PATH = saved;
    }
    expect(pluginCandidates().at(-1)).toMatch(/build[/\\]Release[/\\]deepnode_cuda\.so$/);
  });

  /** Builds a shared library at `path` whose loading sets the environment variable `flag`. */
  function flagLibrary(path: string, flag: string): void {
    const source = `${path}.c`;
    writeFileSync(
      source,
      "#include <stdlib.h>\n" +
        `__attribute__((constructor)) static void opened(void) { setenv("${flag}", "1", 1); }\n`,
    );
    execFileSync("cc", ["-shared", "-fPIC", "-o", path, source]);
  }

  // A stand-in for libcudnn.so.9 exporting cudnnGetProperty, which reports 9.7.1, beside a
  // stand-in for one of cuDNN 9's parts and a file that is not one.
  it.runIf(pluginBuilt)(
    "opens a library found on DEEPNODE_CUDA_LIBRARY_PATH and reads its version",
    () => {
      flagLibrary(join(scratch, "libcudnn_graph.so.9"), "DEEPNODE_TEST_CUDNN_PART");
      flagLibrary(join(scratch, "libcudnn_graph.so.8"), "DEEPNODE_TEST_CUDNN_OTHER");
      const source = join(scratch, "fake_cudnn.c");
      writeFileSync(
        source,
        "int cudnnGetProperty(int type, int* value) {\n" +
          "  static const int parts[3] = {9, 7, 1};\n" +
          "  if (type < 0 || type > 2) return 3;\n" +
          "  *value = parts[type];\n" +
          "  return 0;\n" +
          "}\n",
      );
      const library = join(scratch, "libcudnn.so.9");
      execFileSync("cc", ["-shared", "-fPIC", "-o", library, source]);
      const saved = process.env.DEEPNODE_CUDA_LIBRARY_PATH;
      process.env.DEEPNODE_CUDA_LIBRARY_PATH = scratch;
      try {
        const probe = probeCudaStatus([status.plugin!]);
        const cudnn = probe.libraries.find((entry) => entry.name === "cudnn");
        expect(cudnn).toEqual({ name: "cudnn", path: library, version: "9.7.1", error: null });
        expect(probe.libraryDirs[0]).toBe(scratch);
        // cuDNN's parts in its folder were opened with it (cuDNN opens them by name later).
        expect(process.env.DEEPNODE_TEST_CUDNN_PART).toBe("1");
        expect(process.env.DEEPNODE_TEST_CUDNN_OTHER).toBeUndefined();
      } finally {
        if (saved === undefined) delete process.env.DEEPNODE_CUDA_LIBRARY_PATH;
        else process.env.DEEPNODE_CUDA_LIBRARY_PATH = saved;
      }
    },
  );
});

// The suites assert each error at the op that meets it, as on cpu; cuda-checks.ts tests the
// default, where the device's checks are reported at the next wait.
if (status.available) cuda.setSyncChecks(true);

conformanceSuite({ name: "cuda", device: "cuda:0", backend: () => backendFor("cuda:0") }, status);

// Without a GPU each suite's title says why it is skipped.
const onGpu = (title: string) =>
  status.available ? title : `${title} (skipped: ${status.reason})`;

cudaDeviceSuite(onGpu("cuda memory on the GPU"), status.available);

cudaChecksSuite(onGpu("cuda data checks on the GPU"), status.available);

cudaElementwiseSuite(onGpu("cuda element-wise kernels on the GPU"), status.available);

cudaReductionsSuite(onGpu("cuda reduction kernels on the GPU"), status.available);
