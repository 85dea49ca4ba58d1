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
