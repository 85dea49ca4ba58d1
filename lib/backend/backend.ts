// The Backend contract: every primitive kernel a device must provide. Ops above this
// layer check shapes, dtypes and devices; a backend may assume its arguments are
// consistent, but must never crash the process when they are not (native code re-checks).
//
// Conventions: outputs come first; every tensor argument is a RawTensor whose storage
// is contiguous and row-major; an output is allocated by the caller with the right
// shape and dtype, and the kernel writes all of it unless it says it accumulates (adds
// into it, or leaves part of it untouched). The caller allocates such an output with
// alloc's init "zero" (or fills it), every other one with "none": the kernel must not
// read what it did not write (DEEPNODE_POISON_UNINIT proves it, see ./uninit.ts).

import type { DType, TypedArray } from "../dtype.js";
import type { RnnBackwardArgs, RnnForwardArgs, RnnParams } from "./rnn.js";
import type { AllocInit } from "./uninit.js";

/** Backend-owned memory: a typed array on reference and cpu, an opaque handle on cuda. */
export type Storage = TypedArray | { readonly handle: unknown; readonly size: number };

export interface RawTensor {
  readonly storage: Storage;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** The state of the counter-based generator for one random op (see lib/random.ts). */
export interface RandomKey {
  readonly seed: number; // 0 <= seed < 2^53
  readonly offset: number; // index of the first number this op uses; a multiple of 4
}

export type UnaryOp =
  | "neg"
  | "exp"
  | "log"
  | "sqrt"
  | "abs"
  | "sign"
  | "relu"
  | "sigmoid"
  | "tanh"
  | "square"
  | "reciprocal"
  | "sin"
  | "cos"
  | "floor"
  | "ceil"
  | "round"
  | "affine" // alpha * x + beta
  | "pow" // x ** alpha
  | "clamp" // min(max(x, alpha), beta)
  | "erf"
  | "gelu" // x * Phi(x), Phi the standard normal CDF
  | "gelu_tanh" // GELU's tanh approximation
  | "silu"; // x * sigmoid(x)

export type BinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "maximum"
  | "minimum"
  | "floordiv" // int32: floor(a / b), as Python and PyTorch's floor_divide
  | "remainder" // sign follows the divisor, as Python and torch.remainder
  | "eq"
  | "ne"
  | "lt"
  | "le"
  | "gt"
  | "ge"
  | "relu_backward" // a * (b > 0): a is the gradient, b the input
  | "sigmoid_backward" // a * b * (1 - b): b is the output
  | "tanh_backward" // a * (1 - b * b): b is the output
  | "gelu_backward" // a * gelu'(b): b is the input
  | "gelu_tanh_backward" // a * gelu_tanh'(b): b is the input
  | "silu_backward"; // a * silu'(b): b is the input

/**
 * The running statistics a training batchNorm updates: running = (1 - momentum) * running +
 * momentum * the batch's mean (unbiased variance), computed in double from the double
 * statistics and rounded once (PyTorch's cpu update rounds in float32 along the way, so they
 * agree to rounding); unchanged where a channel has fewer than two values. Either may be null.
 */
export interface BatchNormRunning {
  mean: RawTensor | null; // [c]
  variance: RawTensor | null; // [c]
  momentum: number; // in [0, 1]
}

/** Comparison ops write bool (uint8 storage); all others write the operands' dtype. */
export const COMPARISON_OPS: readonly BinaryOp[] = ["eq", "ne", "lt", "le", "gt", "ge"];

export type ReduceOp = "sum" | "mean" | "max" | "min" | "prod";

export interface MatmulOptions {
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number; // out = alpha * op(a) @ op(b) + beta * out
}

export interface Conv2dParams {
  stride: readonly [number, number];
  padding: readonly [number, number];
  dilation: readonly [number, number];
  groups: number;
}

export interface Pool2dParams {
  kernelSize: readonly [number, number];
  stride: readonly [number, number];
  padding: readonly [number, number];
  dilation: readonly [number, number];
  ceilMode: boolean;
}

export type Reduction = "none" | "mean" | "sum";

export interface SgdStepOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  firstStep: boolean; // the momentum buffer is initialised from the gradient
}

/** One parameter of sgdSteps and its state; momentumBuffer is null unless momentum != 0. */
export interface SgdStepItem {
  param: RawTensor;
  grad: RawTensor;
  momentumBuffer: RawTensor | null;
}

export interface AdamStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupledWeightDecay: boolean; // AdamW
  amsgrad: boolean;
  step: number; // 1 on the first step
}

/** One parameter of adamSteps and its state; maxExpAvgSq is null unless amsgrad. */
export interface AdamStepItem {
  param: RawTensor;
  grad: RawTensor;
  expAvg: RawTensor;
  expAvgSq: RawTensor;
  maxExpAvgSq: RawTensor | null;
}

export interface RmspropStepOptions {
  lr: number;
  alpha: number;
  eps: number;
  weightDecay: number;
  momentum: number; // 0: no momentum buffer
  centered: boolean; // keeps the running mean of the gradient
}

/** One parameter of rmspropSteps and its state; the options say which buffers it has. */
export interface RmspropStepItem {
  param: RawTensor;
  grad: RawTensor;
  squareAvg: RawTensor;
  gradAvg: RawTensor | null; // centered only
  momentumBuffer: RawTensor | null; // momentum > 0 only
}

export interface AdagradStepOptions {
  lr: number;
  lrDecay: number;
  eps: number;
  weightDecay: number;
  step: number; // 1 on the first step
}

/** One parameter of adagradSteps and its state. */
export interface AdagradStepItem {
  param: RawTensor;
  grad: RawTensor;
  stateSum: RawTensor;
}

export interface Backend {
  readonly name: "reference" | "cpu" | "cuda";

  // Memory. read returns a copy.
  /**
   * Storage for `size` elements: zero-filled with init "zero" (the default), and with
   * "none" as the memory comes (a reused buffer keeps old values), which saves a pass over
   * it, and on cuda a launch. The reference backend zero-fills either way.
   */
  alloc(dtype: DType, size: number, init?: AllocInit): Storage;
  fromArray(dtype: DType, values: ArrayLike<number>): Storage;
  read(x: RawTensor): TypedArray;
  /** As read, waiting off the JS thread where the device queues work (cuda). */
  readAsync?(x: RawTensor): Promise<TypedArray>;
  /** Called when the last tensor using `storage` is disposed; the backend may reuse it. */
  release?(storage: Storage): void;

  // Creation and randomness. The generator is Philox4x32-10 (lib/random.ts), the same
  // numbers on every backend for the same key.
  fill(out: RawTensor, value: number): void;
  /** Copies x into out converting dtype; sizes are equal. */
  cast(out: RawTensor, x: RawTensor): void;
  randUniform(out: RawTensor, key: RandomKey, low: number, high: number): void;
  randNormal(out: RawTensor, key: RandomKey, mean: number, std: number): void;
  /** mask = keep ? 1 / (1 - p) : 0 with keep = uniform >= p; out = x * mask. */
  dropout(out: RawTensor, mask: RawTensor, x: RawTensor, p: number, key: RandomKey): void;

  // Element-wise. Binary operands share a dtype and broadcast to out.shape.
  unary(op: UnaryOp, out: RawTensor, x: RawTensor, alpha?: number, beta?: number): void;
  binary(op: BinaryOp, out: RawTensor, a: RawTensor, b: RawTensor): void;
  /** out = cond ? a : b, all three broadcast to out.shape. */
  where(out: RawTensor, cond: RawTensor, a: RawTensor, b: RawTensor): void;
  /** Broadcasting copy of x into out.shape. */
  expand(out: RawTensor, x: RawTensor): void;
  /** out = x transposed by perm (out.shape[i] = x.shape[perm[i]]). */
  permute(out: RawTensor, x: RawTensor, perm: readonly number[]): void;
  /**
   * xs[k] *= factor for every k, in place (gradient clipping's scaling, as PyTorch's foreach
   * mul): factor is a 0-d tensor of the xs' float dtype, read where it is (on cuda the device
   * reads it, so nothing waits). With maxNorm, factor holds the gradients' total norm and the
   * multiplier is min(1, maxNorm / (norm + 1e-6)) in that dtype's arithmetic, the division
   * taken as PyTorch takes it (1 / (norm + 1e-6), then times maxNorm), 1 for a norm that is
   * not finite: clipping in one call.
   */
  scaleInPlace(xs: readonly RawTensor[], factor: RawTensor, maxNorm?: number): void;

  // Reductions. out.shape equals x.shape with every reduced axis set to 1.
  reduce(op: ReduceOp, out: RawTensor, x: RawTensor, axes: readonly number[]): void;
  /** Index of the first maximum (minimum) along axis; out is int32 with axis set to 1. */
  argReduce(op: "argmax" | "argmin", out: RawTensor, x: RawTensor, axis: number): void;
  /**
   * out[k] = the normType-norm of xs[k], for many tensors in one call (gradient clipping's
   * norms, as PyTorch's foreach norm): (sum |x|^p)^(1/p) for p = normType > 0, max |x| for
   * Infinity (a NaN wins), accumulated in double and rounded once; an empty tensor's is 0.
   * out is [xs.length]; out and every xs[k] are of one float dtype.
   */
  norms(out: RawTensor, xs: readonly RawTensor[], normType: number): void;

  /**
   * Batched matmul: a is [batchA, m, k] ([batchA, k, m] when transA), b is [batchB, k, n]
   * ([batchB, n, k] when transB), out is [batch, m, n]; batchA and batchB are 1 or batch.
   */
  matmul(out: RawTensor, a: RawTensor, b: RawTensor, options: MatmulOptions): void;

  // Convolution: x [n, cIn, h, w], weight [cOut, cIn / groups, kH, kW], out [n, cOut, oH, oW].
  conv2d(
    out: RawTensor,
    x: RawTensor,
    weight: RawTensor,
    bias: RawTensor | null,
    params: Conv2dParams,
  ): void;
  conv2dBackwardData(
    gradX: RawTensor,
    gradOut: RawTensor,
    weight: RawTensor,
    params: Conv2dParams,
  ): void;
  conv2dBackwardWeight(
    gradWeight: RawTensor,
    gradOut: RawTensor,
    x: RawTensor,
    params: Conv2dParams,
  ): void;

  // Max pooling: indices (int32, shape of out) hold the flat h * w position of each max
  // inside its plane; the first maximum wins ties, as in PyTorch.
  maxPool2d(out: RawTensor, indices: RawTensor, x: RawTensor, params: Pool2dParams): void;
  /** gradX is zero-filled by the caller; gradients of overlapping windows add up. */
  maxPool2dBackward(gradX: RawTensor, gradOut: RawTensor, indices: RawTensor): void;

  // Softmax along one axis, numerically stable; log selects log-softmax.
  softmax(out: RawTensor, x: RawTensor, axis: number, log: boolean): void;
  /** y is the forward output. */
  softmaxBackward(
    gradX: RawTensor,
    gradOut: RawTensor,
    y: RawTensor,
    axis: number,
    log: boolean,
  ): void;

  // Indexing along one axis: index (int32) has x's shape except along axis.
  gather(out: RawTensor, x: RawTensor, axis: number, index: RawTensor): void;
  /** out[..., index[..., j, ...], ...] += src[..., j, ...]; out is not cleared. */
  scatterAdd(out: RawTensor, axis: number, index: RawTensor, src: RawTensor): void;

  /**
   * Checks that every element of x (float) lies in [low, high], a NaN not: otherwise a
   * ValueError of `op` about its argument `name`, "all elements of <name> should be between
   * <low> and <high>, but element <k> is not". On cuda it is a deferred check (the error is
   * thrown at the next wait for the device), unless sync checks are on.
   */
  checkRange(x: RawTensor, low: number, high: number, op: string, name: string): void;

  /**
   * Negative log-likelihood: logProbs [n, c, ...rest], targets int32 [n, ...rest], weight [c]
   * or null. out is [] for mean and sum, [n, ...rest] for none. A target outside [0, c)
   * other than ignoreIndex is an IndexError.
   */
  nllLoss(
    out: RawTensor,
    logProbs: RawTensor,
    targets: RawTensor,
    weight: RawTensor | null,
    reduction: Reduction,
    ignoreIndex: number,
  ): void;
  nllLossBackward(
    gradLogProbs: RawTensor,
    gradOut: RawTensor,
    targets: RawTensor,
    weight: RawTensor | null,
    reduction: Reduction,
    ignoreIndex: number,
  ): void;

  // Fused optimizer steps, in place on param and the state buffers.
  sgdStep(
    param: RawTensor,
    grad: RawTensor,
    momentumBuffer: RawTensor | null,
    options: SgdStepOptions,
  ): void;
  /**
   * sgdStep over many parameters under the same options at once. firstStep is among them, as
   * Adam's step count is: parameters whose momentum buffer is new go in a call of their own.
   */
  sgdSteps(items: readonly SgdStepItem[], options: SgdStepOptions): void;
  adamStep(
    param: RawTensor,
    grad: RawTensor,
    expAvg: RawTensor,
    expAvgSq: RawTensor,
    maxExpAvgSq: RawTensor | null,
    options: AdamStepOptions,
  ): void;
  /** adamStep over many parameters under the same options (step count included) at once. */
  adamSteps(items: readonly AdamStepItem[], options: AdamStepOptions): void;
  rmspropStep(
    param: RawTensor,
    grad: RawTensor,
    squareAvg: RawTensor,
    gradAvg: RawTensor | null, // centered only
    momentumBuffer: RawTensor | null, // momentum > 0 only
    options: RmspropStepOptions,
  ): void;
  /** rmspropStep over many parameters under the same options at once. */
  rmspropSteps(items: readonly RmspropStepItem[], options: RmspropStepOptions): void;
  adagradStep(
    param: RawTensor,
    grad: RawTensor,
    stateSum: RawTensor,
    options: AdagradStepOptions,
  ): void;
  /** adagradStep over many parameters under the same options (step count included) at once. */
  adagradSteps(items: readonly AdagradStepItem[], options: AdagradStepOptions): void;

  // Recurrent layers (lib/backend/rnn.ts): one layer-direction of an RNN, LSTM or GRU over
  // the whole sequence, from the precomputed input projection; backward is BPTT.
  rnnForward(args: RnnForwardArgs<RawTensor>, params: RnnParams): void;
  rnnBackward(args: RnnBackwardArgs<RawTensor>, params: RnnParams): void;

  // Strided slices along one axis, for narrow, select, split and cat. out and x match but
  // for `axis`. slice: out[..., i, ...] = x[..., start + i * step, ...] for every i of out;
  // sliceAssign: out[..., start + i * step, ...] = x[..., i, ...], the rest of out untouched.
  slice(out: RawTensor, x: RawTensor, axis: number, start: number, step: number): void;
  sliceAssign(out: RawTensor, x: RawTensor, axis: number, start: number, step: number): void;

  // Normalisation. Batch norm views x as [n, c, ...inner] with per-channel mean and
  // variance [c] (biased); with training they are the batch's and are written, otherwise
  // they are read (running statistics). weight and bias [c] may be null. `running`, only
  // when training, is moved toward the batch's statistics in the same call.
  batchNorm(
    out: RawTensor,
    mean: RawTensor,
    variance: RawTensor,
    x: RawTensor,
    weight: RawTensor | null,
    bias: RawTensor | null,
    training: boolean,
    eps: number,
    running?: BatchNormRunning | null,
  ): void;
  /** gradWeight and gradBias are written when not null; mean and variance as forward used. */
  batchNormBackward(
    gradX: RawTensor,
    gradWeight: RawTensor | null,
    gradBias: RawTensor | null,
    gradOut: RawTensor,
    x: RawTensor,
    mean: RawTensor,
    variance: RawTensor,
    weight: RawTensor | null,
    training: boolean,
    eps: number,
  ): void;
  /**
   * Layer norm over the trailing dims of x left after mean's shape (mean and rstd hold one
   * value per row: the leading dims of x), both written; weight and bias [normSize] or null.
   */
  layerNorm(
    out: RawTensor,
    mean: RawTensor,
    rstd: RawTensor,
    x: RawTensor,
    weight: RawTensor | null,
    bias: RawTensor | null,
    eps: number,
  ): void;
  layerNormBackward(
    gradX: RawTensor,
    gradWeight: RawTensor | null,
    gradBias: RawTensor | null,
    gradOut: RawTensor,
    x: RawTensor,
    mean: RawTensor,
    rstd: RawTensor,
    weight: RawTensor | null,
  ): void;

  // Embedding: weight [numEmbeddings, dim], indices int32 [count], rows [count, dim]. An
  // index outside [0, numEmbeddings) is an IndexError.
  embedding(out: RawTensor, weight: RawTensor, indices: RawTensor): void;
  /** gradWeight[indices[k]] += gradOut[k] except where indices[k] is paddingIdx (-1: none). */
  embeddingBackward(
    gradWeight: RawTensor,
    gradOut: RawTensor,
    indices: RawTensor,
    paddingIdx: number,
  ): void;

  // Attention's fused softmax over the last axis of scores [rows, S]: out = softmax(scale *
  // scores + mask), mask null or of the same shape. An entry that comes to -inf is masked
  // out, and a row whose entries all do gives zeros, not NaN. Its backward is softmaxBackward.
  maskedSoftmax(out: RawTensor, scores: RawTensor, mask: RawTensor | null, scale: number): void;
  // Average pooling over x [n, c, h, w] (PyTorch's avg_pool2d); gradX is added into.
  avgPool2d(out: RawTensor, x: RawTensor, params: AvgPool2dParams): void;
  avgPool2dBackward(gradX: RawTensor, gradOut: RawTensor, params: AvgPool2dParams): void;
  /** Adaptive average pooling to out's [oH, oW]; gradX is added into. */
  adaptiveAvgPool2d(out: RawTensor, x: RawTensor): void;
  adaptiveAvgPool2dBackward(gradX: RawTensor, gradOut: RawTensor): void;

  // CTC loss: loss [N] per sample; logAlpha float64 [N, T, 2S + 1] is kept for the backward,
  // which writes the whole of gradLogProbs [T, N, C] (zero past each input length).
  ctcLoss(loss: RawTensor, logAlpha: RawTensor, inputs: CtcInputs): void;
  ctcLossBackward(
    gradLogProbs: RawTensor,
    gradLoss: RawTensor,
    inputs: CtcInputs,
    logAlpha: RawTensor,
    loss: RawTensor,
    zeroInfinity: boolean,
  ): void;

  // Fused attention over heads b of query [B, L, E], key [B, S, E], value [B, S, Ev]:
  // out [B, L, Ev] = dropout(softmax(scale * q k^T, masked keys at -inf)) v, where head b
  // masks key j when keyPadding [B / heads, S] (bool) is set at [b / heads, j] or, causal,
  // when j > i. A row with every key masked has zero weights. Dropout (dropoutP > 0) keeps
  // weight (b, i, j) as F.dropout over [B, L, S] with dropoutKey would. The weights are not
  // stored: the backward recomputes them, and writes the three gradients whole.
  fusedAttention(
    out: RawTensor,
    query: RawTensor,
    key: RawTensor,
    value: RawTensor,
    keyPadding: RawTensor | null,
    params: AttentionParams,
  ): void;
  fusedAttentionBackward(
    grads: [gradQuery: RawTensor, gradKey: RawTensor, gradValue: RawTensor],
    gradOut: RawTensor,
    inputs: [query: RawTensor, key: RawTensor, value: RawTensor],
    keyPadding: RawTensor | null,
    params: AttentionParams,
  ): void;
}

/** How fusedAttention masks, scales and drops out (see Backend.fusedAttention). */
export interface AttentionParams {
  heads: number;
  scale: number;
  causal: boolean;
  /** In [0, 1); 0 is no dropout, and dropoutKey is then null. */
  dropoutP: number;
  dropoutKey: RandomKey | null;
}

export interface AvgPool2dParams {
  kernelSize: readonly [number, number];
  stride: readonly [number, number];
  padding: readonly [number, number];
  ceilMode: boolean;
  /** Divide by the window's size counting padding (PyTorch's default) or only the inputs. */
  countIncludePad: boolean;
  /** A fixed divisor instead of the window's size, or null. */
  divisorOverride: number | null;
}

/**
 * CTC inputs: logProbs [T, N, C] float; targets int32 [N, S] (row n's first targetLengths[n]
 * labels, none the blank); inputLengths and targetLengths int32 [N].
 */
export interface CtcInputs {
  logProbs: RawTensor;
  targets: RawTensor;
  inputLengths: RawTensor;
  targetLengths: RawTensor;
  blank: number;
}
