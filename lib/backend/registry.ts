// Device names and the backend behind each: "cpu" (native addon), "reference" (plain
// TypeScript, the oracle) and "cuda[:n]" (its plugin says what is there; asking for an
// unavailable device throws a DeviceError with the reason).

import { DeviceError, ValueError } from "../errors.js";
import * as log from "../log.js";
import type { Backend } from "./backend.js";
import { CudaBackend } from "./cuda/backend.js";
import { cudaStatus } from "./cuda/plugin.js";
import { cpuBackend } from "./cpu/index.js";
import { referenceBackend } from "./reference/index.js";

export type Device = "cpu" | "reference" | `cuda:${number}`;

/** Accepts "cpu", "reference", "cuda" and "cuda:N"; returns the canonical name. */
export function parseDevice(device: string): Device {
  if (device === "cpu" || device === "reference") return device;
  const match = /^cuda(?::(\d+))?$/.exec(device);
  if (match !== null) return `cuda:${Number(match[1] ?? 0)}`;
  throw new ValueError(
    "device",
    `unknown device '${device}' (expected "cpu", "reference", "cuda" or "cuda:N")`,
    "device",
  );
}

export function backendFor(device: Device): Backend {
  if (device === "cpu") return cpuBackend;
  if (device === "reference") return referenceBackend;
  const status = cudaStatus();
  if (!status.available) {
    throw new DeviceError(
      "device",
      `${device} is not available: ${status.reason}; use device "cpu"`,
      [device],
    );
  }
  const index = Number(device.slice("cuda:".length));
  if (index >= status.devices.length) {
    throw new DeviceError(
      "device",
      `${device} does not exist: this machine has ${status.devices.length} CUDA device(s) ` +
        `(cuda:0 to cuda:${status.devices.length - 1})`,
      [device],
    );
  }
  let backend = cudaBackends.get(index);
  if (backend === undefined) {
    backend = new CudaBackend(index);
    cudaBackends.set(index, backend);
  }
  return backend;
}

const cudaBackends = new Map<number, CudaBackend>();

let defaultDevice: Device = "cpu";

export function getDefaultDevice(): Device {
  return defaultDevice;
}

/** The device new tensors go to when no device is given. */
export function setDefaultDevice(device: string): void {
  const parsed = parseDevice(device);
  backendFor(parsed);
  if (parsed !== defaultDevice) log.info(`default device: ${parsed}`);
  defaultDevice = parsed;
}
