// Whether the cuda backend's data checks (an index in range, a target that is a class) wait
// for the device at the op, or are reported at the next wait for it (the default). Set by
// cuda.setSyncChecks or, for a whole run, DEEPNODE_CUDA_SYNC_CHECKS=1. The plugin holds one
// switch for the process; a worker thread that makes its own cuda backend sends the
// variable's "on" but never turns the switch off behind another thread's back.

import type { NativeBinding } from "../../../binding.js";

let on = process.env.DEEPNODE_CUDA_SYNC_CHECKS === "1";
let sent = false;

/** The switch as this thread last set it (or as the environment asked). */
export function syncChecksOn(): boolean {
  return on;
}

/** Turns the plugin's switch on, once per thread, when DEEPNODE_CUDA_SYNC_CHECKS=1 asks. */
export function sendSyncChecksFromEnv(binding: NativeBinding): void {
  if (sent || !on) return;
  binding.cudaSetOption("sync_checks", 1);
  sent = true;
}

export function sendSyncChecks(binding: NativeBinding, value: boolean): void {
  binding.cudaSetOption("sync_checks", value ? 1 : 0);
  on = value;
  sent = true;
}
