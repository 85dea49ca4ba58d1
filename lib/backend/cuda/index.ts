// The `cuda` namespace users see: whether CUDA can be used here and, if not, why.

import { cudaStatus, type CudaStatus } from "./plugin.js";

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
