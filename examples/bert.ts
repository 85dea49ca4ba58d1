// A BERT encoder with Hugging Face's module structure and parameter names
// (embeddings.word_embeddings.weight, encoder.layer.0.attention.self.query.weight, ...), so
// a BertModel folder (config.json, model.safetensors, tokenizer.json) loads as it is and
// computes what PyTorch computes: embeddings + LayerNorm, post-LN layers of multi-head
// self-attention with the padding masked and an exact-GELU feed-forward, a tanh pooler on
// the first ([CLS]) token. Outside this repository, import from "deepnode".

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { HfTokenizer, encodeBatch } from "../lib/data/text.js";
import {
  F,
  FormatError,
  NotSupportedError,
  StateDictError,
  Tensor,
  fromTypedArray,
  nn,
  noGrad,
} from "../lib/index.js";
import { loadSafetensors } from "../lib/io/safetensors.js";

/** The config.json fields BertModel reads (Hugging Face's names). */
export interface BertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: "gelu";
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
}

const OP = "loadBert";
const SIZES = [
  "vocab_size",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "intermediate_size",
  "max_position_embeddings",
  "type_vocab_size",
] as const;

/** config.json checked field by field; anything off is a FormatError naming the field. */
export function parseBertConfig(json: unknown, path = "config.json"): BertConfig {
  const value = json as Record<string, unknown>;
  const fail = (what: string): never => {
    throw new FormatError(OP, `${path}: ${what}`, path);
  };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("expected a JSON object");
  }
  if (value.model_type !== undefined && value.model_type !== "bert") {
    fail(`model_type must be "bert", got ${JSON.stringify(value.model_type)}`);
  }
  for (const name of SIZES) {
    const n = value[name];
    if (!Number.isInteger(n) || (n as number) < 1) {
      fail(`${name} must be a positive integer, got ${JSON.stringify(n)}`);
    }
  }
  const act = value.hidden_act ?? "gelu";
  if (act !== "gelu") throw new NotSupportedError(OP, `${path}: hidden_act ${act} (only gelu)`);
  if ((value.hidden_size as number) % (value.num_attention_heads as number) !== 0) {
    fail(`hidden_size ${value.hidden_size} is not divisible by ${value.num_attention_heads} heads`);
  }
  return {
    ...(value as unknown as BertConfig),
    hidden_act: "gelu",
    hidden_dropout_prob: (value.hidden_dropout_prob as number | undefined) ?? 0.1,
    attention_probs_dropout_prob: (value.attention_probs_dropout_prob as number | undefined) ?? 0.1,
    layer_norm_eps: (value.layer_norm_eps as number | undefined) ?? 1e-12,
  };
}

function layerNorm(config: BertConfig): nn.LayerNorm {
  return new nn.LayerNorm(config.hidden_size, { eps: config.layer_norm_eps });
}

/** word + position + token type embeddings -> LayerNorm -> dropout. */
export class BertEmbeddings extends nn.Module {
  word_embeddings: nn.Embedding;
  position_embeddings: nn.Embedding;
  token_type_embeddings: nn.Embedding;
  LayerNorm: nn.LayerNorm;
  dropout: nn.Dropout;

  constructor(config: BertConfig) {
    super();
    const h = config.hidden_size;
    this.word_embeddings = new nn.Embedding(config.vocab_size, h);
    this.position_embeddings = new nn.Embedding(config.max_position_embeddings, h);
    this.token_type_embeddings = new nn.Embedding(config.type_vocab_size, h);
    this.LayerNorm = layerNorm(config);
    this.dropout = new nn.Dropout(config.hidden_dropout_prob);
  }

  forward(inputIds: Tensor, tokenTypeIds: Tensor): Tensor {
    const width = inputIds.shape[1]!;
    const positions = fromTypedArray(
      Int32Array.from({ length: width }, (_, t) => t),
      [width],
      {
        device: inputIds.device,
      },
    );
    const x = this.word_embeddings
      .forward(inputIds)
      .add(this.position_embeddings.forward(positions))
      .add(this.token_type_embeddings.forward(tokenTypeIds));
    return this.dropout.forward(this.LayerNorm.forward(x));
  }
}

/** query, key, value projections and the attention itself (HF's BertSelfAttention). */
export class BertSelfAttention extends nn.Module {
  readonly heads: number;
  query: nn.Linear;
  key: nn.Linear;
  value: nn.Linear;
  readonly dropoutP: number;

  constructor(config: BertConfig) {
    super();
    const h = config.hidden_size;
    this.heads = config.num_attention_heads;
    this.query = new nn.Linear(h, h);
    this.key = new nn.Linear(h, h);
    this.value = new nn.Linear(h, h);
    this.dropoutP = config.attention_probs_dropout_prob;
  }

  /** x [N, T, H], padding bool [N, T] (true = padding) -> context [N, T, H]. */
  forward(x: Tensor, padding: Tensor): Tensor {
    const [n, t, h] = x.shape as [number, number, number];
    const split = (y: Tensor) => y.reshape([n, t, this.heads, h / this.heads]).permute(0, 2, 1, 3);
    const context = F.scaledDotProductAttention(
      split(this.query.forward(x)),
      split(this.key.forward(x)),
      split(this.value.forward(x)),
      { keyPaddingMask: padding, dropoutP: this.dropoutP, training: this.training },
    );
    return context.permute(0, 2, 1, 3).reshape([n, t, h]);
  }
}

/** dense -> dropout -> LayerNorm(+ residual): HF's BertSelfOutput and BertOutput. */
export class BertResidualOutput extends nn.Module {
  dense: nn.Linear;
  LayerNorm: nn.LayerNorm;
  dropout: nn.Dropout;

  constructor(config: BertConfig, inFeatures: number) {
    super();
    this.dense = new nn.Linear(inFeatures, config.hidden_size);
    this.LayerNorm = layerNorm(config);
    this.dropout = new nn.Dropout(config.hidden_dropout_prob);
  }

  forward(x: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(this.dropout.forward(this.dense.forward(x)).add(residual));
  }
}

export class BertAttention extends nn.Module {
  self: BertSelfAttention;
  output: BertResidualOutput;

  constructor(config: BertConfig) {
    super();
    this.self = new BertSelfAttention(config);
    this.output = new BertResidualOutput(config, config.hidden_size);
  }

  forward(x: Tensor, padding: Tensor): Tensor {
    return this.output.forward(this.self.forward(x, padding), x);
  }
}

export class BertIntermediate extends nn.Module {
  dense: nn.Linear;

  constructor(config: BertConfig) {
    super();
    this.dense = new nn.Linear(config.hidden_size, config.intermediate_size);
  }

  forward(x: Tensor): Tensor {
    return F.gelu(this.dense.forward(x));
  }
}

/** One post-LN encoder layer. */
export class BertLayer extends nn.Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertResidualOutput;

  constructor(config: BertConfig) {
    super();
    this.attention = new BertAttention(config);
    this.intermediate = new BertIntermediate(config);
    this.output = new BertResidualOutput(config, config.intermediate_size);
  }

  forward(x: Tensor, padding: Tensor): Tensor {
    const attended = this.attention.forward(x, padding);
    return this.output.forward(this.intermediate.forward(attended), attended);
  }
}

export class BertEncoder extends nn.Module {
  layer: nn.ModuleList;

  constructor(config: BertConfig) {
    super();
    this.layer = new nn.ModuleList(
      Array.from({ length: config.num_hidden_layers }, () => new BertLayer(config)),
    );
  }

  forward(x: Tensor, padding: Tensor): Tensor {
    let out = x;
    for (const layer of this.layer) out = (layer as BertLayer).forward(out, padding);
    return out;
  }
}

export class BertPooler extends nn.Module {
  dense: nn.Linear;

  constructor(config: BertConfig) {
    super();
    this.dense = new nn.Linear(config.hidden_size, config.hidden_size);
  }

  forward(hidden: Tensor): Tensor {
    return this.dense.forward(hidden.select(1, 0)).tanh();
  }
}

export interface BertOutput {
  /** [N, T, hidden]. */
  lastHiddenState: Tensor;
  /** tanh(dense(the [CLS] state)) [N, hidden]. */
  poolerOutput: Tensor;
}

/** Hugging Face's BertModel. */
export class BertModel extends nn.Module {
  readonly config: BertConfig;
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler;

  constructor(config: BertConfig) {
    super();
    this.config = config;
    this.embeddings = new BertEmbeddings(config);
    this.encoder = new BertEncoder(config);
    this.pooler = new BertPooler(config);
  }

  /** inputIds int32 [N, T]; attentionMask int32 [N, T] (1 = real token); tokenTypeIds. */
  forward(inputIds: Tensor, attentionMask?: Tensor, tokenTypeIds?: Tensor): BertOutput {
    const types = tokenTypeIds ?? inputIds.mul(0);
    const padding = (attentionMask ?? inputIds.mul(0).add(1)).eq(0);
    const hidden = this.encoder.forward(this.embeddings.forward(inputIds, types), padding);
    return { lastHiddenState: hidden, poolerOutput: this.pooler.forward(hidden) };
  }
}

/** A JSON file of a model folder; a missing or broken one is a FormatError of `op`. */
export function readJson(path: string, op = OP): unknown {
  if (!existsSync(path)) throw new FormatError(op, `${path} is missing`, path);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new FormatError(op, `${path} is not valid JSON: ${(error as Error).message}`, path);
  }
}

// Checkpoints converted from TensorFlow, bert-base-uncased's among them, still name the
// LayerNorm parameters gamma and beta; Hugging Face renames them on load, and so do we.
const OLD_NORM_NAMES: [RegExp, string][] = [
  [/LayerNorm\.gamma$/, "LayerNorm.weight"],
  [/LayerNorm\.beta$/, "LayerNorm.bias"],
];

/**
 * The weights under a base model's names: a leading `prefix` ("bert.") dropped, LayerNorm
 * gamma/beta read as weight/bias, and only names under `roots` kept, so task heads and the
 * position_ids buffer are left out.
 */
export function baseWeights(
  all: Record<string, Tensor>,
  prefix: string,
  roots: readonly string[],
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, tensor] of Object.entries(all)) {
    let own = name.startsWith(prefix) ? name.slice(prefix.length) : name;
    for (const [old, current] of OLD_NORM_NAMES) own = own.replace(old, current);
    const root = own.slice(0, own.indexOf("."));
    if (roots.includes(root) && !own.endsWith("position_ids")) out[own] = tensor;
  }
  return out;
}

const bertWeights = (all: Record<string, Tensor>) =>
  baseWeights(all, "bert.", ["embeddings", "encoder", "pooler"]);

/**
 * Reads `dir`/model.safetensors into `model` through `select`; a missing file, or weights
 * that do not fit config.json, is a FormatError of `op` naming the file.
 */
export async function loadWeightsInto(
  model: nn.Module,
  dir: string,
  select: (all: Record<string, Tensor>) => Record<string, Tensor>,
  op = OP,
): Promise<void> {
  const weightsPath = join(dir, "model.safetensors");
  if (!existsSync(weightsPath)) throw new FormatError(op, `${weightsPath} is missing`, weightsPath);
  try {
    model.loadStateDict(select(await loadSafetensors(weightsPath)));
  } catch (error) {
    if (!(error instanceof StateDictError)) throw error;
    const message = `${weightsPath} does not fit config.json: ${error.message}`;
    throw new FormatError(op, message, weightsPath);
  }
}

/** What BertEncoderPipeline runs: BertModel, or DistilBertModel (examples/distilbert.ts). */
export interface PretrainedEncoder extends nn.Module {
  readonly config: { max_position_embeddings: number };
  forward(inputIds: Tensor, attentionMask?: Tensor): { lastHiddenState: Tensor };
}

/** A BertModel (or DistilBertModel) folder with its tokenizer: embed(texts) runs both. */
export class BertEncoderPipeline<M extends PretrainedEncoder = BertModel> {
  constructor(
    readonly model: M,
    readonly tokenizer: HfTokenizer,
  ) {
    model.eval();
  }

  /** The tokenized, padded texts through the model, without gradients. */
  embed(
    texts: readonly string[],
  ): ReturnType<M["forward"]> & { inputIds: Tensor; attentionMask: Tensor } {
    const batch = encodeBatch(this.tokenizer, texts, {
      maxLength: this.model.config.max_position_embeddings,
    });
    const out = noGrad(() => this.model.forward(batch.inputIds, batch.attentionMask));
    const { inputIds, attentionMask } = batch;
    return { ...(out as ReturnType<M["forward"]>), inputIds, attentionMask };
  }
}

/** Reads config.json, model.safetensors and tokenizer.json of a Hugging Face BERT folder. */
export async function loadBert(dir: string): Promise<BertEncoderPipeline> {
  const config = parseBertConfig(readJson(join(dir, "config.json")), join(dir, "config.json"));
  const model = new BertModel(config);
  await loadWeightsInto(model, dir, bertWeights);
  return new BertEncoderPipeline(model, HfTokenizer.fromFile(dir));
}
