// The `cuda` namespace users see: whether CUDA can be used here and, if not, why; the
// caching allocator's figures; and the switches of the CUDA plugin.

import type { NativeCudaMemoryStats, NativeCudaWaitStats } from "../../../binding.js";
import { DeviceError, ValueError } from "../../errors.js";
import { native } from "../native.js";
import { backendFor } from "../registry.js";
import type { CudaBackend } from "./backend.js";
import { cudaStatus, type CudaStatus } from "./plugin.js";
import { sendSyncChecks, syncChecksOn } from "./sync-checks.js";

export type { CudaDevice, CudaLibrary, CudaStatus } from "./plugin.js";

/** True when tensors can be placed on a cuda device in this process. */
export function isAvailable(): boolean {
  return cudaStatus().available;
}

/** The GPUs the driver shows (0 without a driver or plugin). */
export function deviceCount(): number {
  return cudaStatus().devices.length;
}

/** The driver, devices and libraries found, and the reason CUDA is unavailable if it is. */
export function status(): CudaStatus {
  return cudaStatus();
}

/**
 * The caching allocator's figures for cuda:`device`, in bytes: `allocated` (held by live
 * tensors), `reserved` (obtained from the device: allocated plus the cache), `peakAllocated`,
 * and counts: `liveBuffers` (live tensors' storages), `deviceAllocations`, `cacheHits`,
 * `oomRetries` (allocations retried after emptying the cache).
 */
export function memoryStats(device = 0): NativeCudaMemoryStats {
  cudaDevice("memoryStats", device);
  return native().cudaMemoryStats(device);
}

/** How many times the host has waited for a device's stream, by what waited. */
export interface CudaHostWaits extends NativeCudaWaitStats {
  /** Every wait: reads, synchronizes, uploads, allocations, other, and the ops' waits. */
  total: number;
}

/**
 * How many times the host has waited for cuda:`device`'s stream since the plugin loaded, by
 * what waited: `reads` (a tensor's values read back, as by `await t.data()` or `item()`),
 * `synchronizes` (`synchronize()`), `uploads` (a copy to the device too large to stage, over
 * 16 MiB, or made while every staging block was busy), `allocations` (a tensor's allocation
 * that emptied the cache to retry), `other` (`emptyCache()`), and `ops`: the ops that waited
 * inside, by kernel name (CTC's lengths, RNN lengths given only as a tensor, any op whose
 * scratch allocation emptied the cache, and with `setSyncChecks(true)` every checking op). A
 * wait stalls the host until every queued kernel has finished, so a training step that runs
 * at the GPU's pace makes none: take the figures before and after a step to find where a
 * loop waits.
 */
export function hostWaits(device = 0): CudaHostWaits {
  cudaDevice("hostWaits", device);
  const stats = native().cudaWaitStats(device);
  const opWaits = Object.values(stats.ops).reduce((sum, count) => sum + count, stats.opsLeftOut);
  const total =
    stats.reads + stats.synchronizes + stats.uploads + stats.allocations + stats.other + opWaits;
  return { ...stats, total };
}

/**
 * How many of its own kernels the CUDA plugin has launched on cuda:`device` since it loaded
 * (cuBLAS and cuDNN launch kernels of their own, not counted here; the host emulation counts
 * the launches a GPU would get). A small model's step on a GPU costs about its launches (some
 * microseconds each), so take the figure before and after a step to see what it launches.
 */
export function kernelLaunches(device = 0): number {
  cudaDevice("kernelLaunches", device);
  return native().cudaLaunches(device);
}

const MIB = 2 ** 20;

/**
 * One line about cuda:`device` since `since` (an earlier hostWaits() of it): the host waits
 * made meanwhile by cause, and the allocator's figures now, as DEEPNODE_LOG=info prints
 * them after each Trainer epoch.
 */
export function activityLine(device: number, since: CudaHostWaits): string {
  const now = hostWaits(device);
  const causes: string[] = [];
  for (const key of ["reads", "synchronizes", "uploads", "allocations", "other"] as const) {
    if (now[key] > since[key]) causes.push(`${now[key] - since[key]} ${key}`);
  }
  for (const [op, count] of Object.entries(now.ops)) {
    const more = count - (since.ops[op] ?? 0);
    if (more > 0) causes.push(`${more} in ${op}`);
  }
  const waits = now.total - since.total;
  const by = causes.length > 0 ? ` (${causes.join(", ")})` : "";
  const m = memoryStats(device);
  const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;
  return (
    `${waits} host wait${waits === 1 ? "" : "s"}${by}; ` +
    `memory ${mib(m.allocated)} allocated, ${mib(m.peakAllocated)} at peak, ` +
    `${mib(m.reserved)} reserved`
  );
}

/** Gives the cached (freed) device memory of cuda:`device` back to the driver. */
export function emptyCache(device = 0): void {
  cudaDevice("emptyCache", device);
  native().cudaEmptyCache(device);
}

/** Waits until every kernel queued on cuda:`device` has finished. */
export function synchronize(device = 0): void {
  cudaDevice("synchronize", device).synchronize();
}

/** Lets float32 matmuls use TF32 tensor cores (faster, about 10 mantissa bits); off by default. */
export function setAllowTf32(allow: boolean): void {
  requireCuda("setAllowTf32");
  native().cudaSetOption("allow_tf32", allow ? 1 : 0);
}

/**
 * Whether an op's data checks wait for the device. Off by default: the device checks an
 * index or target and records the first bad one, and the error (naming the op) is thrown at
 * the next wait for the device (a read of values, `synchronize`), so ops never wait; the op
 * that met bad data leaves unspecified values. On: the op itself waits and throws before it
 * writes anything, as on cpu (slower). DEEPNODE_CUDA_SYNC_CHECKS=1 turns it on for a run.
 * When several ops met bad data before a wait, the earliest is thrown and the message counts
 * the others.
 */
export function setSyncChecks(on: boolean): void {
  if (typeof on !== "boolean") {
    throw new ValueError("setSyncChecks", `on must be true or false, got ${String(on)}`);
  }
  requireCuda("setSyncChecks");
  sendSyncChecks(native(), on);
}

/**
 * Whether data checks wait for the device at the op (see setSyncChecks), as this thread last
 * set it; the switch is one for the process.
 */
export function syncChecks(): boolean {
  return syncChecksOn();
}

/**
 * Caps the device memory the allocator may reserve, over all devices, in bytes (0: no cap).
 * Allocations past it fail as if the device were full: emptying the cache, then
 * OutOfMemoryError.
 */
export function setMemoryLimit(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new ValueError("setMemoryLimit", `bytes must be a non-negative integer, got ${bytes}`);
  }
  requireCuda("setMemoryLimit");
  native().cudaSetOption("memory_limit", bytes);
}

function requireCuda(op: string): void {
  const current = cudaStatus();
  if (!current.available) throw new DeviceError(op, `cuda is not available: ${current.reason}`);
}

function cudaDevice(op: string, device: number): CudaBackend {
  if (!Number.isInteger(device) || device < 0) {
    throw new ValueError(op, `device must be a non-negative integer, got ${device}`);
  }
  requireCuda(op);
  return backendFor(`cuda:${device}`) as CudaBackend;
}
