// The benchmark run: picks the cases (--filter, --quick) and the backends, measures deepnode,
// then each peer on the same cases, and prints the table; --json and --markdown write the
// same report to files. `npm run bench` (run.ts) and `deepnode bench` both end here.

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { cpus, loadavg } from "node:os";
import { buildInfo, cuda, getNumThreads } from "../lib/index.js";
import { ValueError } from "../lib/errors.js";
import { checkFileFlag } from "../lib/cli/checks.js";
import { makeFoldersSync } from "../lib/io/safetensors.js";
import {
  displayValue,
  formatMarkdown,
  formatNumber,
  formatTable,
  summarize,
  type BenchReport,
  type BenchRow,
  type PeerCell,
} from "../lib/bench/report.js";
import { measureJob, measureKernel } from "./harness.js";
import { loadCases } from "./registry.js";
import { makePeer, PEER_NAMES, type Peer, type PeerOutcome, type PeerSpec } from "./peers/index.js";
import type { BenchCase, Measured, Plan } from "./cases/types.js";

export interface BenchOptions {
  filter?: string;
  quick: boolean;
  json?: string;
  markdown?: string;
  backends: string[];
  peers: string[];
  log?: (line: string) => void;
  /** Also the cases marked full (whole-dataset jobs). */
  full?: boolean;
}

export const BACKENDS = ["cpu", "cuda", "reference"];

/** Splits a comma list and checks every item is one of `known`. */
export function parseList(flag: string, text: string, known: string[]): string[] {
  const items = text.split(",").filter((s) => s !== "");
  const bad = items.find((s) => !known.includes(s));
  if (bad !== undefined) {
    throw new ValueError("bench", `${flag}: unknown '${bad}' (known: ${known.join(", ")})`, flag);
  }
  return items;
}

function planFor(c: BenchCase, device: string, quick: boolean): Plan {
  const budget = quick ? 5 : 20;
  if (device === "reference") return { warmup: 1, repeats: 3, budget, quick };
  const repeats = Math.min(quick ? 3 : 10, c.repeats ?? 10);
  return { warmup: quick ? 1 : 2, repeats, budget, quick };
}

export function selectCases(
  all: BenchCase[],
  options: Pick<BenchOptions, "filter" | "quick" | "full">,
): BenchCase[] {
  // A comma-separated filter keeps the cases that match any of its texts.
  const patterns = options.filter
    ?.toLowerCase()
    .split(",")
    .filter((p) => p !== "");
  const matches = (c: BenchCase) =>
    patterns === undefined ||
    patterns.some((p) => `${c.group} ${c.name}`.toLowerCase().includes(p));
  return all.filter(
    (c) =>
      matches(c) &&
      !(options.quick && c.slow === true) &&
      !(options.full !== true && c.full === true),
  );
}

function measuredFields(measured: Measured | string): Partial<BenchRow> {
  if (typeof measured === "string") return { skipped: measured };
  const extra = measured.extra === undefined ? {} : { extra: measured.extra };
  return { summary: summarize(measured.seconds), seconds: measured.seconds, ...extra };
}

/** The device as rows show it: cuda on the plugin's host emulation says so (no GPU timed). */
function deviceLabel(device: string): string {
  const emulated = device === "cuda" && cuda.status().flavour === "host emulation";
  return emulated ? "cuda (host emulation)" : device;
}

/** The header's cuda line: the GPUs timed, or that the host emulation was (not a GPU). */
function cudaMeta(): string {
  const status = cuda.status();
  if (status.flavour === "host emulation") return `host emulation, not a GPU (${status.plugin})`;
  return status.devices.map((d) => `${d.name} (sm_${d.computeCapability})`).join(", ");
}

function deviceRow(c: BenchCase, device: string, measured: Measured | string): BenchRow {
  return {
    name: c.name,
    group: c.group,
    device: deviceLabel(device),
    unit: c.unit,
    ...(c.work === undefined ? {} : { work: c.work }),
    ...(c.note === undefined ? {} : { note: c.note }),
    ...measuredFields(measured),
    peers: [],
  };
}

function rowFigure(row: BenchRow): string {
  if (row.summary === undefined) return row.skipped ?? "no result";
  return `${formatNumber(displayValue(row.unit, row.summary.median, row.work))} ${row.unit}`;
}

function measureOn(c: BenchCase, device: string, quick: boolean): Measured | string {
  const plan = planFor(c, device, quick);
  try {
    return c.group === "job" ? measureJob(c, device, plan) : measureKernel(c, device, plan);
  } catch (error) {
    return `failed: ${(error as Error).message}`;
  }
}

function peerSpecs(cases: BenchCase[], quick: boolean): PeerSpec[] {
  return cases.flatMap((c) => {
    if (c.peer === undefined) return [];
    const plan = planFor(c, "cpu", quick);
    const params = typeof c.peer.params === "function" ? c.peer.params(plan) : c.peer.params;
    const spec = { id: c.name, op: c.peer.op, params, ...plan, inner: c.inner ?? 1 };
    return [{ ...spec, threads: getNumThreads() }];
  });
}

/** Kernels in one peer process; each job in one of its own, so its peak memory is its own. */
function runPeer(peer: Peer, specs: PeerSpec[], jobs: Set<string>): Record<string, PeerOutcome> {
  const kernels = specs.filter((s) => !jobs.has(s.id));
  const results = kernels.length > 0 ? peer.run(kernels) : {};
  for (const job of specs.filter((s) => jobs.has(s.id))) Object.assign(results, peer.run([job]));
  return results;
}

function peerCell(peer: string, c: BenchCase, outcome: PeerOutcome | undefined): PeerCell {
  if (c.peer === undefined) return { peer, skipped: `${c.name} has no peer op` };
  if (outcome === undefined) return { peer, skipped: "no result" };
  if (outcome.seconds === undefined) return { peer, skipped: outcome.skipped ?? "no result" };
  const extra = outcome.extra === undefined ? {} : { extra: outcome.extra };
  return { peer, summary: summarize(outcome.seconds), seconds: outcome.seconds, ...extra };
}

function commandVersion(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8" }).split("\n")[0]!.trim();
  } catch {
    return "unknown";
  }
}

function machineMeta(peers: Peer[]): Record<string, string> {
  const info = buildInfo();
  const versions = peers.map((p) => `${p.name} ${p.version ?? `(${p.unavailable})`}`);
  return {
    date: new Date().toISOString(),
    cpu: `${cpus()[0]?.model ?? "unknown"}, ${cpus().length} cores`,
    node: process.version,
    compiler: commandVersion("g++", ["--version"]),
    deepnode: `threads ${getNumThreads()}, gemm ${info.native?.gemmKernel ?? "none"}`,
    peers: versions.join("; "),
  };
}

function devicesFor(options: BenchOptions, report: BenchReport): string[] {
  return options.backends.filter((device) => {
    if (device !== "cuda" || cuda.isAvailable()) return true;
    report.skippedBackends.push({ device, reason: cuda.status().reason ?? "not available" });
    return false;
  });
}

/** Why no backend asked for can be measured: each one's reason (the peers are not run). */
function noBackendMessage(report: BenchReport): string {
  const skipped = report.skippedBackends;
  const reasons = skipped.map(({ device, reason }) => `${device} is not available: ${reason}`);
  return `--backends ${skipped.map(({ device }) => device).join(",")}: ${reasons.join("; ")}`;
}

/** Adds the thread count a peer reports (tfjs-wasm has no threads in Node) to the meta. */
function noteThreads(report: BenchReport, peer: string, outcomes: Record<string, PeerOutcome>) {
  const threads = Object.values(outcomes).find((o) => o.extra?.threads !== undefined)?.extra
    ?.threads;
  if (threads === undefined) return;
  const line = `${peer} ${String(threads)}`;
  report.meta.threads =
    report.meta.threads === undefined ? line : `${report.meta.threads}, ${line}`;
}

export type Log = (line: string) => void;

function measureDeepnode(
  report: BenchReport,
  cases: BenchCase[],
  devices: string[],
  quick: boolean,
  log: Log,
) {
  for (const c of cases) {
    for (const device of devices) {
      if (device === "reference" && c.small !== true) continue;
      const row = deviceRow(c, device, measureOn(c, device, quick));
      log(`deepnode ${row.device}: ${c.name}: ${rowFigure(row)}`);
      report.rows.push(row);
    }
  }
}

/** "gpu" for a peer that runs on a GPU (torch-cuda), else "cpu". */
function peerDeviceKind(peer: string): "cpu" | "gpu" {
  return peer.endsWith("-cuda") ? "gpu" : "cpu";
}

/** A GPU peer's figures stand beside cuda rows, a cpu peer's beside the others. */
function sameKindOfDevice(peer: string, device: string): boolean {
  return (peerDeviceKind(peer) === "gpu") === device.startsWith("cuda");
}

/** What an absent peer gets for every case it has an op for: the reason it is absent. */
function absentOutcomes(peer: Peer, cases: BenchCase[]): Record<string, PeerOutcome> {
  const withOp = cases.filter((c) => c.peer !== undefined);
  return Object.fromEntries(withOp.map((c) => [c.name, { skipped: peer.unavailable! }]));
}

/**
 * Every peer on the cases of the report's rows. The specs are made only for a peer that is
 * present, since a job's parameters may prepare its data (the IMDB job writes its reviews).
 */
export function measurePeers(
  report: BenchReport,
  cases: BenchCase[],
  peers: Peer[],
  quick: boolean,
  log: Log,
) {
  const jobs = new Set(cases.filter((c) => c.group === "job").map((c) => c.name));
  let specs: PeerSpec[] | undefined;
  for (const peer of peers) {
    if (peer.unavailable === null) specs ??= peerSpecs(cases, quick);
    log(`${peer.name}: ${peer.unavailable ?? `${specs!.length} cases`}`);
    const outcomes =
      peer.unavailable === null ? runPeer(peer, specs!, jobs) : absentOutcomes(peer, cases);
    noteThreads(report, peer.name, outcomes);
    for (const row of report.rows) {
      const c = cases.find((k) => k.name === row.name)!;
      // An absent peer says why in every row (torch-cuda without a GPU: not "gpu rows only").
      row.peers.push(
        sameKindOfDevice(peer.name, row.device) || peer.unavailable !== null
          ? peerCell(peer.name, c, outcomes[c.name])
          : { peer: peer.name, skipped: `compared on ${peerDeviceKind(peer.name)} rows only` },
      );
    }
  }
}

/** Why nothing was selected: the filter matches no case, or only ones the plan leaves out. */
function noCaseMessage(all: BenchCase[], options: BenchOptions): string {
  const filter = options.filter;
  const select = (quick: boolean, full: boolean) => selectCases(all, { filter, quick, full });
  const quick = options.quick === true;
  const full = options.full === true;
  if (quick && select(false, full).length > 0) {
    return `--filter '${filter}' matches only cases that --quick leaves out`;
  }
  if (!full && select(quick, true).length > 0) {
    return `--filter '${filter}' matches only cases that need --full`;
  }
  if (quick && !full && select(false, true).length > 0) {
    return `--filter '${filter}' matches only cases that need --full and not --quick`;
  }
  const groups = [...new Set(all.map((c) => c.group))].join(", ");
  return (
    `no case matches --filter '${filter}' (it matches a case's group, one of ${groups}, ` +
    "or part of its name)"
  );
}

/** Measures every selected case on every device, then every peer; returns the report. */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const all = await loadCases();
  const cases = selectCases(all, options);
  if (cases.length === 0) throw new ValueError("bench", noCaseMessage(all, options));
  const peers = options.peers.map(makePeer);
  const report: BenchReport = {
    meta: { ...machineMeta(peers), threads: `deepnode ${getNumThreads()}` },
    peers: peers.map((p) => p.name),
    skippedBackends: [],
    notes: [],
    rows: [],
  };
  const devices = devicesFor(options, report);
  if (devices.length === 0) throw new ValueError("bench", noBackendMessage(report));
  if (devices.includes("cuda")) report.meta.cuda = cudaMeta();
  if (devices.includes("reference")) {
    report.notes.push("reference: the small cases only (its kernels are plain loops, the oracle)");
  }
  const loadBefore = loadavg()[0]!.toFixed(1);
  measureDeepnode(report, cases, devices, options.quick, log);
  measurePeers(report, cases, peers, options.quick, log);
  // The machine's other work skews every figure; the 1-minute load average shows how much.
  report.meta.load = `${loadBefore} at the start, ${loadavg()[0]!.toFixed(1)} at the end`;
  return report;
}

/** Writes one report file, making the missing folders on the way (as train's --metrics). */
function writeReport(path: string, text: string): void {
  makeFoldersSync(dirname(path));
  writeFileSync(path, text);
}

/** Runs, prints the table and writes the files asked for (checked before measuring). */
export async function benchCommand(options: BenchOptions): Promise<void> {
  if (options.json !== undefined) checkFileFlag("bench", "--json", options.json);
  if (options.markdown !== undefined) checkFileFlag("bench", "--markdown", options.markdown);
  const report = await runBench(options);
  console.log(
    Object.entries(report.meta)
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n"),
  );
  console.log();
  console.log(formatTable(report));
  if (options.json !== undefined) writeReport(options.json, JSON.stringify(report, null, 2));
  if (options.markdown !== undefined) writeReport(options.markdown, formatMarkdown(report));
}

export const DEFAULT_PEERS = PEER_NAMES;
