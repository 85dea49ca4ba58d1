// Timing: warm-up runs, then timed samples of `inner` runs each, reported as seconds per run.
// Kernels are timed in this process; jobs in a child process of their own, so that the peak
// memory (max RSS) reported is the job's and not what earlier kernels left behind.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cuda } from "../lib/index.js";
import type { BenchCase, BenchRun, Measured, Plan } from "./cases/types.js";

/** Waits for a device's queued work (cuda runs asynchronously); nothing on cpu. */
export type DeviceSync = () => void;

/** The wait for `device`: cuda:N's stream, or nothing for devices that run synchronously. */
export function deviceSync(device: string): DeviceSync {
  const match = /^cuda(?::(\d+))?$/.exec(device);
  if (match === null) return () => {};
  const index = Number(match[1] ?? 0);
  return () => cuda.synchronize(index);
}

function sample(bench: BenchRun, inner: number, sync: DeviceSync): number {
  bench.before?.();
  sync();
  const start = performance.now();
  for (let i = 0; i < inner; i++) bench.run();
  sync();
  const elapsed = (performance.now() - start) / 1000;
  bench.after?.();
  return elapsed;
}

/**
 * Seconds per run of each timed sample, after `plan.warmup` untimed samples. A case slower
 * than its budget gets fewer repeats, judged by its last warm-up sample; one whose warm-up
 * sample alone overruns the budget is timed by that sample only.
 */
export function timeRun(
  bench: BenchRun,
  plan: Plan,
  inner = 1,
  sync: DeviceSync = () => {},
): number[] {
  let repeats = plan.repeats;
  for (let i = 0; i < plan.warmup; i++) {
    const elapsed = sample(bench, inner, sync);
    if (elapsed > plan.budget) return [elapsed / inner];
    repeats = Math.min(plan.repeats, Math.max(1, Math.floor(plan.budget / elapsed)));
  }
  return Array.from({ length: repeats }, () => sample(bench, inner, sync) / inner);
}

/** A kernel case on one device: inputs built, timed, disposed. */
export function measureKernel(c: BenchCase, device: string, plan: Plan): Measured {
  const bench = c.setup!(device);
  try {
    return { seconds: timeRun(bench, plan, c.inner, deviceSync(device)) };
  } finally {
    bench.dispose();
  }
}

const childScript = fileURLToPath(new URL("./child.js", import.meta.url));

/** A job case in a fresh Node process; its extra gains the child's peak RSS in MiB. */
export function measureJob(c: BenchCase, device: string, plan: Plan): Measured {
  const args = [childScript, c.name, device, JSON.stringify(plan)];
  const child = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 26 });
  if (child.status !== 0) {
    const last = child.stderr.trim().split("\n").pop() ?? "";
    throw new Error(`job process exited with ${child.status ?? child.signal}: ${last}`);
  }
  return JSON.parse(child.stdout.trim().split("\n").pop()!) as Measured;
}

/** Peak resident memory of this process so far, in MiB. */
export function peakRssMiB(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}
