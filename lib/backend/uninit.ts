// Uninitialised allocations and the switch that poisons them. An op whose kernel writes
// every element of its output asks the backend for storage with init "none", which skips
// the zero-fill (an extra pass over memory, and on cuda an extra launch). To prove that no
// kernel reads what it did not write, DEEPNODE_POISON_UNINIT=1 fills such storage with
// 0xFF bytes instead: NaN in float32 and float64, -1 in int32 and int8, 255 in uint8 and
// bool, on cpu (pooled and fresh buffers) and in the CUDA plugin (real or emulated).

import type { TypedArray } from "../dtype.js";

/** What alloc puts in new storage: zeros, or nothing (whatever the memory held). */
export type AllocInit = "zero" | "none";

/** The byte that poisoned storage is filled with (an all-ones bit pattern: NaN, -1, 255). */
export const POISON_BYTE = 0xff;

let poisoning = process.env.DEEPNODE_POISON_UNINIT === "1";

/** True when uninitialised storage is filled with POISON_BYTE. */
export function poisonUninit(): boolean {
  return poisoning;
}

/**
 * Turns poisoning on or off for this process (DEEPNODE_POISON_UNINIT=1 starts it on);
 * later allocations follow it. For tests that prove no op reads what it did not write.
 */
export function setPoisonUninit(on: boolean): void {
  poisoning = on;
}

/** Fills every byte of `array` with POISON_BYTE. */
export function poison(array: TypedArray): void {
  new Uint8Array(array.buffer, array.byteOffset, array.byteLength).fill(POISON_BYTE);
}
