// DistilBERT with Hugging Face's module structure and parameter names
// (embeddings.word_embeddings.weight, transformer.layer.0.attention.q_lin.weight, ...), so a
// DistilBertModel folder (config.json, model.safetensors, tokenizer.json) loads as it is and
// computes what PyTorch computes: word + position embeddings (no token types) + LayerNorm,
// then post-LN blocks of multi-head self-attention with the padding masked and a GELU (or
// ReLU) feed-forward. Unlike BERT there is no pooler. Outside this repository, import from
// "deepnode".

import { join } from "node:path";

import { HfTokenizer } from "../lib/data/text.js";
import { F, FormatError, NotSupportedError, Tensor, fromTypedArray, nn } from "../lib/index.js";
import { BertEncoderPipeline, baseWeights, loadWeightsInto, readJson } from "./bert.js";

/** The config.json fields DistilBertModel reads (Hugging Face's names). */
export interface DistilBertConfig {
  model_type: "distilbert";
  vocab_size: number;
  dim: number;
  n_layers: number;
  n_heads: number;
  hidden_dim: number;
  activation: "gelu" | "relu";
  dropout: number;
  attention_dropout: number;
  /** The dropout before the classifier of DistilBertForSequenceClassification. */
  seq_classif_dropout: number;
  max_position_embeddings: number;
  /** Fixed sinusoidal position embeddings: stored in the weights, never trained. */
  sinusoidal_pos_embds: boolean;
}

const OP = "loadDistilBert";
const SIZES = ["vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "max_position_embeddings"];
// Hugging Face's DistilBERT builds every LayerNorm with this eps; config.json has no field.
const LAYER_NORM_EPS = 1e-12;

function checkSizes(value: Record<string, unknown>, fail: (what: string) => never): void {
  for (const name of SIZES) {
    const n = value[name];
    if (!Number.isInteger(n) || (n as number) < 1) {
      fail(`${name} must be a positive integer, got ${JSON.stringify(n)}`);
    }
  }
  if ((value.dim as number) % (value.n_heads as number) !== 0) {
    fail(`dim ${value.dim} is not divisible by ${value.n_heads} heads`);
  }
}

/** config.json checked field by field; anything off is a FormatError naming the field. */
export function parseDistilBertConfig(json: unknown, path = "config.json"): DistilBertConfig {
  const value = json as Record<string, unknown>;
  const fail = (what: string): never => {
    throw new FormatError(OP, `${path}: ${what}`, path);
  };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("expected a JSON object");
  }
  if (value.model_type !== "distilbert") {
    fail(`model_type must be "distilbert", got ${JSON.stringify(value.model_type)}`);
  }
  checkSizes(value, fail);
  const activation = value.activation ?? "gelu";
  if (activation !== "gelu" && activation !== "relu") {
    throw new NotSupportedError(OP, `${path}: activation ${activation} (only gelu and relu)`);
  }
  const rate = (name: string, fallback: number) => (value[name] as number | undefined) ?? fallback;
  return {
    ...(value as unknown as DistilBertConfig),
    activation,
    dropout: rate("dropout", 0.1),
    attention_dropout: rate("attention_dropout", 0.1),
    seq_classif_dropout: rate("seq_classif_dropout", 0.2),
    sinusoidal_pos_embds: value.sinusoidal_pos_embds === true,
  };
}

function layerNorm(config: DistilBertConfig): nn.LayerNorm {
  return new nn.LayerNorm(config.dim, { eps: LAYER_NORM_EPS });
}

/** word + position embeddings -> LayerNorm -> dropout (HF's Embeddings). */
export class DistilBertEmbeddings extends nn.Module {
  word_embeddings: nn.Embedding;
  position_embeddings: nn.Embedding;
  LayerNorm: nn.LayerNorm;
  dropout: nn.Dropout;

  constructor(config: DistilBertConfig) {
    super();
    this.word_embeddings = new nn.Embedding(config.vocab_size, config.dim);
    this.position_embeddings = new nn.Embedding(config.max_position_embeddings, config.dim);
    // As Hugging Face's: sinusoidal tables come with the checkpoint and stay frozen.
    if (config.sinusoidal_pos_embds) this.position_embeddings.weight.requiresGrad = false;
    this.LayerNorm = layerNorm(config);
    this.dropout = new nn.Dropout(config.dropout);
  }

  /** inputIds int32 [N, T] -> [N, T, dim]. */
  forward(inputIds: Tensor): Tensor {
    const width = inputIds.shape[1]!;
    const positions = fromTypedArray(
      Int32Array.from({ length: width }, (_, t) => t),
      [width],
      { device: inputIds.device },
    );
    const x = this.word_embeddings
      .forward(inputIds)
      .add(this.position_embeddings.forward(positions));
    return this.dropout.forward(this.LayerNorm.forward(x));
  }
}

/** q_lin, k_lin, v_lin, the attention and out_lin (HF's MultiHeadSelfAttention). */
export class MultiHeadSelfAttention extends nn.Module {
  readonly heads: number;
  q_lin: nn.Linear;
  k_lin: nn.Linear;
  v_lin: nn.Linear;
  out_lin: nn.Linear;
  readonly dropoutP: number;

  constructor(config: DistilBertConfig) {
    super();
    const d = config.dim;
    this.heads = config.n_heads;
    this.q_lin = new nn.Linear(d, d);
    this.k_lin = new nn.Linear(d, d);
    this.v_lin = new nn.Linear(d, d);
    this.out_lin = new nn.Linear(d, d);
    this.dropoutP = config.attention_dropout;
  }

  /** x [N, T, dim], padding bool [N, T] (true = padding) -> [N, T, dim]. */
  forward(x: Tensor, padding: Tensor): Tensor {
    const [n, t, d] = x.shape as [number, number, number];
    const split = (y: Tensor) => y.reshape([n, t, this.heads, d / this.heads]).permute(0, 2, 1, 3);
    const context = F.scaledDotProductAttention(
      split(this.q_lin.forward(x)),
      split(this.k_lin.forward(x)),
      split(this.v_lin.forward(x)),
      { keyPaddingMask: padding, dropoutP: this.dropoutP, training: this.training },
    );
    return this.out_lin.forward(context.permute(0, 2, 1, 3).reshape([n, t, d]));
  }
}

/** lin1 -> activation -> lin2 -> dropout (HF's FFN). */
export class FFN extends nn.Module {
  lin1: nn.Linear;
  lin2: nn.Linear;
  dropout: nn.Dropout;
  readonly activation: "gelu" | "relu";

  constructor(config: DistilBertConfig) {
    super();
    this.lin1 = new nn.Linear(config.dim, config.hidden_dim);
    this.lin2 = new nn.Linear(config.hidden_dim, config.dim);
    this.dropout = new nn.Dropout(config.dropout);
    this.activation = config.activation;
  }

  forward(x: Tensor): Tensor {
    const hidden = this.lin1.forward(x);
    const activated = this.activation === "gelu" ? F.gelu(hidden) : hidden.relu();
    return this.dropout.forward(this.lin2.forward(activated));
  }
}

/** One post-LN block: sa_layer_norm(attention + x), then output_layer_norm(ffn + that). */
export class TransformerBlock extends nn.Module {
  attention: MultiHeadSelfAttention;
  sa_layer_norm: nn.LayerNorm;
  ffn: FFN;
  output_layer_norm: nn.LayerNorm;

  constructor(config: DistilBertConfig) {
    super();
    this.attention = new MultiHeadSelfAttention(config);
    this.sa_layer_norm = layerNorm(config);
    this.ffn = new FFN(config);
    this.output_layer_norm = layerNorm(config);
  }

  forward(x: Tensor, padding: Tensor): Tensor {
    const attended = this.sa_layer_norm.forward(this.attention.forward(x, padding).add(x));
    return this.output_layer_norm.forward(this.ffn.forward(attended).add(attended));
  }
}

export class Transformer extends nn.Module {
  layer: nn.ModuleList;

  constructor(config: DistilBertConfig) {
    super();
    this.layer = new nn.ModuleList(
      Array.from({ length: config.n_layers }, () => new TransformerBlock(config)),
    );
  }

  forward(x: Tensor, padding: Tensor): Tensor {
    let out = x;
    for (const block of this.layer) out = (block as TransformerBlock).forward(out, padding);
    return out;
  }
}

export interface DistilBertOutput {
  /** [N, T, dim]. */
  lastHiddenState: Tensor;
}

/** Hugging Face's DistilBertModel. */
export class DistilBertModel extends nn.Module {
  readonly config: DistilBertConfig;
  embeddings: DistilBertEmbeddings;
  transformer: Transformer;

  constructor(config: DistilBertConfig) {
    super();
    this.config = config;
    this.embeddings = new DistilBertEmbeddings(config);
    this.transformer = new Transformer(config);
  }

  /** inputIds int32 [N, T]; attentionMask int32 [N, T] (1 = real token). */
  forward(inputIds: Tensor, attentionMask?: Tensor): DistilBertOutput {
    const padding = (attentionMask ?? inputIds.mul(0).add(1)).eq(0);
    return {
      lastHiddenState: this.transformer.forward(this.embeddings.forward(inputIds), padding),
    };
  }
}

/** The weights under DistilBertModel's names: a "distilbert." prefix dropped, heads left out. */
export const distilBertWeights = (all: Record<string, Tensor>) =>
  baseWeights(all, "distilbert.", ["embeddings", "transformer"]);

/** Reads config.json, model.safetensors and tokenizer.json of a Hugging Face DistilBERT folder. */
export async function loadDistilBert(dir: string): Promise<BertEncoderPipeline<DistilBertModel>> {
  const path = join(dir, "config.json");
  const model = new DistilBertModel(parseDistilBertConfig(readJson(path, OP), path));
  await loadWeightsInto(model, dir, distilBertWeights, OP);
  return new BertEncoderPipeline(model, HfTokenizer.fromFile(dir));
}
