// Process-wide settings of the cpu backend and what the build contains.

import type { NativeInfo } from "../binding.js";
import { cudaStatus, type CudaStatus } from "./backend/cuda/plugin.js";
import { translate } from "./backend/kernel-backend.js";
import { native, nativeAvailable } from "./backend/native.js";
import { ValueError, formatValue } from "./errors.js";

/** The most threads setNumThreads takes. */
export const MAX_THREADS = 1024;

/** Threads the cpu kernels use (default: the number of cores, or DEEPNODE_NUM_THREADS). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    const message = `n must be an integer in [1, ${MAX_THREADS}], got ${formatValue(n)}`;
    throw new ValueError("setNumThreads", message, "n");
  }
  native().setNumThreads(n);
}

/**
 * Applies a command's --threads, or else checks DEEPNODE_NUM_THREADS now, so that a bad value
 * is refused (a ValueError naming it) before any work starts rather than at the first kernel.
 */
export function applyThreads(threads: number | undefined): void {
  if (threads !== undefined) setNumThreads(threads);
  else getNumThreads();
}

/** The cpu kernels' thread count; a bad DEEPNODE_NUM_THREADS is a ValueError naming it. */
export function getNumThreads(): number {
  try {
    return native().getNumThreads();
  } catch (error) {
    throw translate("getNumThreads", error, "cpu");
  }
}

/**
 * Flush-to-zero and denormals-are-zero in the cpu kernels (on by default, as
 * TensorFlow does): subnormal floats make recurrent layers several times slower.
 */
export function setFlushDenormal(on: boolean): void {
  native().setFlushDenormal(on);
}

export interface BuildInfo {
  native: NativeInfo | null;
  devices: string[];
  cuda: CudaStatus;
}

export function buildInfo(): BuildInfo {
  const available = nativeAvailable();
  const cuda = cudaStatus();
  const devices = available ? ["cpu", "reference"] : ["reference"];
  if (cuda.available) devices.push(...cuda.devices.map((device) => `cuda:${device.index}`));
  return { native: available ? native().info() : null, devices, cuda };
}
