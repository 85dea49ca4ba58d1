// Transformer layers with PyTorch's structure and parameter names: TransformerEncoderLayer,
// TransformerEncoder (numLayers copies of one layer, weights included, as copy.deepcopy)
// and TransformerDecoderLayer, each post-norm by default or pre-norm with normFirst.

import { ValueError } from "../errors.js";
import type { Tensor } from "../tensor.js";
import * as F from "./functional.js";
import { MultiheadAttention } from "./multihead.js";
import { ModuleList } from "./containers.js";
import { Dropout, Linear, type FactoryOptions } from "./layers.js";
import { Module, checkPositiveInt } from "./module.js";
import { LayerNorm } from "./normalization.js";

export type TransformerActivation = "relu" | "gelu";

export interface TransformerLayerOptions extends FactoryOptions {
  dimFeedforward?: number;
  dropout?: number;
  activation?: TransformerActivation;
  layerNormEps?: number;
  batchFirst?: boolean;
  normFirst?: boolean;
  bias?: boolean;
}

export interface TransformerEncoderForwardOptions {
  /** [L, L] or [N * nhead, L, L]; bool true = not allowed, float = added. */
  srcMask?: Tensor | null;
  /** [N, L]; bool true = padding. */
  srcKeyPaddingMask?: Tensor | null;
  isCausal?: boolean;
}

export interface TransformerDecoderForwardOptions {
  tgtMask?: Tensor | null;
  memoryMask?: Tensor | null;
  tgtKeyPaddingMask?: Tensor | null;
  memoryKeyPaddingMask?: Tensor | null;
  tgtIsCausal?: boolean;
  memoryIsCausal?: boolean;
}

function activationOf(op: string, name: unknown): (x: Tensor) => Tensor {
  if (name === "relu") return F.relu;
  if (name === "gelu") return (x) => F.gelu(x);
  throw new ValueError(
    op,
    `activation must be "relu" or "gelu", got ${String(name)}`,
    "activation",
  );
}

/** The resolved options every transformer layer stores, so it can be rebuilt. */
function resolve(op: string, options: TransformerLayerOptions): Required<TransformerLayerOptions> {
  const resolved = {
    dimFeedforward: options.dimFeedforward ?? 2048,
    dropout: options.dropout ?? 0.1,
    activation: options.activation ?? "relu",
    layerNormEps: options.layerNormEps ?? 1e-5,
    batchFirst: options.batchFirst ?? false,
    normFirst: options.normFirst ?? false,
    bias: options.bias ?? true,
    device: options.device ?? "",
    dtype: options.dtype ?? "float32",
  };
  checkPositiveInt(op, "dimFeedforward", resolved.dimFeedforward);
  activationOf(op, resolved.activation);
  return resolved;
}

function factory(o: Required<TransformerLayerOptions>): FactoryOptions {
  return o.device === "" ? { dtype: o.dtype } : { device: o.device, dtype: o.dtype };
}

/** Shared by both layers: the feed-forward block linear2(dropout(act(linear1(x)))). */
abstract class TransformerLayerBase extends Module {
  readonly dModel: number;
  readonly nhead: number;
  readonly config: Required<TransformerLayerOptions>;
  protected readonly activationFn: (x: Tensor) => Tensor;

  constructor(op: string, dModel: number, nhead: number, options: TransformerLayerOptions) {
    super();
    this.dModel = checkPositiveInt(op, "dModel", dModel);
    this.nhead = checkPositiveInt(op, "nhead", nhead);
    this.config = resolve(op, options);
    this.activationFn = activationOf(op, this.config.activation);
  }

  protected attention(o: Required<TransformerLayerOptions>): MultiheadAttention {
    return new MultiheadAttention(this.dModel, this.nhead, {
      ...factory(o),
      dropout: o.dropout,
      bias: o.bias,
      batchFirst: o.batchFirst,
    });
  }

  protected norm(o: Required<TransformerLayerOptions>): LayerNorm {
    return new LayerNorm(this.dModel, { ...factory(o), eps: o.layerNormEps });
  }
}

/** Self-attention then feed-forward. src [L, N, E] ([N, L, E] with batchFirst). */
export class TransformerEncoderLayer extends TransformerLayerBase {
  self_attn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;

  constructor(dModel: number, nhead: number, options: TransformerLayerOptions = {}) {
    super("TransformerEncoderLayer", dModel, nhead, options);
    const o = this.config;
    const f = { ...factory(o), bias: o.bias };
    this.self_attn = this.attention(o);
    this.linear1 = new Linear(dModel, o.dimFeedforward, f);
    this.dropout = new Dropout(o.dropout);
    this.linear2 = new Linear(o.dimFeedforward, dModel, f);
    this.norm1 = this.norm(o);
    this.norm2 = this.norm(o);
    this.dropout1 = new Dropout(o.dropout);
    this.dropout2 = new Dropout(o.dropout);
  }

  forward(src: Tensor, options: TransformerEncoderForwardOptions = {}): Tensor {
    let x = src;
    if (this.config.normFirst) {
      x = x.add(this.selfAttentionBlock(this.norm1.forward(x), options));
      return x.add(this.feedForwardBlock(this.norm2.forward(x)));
    }
    x = this.norm1.forward(x.add(this.selfAttentionBlock(x, options)));
    return this.norm2.forward(x.add(this.feedForwardBlock(x)));
  }

  private selfAttentionBlock(x: Tensor, options: TransformerEncoderForwardOptions): Tensor {
    const [out] = this.self_attn.forward(x, x, x, {
      attnMask: options.srcMask,
      keyPaddingMask: options.srcKeyPaddingMask,
      isCausal: options.isCausal,
      needWeights: false,
    });
    return this.dropout1.forward(out);
  }

  private feedForwardBlock(x: Tensor): Tensor {
    const hidden = this.dropout.forward(this.activationFn(this.linear1.forward(x)));
    return this.dropout2.forward(this.linear2.forward(hidden));
  }
}

/** Self-attention, cross-attention over memory, then feed-forward. */
export class TransformerDecoderLayer extends TransformerLayerBase {
  self_attn: MultiheadAttention;
  multihead_attn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  norm3: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;
  dropout3: Dropout;

  constructor(dModel: number, nhead: number, options: TransformerLayerOptions = {}) {
    super("TransformerDecoderLayer", dModel, nhead, options);
    const o = this.config;
    const f = { ...factory(o), bias: o.bias };
    this.self_attn = this.attention(o);
    this.multihead_attn = this.attention(o);
    this.linear1 = new Linear(dModel, o.dimFeedforward, f);
    this.dropout = new Dropout(o.dropout);
    this.linear2 = new Linear(o.dimFeedforward, dModel, f);
    this.norm1 = this.norm(o);
    this.norm2 = this.norm(o);
    this.norm3 = this.norm(o);
    this.dropout1 = new Dropout(o.dropout);
    this.dropout2 = new Dropout(o.dropout);
    this.dropout3 = new Dropout(o.dropout);
  }

  forward(tgt: Tensor, memory: Tensor, options: TransformerDecoderForwardOptions = {}): Tensor {
    let x = tgt;
    if (this.config.normFirst) {
      x = x.add(this.selfAttentionBlock(this.norm1.forward(x), options));
      x = x.add(this.crossAttentionBlock(this.norm2.forward(x), memory, options));
      return x.add(this.feedForwardBlock(this.norm3.forward(x)));
    }
    x = this.norm1.forward(x.add(this.selfAttentionBlock(x, options)));
    x = this.norm2.forward(x.add(this.crossAttentionBlock(x, memory, options)));
    return this.norm3.forward(x.add(this.feedForwardBlock(x)));
  }

  private selfAttentionBlock(x: Tensor, options: TransformerDecoderForwardOptions): Tensor {
    const [out] = this.self_attn.forward(x, x, x, {
      attnMask: options.tgtMask,
      keyPaddingMask: options.tgtKeyPaddingMask,
      isCausal: options.tgtIsCausal,
      needWeights: false,
    });
    return this.dropout1.forward(out);
  }

  private crossAttentionBlock(
    x: Tensor,
    memory: Tensor,
    options: TransformerDecoderForwardOptions,
  ): Tensor {
    const [out] = this.multihead_attn.forward(x, memory, memory, {
      attnMask: options.memoryMask,
      keyPaddingMask: options.memoryKeyPaddingMask,
      isCausal: options.memoryIsCausal,
      needWeights: false,
    });
    return this.dropout2.forward(out);
  }

  private feedForwardBlock(x: Tensor): Tensor {
    const hidden = this.dropout.forward(this.activationFn(this.linear1.forward(x)));
    return this.dropout3.forward(this.linear2.forward(hidden));
  }
}

export interface TransformerEncoderOptions {
  /** Applied to the output of the last layer (PyTorch's norm argument). */
  norm?: Module | null;
}

/**
 * numLayers copies of encoderLayer, named layers.0, layers.1, ...: each a new layer with
 * the same options and a copy of encoderLayer's weights (as PyTorch's deepcopy).
 */
export class TransformerEncoder extends Module {
  readonly numLayers: number;
  layers: ModuleList;
  norm: Module | null;

  constructor(
    encoderLayer: TransformerEncoderLayer,
    numLayers: number,
    options: TransformerEncoderOptions = {},
  ) {
    super();
    if (!(encoderLayer instanceof TransformerEncoderLayer))
      throw new ValueError(
        "TransformerEncoder",
        "encoderLayer must be a TransformerEncoderLayer",
        "encoderLayer",
      );
    this.numLayers = checkPositiveInt("TransformerEncoder", "numLayers", numLayers);
    this.layers = new ModuleList(Array.from({ length: numLayers }, () => copyLayer(encoderLayer)));
    this.norm = options.norm ?? null;
  }

  forward(src: Tensor, options: TransformerEncoderForwardOptions = {}): Tensor {
    let x = src;
    for (const layer of this.layers) x = (layer as TransformerEncoderLayer).forward(x, options);
    return this.norm === null ? x : (this.norm as LayerNorm).forward(x);
  }
}

function copyLayer(layer: TransformerEncoderLayer): TransformerEncoderLayer {
  const copy = new TransformerEncoderLayer(layer.dModel, layer.nhead, layer.config);
  copy.loadStateDict(layer.stateDict());
  copy.train(layer.training);
  return copy;
}
