// The `deepnode` command line: train (through train.Trainer, with checkpoints and resume)
// and evaluate the MNIST network, and report what this build contains. Parsing is
// commander's; the progress bar is the Trainer's (cli-progress).

import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DeepnodeError, StateDictError } from "../errors.js";
import { packageRoot } from "../backend/native.js";
import { MAX_THREADS, applyThreads, buildInfo } from "../runtime.js";
import { loadSafetensors, makeFoldersSync, saveSafetensors } from "../io/safetensors.js";
import { loadMnist } from "../data/mnist.js";
import { checkpointFolderOf } from "../train/checkpoint.js";
import {
  MNISTNet,
  evaluate,
  fitMnist,
  mnistLoader,
  type EpochStats,
} from "../../examples/mnist.js";
import { getDefaultDevice, setDefaultDevice } from "../backend/registry.js";
import {
  addPredictCommand,
  imdbTrainCommand,
  withImdbDefaults,
  type ImdbTrainFlags,
} from "./imdb.js";
import { BACKENDS, DEFAULT_PEERS, benchCommand } from "../../bench/main.js";
import { checkMnistData, checkTrainPaths, reportFinished, resumeLine } from "./checks.js";

// Option parsers. Commander puts the flag and the value before their message ("option
// '--epochs <n>' argument '0' is invalid."), so the message says only what was expected.

/** An integer option in [min, max]; `expected` says so in the usage error. */
function integerIn(min: number, max = Number.MAX_SAFE_INTEGER, expected = `an integer >= ${min}`) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`Expected ${expected}.`);
    return n;
  };
}

const positiveInt = integerIn(1, undefined, "a positive integer");
const nonNegativeInt = integerIn(0, undefined, "a non-negative integer");

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("Expected a positive number.");
  return n;
}

/** A path flag's value: an empty one names no file (fs would fail on it only when writing). */
function nonEmptyPath(value: string): string {
  if (value === "") throw new InvalidArgumentError("Expected the path of a file or folder.");
  return value;
}

function checkTask(task: string, tasks = ["mnist"]): void {
  if (!tasks.includes(task))
    throw new InvalidArgumentError(`unknown task '${task}' (available: ${tasks.join(", ")})`);
}

/** An error from the operating system (ENOENT, EISDIR, ...): the message says it all. */
function isSystemError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return error instanceof Error && typeof code === "string" && /^E[A-Z]+$/.test(code);
}

/** One fixed-format line per epoch. */
export function formatEpoch(s: EpochStats, epochs: number): string {
  return (
    `epoch ${String(s.epoch).padStart(String(epochs).length)}/${epochs}` +
    `  train_loss ${s.trainLoss.toFixed(4)}  test_loss ${s.testLoss.toFixed(4)}` +
    `  test_acc ${(100 * s.testAccuracy).toFixed(2)}%  time ${s.seconds.toFixed(1)}s` +
    `  ${Math.round(s.imagesPerSecond)} img/s`
  );
}

/** A failure the user can act on (a file that cannot be read or written): no stack trace. */
class CliFailure extends Error {}

/**
 * Runs a file operation; an operating-system error (ENOENT, EACCES, EISDIR ...) becomes a
 * CliFailure that names the file, since Node's own message omits or mangles the path.
 */
async function onFile<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === "string") {
      throw new CliFailure(`${what}: ${error.message.split(",")[0]}`);
    }
    throw error;
  }
}

interface TrainFlags {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  device: string;
  out: string;
  data?: string;
  limit?: number;
  threads?: number;
  progress: boolean;
  checkpointDir?: string;
  resume?: string;
  metrics?: string;
  plot?: string;
  saveSteps?: number;
}

/** The optional file and folder flags, as fitMnist's options. */
function trainFiles(flags: TrainFlags) {
  const checkpointDir =
    flags.checkpointDir ??
    (flags.resume === undefined ? undefined : checkpointFolderOf(flags.resume));
  return {
    ...(flags.data === undefined ? {} : { dataDir: flags.data }),
    ...(flags.limit === undefined ? {} : { limit: flags.limit }),
    ...(checkpointDir === undefined ? {} : { checkpointDir }),
    ...(flags.resume === undefined ? {} : { resume: flags.resume }),
    ...(flags.metrics === undefined ? {} : { metricsFile: flags.metrics }),
    ...(flags.plot === undefined ? {} : { plotFile: flags.plot }),
    ...(flags.saveSteps === undefined ? {} : { saveSteps: flags.saveSteps }),
  };
}

/** The options only `train imdb` reads, by their commander names. */
const IMDB_ONLY_OPTIONS: Record<string, string> = {
  model: "--model",
  pretrained: "--pretrained",
  embeddingDim: "--embedding-dim",
  hiddenSize: "--hidden-size",
  maxLength: "--max-length",
  vocabSize: "--vocab-size",
};

/** A usage error for an imdb-only option given to another task, rather than ignoring it. */
function rejectImdbOnly(task: string, command: Command): void {
  for (const [name, flag] of Object.entries(IMDB_ONLY_OPTIONS)) {
    if (command.getOptionValueSource(name) === "cli") {
      throw new InvalidArgumentError(`${flag} is for train imdb only, not train ${task}`);
    }
  }
}

/**
 * The line a train mnist run starts with, once the data is loaded. --limit caps the training
 * images only: the line says that every epoch still scores the whole test split, which takes
 * minutes on the reference device and would otherwise look like a hang.
 */
function mnistHeader(flags: TrainFlags, counts: { train: number; test: number }): string {
  const test = counts.test.toLocaleString("en-US");
  const limited =
    flags.limit === undefined
      ? ""
      : ` (${counts.train} training images, spread evenly over the split; each epoch is` +
        ` scored on all ${test} test images)`;
  return (
    `training MNISTNet on ${flags.data ?? "the mnist package's 10,000 digits"}${limited}` +
    ` (device ${flags.device}, batch ${flags.batchSize}, lr ${flags.lr}, seed ${flags.seed})`
  );
}

async function trainCommand(task: string, flags: TrainFlags, command: Command): Promise<void> {
  checkTask(task, ["mnist", "imdb"]);
  if (task !== "imdb") rejectImdbOnly(task, command);
  const saving = flags.checkpointDir !== undefined || flags.resume !== undefined;
  if (flags.saveSteps !== undefined && !saving) {
    throw new InvalidArgumentError("--save-steps needs --checkpoint-dir (or --resume)");
  }
  if (task === "imdb") {
    const isDefault = (name: string) => command.getOptionValueSource(name) === "default";
    return imdbTrainCommand(withImdbDefaults(flags as unknown as ImdbTrainFlags, isDefault));
  }
  applyThreads(flags.threads);
  if (flags.data !== undefined) checkMnistData(flags.data);
  const resumed = checkTrainPaths("train mnist", flags, "file");
  if (reportFinished(resumed, flags.epochs)) return;
  const { model } = await fitMnist({
    epochs: flags.epochs,
    batchSize: flags.batchSize,
    lr: flags.lr,
    seed: flags.seed,
    device: flags.device,
    progress: flags.progress,
    ...trainFiles(flags),
    onEpoch: (stats) => console.log(formatEpoch(stats, flags.epochs)),
    onSave: (path) => console.log(`saved checkpoint ${path}`),
    onLoaded: (counts) => {
      console.log(mnistHeader(flags, counts));
      if (resumed !== null) console.log(resumeLine(resumed));
    },
  });
  await onFile(`cannot save weights to '${flags.out}'`, async () => {
    // As --metrics and --plot do, the missing folders on the way to --out are made.
    makeFoldersSync(dirname(flags.out));
    await saveSafetensors(flags.out, model.stateDict(), { format: "pt", model: "MNISTNet" });
  });
  console.log(`saved weights to ${flags.out}`);
}

interface EvalFlags {
  weights: string;
  device: string;
  data?: string;
  batchSize: number;
}

/** MNISTNet with the weights of `path`; every failure names the file. */
async function loadMnistNet(path: string): Promise<MNISTNet> {
  const model = new MNISTNet();
  const weights = await onFile(`cannot read weights file '${path}'`, () => loadSafetensors(path));
  try {
    model.loadStateDict(weights);
  } catch (error) {
    if (!(error instanceof StateDictError)) throw error;
    throw new CliFailure(`weights file '${path}' does not fit MNISTNet: ${error.message}`);
  }
  return model;
}

async function evalCommand(task: string, flags: EvalFlags): Promise<void> {
  checkTask(task);
  // A missing input file exits 1, as train's --data and predict's --model do.
  if (!existsSync(flags.weights))
    throw new CliFailure(`weights file '${flags.weights}' does not exist`);
  const previous = getDefaultDevice();
  setDefaultDevice(flags.device);
  try {
    const model = await loadMnistNet(flags.weights);
    const data = loadMnist(flags.data === undefined ? {} : { dir: flags.data });
    const { loss, accuracy } = evaluate(
      model,
      mnistLoader(data.test, flags.batchSize, false, flags.device),
    );
    console.log(
      `test_loss ${loss.toFixed(4)}  test_acc ${(100 * accuracy).toFixed(2)}%` +
        `  (${data.test.count} images)`,
    );
  } finally {
    setDefaultDevice(previous);
  }
}

function infoCommand(): void {
  console.log(JSON.stringify(buildInfo(), null, 2));
}

function deviceOption(): Option {
  return new Option("--device <device>", "cpu, reference or cuda[:n]").default("cpu");
}

/** A comma list of names from `known`, for --backends and --peers. */
function listOf(known: string[]) {
  return (value: string): string[] => {
    const items = value.split(",").filter((s) => s !== "");
    const bad = items.find((s) => !known.includes(s));
    if (bad !== undefined) {
      throw new InvalidArgumentError(`Unknown '${bad}' (known: ${known.join(", ")}).`);
    }
    return items;
  };
}

function listOption(flags: string, description: string, known: string[]): Option {
  return new Option(flags, description).argParser(listOf(known)).default(known, known.join(","));
}

function addBenchCommand(program: Command): void {
  program
    .command("bench")
    .description("time deepnode's kernels and jobs beside PyTorch and TensorFlow.js")
    .option(
      "--filter <texts>",
      "only cases whose name or group contains this text (or one of several, comma-separated)",
    )
    .option("--quick", "fewer repeats, no largest sizes, a 1,024-image MNIST epoch", false)
    .option("--json <file>", "write the report as JSON", nonEmptyPath)
    .option("--markdown <file>", "write the report as markdown", nonEmptyPath)
    .addOption(listOption("--backends <list>", "deepnode devices", BACKENDS))
    .addOption(listOption("--peers <list>", "peers to run beside deepnode", DEFAULT_PEERS))
    .option("--full", "also the whole-dataset jobs (an IMDB LSTM epoch: minutes per side)", false)
    .action(benchCommand);
}

function packageVersion(): string {
  const file = join(packageRoot(), "package.json");
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command("deepnode")
    .description("deep learning for Node.js")
    .version(packageVersion(), "-V, --version")
    .exitOverride()
    .showHelpAfterError();
  program
    .command("train <task>")
    .description("train a model (tasks: mnist, imdb) and save its weights as safetensors")
    .option("--epochs <n>", "epochs", positiveInt, 3)
    .option("--batch-size <n>", "training batch size", positiveInt, 64)
    .option(
      "--lr <rate>",
      "Adam learning rate (imdb: 3e-3 for the lstm, 1e-3 transformer, 2e-5 bert)",
      positiveNumber,
      1e-3,
    )
    .option("--seed <n>", "random seed", nonNegativeInt, 0)
    .addOption(deviceOption())
    .option(
      "--out <file>",
      "where to save the weights (imdb: a folder, imdb-lstm, imdb-transformer or imdb-bert)",
      nonEmptyPath,
      "mnist.safetensors",
    )
    .option(
      "--data <dir>",
      "MNIST IDX files (plain or .gz) in this folder; imdb: a reviews.json",
      nonEmptyPath,
    )
    .option(
      "--limit <n>",
      "train on n training images only (imdb: n reviews per split)",
      positiveInt,
    )
    .option(
      "--threads <n>",
      "cpu threads",
      integerIn(1, MAX_THREADS, `an integer in [1, ${MAX_THREADS}]`),
    )
    .option("--no-progress", "no progress bar")
    .option(
      "--checkpoint-dir <dir>",
      "write a checkpoint into this folder after every epoch",
      nonEmptyPath,
    )
    .option(
      "--resume <dir>",
      "continue from a checkpoint, or the newest one in this folder",
      nonEmptyPath,
    )
    .option(
      "--metrics <file>",
      "append each epoch's numbers to this file as JSON lines",
      nonEmptyPath,
    )
    .option("--plot <file>", "draw loss and accuracy curves to this PNG file", nonEmptyPath)
    .addOption(
      new Option("--model <kind>", "imdb: lstm, transformer or bert (with --pretrained)")
        .choices(["lstm", "transformer", "bert"])
        .default("lstm"),
    )
    .option("--embedding-dim <n>", "imdb: embedding size", positiveInt, 128)
    .option(
      "--hidden-size <n>",
      "imdb: LSTM hidden size (transformer: feed-forward, 256)",
      positiveInt,
      128,
    )
    .option("--max-length <n>", "imdb: tokens kept per review", positiveInt, 256)
    .option(
      "--vocab-size <n>",
      "imdb: most vocabulary entries (at least 2: padding and unknown)",
      integerIn(2),
      25000,
    )
    .option(
      "--pretrained <dir>",
      "imdb --model bert: a Hugging Face BERT or DistilBERT folder",
      nonEmptyPath,
    )
    .option(
      "--save-steps <n>",
      "also write a checkpoint every n steps inside an epoch (with --checkpoint-dir)",
      positiveInt,
    )
    .action(trainCommand);
  program
    .command("eval <task>")
    .description("score saved weights on the test split (tasks: mnist)")
    .requiredOption("--weights <file>", "a safetensors file written by `deepnode train`")
    .addOption(deviceOption())
    .option("--data <dir>", "read standard MNIST IDX files from this folder", nonEmptyPath)
    .option("--batch-size <n>", "evaluation batch size", positiveInt, 1000)
    .action(evalCommand);
  program
    .command("info")
    .description("print what this build contains and which devices work")
    .action(infoCommand);
  addPredictCommand(program);
  addBenchCommand(program);
  return program;
}

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 bad usage). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (error) {
    // Commander prints its own parse errors, then throws a plain CommanderError. An
    // InvalidArgumentError (a CommanderError subclass) that reaches here was thrown by an
    // action, so nothing has been printed yet: test for it first.
    if (error instanceof InvalidArgumentError) {
      process.stderr.write(`deepnode: ${error.message}\n`);
      return 2;
    }
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof DeepnodeError || error instanceof CliFailure || isSystemError(error)) {
      process.stderr.write(`deepnode: ${(error as Error).message}\n`);
      return 1;
    }
    throw error;
  }
}
