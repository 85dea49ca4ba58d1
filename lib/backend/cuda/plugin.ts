// Finds the CUDA plugin (deepnode_cuda.so, built beside the addon where nvcc was found)
// and asks it what this machine has: the driver, the GPUs, cuBLAS, cuBLASLt and cuDNN.
// Nothing CUDA is loaded until something asks for a cuda device or for this status.
// The status says plainly what is missing and how to get it; it never throws.

import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";

import type { NativeCudaProbe } from "../../../binding.js";
import * as log from "../../log.js";
import { native, packageRoot } from "../native.js";

export interface CudaDevice {
  index: number;
  name: string;
  computeCapability: string; // "9.0"
  totalMemoryMiB: number;
}

export interface CudaLibrary {
  name: "cublas" | "cublasLt" | "cudnn";
  path: string | null; // the file opened, or null when none was found
  version: string | null; // "13.0.0"
  error: string | null; // every place tried, with the reason, when not found
}

export interface CudaStatus {
  /** True when tensors can be placed on cuda devices. */
  available: boolean;
  /** Why not, and how to fix it; "" when available. */
  reason: string;
  plugin: string | null; // the plugin file that answered
  runtimeVersion: string | null; // of the CUDA runtime linked into the plugin, "13.0"
  driverVersion: string | null; // the CUDA version the driver supports
  devices: CudaDevice[];
  libraries: CudaLibrary[];
  /** The folders searched for the libraries, in order, before the system's path. */
  libraryDirs: string[];
  /** "cuda", or "host emulation" for the test build of the plugin (no GPU); null if none. */
  flavour: string | null;
  /** Why the plugin DEEPNODE_CUDA_PLUGIN names could not be loaded; null if it was, or unset. */
  pluginError: string | null;
}

const PLUGIN_FILE = "deepnode_cuda.so";

/** The plugin file DEEPNODE_CUDA_PLUGIN names, or undefined when it is unset or empty. */
function pluginOverride(): string | undefined {
  const override = process.env.DEEPNODE_CUDA_PLUGIN;
  return override === "" ? undefined : override;
}

/** Where the plugin may be: DEEPNODE_CUDA_PLUGIN, then beside a prebuild, then build/. */
export function pluginCandidates(): string[] {
  const root = packageRoot();
  const candidates = [
    join(root, "prebuilds", `${process.platform}-${process.arch}`, PLUGIN_FILE),
    join(root, "build", "Release", PLUGIN_FILE),
  ];
  const override = pluginOverride();
  return override !== undefined ? [override, ...candidates] : candidates;
}

/** Folders holding Python packages, where NVIDIA's pip wheels put their libraries. */
function sitePackageDirs(): string[] {
  const prefixes = [process.env.VIRTUAL_ENV, process.env.CONDA_PREFIX, join(homedir(), ".local")];
  prefixes.push("/usr/local", "/usr", "/opt/conda");
  const dirs = ["/usr/lib/python3/dist-packages"];
  for (const prefix of prefixes) {
    if (prefix === undefined || prefix === "") continue;
    const lib = join(prefix, "lib");
    for (const python of listDir(lib).filter((name) => /^python3\.\d+$/.test(name))) {
      dirs.push(join(lib, python, "site-packages"), join(lib, python, "dist-packages"));
    }
  }
  return dirs.filter((dir) => existsSync(dir));
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/**
 * The library search order: DEEPNODE_CUDA_LIBRARY_PATH, the plugin's own folder, then
 * every `nvidia/<package>/lib` of the Python wheels (nvidia-cublas, nvidia-cudnn-cu13);
 * the plugin tries the system's library path last.
 */
export function libraryDirs(pluginPath: string): string[] {
  const fromEnv = (process.env.DEEPNODE_CUDA_LIBRARY_PATH ?? "").split(delimiter);
  const dirs = [...fromEnv.filter((dir) => dir !== ""), dirname(pluginPath)];
  for (const site of sitePackageDirs()) {
    const nvidia = join(site, "nvidia");
    for (const name of listDir(nvidia)) {
      for (const lib of ["lib", "lib64"]) {
        if (existsSync(join(nvidia, name, lib))) dirs.push(join(nvidia, name, lib));
      }
    }
  }
  return [...new Set(dirs)];
}

function cudaVersion(version: number): string | null {
  return version > 0 ? `${Math.floor(version / 1000)}.${Math.floor((version % 1000) / 10)}` : null;
}

function unavailable(reason: string, partial: Partial<CudaStatus> = {}): CudaStatus {
  return {
    available: false,
    reason,
    plugin: null,
    runtimeVersion: null,
    driverVersion: null,
    devices: [],
    libraries: [],
    libraryDirs: [],
    flavour: null,
    pluginError: null,
    ...partial,
  };
}

const LIBRARY_HINTS: Record<string, string> = {
  cublas: "pip install nvidia-cublas",
  cublasLt: "pip install nvidia-cublas",
  cudnn: "pip install nvidia-cudnn-cu13",
};

/** The first thing missing, in the order a user must fix them; "" when nothing is. */
function missingReason(probe: NativeCudaProbe, libraries: CudaLibrary[]): string {
  if (probe.error !== "") {
    return (
      `the CUDA plugin found no usable GPU: ${probe.error}; install the NVIDIA driver on a ` +
      `machine with an NVIDIA GPU`
    );
  }
  const missing = libraries.find((library) => library.path === null);
  if (missing !== undefined) {
    return (
      `the CUDA plugin found no ${missing.name} library: ${missing.error}; install it ` +
      `(${LIBRARY_HINTS[missing.name]}) or name its folder in DEEPNODE_CUDA_LIBRARY_PATH`
    );
  }
  return "";
}

function statusFromProbe(plugin: string, dirs: string[], probe: NativeCudaProbe): CudaStatus {
  const devices = probe.devices.map((device, index) => ({
    index,
    name: device.name,
    computeCapability: device.computeCapability,
    totalMemoryMiB: Math.round(device.totalMemory / 2 ** 20),
  }));
  const libraries = probe.libraries.map((library) => ({
    name: library.name as CudaLibrary["name"],
    path: library.path === "" ? null : library.path,
    version: library.version === "" ? null : library.version,
    error: library.error === "" ? null : library.error,
  }));
  let reason = missingReason(probe, libraries);
  let flavour: string | null = null;
  if (reason === "") {
    try {
      flavour = native().cudaOpen(plugin).flavour;
    } catch (error) {
      reason = `the CUDA plugin's kernels could not be opened: ${(error as Error).message}`;
    }
  }
  return {
    available: reason === "",
    reason,
    flavour,
    plugin,
    runtimeVersion: cudaVersion(probe.runtimeVersion),
    driverVersion: cudaVersion(probe.driverVersion),
    devices,
    libraries,
    libraryDirs: dirs,
    pluginError: null,
  };
}

/** Probes afresh, trying each plugin file in turn (cudaStatus() caches the first answer). */
export function probeCudaStatus(candidates: readonly string[] = pluginCandidates()): CudaStatus {
  let addon;
  try {
    addon = native();
  } catch (error) {
    return unavailable(`the native addon did not load: ${(error as Error).message}`);
  }
  const tried: { plugin: string; why: string }[] = [];
  for (const plugin of candidates) {
    if (!existsSync(plugin)) {
      tried.push({ plugin, why: "no such file" });
      continue;
    }
    const dirs = libraryDirs(plugin);
    const probe = addon.cudaProbe(plugin, dirs);
    if (probe.pluginError === "") {
      return withOverrideFailure(statusFromProbe(plugin, dirs, probe), tried);
    }
    tried.push({ plugin, why: probe.pluginError });
  }
  const status = unavailable(
    "this build of deepnode has no usable CUDA plugin (it is built by 'npm install' where " +
      `nvcc is on the PATH; install the CUDA toolkit, then run 'npm rebuild deepnode'). ` +
      `Tried: ${tried.map(({ plugin, why }) => `${plugin}: ${why}`).join("; ")}`,
  );
  return withOverrideFailure(status, tried);
}

/**
 * The status with pluginError set when the file DEEPNODE_CUDA_PLUGIN names failed (the next
 * candidate answered instead): a reason that names it, since that is the plugin the user
 * wanted (the emulation, say), not the one that found no GPU.
 */
function withOverrideFailure(status: CudaStatus, tried: { plugin: string; why: string }[]) {
  const override = pluginOverride();
  const failure = tried.find(({ plugin }) => plugin === override);
  if (failure === undefined) return status;
  const pluginError =
    `DEEPNODE_CUDA_PLUGIN names ${failure.plugin}, which could not be loaded ` + `(${failure.why})`;
  const reason = status.available ? "" : `${pluginError}; ${status.reason}`;
  return { ...status, reason, pluginError };
}

let cached: CudaStatus | undefined;

/** What CUDA support this process has; probed once, on the first call. */
export function cudaStatus(): CudaStatus {
  if (cached === undefined) {
    cached = probeCudaStatus();
    log.info(
      cached.available
        ? `cuda: ${cached.devices.map((d) => `${d.name} (sm_${d.computeCapability})`).join(", ")}`
        : `cuda unavailable: ${cached.reason}`,
    );
    // The plugin that answered is not the one asked for: say so even when cuda works.
    if (cached.available && cached.pluginError !== null) {
      process.emitWarning(`${cached.pluginError}; using ${cached.plugin}`, {
        code: "DEEPNODE_CUDA_PLUGIN",
      });
    }
  }
  return cached;
}
