// The `deepnode` command as a user runs it: train, eval and info through main() in-process
// (stdout and stderr captured), the bin script spawned against dist/, bad usage, broken
// weight files, atomic saves, and standard IDX files (plain and gzipped) via --data.

import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { main } from "../lib/cli/index.js";
import { finishedRunMessage } from "../lib/cli/checks.js";
import { loadMnistFromPackage, type MnistSplit } from "../lib/data/mnist.js";
import { DeviceError } from "../lib/errors.js";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensorsMetadata,
} from "../lib/io/safetensors.js";
import { buildInfo } from "../lib/runtime.js";
import type { CudaStatus } from "../lib/backend/cuda/plugin.js";
import { trainMnist } from "../examples/mnist.js";
import { expectThrows } from "./helpers.js";

const root = join(import.meta.dirname, "..");
const scratch = mkdtempSync(join(tmpdir(), "deepnode-cli-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// The spawned runs need dist/ to hold this tree's CLI: build it when a compiled file is
// missing or older than its source (tsc still emits when another engineer's file has a type
// error, so its exit status is not checked, only that the CLI was emitted).
beforeAll(() => {
  const built = join(root, "dist", "lib", "cli", "index.js");
  if (!distIsStale()) return;
  try {
    execFileSync("npm", ["run", "build:ts"], { cwd: root, stdio: "pipe", timeout: 120_000 });
  } catch {
    // Checked just below.
  }
  expect(existsSync(built), `npm run build:ts did not produce ${built}`).toBe(true);
});

function distIsStale(): boolean {
  return ["lib", "examples"].some((dir) =>
    readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
      .filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))
      .some((name) => {
        const compiled = join(root, "dist", dir, name.replace(/\.ts$/, ".js"));
        const source = statSync(join(root, dir, name)).mtimeMs;
        return !existsSync(compiled) || statSync(compiled).mtimeMs < source;
      }),
  );
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs main(args) in this process, capturing what it prints. */
async function cli(...args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((...parts: unknown[]) => {
    out.push(`${parts.map(String).join(" ")}\n`);
  });
  const write = (sink: string[]) => (chunk: string | Uint8Array) => {
    sink.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    return true;
  };
  const stdout = vi.spyOn(process.stdout, "write").mockImplementation(write(out));
  const stderr = vi.spyOn(process.stderr, "write").mockImplementation(write(err));
  try {
    const code = await main(args);
    return { code, stdout: out.join(""), stderr: err.join("") };
  } finally {
    log.mockRestore();
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

const EPOCH_LINE = new RegExp(
  String.raw`^epoch 1/1  train_loss (\d+\.\d{4})  test_loss (\d+\.\d{4})` +
    String.raw`  test_acc (\d+\.\d{2})%  time (\d+\.\d)s  (\d+) img/s$`,
  "m",
);
const EVAL_LINE = /^test_loss (\d+\.\d{4}) {2}test_acc (\d+\.\d{2})% {2}\((\d+) images\)$/m;

/** PyTorch's state-dict names and shapes of the MNIST example network, in order. */
const MNIST_NET_TENSORS: [string, number[]][] = [
  ["conv1.weight", [32, 1, 3, 3]],
  ["conv1.bias", [32]],
  ["conv2.weight", [64, 32, 3, 3]],
  ["conv2.bias", [64]],
  ["fc1.weight", [128, 9216]],
  ["fc1.bias", [128]],
  ["fc2.weight", [10, 128]],
  ["fc2.bias", [10]],
];

function tempFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.includes(".tmp-"));
}

describe("deepnode train mnist / eval mnist", () => {
  const weights = join(scratch, "w.safetensors");
  let train: CliRun;

  beforeAll(async () => {
    train = await cli(
      "train",
      "mnist",
      "--epochs",
      "1",
      "--limit",
      "512",
      "--out",
      weights,
      "--no-progress",
    );
  });

  it("trains one epoch, prints the header, one fixed-format epoch line and the save", () => {
    expect(train.stderr).toBe("");
    expect(train.code).toBe(0);
    const lines = train.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(
      "training MNISTNet on the mnist package's 10,000 digits" +
        " (512 training images, spread evenly over the split; each epoch is scored on all" +
        " 1,996 test images)" +
        " (device cpu, batch 64, lr 0.001, seed 0)",
    );
    const epoch = EPOCH_LINE.exec(lines[1]!);
    expect(epoch, lines[1]).not.toBeNull();
    const [, trainLoss, testLoss, accuracy, , imagesPerSecond] = epoch!.map(Number);
    expect(trainLoss).toBeGreaterThan(0);
    expect(testLoss).toBeGreaterThan(0);
    expect(accuracy).toBeGreaterThanOrEqual(0);
    expect(accuracy).toBeLessThanOrEqual(100);
    expect(imagesPerSecond).toBeGreaterThan(0);
    expect(lines[2]).toBe(`saved weights to ${weights}`);
  });

  it("saves valid safetensors with PyTorch's names, shapes and metadata", () => {
    const decoded = decodeSafetensors(readFileSync(weights), weights);
    const names = Object.keys(decoded.tensors);
    expect(names).toEqual(MNIST_NET_TENSORS.map(([name]) => name));
    for (const [name, shape] of MNIST_NET_TENSORS) {
      const tensor = decoded.tensors[name]!;
      expect(tensor.shape, name).toEqual(shape);
      expect(tensor.dtype, name).toBe("float32");
      expect(tensor.data.every(Number.isFinite), `${name} is finite`).toBe(true);
    }
    expect(readSafetensorsMetadata(weights)).toEqual({ format: "pt", model: "MNISTNet" });
    expect(tempFiles(scratch)).toEqual([]);
  });

  it("evaluates the saved weights to the accuracy the training run reported", async () => {
    const trainAccuracy = EPOCH_LINE.exec(train.stdout)![3];
    const trainTestLoss = EPOCH_LINE.exec(train.stdout)![2];
    const run = await cli("eval", "mnist", "--weights", weights);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const line = EVAL_LINE.exec(run.stdout);
    expect(line, run.stdout).not.toBeNull();
    expect(line![2]).toBe(trainAccuracy);
    expect(line![1]).toBe(trainTestLoss);
    expect(line![3]).toBe("1996");
  });

  it("runs as the installed bin: node bin/deepnode.js against dist/", () => {
    const run = spawnSync(
      process.execPath,
      ["bin/deepnode.js", "eval", "mnist", "--weights", weights],
      { cwd: root, encoding: "utf8", timeout: 60_000 },
    );
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(EVAL_LINE.exec(run.stdout)?.[2]).toBe(EPOCH_LINE.exec(train.stdout)![3]);
  });

  it("replaces an existing file at --out completely", async () => {
    const target = join(scratch, "replaced.safetensors");
    const junk = Buffer.alloc(2 * statSync(weights).size, 0xff);
    writeFileSync(target, junk);
    const run = await cli(...["train", "mnist", "--epochs", "1", "--limit", "64", "--out", target]);
    expect(run.code).toBe(0);
    const bytes = readFileSync(target);
    expect(bytes.length).toBe(statSync(weights).size);
    expect(Object.keys(decodeSafetensors(bytes, target).tensors)).toHaveLength(8);
    expect(tempFiles(scratch)).toEqual([]);
  });

  it("leaves the previous file intact, and no temp file, when the save fails", async () => {
    // Root ignores read-only directories, so make the temp file's name too long instead:
    // the target's own name fits NAME_MAX (255) but `<name>.tmp-<pid>-<hex>` does not.
    const dir = join(scratch, "failing-save");
    mkdirSync(dir);
    const target = join(dir, `${"w".repeat(228)}.safetensors`);
    const previous = encodeSafetensors({
      a: { dtype: "float32", shape: [3], data: new Float32Array([1, 2, 3]) },
    });
    writeFileSync(target, previous);
    const run = await cli("train", "mnist", "--epochs", "1", "--limit", "64", "--out", target);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^deepnode: cannot save weights to '.*w{228}\.safetensors': /);
    expect(run.stderr).toContain("ENAMETOOLONG");
    expect(run.stdout).not.toContain("saved weights");
    expect(Buffer.compare(readFileSync(target), previous)).toBe(0);
    expect(readdirSync(dir)).toEqual([`${"w".repeat(228)}.safetensors`]);
  });
});

describe("deepnode usage errors (exit 2, message on stderr, nothing run)", () => {
  const cases: [string, string[], RegExp][] = [
    [
      "an unknown task",
      ["train", "foo"],
      /^deepnode: unknown task 'foo' \(available: mnist, imdb\)$/m,
    ],
    [
      "--epochs 0",
      ["train", "mnist", "--epochs", "0"],
      /option '--epochs <n>' argument '0' is invalid\. Expected a positive integer\.$/m,
    ],
    [
      "--lr abc",
      ["train", "mnist", "--lr", "abc"],
      /option '--lr <rate>' argument 'abc' is invalid\. Expected a positive number\.$/m,
    ],
    [
      "eval without --weights",
      ["eval", "mnist"],
      /required option '--weights <file>' not specified/,
    ],
    ["an unknown task for eval", ["eval", "foo", "--weights", "x"], /unknown task 'foo'/],
    ...["--out", "--metrics", "--checkpoint-dir", "--resume"].map(
      (flag): [string, string[], RegExp] => [
        `an empty ${flag}`,
        ["train", "mnist", "--limit", "64", "--epochs", "1", flag, ""],
        new RegExp(
          `option '${flag} <\\w+>' argument '' is invalid\\. ` +
            "Expected the path of a file or folder\\.$",
          "m",
        ),
      ],
    ),
    [
      "train imdb --vocab-size 1",
      ["train", "imdb", "--limit", "50", "--epochs", "1", "--vocab-size", "1"],
      /option '--vocab-size <n>' argument '1' is invalid\. Expected an integer >= 2\.$/m,
    ],
    [
      "--threads 5000 (setNumThreads takes at most 1024)",
      ["train", "mnist", "--threads", "5000"],
      /option '--threads <n>' argument '5000' is invalid\. Expected an integer in \[1, 1024\]\.$/m,
    ],
    [
      "an empty eval --data",
      ["eval", "mnist", "--weights", "w.safetensors", "--data", ""],
      /option '--data <dir>' argument '' is invalid\. Expected the path of a file or folder\.$/m,
    ],
    [
      "an empty bench --json",
      ["bench", "--filter", "tiny add [1]+[1]", "--peers", "", "--json", ""],
      /option '--json <file>' argument '' is invalid\. Expected the path of a file or folder\.$/m,
    ],
    ["an unknown command", ["bogus"], /unknown command 'bogus'/],
  ];

  it.each(cases)("rejects %s", async (_, args, message) => {
    const run = await cli(...args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).not.toMatch(/^training /m);
  });

  it("exits 0 for --help", async () => {
    const run = await cli("train", "--help");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("--epochs <n>");
  });
});

describe("deepnode train fails before training when it could not finish", () => {
  it("makes the missing folders of a relative --out, as --metrics does", async () => {
    const cwd = process.cwd();
    process.chdir(scratch);
    try {
      const out = join("made", "on-save", "w.safetensors");
      const run = await cli("train", "mnist", "--limit", "64", "--epochs", "1", "--out", out);
      expect(run.stderr).toBe("");
      expect(run.stdout).toContain(`saved weights to ${out}\n`);
      expect(readSafetensorsMetadata(out)).toEqual({ format: "pt", model: "MNISTNet" });
    } finally {
      process.chdir(cwd);
    }
  });

  it("refuses an --out that is not a model folder before training, losing nothing", async () => {
    const notes = join(scratch, "notes.txt");
    writeFileSync(notes, "keep");
    const run = await cli("train", "imdb", "--limit", "50", "--epochs", "1", "--out", notes);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `deepnode: saveSentimentModel: ${notes} exists and is not a folder; ` +
        "choose another output path\n",
    );
    expect(run.stdout).not.toContain("epoch 1/1");
    expect(readFileSync(notes, "utf8")).toBe("keep");
  });

  it("refuses an --out folder, with no stack trace", async () => {
    const folder = await cli("train", "mnist", "--limit", "64", "--epochs", "1", "--out", scratch);
    expect(folder).toEqual({
      code: 1,
      stdout: "",
      stderr: `deepnode: train mnist: --out '${scratch}' is a folder, not a file\n`,
    });
  });
});

describe("deepnode train refuses a bad flag in one line, before printing anything", () => {
  const idxLess = join(scratch, "no-idx-files");
  const aFile = join(scratch, "a-file.txt");
  // Folders with the IDX files' names, plain and gzipped: no file loadMnist could read.
  const idxFolders = join(scratch, "idx-folders");
  beforeAll(() => {
    mkdirSync(idxLess, { recursive: true });
    writeFileSync(aFile, "x");
    for (const name of ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"]) {
      mkdirSync(join(idxFolders, name), { recursive: true });
    }
  });
  const missing = () => join(scratch, "missing-thing");
  const cases: [string, () => string[], () => string][] = [
    [
      "--resume of a missing folder",
      () => ["--resume", missing()],
      () => `resume: ${missing()}: no such checkpoint or folder`,
    ],
    [
      "--resume of a file",
      () => ["--resume", aFile],
      () => `resume: ${aFile}: is a file, not a checkpoint or a folder of them`,
    ],
    [
      "--resume of a folder without checkpoints",
      () => ["--resume", idxLess],
      () => `resume: ${idxLess}: holds neither trainer_state.json nor a checkpoint-<step> folder`,
    ],
    [
      "--device tpu",
      () => ["--device", "tpu"],
      () => `device: unknown device 'tpu' (expected "cpu", "reference", "cuda" or "cuda:N")`,
    ],
    [
      "--checkpoint-dir of a file",
      () => ["--checkpoint-dir", aFile],
      () => `TASK: --checkpoint-dir '${aFile}' is a file, not a folder`,
    ],
    [
      "--metrics of a folder",
      () => ["--metrics", scratch],
      () => `TASK: --metrics '${scratch}' is a folder, not a file`,
    ],
    [
      "--out inside a file",
      () => ["--out", join(aFile, "sub", "model")],
      () => `TASK: --out '${join(aFile, "sub", "model")}': '${aFile}' is a file`,
    ],
    [
      "--plot inside a file",
      () => ["--plot", join(aFile, "sub", "curves.png")],
      () => `TASK: --plot '${join(aFile, "sub", "curves.png")}': '${aFile}' is a file`,
    ],
  ];
  const tasks: [string, string[]][] = [
    ["mnist", ["--out", join(scratch, "never.safetensors")]],
    ["imdb", ["--out", join(scratch, "never-imdb")]],
  ];

  for (const [task, out] of tasks) {
    it.each(cases)(`train ${task}: %s (exit 1)`, async (_, args, message) => {
      const run = await cli("train", task, "--epochs", "1", "--limit", "64", ...out, ...args());
      const expected = message().replace("TASK", `train ${task}`);
      expect(run).toEqual({ code: 1, stdout: "", stderr: `deepnode: ${expected}\n` });
    });
  }

  // root may write anywhere: as root the CLI runs as user nobody (through setpriv), where
  // nobody can read this checkout; as anyone else it runs as that user.
  const asRoot = process.getuid?.() === 0;
  const nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath];
  const cliFile = join(root, "dist", "lib", "cli", "index.js");
  const nobodyRuns =
    asRoot &&
    spawnSync("setpriv", [...nobody, "-e", `require("fs").accessSync(${JSON.stringify(cliFile)})`])
      .status === 0;
  const skip = asRoot && !nobodyRuns ? " (skipped: as root, and user nobody cannot run it)" : "";
  const runAs = async (...args: string[]) => {
    if (!asRoot) return cli(...args);
    const run = spawnSync("setpriv", [...nobody, "bin/deepnode.js", ...args], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
    });
    return { code: run.status, stdout: run.stdout, stderr: run.stderr };
  };
  it.skipIf(skip !== "")(`refuses output in a folder it may not write to${skip}`, async () => {
    const open = mkdtempSync(join(tmpdir(), "deepnode-perm-"));
    const locked = join(open, "locked");
    mkdirSync(locked);
    chmodSync(open, 0o755);
    chmodSync(locked, 0o555);
    try {
      const out = join(locked, "sub", "w.safetensors");
      const run = await runAs("train", "mnist", "--epochs", "1", "--limit", "64", "--out", out);
      const expected = `train mnist: --out '${out}': the folder '${locked}' is not writable`;
      expect(run).toEqual({ code: 1, stdout: "", stderr: `deepnode: ${expected}\n` });
      const writable = join(open, "w.safetensors");
      chmodSync(open, 0o777);
      const args = ["--epochs", "1", "--out", writable, "--checkpoint-dir", locked];
      const dir = await runAs("train", "mnist", ...args);
      const refused = `--checkpoint-dir '${locked}': the folder '${locked}' is not writable`;
      expect(dir).toEqual({ code: 1, stdout: "", stderr: `deepnode: train mnist: ${refused}\n` });
      expect(readdirSync(open)).toEqual(["locked"]);
    } finally {
      chmodSync(locked, 0o755);
      rmSync(open, { recursive: true, force: true });
    }
  });

  // root passes every permission check: a folder nothing can be made in still fails the probe.
  const procfs = existsSync("/proc/self");
  it.skipIf(!procfs)(
    `refuses an --out under /proc before training${procfs ? "" : " (no /proc)"}`,
    async () => {
      const out = "/proc/deepnode-no-such/w.safetensors";
      const run = await cli("train", "mnist", "--epochs", "1", "--limit", "64", "--out", out);
      const expected = `train mnist: --out '${out}': the folder '/proc' is not writable`;
      expect(run).toEqual({ code: 1, stdout: "", stderr: `deepnode: ${expected}\n` });
    },
  );

  const data: [string, string[], string][] = [
    [
      "mnist",
      ["--data", join(scratch, "no-such-idx")],
      `train mnist: --data folder '${join(scratch, "no-such-idx")}' does not exist`,
    ],
    [
      "mnist",
      ["--data", aFile],
      `train mnist: --data '${aFile}' is a file, not a folder of MNIST IDX files`,
    ],
    [
      "mnist",
      ["--data", idxLess],
      `train mnist: --data folder '${idxLess}' holds neither train-images-idx3-ubyte nor ` +
        "train-images-idx3-ubyte.gz",
    ],
    [
      "mnist",
      ["--data", idxFolders],
      `train mnist: --data folder '${idxFolders}' holds neither train-images-idx3-ubyte nor ` +
        "train-images-idx3-ubyte.gz",
    ],
    ["imdb", ["--data", scratch], `train imdb: reviews file '${scratch}' is a folder`],
  ];

  it.each(data)("train %s %j (exit 1)", async (task, args, message) => {
    const run = await cli("train", task, "--epochs", "1", ...args);
    expect(run).toEqual({ code: 1, stdout: "", stderr: `deepnode: ${message}\n` });
  });
});

describe("finishedRunMessage", () => {
  it("names where a finished run ended and how to train further", () => {
    const progress = { path: "ck/checkpoint-9", epoch: 3, globalStep: 9, stoppedEarly: false };
    expect(finishedRunMessage(progress, 3)).toBe(
      "nothing to train: the checkpoint ck/checkpoint-9 is at epoch 3, the last of --epochs 3;" +
        " to train further, pass a larger --epochs (e.g. --epochs 4)",
    );
    expect(finishedRunMessage({ ...progress, stoppedEarly: true }, 5)).toBe(
      "nothing to train: the checkpoint ck/checkpoint-9 stopped early at epoch 3 (early " +
        "stopping or a callback ended its run), and a stopped run stays stopped even with a " +
        "larger --epochs; to train further, start a new run without --resume",
    );
  });
});

describe("deepnode --version", () => {
  it("prints the package's version", async () => {
    const packageJson = JSON.parse(
      readFileSync(new URL("../package.json", import.meta.url), "utf8"),
    );
    const run = await cli("--version");
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${(packageJson as { version: string }).version}\n`);
  });
});

describe("deepnode eval with a bad weights file", () => {
  it("names a missing file (exit 1, as a missing --data is)", async () => {
    const missing = join(scratch, "missing.safetensors");
    const run = await cli("eval", "mnist", "--weights", missing);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`deepnode: weights file '${missing}' does not exist\n`);
  });

  const corrupt: [string, () => Uint8Array, RegExp][] = [
    ["a file shorter than 8 bytes", () => Buffer.from("hello\n"), /shorter than 8/],
    [
      "a header longer than the file",
      () => Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from("{}")]),
      /header length 256 exceeds the 2 bytes after it/,
    ],
    ["a header that is not JSON", () => prefixed("{not json}   "), /JSON/i],
  ];

  it.each(corrupt)("names %s (exit 1, no stack trace)", async (_, bytes, problem) => {
    const path = join(scratch, "corrupt.safetensors");
    writeFileSync(path, bytes());
    const run = await cli("eval", "mnist", "--weights", path);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^deepnode: loadSafetensors: ${path}: `));
    expect(run.stderr).toMatch(problem);
    expect(run.stderr.trimEnd().split("\n")).toHaveLength(1);
  });

  it("names a valid file of another model (exit 1)", async () => {
    const path = join(scratch, "other-model.safetensors");
    const tensors = {
      "fc.weight": { dtype: "float32" as const, shape: [2], data: new Float32Array(2) },
    };
    writeFileSync(path, encodeSafetensors(tensors));
    const run = await cli("eval", "mnist", "--weights", path);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`^deepnode: weights file '${path}' does not fit MNISTNet: .*missing keys: conv1`),
    );
    expect(run.stderr).toContain("unexpected keys: fc.weight");
  });

  it("names a directory given as the weights file (exit 1)", async () => {
    const run = await cli("eval", "mnist", "--weights", scratch);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `deepnode: loadSafetensors: ${scratch}: cannot be read: is a folder, not a file\n`,
    );
  });

  it("prints no stack trace from the bin either", () => {
    const path = join(scratch, "truncated.safetensors");
    writeFileSync(path, Buffer.from([16, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
    const run = spawnSync(
      process.execPath,
      ["bin/deepnode.js", "eval", "mnist", "--weights", path],
      { cwd: root, encoding: "utf8", timeout: 60_000 },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^deepnode: loadSafetensors: ${path}: `));
    expect(run.stderr).not.toMatch(/^\s+at /m);
  });
});

/** A safetensors-style file: the 8-byte length, then `header` as given. */
function prefixed(header: string): Uint8Array {
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([prefix, Buffer.from(header)]);
}

describe("deepnode info and devices", () => {
  it("prints the build as JSON", async () => {
    const run = await cli("info");
    expect(run.code).toBe(0);
    const info = JSON.parse(run.stdout) as {
      native: { gemmKernel: string; simd: string[] };
      devices: string[];
      cuda: { available: boolean; reason?: string };
    };
    expect(info.native.gemmKernel).toMatch(/\S/);
    expect(info.native.simd).toContain("generic");
    expect(info.devices).toContain("cpu");
    expect(info.devices).toContain("reference");
    expect(typeof info.cuda.available).toBe("boolean");
  });

  it("refuses a bad DEEPNODE_NUM_THREADS before training, unless --threads overrides it", () => {
    const train = (env: string, ...extra: string[]) =>
      spawnSync(
        process.execPath,
        ["bin/deepnode.js", "train", "mnist", "--epochs", "1", "--limit", "64", ...extra],
        {
          cwd: root,
          encoding: "utf8",
          timeout: 120_000,
          env: { ...process.env, DEEPNODE_NUM_THREADS: env },
        },
      );
    const refused = train("abc", "--out", join(scratch, "threads.safetensors"), "--no-progress");
    expect(refused.status).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr.trim()).toBe(
      "deepnode: getNumThreads: DEEPNODE_NUM_THREADS must be an integer from 1 to 1024, got 'abc'",
    );
    expect(existsSync(join(scratch, "threads.safetensors"))).toBe(false);
    const out = join(scratch, "threads2.safetensors");
    const overridden = train("abc", "--threads", "2", "--out", out, "--no-progress");
    expect(overridden.stderr).toBe("");
    expect(overridden.status).toBe(0);
    expect(existsSync(out)).toBe(true);
  });

  it("says a DEEPNODE_CUDA_PLUGIN that cannot be loaded could not, and why", () => {
    const notAPlugin = join(scratch, "not-a-plugin.so");
    writeFileSync(notAPlugin, "not a shared library");
    const missing = join(scratch, "no-such-plugin.so");
    for (const [plugin, why] of [
      [missing, /^no such file$/],
      [notAPlugin, /invalid ELF header|file too short/],
    ] as const) {
      const run = spawnSync(process.execPath, ["bin/deepnode.js", "info"], {
        cwd: root,
        encoding: "utf8",
        timeout: 60_000,
        env: { ...process.env, DEEPNODE_CUDA_PLUGIN: plugin },
      });
      expect(run.status).toBe(0);
      const status = (JSON.parse(run.stdout) as { cuda: CudaStatus }).cuda;
      const said = `DEEPNODE_CUDA_PLUGIN names ${plugin}, which could not be loaded (`;
      expect(status.pluginError?.startsWith(said), status.pluginError ?? "null").toBe(true);
      expect(status.pluginError!.slice(said.length, -1)).toMatch(why);
      // Unavailable, the reason (a DeviceError's message) starts with it; else a warning does.
      if (!status.available) expect(status.reason.startsWith(`${status.pluginError}; `)).toBe(true);
      else expect(run.stderr).toContain(`${status.pluginError}; using ${status.plugin}`);
    }
  });

  const noCuda = !buildInfo().cuda.available;

  it.runIf(noCuda)("fails --device cuda with a DeviceError saying CUDA is not there", async () => {
    const options = { epochs: 1, batchSize: 64, lr: 1e-3, seed: 0, limit: 64, device: "cuda" };
    expectThrows(() => trainMnist(options), DeviceError, /cuda(:0)? is not available/);

    const run = await cli("train", "mnist", "--device", "cuda", "--limit", "64", "--epochs", "1");
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^deepnode: device: cuda(:0)? is not available: .*CUDA/m);
    expect(run.stdout).not.toContain("saved weights");

    const evalRun = await cli("eval", "mnist", "--device", "cuda", "--weights", "x");
    expect(evalRun.code).toBe(1);
    expect(evalRun.stderr).toBe("deepnode: weights file 'x' does not exist\n"); // reported first
    const weights = join(scratch, "cuda-eval.safetensors");
    writeFileSync(weights, encodeSafetensors({}));
    const withFile = await cli("eval", "mnist", "--device", "cuda", "--weights", weights);
    expect(withFile.code).toBe(1);
    expect(withFile.stderr).toMatch(/^deepnode: device: cuda(:0)? is not available/m);
  });
});

// ---------------------------------------------------------------------------------------
// Standard IDX files

/** An IDX file of unsigned bytes: magic 0x0000080<ndims>, big-endian dims, then data. */
function idxFile(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x0800 + dims.length, 0);
  dims.forEach((dim, d) => header.writeUInt32BE(dim, 4 + 4 * d));
  return Buffer.concat([header, data]);
}

/** Every `step`-th image of a split (so all digits appear), pixels scaled to bytes. */
function sampleAsBytes(
  split: MnistSplit,
  step: number,
): { pixels: Uint8Array; labels: Uint8Array } {
  const count = Math.floor(split.count / step);
  const pixels = new Uint8Array(count * 784);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < 784; p++) {
      pixels[i * 784 + p] = Math.round(255 * split.images[i * step * 784 + p]!);
    }
    labels[i] = split.labels[i * step]!;
  }
  return { pixels, labels };
}

describe("deepnode train/eval --data with standard IDX files", () => {
  const dir = join(scratch, "idx");
  const weights = join(scratch, "idx.safetensors");
  let trainCount = 0;
  let testCount = 0;

  beforeAll(() => {
    mkdirSync(dir);
    const { train, test } = loadMnistFromPackage();
    const trainSample = sampleAsBytes(train, 8); // 1,000 images
    const testSample = sampleAsBytes(test, 8); // 249 images
    trainCount = trainSample.labels.length;
    testCount = testSample.labels.length;
    const files: [string, Buffer, boolean][] = [
      ["train-images-idx3-ubyte", idxFile([trainCount, 28, 28], trainSample.pixels), true],
      ["train-labels-idx1-ubyte", idxFile([trainCount], trainSample.labels), false],
      ["t10k-images-idx3-ubyte", idxFile([testCount, 28, 28], testSample.pixels), false],
      ["t10k-labels-idx1-ubyte", idxFile([testCount], testSample.labels), true],
    ];
    for (const [name, bytes, gzipped] of files) {
      writeFileSync(join(dir, gzipped ? `${name}.gz` : name), gzipped ? gzipSync(bytes) : bytes);
    }
  });

  it("trains on them and evaluates to the same accuracy", async () => {
    const args = ["--data", dir, "--epochs", "1", "--batch-size", "32", "--no-progress"];
    const train = await cli("train", "mnist", ...args, "--out", weights);
    expect(train.stderr).toBe("");
    expect(train.code).toBe(0);
    expect(train.stdout).toContain(`training MNISTNet on ${dir} (device cpu, batch 32,`);
    const epoch = EPOCH_LINE.exec(train.stdout);
    expect(epoch, train.stdout).not.toBeNull();
    // 32 steps over 1,000 mixed digits already beat chance by far.
    expect(Number(epoch![3])).toBeGreaterThan(60);

    const evalRun = await cli("eval", "mnist", "--data", dir, "--weights", weights);
    expect(evalRun.code).toBe(0);
    const line = EVAL_LINE.exec(evalRun.stdout);
    expect(line, evalRun.stdout).not.toBeNull();
    expect(line![2]).toBe(epoch![3]);
    expect(Number(line![3])).toBe(testCount);
  });

  it("names a corrupt IDX file (exit 1)", async () => {
    const broken = join(scratch, "idx-broken");
    mkdirSync(broken);
    for (const name of readdirSync(dir))
      writeFileSync(join(broken, name), readFileSync(join(dir, name)));
    const images = join(broken, "t10k-images-idx3-ubyte");
    writeFileSync(images, readFileSync(images).subarray(0, 1000));
    const run = await cli("eval", "mnist", "--data", broken, "--weights", weights);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`^deepnode: readIdx: ${images}: dims \\[${testCount}, 28, 28\\]`),
    );
  });

  it("names a folder without the files (exit 1)", async () => {
    const empty = join(scratch, "idx-empty");
    mkdirSync(empty);
    const run = await cli("eval", "mnist", "--data", empty, "--weights", weights);
    expect(run.code).toBe(1);
    // Eval reads the training files too (loadMnist reads both splits); either is named.
    expect(run.stderr).toMatch(
      new RegExp(
        `^deepnode: loadMnist: ${empty} holds neither (train|t10k)-images-idx3-ubyte` +
          ` nor (train|t10k)-images-idx3-ubyte\\.gz\n$`,
      ),
    );
  });
});

describe("deepnode train mnist with an option only train imdb reads", () => {
  it("is a usage error (exit 2), not an option silently ignored", async () => {
    for (const [flag, value] of [
      ["--model", "bert"],
      ["--pretrained", "x"],
      ["--hidden-size", "32"],
    ]) {
      const run = await cli("train", "mnist", flag!, value!, "--epochs", "1");
      expect(run.code, flag).toBe(2);
      expect(run.stderr).toContain(`${flag} is for train imdb only, not train mnist`);
    }
  });
});

describe("deepnode train mnist --checkpoint-dir / --resume", () => {
  const base = ["train", "mnist", "--limit", "128", "--no-progress"];

  it("resumes a saved run to the weights of an uninterrupted one, bit for bit", async () => {
    const whole = join(scratch, "whole.safetensors");
    const full = await cli(...base, "--epochs", "2", "--out", whole);
    expect(full.code).toBe(0);

    const dir = join(scratch, "mnist-checkpoints");
    const first = join(scratch, "first.safetensors");
    const part = await cli(...base, "--epochs", "1", "--checkpoint-dir", dir, "--out", first);
    expect(part.stderr).toBe("");
    expect(part.code).toBe(0);
    expect(part.stdout).toContain(`saved checkpoint ${join(dir, "checkpoint-2")}\n`);

    const resumed = join(scratch, "resumed.safetensors");
    const rest = await cli(...base, "--epochs", "2", "--resume", dir, "--out", resumed);
    expect(rest.stderr).toBe("");
    expect(rest.code).toBe(0);
    const lines = rest.stdout.trimEnd().split("\n");
    expect(lines[1]).toBe(`resuming from ${join(dir, "checkpoint-2")} (epoch 1, step 2)`);
    expect(lines[2]).toMatch(/^epoch 2\/2 {2}train_loss /);
    expect(lines.filter((line) => line.startsWith("epoch "))).toHaveLength(1);
    // The resumed run's second epoch is the uninterrupted run's, to the printed digits.
    const secondEpoch = (out: string) => /^epoch 2\/2 {2}(.*)  time/m.exec(out)![1];
    expect(secondEpoch(rest.stdout)).toBe(secondEpoch(full.stdout));
    expect(Buffer.compare(readFileSync(resumed), readFileSync(whole))).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["checkpoint-2", "checkpoint-4"]);
  });

  /** One epoch (2 steps) with --checkpoint-dir scratch/<name>: folder, --out, checkpoint. */
  async function firstEpoch(name: string) {
    const dir = join(scratch, name);
    const out = join(scratch, `${name}.safetensors`);
    const first = await cli(...base, "--epochs", "1", "--checkpoint-dir", dir, "--out", out);
    expect(first.code).toBe(0);
    return { dir, out, checkpoint: join(dir, "checkpoint-2") };
  }

  it("resumed from one checkpoint, writes the new ones beside it, not inside it", async () => {
    const { dir, out, checkpoint: resume } = await firstEpoch("mnist-one-checkpoint");
    const rest = await cli(...base, "--epochs", "2", "--resume", resume, "--out", out);
    expect(rest.stderr).toBe("");
    expect(rest.stdout).toContain(`saved checkpoint ${join(dir, "checkpoint-4")}\n`);
    expect(readdirSync(dir).sort()).toEqual(["checkpoint-2", "checkpoint-4"]);
    expect(readdirSync(join(dir, "checkpoint-2")).some((f) => f.startsWith("checkpoint-"))).toBe(
      false,
    );
  });

  it("says a resumed run that has finished has nothing to train, and exits 0", async () => {
    const dir = join(scratch, "mnist-finished");
    const out = join(scratch, "finished.safetensors");
    const first = await cli(...base, "--epochs", "2", "--checkpoint-dir", dir, "--out", out);
    expect(first.code).toBe(0);
    rmSync(out);
    const checkpoint = join(dir, "checkpoint-4");
    for (const [epochs, bound] of [
      ["2", "the last of --epochs 2"],
      ["1", "past --epochs 1"],
    ]) {
      const again = await cli(...base, "--epochs", epochs!, "--resume", dir, "--out", out);
      expect(again).toEqual({
        code: 0,
        stdout:
          `nothing to train: the checkpoint ${checkpoint} is at epoch 2, ${bound}; to train ` +
          "further, pass a larger --epochs (e.g. --epochs 3)\n",
        stderr: "",
      });
    }
    // Nothing was loaded or written: no weights, no new checkpoint.
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(["checkpoint-2", "checkpoint-4"]);
  });

  it("refuses a damaged checkpoint before printing anything (exit 1)", async () => {
    const { dir, out, checkpoint } = await firstEpoch("mnist-damaged");
    const model = join(checkpoint, "model.safetensors");
    const bytes = readFileSync(model);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    writeFileSync(model, bytes);
    const corrupt = await cli(...base, "--epochs", "2", "--resume", dir, "--out", out);
    const sha = "model.safetensors does not match its SHA-256 in trainer_state.json";
    expect(corrupt).toEqual({
      code: 1,
      stdout: "",
      stderr: `deepnode: loadCheckpoint: ${checkpoint}: ${sha} (the file is corrupt)\n`,
    });
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    writeFileSync(model, bytes);
    rmSync(join(checkpoint, "optimizer.safetensors"));
    const missing = await cli(...base, "--epochs", "2", "--resume", checkpoint, "--out", out);
    expect(missing).toEqual({
      code: 1,
      stdout: "",
      stderr: `deepnode: loadCheckpoint: ${checkpoint}: optimizer.safetensors is missing\n`,
    });
  });

  it("names a folder that holds no checkpoint (exit 1)", async () => {
    const empty = join(scratch, "no-checkpoints");
    mkdirSync(empty);
    const run = await cli(...base, "--epochs", "1", "--resume", empty);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `deepnode: resume: ${empty}: holds neither trainer_state.json nor a checkpoint-<step> ` +
        `folder\n`,
    );
  });

  it("writes the metrics as JSON lines and the curves as a PNG", async () => {
    const metrics = join(scratch, "mnist-metrics.jsonl");
    const plot = join(scratch, "mnist-curves.png");
    const out = join(scratch, "plotted.safetensors");
    const run = await cli(
      ...base,
      "--epochs",
      "2",
      "--metrics",
      metrics,
      "--plot",
      plot,
      "--out",
      out,
    );
    expect(run.code).toBe(0);
    const records = readFileSync(metrics, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(records.map((r: { epoch: number }) => r.epoch)).toEqual([1, 2]);
    expect(Object.keys(records[0].eval)).toEqual(["loss", "accuracy"]);
    expect(readFileSync(plot).subarray(1, 4).toString("latin1")).toBe("PNG");
  });
});

// ---- deepnode train imdb / predict -------------------------------------------------------

import { loadSentimentModel } from "../examples/imdb.js";
import { imdbTrainCommand } from "../lib/cli/imdb.js";
import { ValueError } from "../lib/errors.js";

const IMDB_EPOCH_LINE = new RegExp(
  String.raw`^epoch 1/1  train_loss (\d+\.\d{4})  test_loss (\d+\.\d{4})` +
    String.raw`  test_acc (\d+\.\d{2})%  time (\d+\.\d)s  (\d+) reviews/s$`,
  "m",
);

describe("deepnode train imdb / predict", () => {
  const model = join(scratch, "imdb-model");
  const small = ["--embedding-dim", "16", "--hidden-size", "16", "--max-length", "48"];
  const text = "A wonderful, moving film. The cast is superb!";

  beforeAll(async () => {
    const args = ["train", "imdb", "--model", "lstm", "--epochs", "1", "--limit", "200"];
    const run = await cli(...args, ...small, "--vocab-size", "1500", "--out", model);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(IMDB_EPOCH_LINE);
    // IMDB's own default learning rate, not MNIST's 1e-3.
    expect(run.stdout).toContain("(device cpu, batch 64, lr 0.003, seed 0)\n");
    expect(run.stdout).toContain(`saved the model to ${model}\n`);
  });

  it("saves a model folder (weights, config.json, vocab.json) and no staging folder", () => {
    expect(readdirSync(model).sort()).toEqual(["config.json", "model.safetensors", "vocab.json"]);
    expect(tempFiles(scratch)).toEqual([]);
    const config = JSON.parse(readFileSync(join(model, "config.json"), "utf8"));
    expect(config).toMatchObject({ model: "lstm", embeddingDim: 16, hiddenSize: 16 });
    expect(config.maxLength).toBe(48);
    const vocab = JSON.parse(readFileSync(join(model, "vocab.json"), "utf8"));
    expect(vocab.tokens).toHaveLength(config.vocabSize);
    expect(readSafetensorsMetadata(join(model, "model.safetensors"))).toEqual({
      format: "pt",
      model: "SentimentLSTM",
    });
  });

  it("predict --json prints exactly what loadSentimentModel(dir).predict gives", async () => {
    const run = await cli("predict", "--model", model, "--json", text);
    expect(run.code).toBe(0);
    const expected = (await loadSentimentModel(model)).predict(text);
    expect(JSON.parse(run.stdout)).toEqual({ text, ...expected });
    const two = await cli("predict", "--model", model, "--json", text, "Boring.");
    expect(JSON.parse(two.stdout).map((row: { text: string }) => row.text)).toEqual([
      text,
      "Boring.",
    ]);
  });

  it("predict prints the sentiment, its confidence and both probabilities", async () => {
    const run = await cli("predict", "--model", model, text);
    const p = (await loadSentimentModel(model)).predict(text);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      `${p.label}  ${(100 * p.confidence).toFixed(2)}%  (negative ` +
        `${p.probabilities.negative.toFixed(4)}, positive ` +
        `${p.probabilities.positive.toFixed(4)})\n`,
    );
  });

  it("names what is wrong: a missing folder, a broken config, an empty text (exit 1)", async () => {
    const missing = join(scratch, "no-model");
    expect(await cli("predict", "--model", missing, text)).toEqual({
      code: 1,
      stdout: "",
      stderr: `deepnode: loadSentimentModel: model folder '${missing}' does not exist\n`,
    });
    const broken = join(scratch, "imdb-broken");
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, "config.json"), "[]");
    const run = await cli("predict", "--model", broken, text);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `deepnode: loadSentimentModel: ${join(broken, "config.json")}: expected a JSON object\n`,
    );
    const empty = await cli("predict", "--model", model, " ");
    expect(empty.stderr).toBe("deepnode: predict: text 0 is empty\n");
    expect(empty.code).toBe(1);
  });

  it("train imdb --model names an unknown classifier: a usage error (exit 2)", async () => {
    const run = await cli("train", "imdb", "--model", "gru", "--out", model);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(
      new RegExp(
        "^error: option '--model <kind>' argument 'gru' is invalid\\. " +
          "Allowed choices are lstm, transformer, bert\\.$",
        "m",
      ),
    );
    // Called directly (not through the CLI's parser), the command refuses it as a ValueError.
    const flags = { model: "gru", epochs: 1, batchSize: 8, lr: 1e-3, seed: 0 };
    const sizes = { embeddingDim: 8, hiddenSize: 8, maxLength: 8, vocabSize: 10 };
    const direct = { ...flags, ...sizes, device: "cpu", out: model, progress: false };
    await expect(imdbTrainCommand(direct)).rejects.toBeInstanceOf(ValueError);
  });

  it("train imdb --data names a missing reviews file (exit 1)", async () => {
    const missing = join(scratch, "no-reviews.json");
    const run = await cli("train", "imdb", "--data", missing, "--out", model);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`deepnode: train imdb: reviews file '${missing}' does not exist\n`);
  });

  it("predict --device reference gives cpu's answer; a bad device is named (exit 1)", async () => {
    const onCpu = JSON.parse((await cli("predict", "--model", model, "--json", text)).stdout);
    const run = await cli("predict", "--model", model, "--device", "reference", "--json", text);
    expect(run.code).toBe(0);
    const onReference = JSON.parse(run.stdout);
    expect(onReference.label).toBe(onCpu.label);
    expect(onReference.probabilities.positive).toBeCloseTo(onCpu.probabilities.positive, 5);
    expect(await cli("predict", "--model", model, "--device", "tpu", text)).toEqual({
      code: 1,
      stdout: "",
      stderr:
        'deepnode: device: unknown device \'tpu\' (expected "cpu", "reference", "cuda" or ' +
        '"cuda:N")\n',
    });
  });

  it.runIf(!buildInfo().cuda.available)(
    "predict --device cuda says CUDA is not there",
    async () => {
      const run = await cli("predict", "--model", model, "--device", "cuda", text);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe("");
      expect(run.stderr).toMatch(/^deepnode: device: cuda(:0)? is not available: .*CUDA.*\n$/);
      expect(run.stderr.trimEnd().split("\n")).toHaveLength(1);
    },
  );

  it("predict from the bin prints no stack trace", () => {
    const run = spawnSync(
      process.execPath,
      ["bin/deepnode.js", "predict", "--model", join(scratch, "nothing"), "good"],
      { cwd: root, encoding: "utf8", timeout: 60_000 },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /^deepnode: loadSentimentModel: model folder '.*' does not exist\n$/,
    );
  });
});

describe("deepnode bench: options and outputs (no peer; one tiny case timed)", () => {
  it.each([
    ["--backends", "cpu,tpu", "Unknown 'tpu' \\(known: cpu, cuda, reference\\)"],
    [
      "--peers",
      "torch,jax",
      "Unknown 'jax' \\(known: torch, tfjs-cpu, tfjs-wasm, tfjs-node, torch-cuda\\)",
    ],
  ])("rejects %s %s (exit 2)", async (flag, value, message) => {
    const run = await cli("bench", flag, value);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`argument '${value}' is invalid\\. ${message}\\.$`, "m"));
  });

  it("refuses a filter that selects no case, in one line, and writes nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deepnode-bench-"));
    const json = join(dir, "bench.json");
    const none = await cli("bench", "--filter", "no such case", "--peers", "", "--json", json);
    expect(none).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "deepnode: bench: no case matches --filter 'no such case' (it matches a case's group, " +
        "one of kernel, job, or part of its name)\n",
    });
    const slow = await cli("bench", "--filter", "matmul 4096^3", "--quick", "--peers", "");
    expect(slow.code).toBe(1);
    expect(slow.stderr).toBe(
      "deepnode: bench: --filter 'matmul 4096^3' matches only cases that --quick leaves out\n",
    );
    expect(existsSync(json)).toBe(false);
    rmSync(dir, { recursive: true });
  });

  it("refuses a --json or --markdown inside a file before measuring (exit 1)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deepnode-bench-"));
    const aFile = join(dir, "README.md");
    writeFileSync(aFile, "x");
    for (const flag of ["--json", "--markdown"]) {
      const out = join(aFile, "x.json");
      const run = await cli("bench", "--filter", "tiny add [1]+[1]", "--peers", "", flag, out);
      const message = `bench: ${flag} '${out}': '${aFile}' is a file`;
      expect(run).toEqual({ code: 1, stdout: "", stderr: `deepnode: ${message}\n` });
    }
    rmSync(dir, { recursive: true });
  });

  it.runIf(!buildInfo().cuda.available)(
    "refuses --backends cuda without cuda, with the reason, running no peer (exit 1)",
    async () => {
      const args = ["--filter", "tiny add [1]+[1]", "--quick", "--peers", "torch"];
      const run = await cli("bench", ...args, "--backends", "cuda");
      const reason = `cuda is not available: ${buildInfo().cuda.reason}`;
      expect(run).toEqual({
        code: 1,
        stdout: "",
        stderr: `deepnode: bench: --backends cuda: ${reason}\n`,
      });
    },
  );

  const emulation = join(root, "build", "Release", "deepnode_cuda_emu.so");
  it.runIf(existsSync(emulation))(
    "marks cuda on the host emulation in the header and the device column",
    () => {
      const args = ["--filter", "tiny add [1]+[1]", "--quick", "--peers", "", "--backends", "cuda"];
      const run = spawnSync(process.execPath, ["bin/deepnode.js", "bench", ...args], {
        cwd: root,
        encoding: "utf8",
        timeout: 60_000,
        env: { ...process.env, DEEPNODE_CUDA_PLUGIN: emulation },
      });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain(`\ncuda: host emulation, not a GPU (${emulation})\n`);
      expect(run.stdout).toMatch(
        /^tiny add \[1\]\+\[1\] \(dispatch overhead\) +cuda \(host emulation\) +us /m,
      );
    },
  );

  it("writes the table, JSON and markdown of a run", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deepnode-bench-"));
    const json = join(dir, "bench.json");
    const markdown = join(dir, "bench.md");
    const args = ["--filter", "tiny add [1]+[1]", "--quick", "--peers", "", "--backends", "cpu"];
    const run = await cli("bench", ...args, "--json", json, "--markdown", markdown);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^case +device +unit +median +spread +n$/m);
    const report = JSON.parse(readFileSync(json, "utf8")) as Record<string, unknown>;
    expect((report.rows as { name: string }[]).map((row) => row.name)).toEqual([
      "tiny add [1]+[1]",
    ]);
    expect(report.peers).toEqual([]);
    expect(Object.keys(report.meta as object)).toEqual([
      "date",
      "cpu",
      "node",
      "compiler",
      "deepnode",
      "peers",
      "threads",
      "load",
    ]);
    expect(readFileSync(markdown, "utf8")).toContain("| case | device | unit | median |");
    rmSync(dir, { recursive: true });
  });
});

// ---- deepnode train imdb --model transformer ---------------------------------------------

import { withImdbDefaults } from "../lib/cli/imdb.js";

describe("deepnode train imdb --model transformer / predict", () => {
  const model = join(scratch, "imdb-transformer");
  const small = ["--embedding-dim", "16", "--hidden-size", "32", "--max-length", "48"];
  const text = "A dull, badly acted mess. I wanted my two hours back.";

  beforeAll(async () => {
    const args = ["train", "imdb", "--model", "transformer", "--epochs", "1", "--limit", "200"];
    const run = await cli(...args, ...small, "--vocab-size", "1500", "--out", model);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(IMDB_EPOCH_LINE);
    expect(run.stdout).toContain("training SentimentTransformer on ");
    // The transformer's own default learning rate.
    expect(run.stdout).toContain("(device cpu, batch 64, lr 0.001, seed 0)\n");
  });

  it("saves a folder whose config.json records the transformer", () => {
    expect(readdirSync(model).sort()).toEqual(["config.json", "model.safetensors", "vocab.json"]);
    const config = JSON.parse(readFileSync(join(model, "config.json"), "utf8"));
    expect(config).toMatchObject({
      model: "transformer",
      embeddingDim: 16,
      hiddenSize: 32,
      numHeads: 4,
      numLayers: 2,
      maxLength: 48,
    });
    expect(readSafetensorsMetadata(join(model, "model.safetensors"))).toEqual({
      format: "pt",
      model: "SentimentTransformer",
    });
  });

  it("predict --json prints exactly what loadSentimentModel(dir).predict gives", async () => {
    const run = await cli("predict", "--model", model, "--json", text);
    expect(run.code).toBe(0);
    const expected = (await loadSentimentModel(model)).predict(text);
    expect(JSON.parse(run.stdout)).toEqual({ text, ...expected });
  });

  it("defaults: lr 1e-3, folder imdb-transformer, feed-forward 256; set flags are kept", () => {
    const flags = { model: "transformer", epochs: 1, batchSize: 8, lr: 1e-3, seed: 0 };
    const sizes = { embeddingDim: 8, hiddenSize: 128, maxLength: 8, vocabSize: 10 };
    const base = { ...flags, ...sizes, device: "cpu", out: "weights", progress: false };
    expect(withImdbDefaults({ ...base, lr: 5 }, () => true)).toMatchObject({
      lr: 1e-3,
      out: "imdb-transformer",
      hiddenSize: 256,
    });
    expect(withImdbDefaults(base, () => false)).toMatchObject({ out: "weights", hiddenSize: 128 });
    expect(withImdbDefaults({ ...base, model: "lstm" }, () => true)).toMatchObject({
      lr: 3e-3,
      out: "imdb-lstm",
      hiddenSize: 128,
    });
  });
});

// ---- deepnode train imdb --model bert --pretrained ---------------------------------------

import { loadPretrainedClassifier } from "../examples/bert_classifier.js";

describe("deepnode train imdb --model bert --pretrained DIR / predict", () => {
  const fixtures = join(root, "test", "fixtures");
  const bertModel = join(scratch, "imdb-bert");
  // No --max-length: the default 256 is cut to the tiny models' 12 positions.
  const tiny = ["--epochs", "1", "--batch-size", "8"];
  const text = "the movie was great!";

  beforeAll(async () => {
    const pretrained = join(fixtures, "bert-tiny");
    const args = ["train", "imdb", "--model", "bert", "--pretrained", pretrained, "--limit", "16"];
    const run = await cli(...args, ...tiny, "--out", bertModel);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const { model } = await loadPretrainedClassifier(pretrained, 12);
    expect(run.stdout).toContain(
      `fine-tuning BertForSequenceClassification from ${pretrained} ` +
        `(${model.numParameters()} parameters, 12 tokens per review)\n`,
    );
    expect(run.stdout).toContain("training a sequence classifier on a pretrained encoder on ");
    expect(run.stdout).toMatch(IMDB_EPOCH_LINE);
    expect(run.stdout).toContain(`saved the model to ${bertModel}\n`);
  });

  it("saves a folder with tokenizer.json and the pretrained config", () => {
    expect(readdirSync(bertModel).sort()).toEqual([
      "config.json",
      "model.safetensors",
      "tokenizer.json",
    ]);
    const config = JSON.parse(readFileSync(join(bertModel, "config.json"), "utf8"));
    expect(config).toMatchObject({ model: "bert", maxLength: 12, embeddingDim: 16 });
    expect(config.pretrained.model_type).toBe("bert");
    expect(readSafetensorsMetadata(join(bertModel, "model.safetensors"))).toEqual({
      format: "pt",
      model: "BertForSequenceClassification",
    });
  });

  it("predict --json prints exactly what loadSentimentModel(dir).predict gives", async () => {
    const run = await cli("predict", "--model", bertModel, "--json", text);
    expect(run.code).toBe(0);
    const expected = (await loadSentimentModel(bertModel)).predict(text);
    expect(JSON.parse(run.stdout)).toEqual({ text, ...expected });
    const plain = await cli("predict", "--model", bertModel, text);
    expect(plain.stdout).toMatch(/^(positive|negative) {2}\d+\.\d{2}% {2}\(negative 0\.\d{4}, /);
  });

  it("fine-tunes DistilBERT too, on a reviews file, with BERT's defaults", async () => {
    const reviews = join(scratch, "tiny-reviews.json");
    const sentences = ["the movie was great!", "a very bad film.", "it is good", "not good."];
    const rows = Array.from({ length: 10 }, (_, k) => ({ t: sentences[k % 4], s: (k + 1) % 2 }));
    writeFileSync(reviews, JSON.stringify(rows));
    const out = join(scratch, "imdb-distilbert");
    const pretrained = join(fixtures, "distilbert-tiny");
    const args = ["train", "imdb", "--model", "bert", "--pretrained", pretrained];
    const run = await cli(...args, "--data", reviews, ...tiny, "--out", out);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("(device cpu, batch 8, lr 0.00002, seed 0)\n");
    expect(run.stdout).toContain(`fine-tuning DistilBertForSequenceClassification from `);
    expect(run.stdout).toMatch(IMDB_EPOCH_LINE);
    const predicted = await cli("predict", "--model", out, "--json", text);
    expect(JSON.parse(predicted.stdout)).toEqual({
      text,
      ...(await loadSentimentModel(out)).predict(text),
    });
    const flags = { model: "bert", epochs: 1, batchSize: 8, lr: 1e-3, seed: 0 };
    const sizes = { embeddingDim: 8, hiddenSize: 128, maxLength: 8, vocabSize: 10 };
    const base = { ...flags, ...sizes, device: "cpu", out: "weights", progress: false };
    expect(withImdbDefaults(base, () => true)).toMatchObject({ lr: 2e-5, out: "imdb-bert" });
  });

  it("names what is wrong in one line (exit 1)", async () => {
    const train = ["train", "imdb", "--out", join(scratch, "imdb-bert-bad"), ...tiny];
    const cases: [string[], string][] = [
      [
        ["--model", "bert"],
        "train imdb: --model bert needs --pretrained DIR, a Hugging Face BERT or DistilBERT folder",
      ],
      [
        ["--pretrained", join(fixtures, "bert-tiny")],
        "train imdb: --pretrained is for --model bert only",
      ],
      [
        ["--model", "bert", "--pretrained", join(scratch, "no-bert")],
        `loadPretrainedClassifier: pretrained folder '${join(scratch, "no-bert")}' does not exist`,
      ],
      [
        ["--model", "bert", "--pretrained", join(fixtures, "bert-tiny"), "--max-length", "64"],
        "train imdb: --max-length must be an integer in [2, 12] (the model's " +
          "max_position_embeddings), got 64",
      ],
    ];
    for (const [flags, message] of cases) {
      const run = await cli(...train, ...flags);
      expect(run).toEqual({ code: 1, stdout: "", stderr: `deepnode: ${message}\n` });
    }
    const wrongType = join(scratch, "gpt2-tiny");
    mkdirSync(wrongType, { recursive: true });
    writeFileSync(join(wrongType, "config.json"), JSON.stringify({ model_type: "gpt2" }));
    const run = await cli(...train, "--model", "bert", "--pretrained", wrongType);
    expect(run.stderr).toBe(
      `deepnode: loadPretrainedClassifier: ${join(wrongType, "config.json")}: model_type must ` +
        `be "bert" or "distilbert", got "gpt2"\n`,
    );
  });
});

// ---- deepnode train imdb through the Trainer: checkpoints, resume, metrics ---------------

import { spawn } from "node:child_process";

describe("deepnode train imdb --checkpoint-dir / --save-steps / --resume", () => {
  const sizes = ["--embedding-dim", "16", "--hidden-size", "16", "--max-length", "48"];
  const base = ["train", "imdb", "--limit", "160", "--batch-size", "16", "--no-progress"];
  const args = [...base, ...sizes, "--vocab-size", "1500"];
  const weightsIn = (dir: string) => readFileSync(join(dir, "model.safetensors"));
  let whole: { out: string; stdout: string };

  beforeAll(async () => {
    const out = join(scratch, "imdb-whole");
    const run = await cli(...args, "--epochs", "3", "--out", out);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    whole = { out, stdout: run.stdout };
  });

  it("resumes a saved run to the weights of an uninterrupted one, bit for bit", async () => {
    const dir = join(scratch, "imdb-checkpoints");
    const metrics = join(scratch, "imdb-metrics.jsonl");
    const first = await cli(
      ...args,
      "--epochs",
      "2",
      "--checkpoint-dir",
      dir,
      "--metrics",
      metrics,
      "--out",
      join(scratch, "imdb-first"), // not the default, which is in the checkout
    );
    expect(first.stderr).toBe("");
    expect(first.stdout).toContain(`saved checkpoint ${join(dir, "checkpoint-20")}\n`);
    const out = join(scratch, "imdb-resumed");
    const rest = await cli(
      ...args,
      "--epochs",
      "3",
      "--resume",
      dir,
      "--metrics",
      metrics,
      "--out",
      out,
    );
    expect(rest.stderr).toBe("");
    expect(rest.code).toBe(0);
    const lines = rest.stdout.trimEnd().split("\n");
    expect(lines[1]).toMatch(/^resuming from .*checkpoint-\d+ \(epoch 2, step \d+\)$/);
    expect(lines.filter((line) => line.startsWith("epoch "))).toHaveLength(1);
    const thirdEpoch = (text: string) => /^epoch 3\/3 {2}(.*)  time/m.exec(text)![1];
    expect(thirdEpoch(rest.stdout)).toBe(thirdEpoch(whole.stdout));
    expect(Buffer.compare(weightsIn(out), weightsIn(whole.out))).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["checkpoint-20", "checkpoint-30"]);
    const records = readFileSync(metrics, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(records.map((r: { epoch: number }) => r.epoch)).toEqual([1, 2, 3]);
  });

  it("resumes a run killed mid-epoch (SIGKILL after a --save-steps checkpoint)", async () => {
    const dir = join(scratch, "imdb-killed");
    const out = join(scratch, "imdb-killed-model");
    const saving = ["--checkpoint-dir", dir, "--save-steps", "3", "--out", out];
    // Step 15 is batch 5 of epoch 2 (10 batches of 16 reviews an epoch).
    const killed = await runBinUntil([...args, "--epochs", "3", ...saving], "checkpoint-15\n");
    expect(killed.signal).toBe("SIGKILL");
    expect(existsSync(out)).toBe(false);
    const rest = await cli(
      ...args,
      "--epochs",
      "3",
      "--resume",
      dir,
      "--save-steps",
      "3",
      "--out",
      out,
    );
    expect(rest.stderr).toBe("");
    expect(rest.code).toBe(0);
    expect(Buffer.compare(weightsIn(out), weightsIn(whole.out))).toBe(0);
  });

  it("says a resumed run that has finished has nothing to train, and exits 0", async () => {
    const dir = join(scratch, "imdb-finished");
    const out = join(scratch, "imdb-finished-model");
    const first = await cli(...args, "--epochs", "1", "--checkpoint-dir", dir, "--out", out);
    expect(first.code).toBe(0);
    const again = await cli(...args, "--epochs", "1", "--resume", dir, "--out", out);
    expect(again).toEqual({
      code: 0,
      stdout:
        `nothing to train: the checkpoint ${join(dir, "checkpoint-10")} is at epoch 1, the ` +
        "last of --epochs 1; to train further, pass a larger --epochs (e.g. --epochs 2)\n",
      stderr: "",
    });
  });

  it("names --save-steps without a checkpoint folder (exit 2)", async () => {
    const run = await cli(...args, "--save-steps", "3");
    expect(run.code).toBe(2);
    expect(run.stderr).toBe("deepnode: --save-steps needs --checkpoint-dir (or --resume)\n");
  });
});

/** Runs the bin and SIGKILLs it as soon as its output contains `text`. */
function runBinUntil(args: string[], text: string): Promise<{ signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/deepnode.js", ...args], { cwd: root });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes(text)) child.kill("SIGKILL");
    });
    child.on("error", reject);
    child.on("exit", (_, signal) => resolve({ signal }));
  });
}
