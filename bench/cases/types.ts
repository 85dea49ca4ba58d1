// What one benchmark case is. A case file in bench/cases/ exports `cases: BenchCase[]`;
// run.ts finds every such file, so a new case is one entry in a new or existing file.

import type { BenchUnit } from "../../lib/bench/report.js";

/** Repeats and warm-up the harness uses; --quick lowers them. */
export interface Plan {
  warmup: number;
  repeats: number;
  /** Seconds a case may take: a slower one gets fewer repeats. */
  budget: number;
  quick: boolean;
}

/** A case's inputs on one device, ready to time. `run` is timed; the rest is not. */
export interface BenchRun {
  run(): void;
  /** Untimed, before each timed sample (e.g. the forward pass of a backward case). */
  before?(): void;
  /** Untimed, after each timed sample (e.g. disposing gradients). */
  after?(): void;
  dispose(): void;
}

/** What a case that times itself (a whole job) returns. */
export interface Measured {
  seconds: number[];
  extra?: Record<string, unknown>;
}

export type PeerParams = Record<string, unknown>;

export interface BenchCase {
  /** Unique; --filter matches it (and the group) as a substring. */
  name: string;
  group: "kernel" | "job";
  unit: BenchUnit;
  /** Floating-point operations (GFLOP/s) or bytes moved (GB/s) per run. */
  work?: number;
  /** Also runs on the reference backend, which is plain loops: only small sizes. */
  small?: boolean;
  /** Left out of --quick runs (the largest sizes). */
  slow?: boolean;
  /** Left out unless --full (a whole-dataset job: minutes on each side). */
  full?: boolean;
  /** Runs per timed sample, for ops too short to time one by one; times are per run. */
  inner?: number;
  /** Overrides the plan's repeats for this case (e.g. long jobs). */
  repeats?: number;
  /** The op a peer runs for this case and its parameters (shapes, counts). */
  peer?: { op: string; params: PeerParams | ((plan: Plan) => PeerParams) };
  /** A note on the row, e.g. what a figure includes. */
  note?: string;
  /** Kernels: builds inputs on `device`. */
  setup?(device: string): BenchRun;
  /** Jobs: runs and times themselves (in a child process, so peak memory is theirs). */
  measure?(device: string, plan: Plan): Measured;
}
