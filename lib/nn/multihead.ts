// nn.MultiheadAttention with PyTorch's parameter layout, over attentionWithWeights: the
// heads are a batch dim of one batched attention call.

import { noGrad } from "../autograd/grad-mode.js";
import { getDefaultDevice, parseDevice } from "../backend/registry.js";
import { DTypeError, ShapeError, ValueError, formatShape, formatValue } from "../errors.js";
import { empty } from "../ops/creation.js";
import type { Tensor } from "../tensor.js";
import { attentionWithWeights, scaledDotProductAttention } from "./attention.js";
import * as F from "./functional.js";
import { constant_, xavierUniform_ } from "./init.js";
import { Linear, type FactoryOptions } from "./layers.js";
import { Module, checkPositiveInt } from "./module.js";
import { Parameter } from "./parameter.js";

// ---- nn.MultiheadAttention ----------------------------------------------------------

export interface MultiheadAttentionOptions extends FactoryOptions {
  dropout?: number;
  bias?: boolean;
  batchFirst?: boolean;
  kdim?: number;
  vdim?: number;
}

export interface MultiheadAttentionForwardOptions {
  /** [N, S] ([S] for unbatched inputs); bool true = padding (ignored), float = added. */
  keyPaddingMask?: Tensor | null;
  /** [L, S] or [N * numHeads, L, S]; bool true = NOT allowed (nn.MultiheadAttention's rule). */
  attnMask?: Tensor | null;
  /** Return the attention weights (default true). */
  needWeights?: boolean;
  /** Average the returned weights over heads (default true): [N, L, S], else [N, H, L, S]. */
  averageAttnWeights?: boolean;
  isCausal?: boolean;
}

/** out_proj's class, named as PyTorch names it so the printed model reads the same. */
export class NonDynamicallyQuantizableLinear extends Linear {}

const MHA = "MultiheadAttention";

function newParam(shape: number[], options: FactoryOptions): Parameter {
  const dtype = options.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float64")
    throw new DTypeError(MHA, `parameters must be float32 or float64, got ${dtype}`, [dtype]);
  const device = options.device === undefined ? getDefaultDevice() : parseDevice(options.device);
  return new Parameter(empty(shape, dtype, device));
}

/**
 * Multi-head attention with PyTorch's parameters: in_proj_weight [3E, E] (or
 * q_proj_weight, k_proj_weight, v_proj_weight when kdim or vdim differ from E),
 * in_proj_bias [3E], out_proj. Inputs [L, N, E] ([N, L, E] with batchFirst, or unbatched
 * [L, E]); forward returns [output, weights | null].
 */
export class MultiheadAttention extends Module {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;
  readonly options: MultiheadAttentionOptions;
  in_proj_weight: Parameter | null; // [3E, E]
  q_proj_weight: Parameter | null; // [E, E]
  k_proj_weight: Parameter | null; // [E, kdim]
  v_proj_weight: Parameter | null; // [E, vdim]
  in_proj_bias: Parameter | null; // [3E]
  out_proj: NonDynamicallyQuantizableLinear;

  constructor(embedDim: number, numHeads: number, options: MultiheadAttentionOptions = {}) {
    super();
    this.embedDim = checkPositiveInt(MHA, "embedDim", embedDim);
    this.numHeads = checkPositiveInt(MHA, "numHeads", numHeads);
    if (embedDim % numHeads !== 0)
      throw new ValueError(
        MHA,
        `embedDim (${embedDim}) must be divisible by numHeads (${numHeads})`,
        "numHeads",
      );
    this.headDim = embedDim / numHeads;
    this.kdim = checkPositiveInt(MHA, "kdim", options.kdim ?? embedDim);
    this.vdim = checkPositiveInt(MHA, "vdim", options.vdim ?? embedDim);
    this.dropout = options.dropout ?? 0;
    if (typeof this.dropout !== "number" || !(this.dropout >= 0 && this.dropout <= 1))
      throw new ValueError(
        MHA,
        `dropout must be in [0, 1], got ${formatValue(this.dropout)}`,
        "dropout",
      );
    this.batchFirst = options.batchFirst ?? false;
    this.options = { ...options };
    const separate = !this.sameEmbedDim;
    const E = embedDim;
    this.in_proj_weight = separate ? null : newParam([3 * E, E], options);
    this.q_proj_weight = separate ? newParam([E, E], options) : null;
    this.k_proj_weight = separate ? newParam([E, this.kdim], options) : null;
    this.v_proj_weight = separate ? newParam([E, this.vdim], options) : null;
    this.in_proj_bias = options.bias === false ? null : newParam([3 * E], options);
    this.out_proj = new NonDynamicallyQuantizableLinear(E, E, options);
    this.resetParameters();
  }

  get sameEmbedDim(): boolean {
    return this.kdim === this.embedDim && this.vdim === this.embedDim;
  }

  override resetParameters(): void {
    noGrad(() => {
      for (const w of [this.in_proj_weight, this.q_proj_weight, this.k_proj_weight])
        if (w !== null) xavierUniform_(w);
      if (this.v_proj_weight !== null) xavierUniform_(this.v_proj_weight);
      if (this.in_proj_bias !== null) constant_(this.in_proj_bias, 0);
      if (this.out_proj.bias !== null) constant_(this.out_proj.bias, 0);
    });
  }

  /** The weights and biases of the q, k and v projections. */
  private projections(): [Tensor, Tensor | null][] {
    const E = this.embedDim;
    const b = this.in_proj_bias;
    const weights =
      this.in_proj_weight !== null
        ? [0, 1, 2].map((i) => this.in_proj_weight!.narrow(0, i * E, E))
        : [this.q_proj_weight!, this.k_proj_weight!, this.v_proj_weight!];
    return weights.map((w, i) => [w, b === null ? null : b.narrow(0, i * E, E)]);
  }

  forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    options: MultiheadAttentionForwardOptions = {},
  ): [Tensor, Tensor | null] {
    const unbatched = query.ndim === 2;
    this.checkInputs(query, key, value, unbatched);
    const seqFirst = (x: Tensor) =>
      unbatched ? x.unsqueeze(1) : this.batchFirst ? x.transpose(0, 1) : x;
    // Self-attention transposes its one input once (a copy), not three times.
    const selfInput = query === key && key === value ? seqFirst(query) : null;
    const inputs = [query, key, value].map((x) => selfInput ?? seqFirst(x));
    const [l, n] = inputs[0]!.shape as [number, number];
    const s = inputs[1]!.shape[0]!;
    const kpm = this.checkKeyPaddingMask(options.keyPaddingMask ?? null, n, s, unbatched);
    const [q, k, v] =
      selfInput !== null && this.in_proj_weight !== null
        ? this.packedProjection(selfInput)
        : this.separateProjections(inputs);
    const attention = {
      attnMask: this.attnMaskForHeads(options.attnMask ?? null, n, l, s),
      keyPaddingMask: kpm !== null && unbatched ? kpm.reshape([1, s]) : kpm,
      isCausal: options.isCausal,
      dropoutP: this.dropout,
      training: this.training,
    };
    // Without weights to return, the fused kernel may compute attention (see canFuse).
    const [attn, weights] =
      options.needWeights === false
        ? [scaledDotProductAttention(q, k, v, attention), null]
        : attentionWithWeights(q, k, v, attention);
    const merged = attn.permute(2, 0, 1, 3).reshape([l, n, this.embedDim]);
    let out = this.out_proj.forward(merged);
    out = unbatched ? out.squeeze(1) : this.batchFirst ? out.transpose(0, 1) : out;
    return [out, this.returnedWeights(weights, options, unbatched)];
  }

  /** q, k and v of three inputs [T, N, E], each by its own slice of the weights. */
  private separateProjections(inputs: Tensor[]): [Tensor, Tensor, Tensor] {
    const proj = this.projections();
    const [q, k, v] = inputs.map((x, i) => this.splitHeads(F.linear(x, ...proj[i]!)));
    return [q!, k!, v!];
  }

  /**
   * q, k and v of self-attention's one input x [L, N, E] by one matmul with the whole
   * in_proj_weight, as PyTorch's packed in-projection: one matmul instead of three, and no
   * slicing of the weights. The heads come apart by one split, whose backward writes the
   * three gradients into one [3, N, H, L, d] (a narrow each would zero-fill one per piece
   * and add them up).
   */
  private packedProjection(x: Tensor): [Tensor, Tensor, Tensor] {
    const [l, n] = x.shape as [number, number];
    const h = this.numHeads;
    const d = this.headDim;
    const packed = F.linear(x, this.in_proj_weight!, this.in_proj_bias); // [L, N, 3E]
    const heads = packed.reshape([l, n, 3, h, d]).permute(2, 1, 3, 0, 4); // [3, N, H, L, d]
    const [q, k, v] = heads.split(1, 0).map((piece) => piece.reshape([n, h, l, d]));
    return [q!, k!, v!];
  }

  /** [T, N, E] to [N, H, T, headDim]. */
  private splitHeads(x: Tensor): Tensor {
    const [t, n] = x.shape as [number, number];
    return x.reshape([t, n, this.numHeads, this.headDim]).permute(1, 2, 0, 3);
  }

  private returnedWeights(
    weights: Tensor | null,
    options: MultiheadAttentionForwardOptions,
    unbatched: boolean,
  ): Tensor | null {
    if (options.needWeights === false || weights === null) return null;
    const w = options.averageAttnWeights === false ? weights : weights.mean(1);
    return unbatched ? w.squeeze(0) : w;
  }

  /** The key-padding mask, which must be [N, S] ([S] for unbatched inputs). */
  private checkKeyPaddingMask(
    mask: Tensor | null,
    n: number,
    s: number,
    unbatched: boolean,
  ): Tensor | null {
    if (mask === null) return null;
    const expected = unbatched ? [s] : [n, s];
    if (mask.ndim !== expected.length || mask.shape.some((d, i) => d !== expected[i])) {
      const names = unbatched ? "[S]" : "[N, S]";
      throw new ShapeError(
        MHA,
        `keyPaddingMask ${formatShape(mask.shape)} must be ${names} = ${formatShape(expected)}`,
        [mask.shape, expected],
      );
    }
    return mask;
  }

  /** nn.MultiheadAttention's mask (bool true = not allowed) in the functional convention. */
  private attnMaskForHeads(mask: Tensor | null, n: number, l: number, s: number): Tensor | null {
    if (mask === null) return null;
    const h = this.numHeads;
    const ok =
      (mask.ndim === 2 && mask.shape[0] === l && mask.shape[1] === s) ||
      (mask.ndim === 3 && mask.shape[0] === n * h && mask.shape[1] === l && mask.shape[2] === s);
    if (!ok)
      throw new ShapeError(
        MHA,
        `attnMask ${formatShape(mask.shape)} must be [L, S] = [${l}, ${s}] or [N * numHeads, L, ` +
          `S] = [${n * h}, ${l}, ${s}]`,
        [mask.shape],
      );
    const shaped = mask.ndim === 3 ? mask.reshape([n, h, l, s]) : mask;
    return shaped.dtype === "bool" ? shaped.eq(0) : shaped;
  }

  private checkInputs(query: Tensor, key: Tensor, value: Tensor, unbatched: boolean): void {
    const want = unbatched ? 2 : 3;
    const shapes = [query.shape, key.shape, value.shape];
    const layout = unbatched ? "[L, E]" : this.batchFirst ? "[N, L, E]" : "[L, N, E]";
    if (query.ndim !== 2 && query.ndim !== 3)
      throw new ShapeError(MHA, `query must be ${layout}, got ${formatShape(query.shape)}`, shapes);
    if (key.ndim !== want || value.ndim !== want)
      throw new ShapeError(
        MHA,
        `query ${formatShape(query.shape)}, key ${formatShape(key.shape)} and value ` +
          `${formatShape(value.shape)} must all be ${want}-d (${layout})`,
        shapes,
      );
    const last = (t: Tensor) => t.shape[t.ndim - 1];
    const dims: [string, Tensor, number][] = [
      ["query", query, this.embedDim],
      ["key", key, this.kdim],
      ["value", value, this.vdim],
    ];
    for (const [name, t, d] of dims)
      if (last(t) !== d)
        throw new ShapeError(
          MHA,
          `${name} ${formatShape(t.shape)} must end in ${d} features`,
          shapes,
          -1,
        );
    const bdim = this.batchFirst ? 0 : 1;
    const sdim = this.batchFirst ? 1 : 0;
    const sameBatch =
      unbatched ||
      (key.shape[bdim] === query.shape[bdim] && value.shape[bdim] === query.shape[bdim]);
    if (!sameBatch || key.shape[unbatched ? 0 : sdim] !== value.shape[unbatched ? 0 : sdim])
      throw new ShapeError(
        MHA,
        `key ${formatShape(key.shape)} and value ${formatShape(value.shape)} must match query ` +
          `${formatShape(query.shape)} in batch and each other in length`,
        shapes,
      );
  }
}
