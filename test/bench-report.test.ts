// The benchmark suite's own arithmetic and outputs (lib/bench/report.ts): median and spread
// of timings, the speed ratio, figures in each unit, and the table and markdown built from a
// hand-made report. Nothing here times anything or runs a peer.

import { describe, expect, it } from "vitest";

import {
  displayValue,
  formatJobs,
  formatMarkdown,
  formatNumber,
  formatSpread,
  formatTable,
  speedRatio,
  summarize,
  RATIO_NOTE,
  type BenchReport,
} from "../lib/bench/report.js";
import { ValueError } from "../lib/errors.js";
import { expectThrows } from "./helpers.js";

describe("summarize", () => {
  it("takes the middle value of an odd count and the mean of the middle two of an even one", () => {
    expect(summarize([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, repeats: 3 });
    expect(summarize([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, repeats: 4 });
    expect(summarize([0.5])).toEqual({ median: 0.5, min: 0.5, max: 0.5, repeats: 1 });
  });

  it("does not reorder its argument", () => {
    const seconds = [3, 1, 2];
    summarize(seconds);
    expect(seconds).toEqual([3, 1, 2]);
  });

  it("rejects no timings and timings that are not finite or are negative", () => {
    expectThrows(() => summarize([]), ValueError, "summarize: needs at least one timing");
    expectThrows(
      () => summarize([1, NaN]),
      ValueError,
      "summarize: timings must be finite and >= 0, got NaN",
    );
    expectThrows(
      () => summarize([-1]),
      ValueError,
      "summarize: timings must be finite and >= 0, got -1",
    );
  });
});

describe("speedRatio", () => {
  const of = (median: number) => ({ median, min: median, max: median, repeats: 1 });

  it("is the peer's median time over deepnode's: above 1 when deepnode is faster", () => {
    expect(speedRatio(of(1), of(2))).toBe(2);
    expect(speedRatio(of(4), of(1))).toBe(0.25);
  });

  it("handles a zero time on deepnode's side", () => {
    expect(speedRatio(of(0), of(0))).toBe(1);
    expect(speedRatio(of(0), of(1))).toBe(Infinity);
  });
});

describe("displayValue and formatting", () => {
  it("turns seconds per run into a rate of the work or a time in the unit", () => {
    expect(displayValue("GFLOP/s", 0.5, 3e9)).toBe(6);
    expect(displayValue("GB/s", 2, 8e9)).toBe(4);
    expect(displayValue("us", 2.5e-6)).toBeCloseTo(2.5, 12);
    expect(displayValue("ms", 0.25)).toBe(250);
    expect(displayValue("s", 3)).toBe(3);
  });

  it("rejects a rate without the work per run", () => {
    expectThrows(
      () => displayValue("GFLOP/s", 1),
      ValueError,
      "displayValue: unit GFLOP/s needs the work per run",
    );
  });

  it("writes three significant figures and whole numbers from 1000 up", () => {
    expect(formatNumber(1234.56)).toBe("1235");
    expect(formatNumber(97.123)).toBe("97.1");
    expect(formatNumber(5.0)).toBe("5.00");
    expect(formatNumber(0.25912)).toBe("0.259");
    expect(formatNumber(0.000123456)).toBe("0.000123");
    expect(formatNumber(0)).toBe("0");
    expect(formatNumber(Infinity)).toBe("Infinity");
  });

  it("puts the fastest run at the top of a rate's spread and at the bottom of a time's", () => {
    const s = { median: 0.2, min: 0.1, max: 0.4, repeats: 3 };
    expect(formatSpread("GFLOP/s", s, 1e9)).toBe("2.50..10.0");
    expect(formatSpread("ms", s)).toBe("100..400");
  });
});

function sampleReport(): BenchReport {
  return {
    meta: { cpu: "test cpu, 2 cores", node: "v20" },
    peers: ["torch", "tfjs-cpu"],
    skippedBackends: [{ device: "cuda", reason: "no GPU" }],
    notes: ["reference: small only"],
    rows: [
      {
        name: "matmul 4^3",
        group: "kernel",
        device: "cpu",
        unit: "GFLOP/s",
        work: 2e9,
        summary: { median: 1, min: 0.5, max: 2, repeats: 5 },
        peers: [
          { peer: "torch", summary: { median: 2, min: 2, max: 2, repeats: 5 } },
          { peer: "tfjs-cpu", skipped: "op missing" },
        ],
      },
      {
        name: "job | x",
        group: "job",
        device: "reference",
        unit: "s",
        note: "small",
        skipped: "failed: boom",
        peers: [
          {
            peer: "torch",
            summary: { median: 3, min: 3, max: 3, repeats: 1 },
            extra: { peakRssMiB: 1119.4, testAccuracy: [0.91234, 0.95] },
          },
          { peer: "tfjs-cpu", skipped: "op missing" },
        ],
      },
    ],
  };
}

describe("formatTable", () => {
  it("pads columns, shows each peer's figure with the ratio, and footnotes every skip", () => {
    const lines = formatTable(sampleReport()).split("\n");
    expect(lines.slice(0, 4)).toEqual([
      "case             device     unit     median  spread      n  torch (ratio)  tfjs-cpu (ratio)",
      "---------------  ---------  -------  ------  ----------  -  -------------  ----------------",
      "matmul 4^3       cpu        GFLOP/s  2.00    1.00..4.00  5  1.00 (2.00x)   - [1]",
      "job | x (small)  reference  s        - [2]                  3.00           - [1]",
    ]);
    expect(lines.slice(4)).toEqual([
      "",
      RATIO_NOTE,
      "cuda: skipped, no GPU",
      "reference: small only",
      "[1] tfjs-cpu: op missing",
      "[2] failed: boom",
      "job | x on reference: torch: peakRssMiB 1119, testAccuracy 0.912 / 0.950",
    ]);
  });
});

describe("formatMarkdown", () => {
  it("lists the machine, then one table with escaped cells, then the skip reasons", () => {
    const lines = formatMarkdown(sampleReport()).split("\n");
    expect(lines.slice(0, 5)).toEqual([
      "# deepnode benchmarks",
      "",
      "- cpu: test cpu, 2 cores",
      "- node: v20",
      "",
    ]);
    expect(lines[7]).toBe(
      "| case | device | unit | median | spread | n | torch (ratio) | tfjs-cpu (ratio) |",
    );
    expect(lines[8]).toBe("| --- | --- | --- | --- | --- | --- | --- | --- |");
    expect(lines[9]).toBe(
      "| matmul 4^3 | cpu | GFLOP/s | 2.00 | 1.00..4.00 | 5 | 1.00 (2.00x) | - [1] |",
    );
    expect(lines[10]).toBe("| job \\| x (small) | reference | s | - [2] |  |  | 3.00 | - [1] |");
    expect(lines.slice(12)).toEqual([
      "- cuda: skipped, no GPU",
      "- reference: small only",
      "- [1] tfjs-cpu: op missing",
      "- [2] failed: boom",
      "- job | x on reference: torch: peakRssMiB 1119, testAccuracy 0.912 / 0.950",
      "",
    ]);
  });
});

describe("formatJobs", () => {
  it("gives each job row what deepnode and every peer reported, skipping peers without", () => {
    const report = sampleReport();
    report.rows[1]!.extra = { peakRssMiB: 466, liveTensorsAfterEachEpoch: [40, 40] };
    expect(formatJobs(report)).toEqual([
      "job | x on reference: deepnode: peakRssMiB 466, liveTensorsAfterEachEpoch 40 / 40;" +
        " torch: peakRssMiB 1119, testAccuracy 0.912 / 0.950",
    ]);
  });
});

// ---- the IMDB LSTM job beside PyTorch (bench/cases/imdb.ts, bench/imdb_data.ts) -----------
// Its wiring without PyTorch: the data both sides train on, the file the peer reads, which
// runs list the job, and the skip a machine without python3-torch shows. Where a python with
// torch is present, its reader is checked against deepnode's on the same file.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import {
  FULL_IMDB_JOB,
  SHORT_IMDB_JOB,
  cases as imdbCases,
  imdbCase,
} from "../bench/cases/imdb.js";
import type { BenchCase, PeerParams, Plan } from "../bench/cases/types.js";
import {
  imdbBenchFile,
  prepareImdbBench,
  readImdbBenchFile,
  trainImdbBench,
  writeImdbBenchFile,
  type ImdbBenchData,
} from "../bench/imdb_data.js";
import { measurePeers, selectCases } from "../bench/main.js";
import { pythonCandidates, torchPeer } from "../bench/peers/index.js";
import { loadCases } from "../bench/registry.js";
import { FormatError } from "../lib/errors.js";
import type { ImdbData } from "../lib/data/imdb.js";
import { F, manualSeed, optim, scope } from "../lib/index.js";
import { SentimentLSTM, collateReviews, sentimentConfig, trainStep } from "../examples/imdb.js";

const WORDS = ["good", "great", "film", "bad", "dull", "plot", "cast", "!", "fine", "awful"];

/** Reviews of 1 to 9 words, so that batches sort and some reviews are cut to maxLength. */
function tinyReviews(count: number, salt: number) {
  const texts = Array.from({ length: count }, (_, k) =>
    Array.from({ length: 1 + ((k * 7 + salt) % 9) }, (_, j) => WORDS[(k + j * salt) % 10]).join(
      " ",
    ),
  );
  return { texts, labels: Int32Array.from(texts, (_, k) => k % 2) };
}

const tinyData: ImdbData = { train: tinyReviews(14, 3), test: tinyReviews(6, 5) };
const tinyJob = {
  ...SHORT_IMDB_JOB,
  limit: undefined,
  epochs: 2,
  batchSize: 4,
  maxLength: 6,
  vocabSize: 12,
  minFreq: 1,
  embeddingDim: 4,
  hiddenSize: 5,
};

function scratchDir(): string {
  return mkdtempSync(join(tmpdir(), "deepnode-imdb-bench-test-"));
}

/** What torch_peer.py's imdb_summary reports, computed from deepnode's side. */
function summary(data: ImdbBenchData) {
  const split = (s: ImdbBenchData["train"]) => ({
    reviews: s.ids.length,
    tokens: s.ids.reduce((sum, ids) => sum + ids.length, 0),
    idSum: s.ids.reduce((sum, ids) => sum + ids.reduce((a, b) => a + b, 0), 0),
    positives: s.labels.reduce((a, b) => a + b, 0),
    firstReview: Array.from(s.ids[0]!),
  });
  const epochs = data.epochs.map((b) => ({
    batches: b.length,
    firstBatch: b[0],
    lastBatch: b[b.length - 1],
  }));
  const sizes = { vocabSize: data.vocabSize, maxLength: data.maxLength };
  return { ...sizes, train: split(data.train), test: split(data.test), epochs };
}

function torchPython(): string | undefined {
  return pythonCandidates().find(
    (p) => p !== undefined && p !== "" && spawnSync(p, ["-c", "import torch"]).status === 0,
  );
}

const python = torchPython();
const peerScript = fileURLToPath(new URL("../bench/peers/torch_peer.py", import.meta.url));
const plan: Plan = { warmup: 1, repeats: 3, budget: 5, quick: true };

describe("the IMDB LSTM job beside PyTorch: data, file, cases and skip", () => {
  const data = prepareImdbBench(tinyJob, tinyData);

  it("draws every epoch's batches up front: each review once, batches longest first", () => {
    expect(data.epochs).toHaveLength(2);
    for (const batches of data.epochs) {
      expect(batches.flat().sort((a, b) => a - b)).toEqual([...Array(14).keys()]);
      expect(batches.map((b) => b.length)).toEqual(expect.arrayContaining([4, 4, 4, 2]));
      for (const batch of batches) {
        const lengths = batch.map((k) => data.train.ids[k]!.length);
        expect(lengths).toEqual([...lengths].sort((a, b) => b - a));
      }
    }
    expect(data.epochs[1]).not.toEqual(data.epochs[0]);
    expect(Math.max(...data.train.ids.map((ids) => ids.length))).toBe(6);
    expect(prepareImdbBench(tinyJob, tinyData)).toEqual(data);
  });

  it("writes a file that reads back to the same ids, labels and batches", () => {
    const dir = scratchDir();
    const path = join(dir, "reviews.bin");
    writeImdbBenchFile(path, data);
    expect(readImdbBenchFile(path)).toEqual(data);

    const bytes = readFileSync(path);
    const headerLength = bytes.readUInt32LE(0);
    expect(headerLength % 4).toBe(0);
    const header = JSON.parse(bytes.subarray(4, 4 + headerLength).toString("utf8"));
    expect(header.sections.map((s: [string, number]) => s[0])).toEqual([
      "train.lengths",
      "train.labels",
      "train.ids",
      "test.lengths",
      "test.labels",
      "test.ids",
      "epoch1.batchSizes",
      "epoch1.order",
      "epoch2.batchSizes",
      "epoch2.order",
    ]);
    const tokens = summary(data).train.tokens + summary(data).test.tokens;
    // Lengths and labels of both splits, their ids, and per epoch 4 batch sizes and 14 indices.
    expect(bytes.length).toBe(4 + headerLength + 4 * (2 * 14 + 2 * 6 + tokens + 2 * (4 + 14)));
    rmSync(dir, { recursive: true });
  });

  it("rejects a file of another layout with a FormatError naming it", () => {
    const dir = scratchDir();
    const path = join(dir, "other.bin");
    writeFileSync(path, Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from("{}")]));
    expectThrows(
      () => readImdbBenchFile(path),
      FormatError,
      `readImdbBenchFile: ${path}: expected format deepnode.bench.imdb version 1, ` +
        "got undefined undefined",
    );
    writeFileSync(path, Buffer.from([1, 0]));
    expectThrows(
      () => readImdbBenchFile(path),
      FormatError,
      `readImdbBenchFile: ${path}: shorter than 4 bytes`,
    );
    rmSync(dir, { recursive: true });
  });

  it.skipIf(python === undefined)(
    `PyTorch's reader sees the same reviews and batches${python ? "" : " (no python with torch)"}`,
    () => {
      const dir = scratchDir();
      const path = join(dir, "reviews.bin");
      writeImdbBenchFile(path, data);
      const run = spawnSync(python!, [peerScript, "imdb-summary", path], { encoding: "utf8" });
      expect(run.stderr).toBe("");
      expect(JSON.parse(run.stdout)).toEqual(summary(data));
      rmSync(dir, { recursive: true });
    },
  );

  it.skipIf(python === undefined)(
    `PyTorch's padded LSTM read at the last token is its packed one${python ? "" : " (no torch)"}`,
    () => {
      const dir = scratchDir();
      const path = join(dir, "reviews.bin");
      writeImdbBenchFile(path, data);
      const args = [peerScript, "imdb-packing-check", path];
      const run = spawnSync(python!, args, { encoding: "utf8" });
      const check = JSON.parse(run.stdout) as { logits: number; gradients: object };
      expect(check.logits).toBeLessThan(1e-6);
      expect(Object.keys(check.gradients)).toHaveLength(7);
      for (const diff of Object.values(check.gradients)) expect(diff).toBeLessThan(1e-6);
      rmSync(dir, { recursive: true });
    },
  );

  // The accuracies of the two sides differ run to run with their own initial weights and
  // dropout masks; from the same weights, dropout off, the training itself must agree.
  it.skipIf(python === undefined)(
    `trains step for step as PyTorch does from the same weights${python ? "" : " (no torch)"}`,
    () => {
      const dir = scratchDir();
      const path = join(dir, "reviews.bin");
      writeImdbBenchFile(path, data);
      manualSeed(3);
      const config = sentimentConfig({ ...tinyJob, vocabSize: data.vocabSize, dropout: 0 });
      const model = new SentimentLSTM(config);
      const weights = (m: SentimentLSTM) =>
        Object.fromEntries(
          [...m.namedParameters()].map(([name, p]) => [name, Array.from(p.dataSync())]),
        );
      const shapes = Object.fromEntries([...model.namedParameters()].map(([n, p]) => [n, p.shape]));
      const start = weights(model);
      const params = Object.fromEntries(
        Object.entries(start).map(([name, data]) => [name, { shape: shapes[name], data }]),
      );
      // A clipping norm the first step's gradients exceed, so that clipping is compared too.
      const settings = { lr: 0.05, clipNorm: 0.1 };
      scope(() => {
        const batch = collateReviews(data.train, data.epochs[0]![0]!);
        F.crossEntropy(model.forward(batch.ids, batch.lengths), batch.targets).backward();
      });
      const firstGrads = [...model.parameters()].flatMap((p) => Array.from(p.grad!.dataSync()));
      expect(Math.hypot(...firstGrads)).toBeGreaterThan(settings.clipNorm);
      const optimizer = new optim.Adam(model.parameters(), { lr: settings.lr });
      const losses = data.epochs
        .flat()
        .map((indices) => trainStep(model, optimizer, data.train, indices, settings.clipNorm));
      const run = spawnSync(python!, [peerScript, "imdb-trajectory", path], {
        encoding: "utf8",
        input: JSON.stringify({ params, ...settings }),
      });
      expect(run.stderr).toBe("");
      const torch = JSON.parse(run.stdout) as {
        losses: number[];
        params: Record<string, number[]>;
      };
      expect(losses).toHaveLength(8);
      expect(torch.losses).toHaveLength(8);
      losses.forEach((loss, k) => expect(loss).toBeCloseTo(torch.losses[k]!, 5));
      const final = weights(model);
      expect(Object.keys(torch.params).sort()).toEqual(Object.keys(final).sort());
      for (const [name, values] of Object.entries(final)) {
        const moved = values.some((v, k) => Math.abs(v - start[name]![k]!) > 1e-3);
        expect(moved, `${name} moved`).toBe(true);
        values.forEach((v, k) => expect(v, name).toBeCloseTo(torch.params[name]![k]!, 5));
      }
      rmSync(dir, { recursive: true });
    },
  );

  it("trains deepnode's side on those batches, scoring the test reviews after each epoch", () => {
    const history = trainImdbBench(data, tinyJob, "cpu");
    expect(history.map((h) => h.steps)).toEqual([4, 4]);
    for (const h of history) {
      expect(h.seconds).toBeGreaterThan(0);
      expect(h.trainLoss).toBeGreaterThan(0);
      expect([0, 1, 2, 3, 4, 5, 6].map((k) => k / 6)).toContain(h.testAccuracy);
    }
  });

  it("lists the short job in every run, and the whole epoch only with --full", async () => {
    const names = imdbCases.map((c) => c.name);
    const listed = (await loadCases()).map((c) => c.name);
    expect(listed).toEqual(expect.arrayContaining(names));
    expect(listed.indexOf(names[0]!)).toBeGreaterThan(
      listed.indexOf(listed.find((n) => /MNIST/.test(n))!),
    );
    for (const quick of [false, true]) {
      expect(selectCases(imdbCases, { quick }).map((c) => c.name)).toEqual([names[0]]);
      expect(selectCases(imdbCases, { quick, full: true }).map((c) => c.name)).toEqual(names);
    }
    expect(selectCases(imdbCases, { quick: false, filter: "imdb" })).toHaveLength(1);
    // Several comma-separated texts keep what matches any of them (the GPU check's list).
    const all = await loadCases();
    const picked = selectCases(all, { quick: true, filter: "matmul,MNIST," }).map((c) => c.name);
    expect(picked.length).toBeGreaterThan(1);
    expect(picked.every((n) => /matmul|MNIST/.test(n))).toBe(true);
    expect(picked.some((n) => /MNIST/.test(n))).toBe(true);
    expect(imdbCases.map((c) => c.peer?.op)).toEqual(["imdb lstm", "imdb lstm"]);
    expect(SHORT_IMDB_JOB).toEqual({ ...FULL_IMDB_JOB, limit: 12_800 });
  });

  it("gives the peer the job's settings and a file of the reviews deepnode trains on", () => {
    const job = { ...tinyJob, limit: 20 };
    const params = imdbCase("tiny", job, "step").peer!.params as (p: Plan) => PeerParams;
    const given = params(plan);
    expect(given).toEqual({ ...job, per: "step", file: expect.any(String) });
    expect(readImdbBenchFile(given.file as string)).toEqual(prepareImdbBench(job));
    expect(imdbBenchFile(job)).toBe(given.file);
    // Test workers may end without an exit event, which would leave the folder behind.
    rmSync(dirname(given.file as string), { recursive: true });
  });

  it("skips PyTorch with its reason where no python has torch, preparing nothing", () => {
    const unprepared: BenchCase = {
      name: "job that must not be prepared",
      group: "job",
      unit: "s",
      peer: {
        op: "imdb lstm",
        params: () => {
          throw new Error("the parameters of an absent peer's case were made");
        },
      },
    };
    const all = [imdbCases[0]!, unprepared];
    const report: BenchReport = {
      meta: {},
      peers: ["torch"],
      skippedBackends: [],
      notes: [],
      rows: all.map((c) => ({
        ...{ name: c.name, group: "job", device: "cpu", unit: "s", peers: [] },
        skipped: "deepnode's side is not run here",
      })),
    };
    const peer = torchPeer("cpu", ["/nonexistent/python3"]);
    const reason = "no python3 with torch (DEEPNODE_BENCH_PYTHON names one)";
    expect(peer.unavailable).toBe(reason);
    const log: string[] = [];
    measurePeers(report, all, [peer], true, (line) => log.push(line));
    expect(log).toEqual([`torch: ${reason}`]);
    for (const row of report.rows) expect(row.peers).toEqual([{ peer: "torch", skipped: reason }]);
    expect(formatTable(report)).toContain(`[2] torch: ${reason}`);
    // A GPU peer that is absent says why beside the cpu rows too, not "gpu rows only".
    const gpuPeer = {
      ...peer,
      name: "torch-cuda",
      unavailable: "this python's torch sees no CUDA GPU",
    };
    for (const row of report.rows) row.peers = [];
    measurePeers(report, all, [gpuPeer], true, () => undefined);
    for (const row of report.rows) {
      expect(row.peers).toEqual([{ peer: "torch-cuda", skipped: gpuPeer.unavailable }]);
    }
  });
});
