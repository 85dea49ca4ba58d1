// A small transformer-encoder sentiment classifier for the IMDB pipeline of imdb.ts: token
// embedding plus a learned positional embedding, post-norm TransformerEncoder layers
// (GELU feed-forward) that ignore the padding through a key-padding mask built from the
// lengths, the mean of the outputs over each review's real tokens, dropout, linear to 2.

import { Tensor, fromTypedArray, nn } from "../lib/index.js";
import type { SentimentConfig } from "./imdb.js";

/** [N, T] bool, true at the padding (position >= length). */
export function paddingMask(lengths: Int32Array, width: number, device: string): Tensor {
  const mask = new Uint8Array(lengths.length * width);
  lengths.forEach((length, row) => mask.fill(1, row * width + length, (row + 1) * width));
  return fromTypedArray(mask, [lengths.length, width], { device, dtype: "bool" });
}

/** [N, T, 1] float, 1 at real tokens and 0 at the padding. */
function tokenWeights(lengths: Int32Array, width: number, device: string): Tensor {
  const weights = new Float32Array(lengths.length * width);
  lengths.forEach((length, row) => weights.fill(1, row * width, row * width + length));
  return fromTypedArray(weights, [lengths.length, width, 1], { device });
}

/**
 * embedding(ids) + position(0..T-1) -> dropout -> encoder (numLayers layers, numHeads
 * heads, feed-forward hiddenSize) -> masked mean over the real tokens -> dropout -> fc.
 */
export class SentimentTransformer extends nn.Module {
  readonly config: SentimentConfig;
  embedding: nn.Embedding;
  position: nn.Embedding;
  inputDropout: nn.Dropout;
  encoder: nn.TransformerEncoder;
  dropout: nn.Dropout;
  fc: nn.Linear;

  constructor(config: SentimentConfig) {
    super();
    this.config = config;
    const d = config.embeddingDim;
    this.embedding = new nn.Embedding(config.vocabSize, d, { paddingIdx: 0 });
    this.position = new nn.Embedding(config.maxLength, d);
    this.inputDropout = new nn.Dropout(config.dropout);
    const layer = new nn.TransformerEncoderLayer(d, config.numHeads ?? 4, {
      dimFeedforward: config.hiddenSize,
      dropout: config.dropout,
      activation: "gelu",
      batchFirst: true,
    });
    this.encoder = new nn.TransformerEncoder(layer, config.numLayers);
    this.dropout = new nn.Dropout(config.dropout);
    this.fc = new nn.Linear(d, config.numClasses);
  }

  /** ids: int32 [N, T] padded at the end; lengths: the real lengths -> logits [N, 2]. */
  forward(ids: Tensor, lengths?: Int32Array): Tensor {
    const [n, width] = ids.shape as [number, number];
    const real = lengths ?? new Int32Array(n).fill(width);
    const positions = fromTypedArray(
      Int32Array.from({ length: width }, (_, t) => t),
      [width],
      {
        device: ids.device,
      },
    );
    const x = this.embedding.forward(ids).add(this.position.forward(positions));
    const encoded = this.encoder.forward(this.inputDropout.forward(x), {
      srcKeyPaddingMask: paddingMask(real, width, ids.device),
    });
    const weights = tokenWeights(real, width, ids.device);
    const counts = fromTypedArray(Float32Array.from(real), [n, 1], { device: ids.device });
    const pooled = encoded.mul(weights).sum(1).div(counts);
    return this.fc.forward(this.dropout.forward(pooled));
  }
}
