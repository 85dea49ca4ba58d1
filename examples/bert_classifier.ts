// Fine-tuning BERT and DistilBERT for sentiment: Hugging Face's BertForSequenceClassification
// (pooler -> dropout -> classifier) and DistilBertForSequenceClassification ([CLS] state ->
// pre_classifier -> ReLU -> dropout -> classifier) under their parameter names, with the
// forward(ids, lengths) of imdb.ts's small classifiers, so the same training loop, model
// folder and predict serve them; and the tokenizer.json wrapper that encodes the reviews.
// `deepnode train imdb --model bert --pretrained DIR` runs this through imdb.ts.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

import { HfTokenizer } from "../lib/data/text.js";
import { FormatError, Tensor, ValueError, fromTypedArray, nn, noGrad } from "../lib/index.js";
import {
  BertModel,
  baseWeights,
  loadWeightsInto,
  parseBertConfig,
  readJson,
  type BertConfig,
} from "./bert.js";
import {
  DistilBertModel,
  distilBertWeights,
  parseDistilBertConfig,
  type DistilBertConfig,
} from "./distilbert.js";
import type { SentimentConfig } from "./imdb.js";

/** A pretrained encoder's config.json, as its model_type says. */
export type PretrainedConfig = BertConfig | DistilBertConfig;

export const TOKENIZER_FILE = "tokenizer.json";
const OP = "loadPretrainedClassifier";

/** config.json of a BERT or DistilBERT folder, parsed by its model_type. */
export function parsePretrainedConfig(json: unknown, path: string, op = OP): PretrainedConfig {
  const type = (json as { model_type?: unknown } | null)?.model_type;
  if (type === "bert") return { ...parseBertConfig(json, path), model_type: "bert" } as BertConfig;
  if (type === "distilbert") return parseDistilBertConfig(json, path);
  const got = JSON.stringify(type);
  throw new FormatError(op, `${path}: model_type must be "bert" or "distilbert", got ${got}`, path);
}

function isDistilBert(config: PretrainedConfig): config is DistilBertConfig {
  return (config as { model_type?: string }).model_type === "distilbert";
}

/** int32 [N, T]: 1 at the first length tokens of each row, 0 at the padding. */
function attentionMask(lengths: Int32Array | undefined, ids: Tensor): Tensor {
  const [n, width] = ids.shape as [number, number];
  const mask = new Int32Array(n * width);
  for (let row = 0; row < n; row++) {
    mask.fill(1, row * width, row * width + (lengths?.[row] ?? width));
  }
  return fromTypedArray(mask, [n, width], { device: ids.device });
}

/** Hugging Face's initialisation of a head layer: weights N(0, initializer_range), biases 0. */
function initHead(layer: nn.Linear, config: SentimentConfig): nn.Linear {
  const std = (config.pretrained as { initializer_range?: number }).initializer_range ?? 0.02;
  noGrad(() => {
    nn.init.normal_(layer.weight, 0, std);
    if (layer.bias !== null) nn.init.zeros_(layer.bias);
  });
  return layer;
}

/** BERT + pooler -> dropout -> classifier: ids [N, T] and lengths -> logits [N, 2]. */
export class BertForSequenceClassification extends nn.Module {
  readonly config: SentimentConfig;
  bert: BertModel;
  dropout: nn.Dropout;
  classifier: nn.Linear;

  constructor(config: SentimentConfig) {
    super();
    this.config = config;
    const bert = config.pretrained as BertConfig;
    this.bert = new BertModel(bert);
    this.dropout = new nn.Dropout(config.dropout);
    this.classifier = initHead(new nn.Linear(bert.hidden_size, config.numClasses), config);
  }

  /** ids: int32 [N, T] padded at the end; lengths: the real lengths -> logits [N, 2]. */
  forward(ids: Tensor, lengths?: Int32Array): Tensor {
    const { poolerOutput } = this.bert.forward(ids, attentionMask(lengths, ids));
    return this.classifier.forward(this.dropout.forward(poolerOutput));
  }
}

/** DistilBERT, [CLS] state -> pre_classifier -> ReLU -> dropout -> classifier -> logits. */
export class DistilBertForSequenceClassification extends nn.Module {
  readonly config: SentimentConfig;
  distilbert: DistilBertModel;
  pre_classifier: nn.Linear;
  classifier: nn.Linear;
  dropout: nn.Dropout;

  constructor(config: SentimentConfig) {
    super();
    this.config = config;
    const distilbert = config.pretrained as DistilBertConfig;
    this.distilbert = new DistilBertModel(distilbert);
    this.pre_classifier = initHead(new nn.Linear(distilbert.dim, distilbert.dim), config);
    this.classifier = initHead(new nn.Linear(distilbert.dim, config.numClasses), config);
    this.dropout = new nn.Dropout(config.dropout);
  }

  /** ids: int32 [N, T] padded at the end; lengths: the real lengths -> logits [N, 2]. */
  forward(ids: Tensor, lengths?: Int32Array): Tensor {
    const { lastHiddenState } = this.distilbert.forward(ids, attentionMask(lengths, ids));
    const pooled = this.pre_classifier.forward(lastHiddenState.select(1, 0)).relu();
    return this.classifier.forward(this.dropout.forward(pooled));
  }
}

export type PretrainedClassifier =
  BertForSequenceClassification | DistilBertForSequenceClassification;

/** The classifier a "bert" SentimentConfig describes (its pretrained field says which). */
export function buildPretrainedClassifier(config: SentimentConfig): PretrainedClassifier {
  return isDistilBert(config.pretrained!)
    ? new DistilBertForSequenceClassification(config)
    : new BertForSequenceClassification(config);
}

/**
 * Reviews of maxLength tokens must fit the model's positions, and hold [CLS] and [SEP] (2).
 * `name` is what the caller calls maxLength: the CLI's "--max-length".
 */
export function checkMaxLength(
  maxLength: number,
  positions: number,
  op: string,
  name = "maxLength",
): void {
  if (!Number.isInteger(maxLength) || maxLength < 2 || maxLength > positions) {
    const message =
      `${name} must be an integer in [2, ${positions}] (the model's ` +
      `max_position_embeddings), got ${maxLength}`;
    throw new ValueError(op, message, "maxLength");
  }
}

/** The SentimentConfig of a classifier on `pretrained`, reviews cut to maxLength tokens. */
export function pretrainedSentimentConfig(
  pretrained: PretrainedConfig,
  maxLength: number,
  op = OP,
): SentimentConfig {
  checkMaxLength(maxLength, pretrained.max_position_embeddings, op);
  const distil = isDistilBert(pretrained);
  const bert = pretrained as BertConfig;
  const d = pretrained as DistilBertConfig;
  const classifierDropout = (bert as { classifier_dropout?: number | null }).classifier_dropout;
  return {
    format: "deepnode.sentiment",
    version: 1,
    model: "bert",
    vocabSize: pretrained.vocab_size,
    embeddingDim: distil ? d.dim : bert.hidden_size,
    hiddenSize: distil ? d.hidden_dim : bert.intermediate_size,
    numLayers: distil ? d.n_layers : bert.num_hidden_layers,
    dropout: distil ? d.seq_classif_dropout : (classifierDropout ?? bert.hidden_dropout_prob),
    maxLength,
    numClasses: 2,
    pretrained,
  };
}

/**
 * A "bert" config.json's pretrained field parsed as the folder's config.json would be, and
 * its sizes checked against the ones SentimentConfig repeats; anything off is a FormatError
 * of `op`.
 */
export function checkPretrainedSentimentConfig(
  value: Record<string, unknown>,
  path: string,
  op: string,
): PretrainedConfig {
  const pretrained = parsePretrainedConfig(value.pretrained, `${path} (pretrained)`, op);
  const expected = pretrainedSentimentConfig(pretrained, value.maxLength as number, op);
  for (const name of ["vocabSize", "embeddingDim", "hiddenSize", "numLayers"] as const) {
    if (value[name] !== expected[name]) {
      const message = `${name} ${value[name]} does not match the pretrained config's`;
      throw new FormatError(op, `${path}: ${message} ${expected[name]}`, path);
    }
  }
  return pretrained;
}

/**
 * A tokenizer.json that encodes reviews for a pretrained classifier: [CLS] ... [SEP] cut to
 * maxLength ids keeping the closing special token, as Hugging Face's truncation does, and
 * saved with the model as the same tokenizer.json.
 */
export class PretrainedTokenizer {
  readonly tokenizer: HfTokenizer;
  /** The id of the unknown token (what an empty review becomes in training). */
  readonly unkId: number;
  readonly size: number;

  constructor(
    readonly json: string,
    readonly maxLength: number,
  ) {
    const parsed = JSON.parse(json) as { model?: { unk_token?: string; vocab?: unknown } };
    this.tokenizer = new HfTokenizer(parsed);
    this.size = this.tokenizer.size;
    const vocab = parsed.model?.vocab as Record<string, number> | undefined;
    const unk = parsed.model?.unk_token;
    this.unkId = (unk !== undefined && !Array.isArray(vocab) && vocab?.[unk]) || 0;
  }

  /** Reads `dir`/tokenizer.json; a missing or broken file is a FormatError of `op` naming it. */
  static fromFolder(dir: string, maxLength: number, op = OP): PretrainedTokenizer {
    const path = join(dir, TOKENIZER_FILE);
    if (!existsSync(path)) throw new FormatError(op, `${path} is missing`, path);
    const text = readFileSync(path, "utf8");
    try {
      return new PretrainedTokenizer(text, maxLength);
    } catch (error) {
      throw new FormatError(op, `${path}: ${(error as Error).message}`, path);
    }
  }

  /** The ids of one text with its special tokens, at most maxLength; none for a blank text. */
  encode(text: string): number[] {
    if (this.tokenizer.tokenize(text).length === 0) return [];
    const ids = this.tokenizer.encode(text);
    if (ids.length <= this.maxLength) return ids;
    return [...ids.slice(0, this.maxLength - 1), ids[ids.length - 1]!];
  }
}

function checkFolder(dir: string, op: string): void {
  if (!existsSync(dir))
    throw new ValueError(op, `pretrained folder '${dir}' does not exist`, "dir");
  if (!statSync(dir).isDirectory()) {
    throw new ValueError(op, `'${dir}' is a file, not a pretrained model folder`, "dir");
  }
}

// The head of a folder that already holds a sequence classifier of two classes (a
// fine-tuned checkpoint) is kept; otherwise it stays freshly initialised, as in HF.
function loadHead(model: PretrainedClassifier, all: Record<string, Tensor>): void {
  const own = model.stateDict();
  const head = Object.keys(own).filter((name) => !/^(bert|distilbert)\./.test(name));
  const fits = head.every((name) => all[name]?.shape.join() === own[name]!.shape.join());
  if (fits) model.loadStateDict(Object.fromEntries(head.map((name) => [name, all[name]!])), false);
}

/** The longest input the model of a pretrained folder takes: its max_position_embeddings. */
export function maxPositionsOf(dir: string): number {
  checkFolder(dir, OP);
  const path = join(dir, "config.json");
  return parsePretrainedConfig(readJson(path, OP), path).max_position_embeddings;
}

/**
 * A Hugging Face BERT or DistilBERT folder (config.json, model.safetensors, tokenizer.json)
 * as a sentiment classifier ready to fine-tune: the encoder's weights loaded ("bert." or
 * "distilbert." prefix optional), a new two-class head, reviews cut to maxLength tokens.
 */
export async function loadPretrainedClassifier(
  dir: string,
  maxLength: number,
): Promise<{ model: PretrainedClassifier; tokenizer: PretrainedTokenizer }> {
  checkFolder(dir, OP);
  const path = join(dir, "config.json");
  const pretrained = parsePretrainedConfig(readJson(path, OP), path);
  const model = buildPretrainedClassifier(pretrainedSentimentConfig(pretrained, maxLength));
  let all: Record<string, Tensor> = {};
  const keep = (weights: Record<string, Tensor>) => (all = weights);
  if (model instanceof BertForSequenceClassification) {
    const select = (weights: Record<string, Tensor>) =>
      baseWeights(keep(weights), "bert.", ["embeddings", "encoder", "pooler"]);
    await loadWeightsInto(model.bert, dir, select, OP);
  } else {
    const select = (weights: Record<string, Tensor>) => distilBertWeights(keep(weights));
    await loadWeightsInto(model.distilbert, dir, select, OP);
  }
  loadHead(model, all);
  const tokenizer = PretrainedTokenizer.fromFolder(dir, maxLength);
  checkTokenizerSize(tokenizer, pretrained, join(dir, TOKENIZER_FILE), OP);
  return { model, tokenizer };
}

/** A tokenizer with more ids than the embedding has rows is a FormatError naming both. */
export function checkTokenizerSize(
  tokenizer: PretrainedTokenizer,
  pretrained: PretrainedConfig,
  path: string,
  op: string,
): void {
  if (tokenizer.size <= pretrained.vocab_size) return;
  const message =
    `${path} has ${tokenizer.size} tokens but config.json says ` +
    `vocab_size ${pretrained.vocab_size}`;
  throw new FormatError(op, message, path);
}
