// Whether the cuda backend's data checks (an index in range, a target that is a class) wait
// for the device at the op, or are reported at the next wait for it (the default). Set by
// cuda.setSyncChecks or, for a whole run, DEEPNODE_CUDA_SYNC_CHECKS=1; the plugin holds one
// switch for the process, sent when the first cuda backend is made and on every change.

import type { NativeBinding } from "../../../binding.js";

let on = process.env.DEEPNODE_CUDA_SYNC_CHECKS === "1";
let sent = false;

export function syncChecksOn(): boolean {
  return on;
}

/** Tells the plugin the switch: now if `value` is given, else once per process. */
export function sendSyncChecks(binding: NativeBinding, value?: boolean): void {
  if (value === undefined && sent) return;
  binding.cudaSetOption("sync_checks", (value ?? on) ? 1 : 0);
  on = value ?? on;
  sent = true;
}
