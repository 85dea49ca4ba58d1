// The benchmark suite's arithmetic and its three outputs: the median and spread of timed
// repeats, deepnode's speed ratio to each peer, the table printed on stdout and the markdown
// report. Nothing here times anything; `bench/` measures and fills a BenchReport.

import { ValueError } from "../errors.js";

/** How a row shows its figure: a rate of the case's work, or the time of one run. */
export type BenchUnit = "GFLOP/s" | "GB/s" | "us" | "ms" | "s";

/** Seconds per run over the timed repeats. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  repeats: number;
}

/** One peer's figure for a case, or why it has none. */
export interface PeerCell {
  peer: string;
  summary?: Summary;
  seconds?: number[]; // every timed repeat, for the JSON
  skipped?: string;
  extra?: Record<string, unknown>;
}

/** One case on one deepnode device, beside every peer. */
export interface BenchRow {
  name: string;
  group: "kernel" | "job";
  device: string;
  unit: BenchUnit;
  work?: number; // floating-point operations or bytes per run, for rate units
  summary?: Summary;
  seconds?: number[]; // every timed repeat, for the JSON
  skipped?: string;
  note?: string;
  peers: PeerCell[];
  extra?: Record<string, unknown>;
}

export interface BenchReport {
  meta: Record<string, string>;
  peers: string[];
  skippedBackends: { device: string; reason: string }[];
  notes: string[];
  rows: BenchRow[];
}

export const RATIO_NOTE =
  "ratio = peer's time / deepnode's time for the same work: above 1 means deepnode is faster";

/** Median, min and max of seconds per run; every value must be finite and >= 0. */
export function summarize(seconds: readonly number[]): Summary {
  if (seconds.length === 0) throw new ValueError("summarize", "needs at least one timing");
  const bad = seconds.find((s) => !Number.isFinite(s) || s < 0);
  if (bad !== undefined) {
    throw new ValueError("summarize", `timings must be finite and >= 0, got ${bad}`, "seconds");
  }
  const sorted = [...seconds].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, repeats: sorted.length };
}

/** Peer's median time over deepnode's: above 1 means deepnode is faster. */
export function speedRatio(deepnode: Summary, peer: Summary): number {
  if (deepnode.median === 0) return peer.median === 0 ? 1 : Infinity;
  return peer.median / deepnode.median;
}

const timeScale: Record<string, number> = { us: 1e6, ms: 1e3, s: 1 };

/** The figure a row shows for `seconds` per run: a rate (higher is better) or a time. */
export function displayValue(unit: BenchUnit, seconds: number, work = 0): number {
  const scale = timeScale[unit];
  if (scale !== undefined) return seconds * scale;
  if (work <= 0) throw new ValueError("displayValue", `unit ${unit} needs the work per run`);
  return work / seconds / 1e9; // GFLOP/s or GB/s
}

/** Three significant figures, without exponent for everyday magnitudes. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toString();
  const decimals = Math.max(0, 2 - Math.floor(Math.log10(abs)));
  return value.toFixed(Math.min(decimals, 6));
}

/** "min..max" of the shown figure; for rates the fastest run gives the upper end. */
export function formatSpread(unit: BenchUnit, s: Summary, work?: number): string {
  const a = displayValue(unit, s.min, work);
  const b = displayValue(unit, s.max, work);
  return `${formatNumber(Math.min(a, b))}..${formatNumber(Math.max(a, b))}`;
}

/** Collects distinct skip reasons and names each by a footnote number. */
class Footnotes {
  readonly reasons: string[] = [];

  mark(reason: string): string {
    let index = this.reasons.indexOf(reason);
    if (index < 0) index = this.reasons.push(reason) - 1;
    return `[${index + 1}]`;
  }

  lines(): string[] {
    return this.reasons.map((r, i) => `[${i + 1}] ${r}`);
  }
}

function peerText(row: BenchRow, peer: string, notes: Footnotes): string {
  const cell = row.peers.find((p) => p.peer === peer);
  if (cell === undefined) return `- ${notes.mark(`${peer}: not run`)}`;
  if (cell.summary === undefined)
    return `- ${notes.mark(`${peer}: ${cell.skipped ?? "no result"}`)}`;
  const value = formatNumber(displayValue(row.unit, cell.summary.median, row.work));
  if (row.summary === undefined) return value;
  return `${value} (${formatNumber(speedRatio(row.summary, cell.summary))}x)`;
}

function rowCells(row: BenchRow, peers: string[], notes: Footnotes): string[] {
  const name = row.note === undefined ? row.name : `${row.name} (${row.note})`;
  const head = [name, row.device, row.unit];
  if (row.summary === undefined) {
    const skipped = `- ${notes.mark(row.skipped ?? "no result")}`;
    return [...head, skipped, "", "", ...peers.map((p) => peerText(row, p, notes))];
  }
  const s = row.summary;
  return [
    ...head,
    formatNumber(displayValue(row.unit, s.median, row.work)),
    formatSpread(row.unit, s, row.work),
    String(s.repeats),
    ...peers.map((p) => peerText(row, p, notes)),
  ];
}

function header(peers: string[]): string[] {
  return ["case", "device", "unit", "median", "spread", "n", ...peers.map((p) => `${p} (ratio)`)];
}

function backendLines(report: BenchReport): string[] {
  return [
    ...report.skippedBackends.map((b) => `${b.device}: skipped, ${b.reason}`),
    ...report.notes,
  ];
}

function extraValue(value: unknown): string {
  if (typeof value === "number")
    return Number.isInteger(value) ? String(value) : formatNumber(value);
  if (Array.isArray(value)) return value.map(extraValue).join(" / ");
  return String(value);
}

function extraText(extra: Record<string, unknown>): string {
  return Object.entries(extra)
    .map(([key, value]) => `${key} ${extraValue(value)}`)
    .join(", ");
}

/** One line per job row: what deepnode and each peer reported beside the time (peak RSS...). */
export function formatJobs(report: BenchReport): string[] {
  return report.rows
    .filter((row) => row.group === "job")
    .map((row) => {
      const parts = [
        ["deepnode", row.extra] as const,
        ...row.peers.map((p) => [p.peer, p.extra] as const),
      ]
        .filter(([, extra]) => extra !== undefined)
        .map(([who, extra]) => `${who}: ${extraText(extra!)}`);
      return `${row.name} on ${row.device}: ${parts.join("; ")}`;
    });
}

/** The plain-text table printed on stdout, columns padded, footnotes below. */
export function formatTable(report: BenchReport): string {
  const notes = new Footnotes();
  const body = report.rows.map((r) => rowCells(r, report.peers, notes));
  const head = header(report.peers);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [
    line(head),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...body.map(line),
    "",
    RATIO_NOTE,
    ...backendLines(report),
    ...notes.lines(),
    ...formatJobs(report),
  ].join("\n");
}

function markdownRow(cells: string[]): string {
  return `| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
}

/** The markdown report: what ran where, one table, the skip reasons. */
export function formatMarkdown(report: BenchReport): string {
  const notes = new Footnotes();
  const body = report.rows.map((r) => markdownRow(rowCells(r, report.peers, notes)));
  const head = header(report.peers);
  const meta = Object.entries(report.meta).map(([key, value]) => `- ${key}: ${value}`);
  return [
    "# deepnode benchmarks",
    "",
    ...meta,
    "",
    `Median over the timed repeats after warm-up, spread min..max; ${RATIO_NOTE}.`,
    "",
    markdownRow(head),
    markdownRow(head.map(() => "---")),
    ...body,
    "",
    ...[...backendLines(report), ...notes.lines(), ...formatJobs(report)].map((l) => `- ${l}`),
    "",
  ].join("\n");
}
