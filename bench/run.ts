// deepnode's benchmarks beside PyTorch: matmul 1024^3 and a whole MNIST training epoch.
// Each case reports the median (and spread) over repeats after warm-up; where
// `python3` has torch, the same case runs there in the same run and the ratio is printed.
//
//   npm run bench -- [--quick] [--filter NAME] [--json FILE]

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { liveTensors, matmul, randn, scope, getNumThreads } from "../lib/index.js";
import { manualSeed, nn } from "../lib/index.js";
import { buildInfo } from "../lib/runtime.js";
import { trainMnist } from "../examples/mnist.js";

const here = dirname(fileURLToPath(import.meta.url));
const peerScript = join(here, "..", "..", "bench", "peers", "torch_peer.py");

interface Row {
  name: string;
  metric: string;
  deepnode: number;
  spread: string;
  torch: number | null;
  torchNote: string;
  higherIsBetter: boolean;
  extra?: Record<string, unknown>;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function spreadOf(values: number[], scale: (v: number) => number): string {
  const mapped = values.map(scale);
  return `${Math.min(...mapped).toFixed(1)}..${Math.max(...mapped).toFixed(1)}`;
}

function findPython(): string | null {
  for (const candidate of [process.env.DEEPNODE_BENCH_PYTHON, "/usr/bin/python3", "python3"]) {
    if (candidate === undefined) continue;
    const probe = spawnSync(candidate, ["-c", "import torch"], { encoding: "utf8" });
    if (probe.status === 0) return candidate;
  }
  return null;
}

function runPeer(python: string | null, args: string[]): { result: unknown; note: string } {
  if (python === null) return { result: null, note: "skipped: no python3 with torch" };
  const run = spawnSync(python, [peerScript, ...args], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (run.status !== 0)
    return { result: null, note: `failed: ${run.stderr.trim().split("\n").pop()}` };
  return { result: JSON.parse(run.stdout), note: "" };
}

function benchMatmul(python: string | null, size: number, repeats: number): Row {
  const a = randn([size, size]);
  const b = randn([size, size]);
  const times: number[] = [];
  for (let i = 0; i < repeats + 3; i++) {
    const start = performance.now();
    scope(() => {
      matmul(a, b);
    });
    if (i >= 3) times.push((performance.now() - start) / 1000);
  }
  const flops = 2 * size ** 3;
  const gflops = (s: number) => flops / s / 1e9;
  const peer = runPeer(python, ["matmul", String(size), String(repeats)]);
  const torchTimes = (peer.result as { seconds: number[] } | null)?.seconds;
  return {
    name: `matmul ${size}^3 fp32`,
    metric: "GFLOP/s",
    deepnode: gflops(median(times)),
    spread: spreadOf(times, gflops),
    torch: torchTimes === undefined ? null : gflops(median(torchTimes)),
    torchNote: peer.note,
    higherIsBetter: true,
  };
}

function benchMnist(python: string | null, epochs: number, limit: number | undefined): Row {
  const live: number[] = [];
  const { history } = trainMnist({
    epochs,
    batchSize: 64,
    lr: 1e-3,
    seed: 0,
    ...(limit === undefined ? {} : { limit }),
    onEpoch: () => live.push(liveTensors()),
  });
  const seconds = history.map((h) => h.seconds);
  const digits = join(
    dirname(createRequire(import.meta.url).resolve("mnist/package.json")),
    "src",
    "digits",
  );
  const args = [
    "mnist",
    digits,
    String(epochs),
    "64",
    "0.001",
    "0",
    ...(limit === undefined ? [] : [String(limit)]),
  ];
  const peer = runPeer(python, args);
  const torchHistory = (
    peer.result as { history: { seconds: number; testAccuracy: number }[] } | null
  )?.history;
  return {
    name: `MNIST epoch (${limit ?? 8004} images, batch 64)`,
    metric: "s/epoch",
    deepnode: median(seconds),
    spread: spreadOf(seconds, (s) => s),
    torch: torchHistory === undefined ? null : median(torchHistory.map((h) => h.seconds)),
    torchNote: peer.note,
    higherIsBetter: false,
    extra: {
      testAccuracy: history.map((h) => h.testAccuracy),
      torchTestAccuracy: torchHistory?.map((h) => h.testAccuracy) ?? null,
      liveTensorsAfterEachEpoch: live,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
    },
  };
}

/** One forward and backward of an LSTM at the IMDB example's shapes (batch-first input). */
function benchLstm(python: string | null, repeats: number): Row {
  const [batch, steps, features, hidden] = [64, 256, 128, 128];
  manualSeed(0);
  const lstm = new nn.LSTM(features, hidden, { batchFirst: true });
  const x = randn([batch, steps, features]);
  const times: number[] = [];
  for (let i = 0; i < repeats + 2; i++) {
    const start = performance.now();
    scope(() => {
      lstm.zeroGrad();
      const [out, [h]] = lstm.forward(x);
      out.mean().add(h.sum()).backward();
    });
    if (i >= 2) times.push((performance.now() - start) / 1000);
  }
  const args = [batch, steps, features, hidden, repeats].map(String);
  const peer = runPeer(python, ["lstm", ...args]);
  const torchTimes = (peer.result as { seconds: number[] } | null)?.seconds;
  return {
    name: `LSTM ${features}->${hidden} forward+backward [${batch}, ${steps}]`,
    metric: "ms/step",
    deepnode: median(times) * 1000,
    spread: spreadOf(times, (s) => s * 1000),
    torch: torchTimes === undefined ? null : median(torchTimes) * 1000,
    torchNote: peer.note,
    higherIsBetter: false,
  };
}

function ratioText(row: Row): string {
  if (row.torch === null) return row.torchNote;
  const speedup = row.higherIsBetter ? row.deepnode / row.torch : row.torch / row.deepnode;
  return `${speedup.toFixed(2)}x PyTorch's speed`;
}

function printTable(rows: Row[]): void {
  const lines = rows.map((r) => [
    r.name,
    r.metric,
    r.deepnode.toFixed(2),
    r.spread,
    r.torch === null ? "-" : r.torch.toFixed(2),
    ratioText(r),
  ]);
  const header = ["case", "metric", "deepnode", "spread", "pytorch", "ratio"];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log(fmt(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const l of lines) console.log(fmt(l));
  for (const r of rows)
    if (r.extra !== undefined) console.log(`${r.name}: ${JSON.stringify(r.extra)}`);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      filter: { type: "string" },
      json: { type: "string" },
    },
  });
  const python = findPython();
  const info = buildInfo();
  console.log(
    `deepnode bench: ${getNumThreads()} threads, gemm ${info.native?.gemmKernel}, peer ${python ?? "none"}`,
  );
  const cases: [string, () => Row][] = [
    ["matmul", () => benchMatmul(python, 1024, values.quick ? 5 : 20)],
    ["mnist", () => benchMnist(python, values.quick ? 1 : 3, values.quick ? 1024 : undefined)],
    ["lstm", () => benchLstm(python, values.quick ? 3 : 10)],
  ];
  const rows = cases
    .filter(([name]) => values.filter === undefined || name.includes(values.filter))
    .map(([, run]) => run());
  printTable(rows);
  if (values.json !== undefined)
    writeFileSync(values.json, JSON.stringify({ info, rows }, null, 2));
}

main();
