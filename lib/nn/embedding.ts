// Embedding lookup: rows of weight [numEmbeddings, embeddingDim] picked by int32 indices,
// by the embedding primitive; its backward adds each row's gradient into the table, so
// repeated indices sum their gradients. The paddingIdx row gets no gradient; maxNorm
// renormalises, in place and before the lookup, every looked-up row whose norm exceeds it,
// as PyTorch does.

import { record } from "../autograd/graph.js";
import { noGrad } from "../autograd/grad-mode.js";
import { backendFor, getDefaultDevice, parseDevice } from "../backend/registry.js";
import {
  DTypeError,
  DeviceError,
  ShapeError,
  ValueError,
  formatShape,
  formatValue,
} from "../errors.js";
import { empty, full, zeroFilled } from "../ops/creation.js";
import { checkFloatingInput, where } from "../ops/elementwise.js";
import { fromTypedArray, type Tensor } from "../tensor.js";
import { normal_ } from "./init.js";
import type { FactoryOptions } from "./layers.js";
import { Module, checkPositiveInt } from "./module.js";
import { Parameter } from "./parameter.js";
import { pyFloat } from "./repr.js";

export interface EmbeddingOptions {
  /** This row is not trained (its gradient is zero); negative counts from the end. */
  paddingIdx?: number | null;
  /** Looked-up rows with a normType-norm above this are rescaled to it, in place. */
  maxNorm?: number | null;
  normType?: number;
}

function checkPaddingIdx(op: string, paddingIdx: number | null, rows: number): number | null {
  if (paddingIdx === null) return null;
  if (!Number.isInteger(paddingIdx) || paddingIdx < -rows || paddingIdx >= rows)
    throw new ValueError(
      op,
      `paddingIdx must be an integer in [-${rows}, ${rows}), got ${formatValue(paddingIdx)}`,
      "paddingIdx",
    );
  return paddingIdx < 0 ? paddingIdx + rows : paddingIdx;
}

function checkIndices(op: string, indices: Tensor, weight: Tensor): void {
  if (indices.dtype !== "int32")
    throw new DTypeError(op, `indices must be int32, got ${indices.dtype}`, [indices.dtype]);
  checkFloatingInput(op, weight);
  if (weight.ndim !== 2)
    throw new ShapeError(
      op,
      `weight must be [numEmbeddings, embeddingDim], got ${formatShape(weight.shape)}`,
      [weight.shape],
    );
  if (indices.device !== weight.device)
    throw new DeviceError(op, `indices are on ${indices.device}, weight on ${weight.device}`, [
      indices.device,
      weight.device,
    ]);
}

/**
 * Rescales, in place, the rows of weight named in flatIndices (already checked) whose norm
 * exceeds maxNorm. Each row's uses are counted on the device, as embedding's gradient of
 * ones, so that a GPU need not hand the indices to the host.
 */
function renormRows(weight: Tensor, flatIndices: Tensor, maxNorm: number, normType: number) {
  const uses = zeroFilled([weight.shape[0]!, 1], weight.dtype, weight.device);
  const ones = full([flatIndices.numel, 1], 1, { dtype: weight.dtype, device: weight.device });
  backendFor(weight.device).embeddingBackward(uses, ones, flatIndices, -1);
  noGrad(() => {
    const norms = weight
      .abs()
      .pow(normType)
      .sum(1, true)
      .pow(1 / normType);
    const over = norms.gt(maxNorm).to(weight.dtype).mul(uses).gt(0);
    const one = full([], 1, { dtype: weight.dtype, device: weight.device });
    const scale = full([], maxNorm, { dtype: weight.dtype, device: weight.device });
    weight.copy_(weight.mul(where(over, scale.div(norms.add(1e-7)), one)));
  });
}

/** Looks up rows of weight [V, D] for int32 indices of any shape: output [...indices, D]. */
export function embedding(indices: Tensor, weight: Tensor, options: EmbeddingOptions = {}): Tensor {
  const op = "embedding";
  checkIndices(op, indices, weight);
  const [rows, dim] = weight.shape as [number, number];
  const paddingIdx = checkPaddingIdx(op, options.paddingIdx ?? null, rows);
  const maxNorm = options.maxNorm ?? null;
  if (maxNorm !== null && (typeof maxNorm !== "number" || !(maxNorm > 0)))
    throw new ValueError(
      op,
      `maxNorm must be a positive number, got ${formatValue(maxNorm)}`,
      "maxNorm",
    );

  const flatIndices = indices.reshape([indices.numel]);
  const out = empty([indices.numel, dim], weight.dtype, weight.device);
  const backend = backendFor(weight.device);
  backend.embedding(out, weight, flatIndices); // checks every index, in this op's name
  if (maxNorm !== null) {
    renormRows(weight, flatIndices, maxNorm, options.normType ?? 2);
    backend.embedding(out, weight, flatIndices); // the rows as renormalised
  }
  const result = record(out, op, [weight], (g) => {
    const grad = zeroFilled(weight.shape, weight.dtype, weight.device);
    backend.embeddingBackward(grad, g, flatIndices, paddingIdx ?? -1);
    return [grad];
  });
  return result.reshape([...indices.shape, dim]);
}

export interface EmbeddingModuleOptions extends EmbeddingOptions, FactoryOptions {}

/** A lookup table of numEmbeddings vectors of size embeddingDim, initialised N(0, 1). */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly paddingIdx: number | null;
  readonly maxNorm: number | null;
  readonly normType: number;
  weight: Parameter; // [numEmbeddings, embeddingDim]

  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingModuleOptions = {}) {
    super();
    this.numEmbeddings = checkPositiveInt("Embedding", "numEmbeddings", numEmbeddings);
    this.embeddingDim = checkPositiveInt("Embedding", "embeddingDim", embeddingDim);
    this.paddingIdx = checkPaddingIdx("Embedding", options.paddingIdx ?? null, numEmbeddings);
    this.maxNorm = options.maxNorm ?? null;
    this.normType = options.normType ?? 2;
    const dtype = options.dtype ?? "float32";
    if (dtype !== "float32" && dtype !== "float64")
      throw new DTypeError("Embedding", `parameters must be float32 or float64, got ${dtype}`, [
        dtype,
      ]);
    const device = options.device === undefined ? getDefaultDevice() : parseDevice(options.device);
    this.weight = new Parameter(empty([numEmbeddings, embeddingDim], dtype, device));
    this.resetParameters();
  }

  /**
   * An Embedding holding a copy of `embeddings` [numEmbeddings, embeddingDim]; frozen
   * (the default, as PyTorch) means its weight does not require grad.
   */
  static fromPretrained(
    embeddings: Tensor,
    options: EmbeddingOptions & { freeze?: boolean } = {},
  ): Embedding {
    if (embeddings.ndim !== 2)
      throw new ShapeError(
        "Embedding.fromPretrained",
        `embeddings must be [numEmbeddings, embeddingDim], got ${formatShape(embeddings.shape)}`,
        [embeddings.shape],
      );
    const [rows, dim] = embeddings.shape as [number, number];
    const module = new Embedding(rows, dim, {
      ...options,
      device: embeddings.device,
      dtype: embeddings.dtype,
    });
    noGrad(() => module.weight.copy_(embeddings));
    if (options.freeze ?? true) module.weight.requiresGrad_(false);
    return module;
  }

  /** N(0, 1), then the padding row zeroed. */
  override resetParameters(): void {
    normal_(this.weight);
    if (this.paddingIdx === null) return;
    const keep = new Float32Array(this.numEmbeddings).fill(1);
    keep[this.paddingIdx] = 0;
    const weight = this.weight;
    noGrad(() => {
      const mask = fromTypedArray(keep, [this.numEmbeddings, 1], { device: weight.device });
      const zero = full([], 0, { dtype: weight.dtype, device: weight.device }); // +0, not -0
      weight.copy_(where(mask.gt(0), weight, zero));
    });
  }

  forward(indices: Tensor): Tensor {
    return embedding(indices, this.weight, {
      paddingIdx: this.paddingIdx,
      maxNorm: this.maxNorm,
      normType: this.normType,
    });
  }

  override extraRepr(): string {
    let text = `${this.numEmbeddings}, ${this.embeddingDim}`;
    if (this.paddingIdx !== null) text += `, padding_idx=${this.paddingIdx}`;
    if (this.maxNorm !== null) text += `, max_norm=${pyFloat(this.maxNorm)}`;
    if (this.normType !== 2) text += `, norm_type=${pyFloat(this.normType)}`;
    return text;
  }
}
