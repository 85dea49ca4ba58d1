// The primitives both native backends (cpu and cuda) run as named kernels with the same
// buffers and attributes: this class turns each Backend call into one kernel call, and a
// subclass says where kernels run and what storage is (cpu/index.ts, cuda/backend.ts).

import type { NativeBuffer, SliceAttrs, NativeKernelName, NativeKernels } from "../../binding.js";
import type { DType, TypedArray } from "../dtype.js";
import {
  DeviceError,
  DTypeError,
  IndexError,
  NativeError,
  NotSupportedError,
  OutOfMemoryError,
  ShapeError,
  ValueError,
} from "../errors.js";
import type { AllocInit } from "./uninit.js";
import type {
  AdagradStepItem,
  AdamStepItem,
  AdamStepOptions,
  Backend,
  BinaryOp,
  Conv2dParams,
  MatmulOptions,
  Pool2dParams,
  AvgPool2dParams,
  CtcInputs,
  RandomKey,
  RawTensor,
  Reduction,
  ReduceOp,
  SgdStepItem,
  SgdStepOptions,
  Storage,
  UnaryOp,
} from "./backend.js";
import type { RnnBackwardArgs, RnnForwardArgs, RnnParams } from "./rnn.js";
import type { AdagradStepOptions, RmspropStepItem, RmspropStepOptions } from "./backend.js";
import type { AttentionParams, BatchNormRunning } from "./backend.js";
import type { AttentionAttrs } from "../../binding.js";
import { rnnBackwardCall, rnnForwardCall } from "./cpu/rnn.js";

const TWO_POW_32 = 4294967296;

function buf(x: RawTensor): NativeBuffer {
  return x.storage as NativeBuffer;
}

/**
 * A tensor's shape as a kernel attribute, without a copy: native code only reads it (a copy
 * per shape attribute was a measurable part of a small op's cost).
 */
function dims(x: RawTensor): number[] {
  return x.shape as number[];
}

/**
 * matmul's attributes without those at the kernel's defaults (batch, batchA and batchB 1, no
 * transposes, alpha 1, beta 0): the native side pays about 0.2 us to read each one, more than
 * the arithmetic of a 4x4 product.
 */
function matmulAttrs(
  out: RawTensor,
  a: RawTensor,
  b: RawTensor,
  options: MatmulOptions,
): NativeKernels["matmul"][1] {
  const rank = out.shape.length;
  const aRank = a.shape.length;
  const attrs: NativeKernels["matmul"][1] = {
    m: out.shape[rank - 2]!,
    n: out.shape[rank - 1]!,
    k: options.transA ? a.shape[aRank - 2]! : a.shape[aRank - 1]!,
  };
  if (rank === 3 && out.shape[0] !== 1) attrs.batch = out.shape[0]!;
  if (aRank === 3 && a.shape[0] !== 1) attrs.batchA = a.shape[0]!;
  if (b.shape.length === 3 && b.shape[0] !== 1) attrs.batchB = b.shape[0]!;
  if (options.transA) attrs.transA = true;
  if (options.transB) attrs.transB = true;
  if (options.alpha !== 1) attrs.alpha = options.alpha;
  if (options.beta !== 0) attrs.beta = options.beta;
  return attrs;
}

/** A float tensor's storage (the kernel checks the dtype). */
function floatBuf(x: RawTensor): Float32Array | Float64Array {
  return x.storage as Float32Array | Float64Array;
}

function optionalBuf(x: RawTensor | null): Float32Array | null {
  return x === null ? null : (x.storage as Float32Array);
}

function randomAttrs(key: RandomKey): { seedLo: number; seedHi: number; offset: number } {
  return {
    seedLo: key.seed % TWO_POW_32,
    seedHi: Math.floor(key.seed / TWO_POW_32),
    offset: key.offset,
  };
}

/** Adds "(<backend> backend)" to a message unless the kernel already named the backend. */
function naming(message: string, backend: string): string {
  return message.includes(`${backend} backend`) ? message : `${message} (${backend} backend)`;
}

/**
 * Turns a native error (an Error with a `code`) into deepnode's typed error, named by the
 * backend primitive (nllLoss for the kernel nll_loss), as the reference backend names it.
 */
export function translate(kernel: string, error: unknown, backend: "cpu" | "cuda"): Error {
  const op = kernel.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  if (!(error instanceof Error)) return new NativeError(op, String(error), "ERR_NATIVE");
  const code = (error as Error & { code?: string }).code ?? "ERR_NATIVE";
  const prefix = `${kernel}: `;
  const message = error.message.startsWith(prefix)
    ? error.message.slice(prefix.length)
    : error.message;
  switch (code) {
    case "ERR_SHAPE":
      return new ShapeError(op, message);
    case "ERR_DTYPE":
      return new DTypeError(op, naming(message, backend));
    case "ERR_INDEX":
      return new IndexError(op, message);
    case "ERR_VALUE":
      return new ValueError(op, message);
    case "ERR_NOT_SUPPORTED":
      return new NotSupportedError(op, naming(message, backend));
    case "ERR_OUT_OF_MEMORY":
      return new OutOfMemoryError(op, message);
    case "ERR_DEVICE":
      return new DeviceError(op, message);
    default:
      return new NativeError(op, message, code);
  }
}

function convAttrs(
  x: RawTensor,
  weight: RawTensor,
  params: Conv2dParams,
): NativeKernels["conv2d"][1] {
  return {
    n: x.shape[0]!,
    cIn: x.shape[1]!,
    h: x.shape[2]!,
    w: x.shape[3]!,
    cOut: weight.shape[0]!,
    kH: weight.shape[2]!,
    kW: weight.shape[3]!,
    strideH: params.stride[0],
    strideW: params.stride[1],
    padH: params.padding[0],
    padW: params.padding[1],
    dilationH: params.dilation[0],
    dilationW: params.dilation[1],
    groups: params.groups,
  };
}

/** [outer, dim, inner] around `axis` of `shape`. */
function splitAxis(
  shape: readonly number[],
  axis: number,
): { outer: number; dim: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return { outer, dim: shape[axis]!, inner };
}

export abstract class KernelBackend implements Backend {
  abstract readonly name: "cpu" | "cuda";

  /** Runs kernel `op`; buffers hold this backend's storage objects (or null). */
  protected abstract call<K extends NativeKernelName>(
    op: K,
    buffers: NativeKernels[K][0],
    attrs: NativeKernels[K][1],
  ): void;

  abstract alloc(dtype: DType, size: number, init?: AllocInit): Storage;
  abstract fromArray(dtype: DType, values: ArrayLike<number>): Storage;
  abstract read(x: RawTensor): TypedArray;
  abstract cast(out: RawTensor, x: RawTensor): void;

  fill(out: RawTensor, value: number): void {
    const stored = out.dtype === "bool" ? Number(value !== 0) : value; // NaN is true
    this.call("fill", [buf(out)], { value: stored });
  }

  randUniform(out: RawTensor, key: RandomKey, low: number, high: number): void {
    this.call("rand_uniform", [out.storage as Float32Array], { ...randomAttrs(key), low, high });
  }

  randNormal(out: RawTensor, key: RandomKey, mean: number, std: number): void {
    this.call("rand_normal", [out.storage as Float32Array], { ...randomAttrs(key), mean, std });
  }

  dropout(out: RawTensor, mask: RawTensor, x: RawTensor, p: number, key: RandomKey): void {
    const buffers: [Float32Array, Float32Array, Float32Array] = [
      out.storage as Float32Array,
      mask.storage as Float32Array,
      x.storage as Float32Array,
    ];
    this.call("dropout", buffers, { ...randomAttrs(key), p });
  }

  unary(op: UnaryOp, out: RawTensor, x: RawTensor, alpha = 0, beta = 0): void {
    this.call("unary", [buf(out), buf(x)], { op, alpha, beta });
  }

  binary(op: BinaryOp, out: RawTensor, a: RawTensor, b: RawTensor): void {
    this.call("binary", [buf(out), buf(a), buf(b)], {
      op,
      outShape: dims(out),
      aShape: dims(a),
      bShape: dims(b),
    });
  }

  where(out: RawTensor, cond: RawTensor, a: RawTensor, b: RawTensor): void {
    this.call("where", [buf(out), cond.storage as Uint8Array, buf(a), buf(b)], {
      outShape: dims(out),
      condShape: dims(cond),
      aShape: dims(a),
      bShape: dims(b),
    });
  }

  expand(out: RawTensor, x: RawTensor): void {
    this.call("expand", [buf(out), buf(x)], { outShape: dims(out), xShape: dims(x) });
  }

  permute(out: RawTensor, x: RawTensor, perm: readonly number[]): void {
    this.call("permute", [buf(out), buf(x)], { shape: dims(x), perm: [...perm] });
  }

  /** One kernel call: a native crossing (cpu), a launch per chunk of tensors (cuda). */
  scaleInPlace(xs: readonly RawTensor[], factor: RawTensor, maxNorm?: number): void {
    const buffers: NativeKernels["scale_in_place"][0] = [...xs.map(floatBuf), floatBuf(factor)];
    const clip = maxNorm === undefined ? {} : { maxNorm };
    this.call("scale_in_place", buffers, { count: xs.length, ...clip });
  }

  reduce(op: ReduceOp, out: RawTensor, x: RawTensor, axes: readonly number[]): void {
    this.call("reduce", [buf(out), buf(x)], { op, shape: dims(x), axes: [...axes] });
  }

  argReduce(op: "argmax" | "argmin", out: RawTensor, x: RawTensor, axis: number): void {
    this.call("arg_reduce", [out.storage as Int32Array, buf(x)], { op, shape: dims(x), axis });
  }

  /** One kernel call: a native crossing (cpu), a reduction per tensor (cuda). */
  norms(out: RawTensor, xs: readonly RawTensor[], normType: number): void {
    const buffers: NativeKernels["norms"][0] = [floatBuf(out), ...xs.map(floatBuf)];
    this.call("norms", buffers, { normType, count: xs.length });
  }

  matmul(out: RawTensor, a: RawTensor, b: RawTensor, options: MatmulOptions): void {
    this.call(
      "matmul",
      [out.storage as Float32Array, a.storage as Float32Array, b.storage as Float32Array],
      matmulAttrs(out, a, b, options),
    );
  }

  conv2d(
    out: RawTensor,
    x: RawTensor,
    weight: RawTensor,
    bias: RawTensor | null,
    params: Conv2dParams,
  ): void {
    const buffers: NativeKernels["conv2d"][0] = [
      out.storage as Float32Array,
      x.storage as Float32Array,
      weight.storage as Float32Array,
      optionalBuf(bias),
    ];
    this.call("conv2d", buffers, convAttrs(x, weight, params));
  }

  conv2dBackwardData(
    gradX: RawTensor,
    gradOut: RawTensor,
    weight: RawTensor,
    params: Conv2dParams,
  ): void {
    const buffers: NativeKernels["conv2d_backward_data"][0] = [
      gradX.storage as Float32Array,
      gradOut.storage as Float32Array,
      weight.storage as Float32Array,
    ];
    this.call("conv2d_backward_data", buffers, convAttrs(gradX, weight, params));
  }

  conv2dBackwardWeight(
    gradWeight: RawTensor,
    gradOut: RawTensor,
    x: RawTensor,
    params: Conv2dParams,
  ): void {
    const buffers: NativeKernels["conv2d_backward_weight"][0] = [
      gradWeight.storage as Float32Array,
      gradOut.storage as Float32Array,
      x.storage as Float32Array,
    ];
    this.call("conv2d_backward_weight", buffers, convAttrs(x, gradWeight, params));
  }

  maxPool2d(out: RawTensor, indices: RawTensor, x: RawTensor, params: Pool2dParams): void {
    const buffers: NativeKernels["max_pool2d"][0] = [
      out.storage as Float32Array,
      indices.storage as Int32Array,
      x.storage as Float32Array,
    ];
    this.call("max_pool2d", buffers, {
      n: x.shape[0]!,
      c: x.shape[1]!,
      h: x.shape[2]!,
      w: x.shape[3]!,
      kH: params.kernelSize[0],
      kW: params.kernelSize[1],
      strideH: params.stride[0],
      strideW: params.stride[1],
      padH: params.padding[0],
      padW: params.padding[1],
      dilationH: params.dilation[0],
      dilationW: params.dilation[1],
      ceilMode: params.ceilMode,
    });
  }

  maxPool2dBackward(gradX: RawTensor, gradOut: RawTensor, indices: RawTensor): void {
    const buffers: NativeKernels["max_pool2d_backward"][0] = [
      gradX.storage as Float32Array,
      gradOut.storage as Float32Array,
      indices.storage as Int32Array,
    ];
    this.call("max_pool2d_backward", buffers, {
      n: gradX.shape[0]!,
      c: gradX.shape[1]!,
      h: gradX.shape[2]!,
      w: gradX.shape[3]!,
      oH: gradOut.shape[2]!,
      oW: gradOut.shape[3]!,
    });
  }

  softmax(out: RawTensor, x: RawTensor, axis: number, log: boolean): void {
    const buffers: NativeKernels["softmax"][0] = [
      out.storage as Float32Array,
      x.storage as Float32Array,
    ];
    this.call("softmax", buffers, { ...splitAxis(x.shape, axis), log });
  }

  softmaxBackward(
    gradX: RawTensor,
    gradOut: RawTensor,
    y: RawTensor,
    axis: number,
    log: boolean,
  ): void {
    const buffers: NativeKernels["softmax_backward"][0] = [
      gradX.storage as Float32Array,
      gradOut.storage as Float32Array,
      y.storage as Float32Array,
    ];
    this.call("softmax_backward", buffers, { ...splitAxis(y.shape, axis), log });
  }

  gather(out: RawTensor, x: RawTensor, axis: number, index: RawTensor): void {
    const { outer, dim, inner } = splitAxis(x.shape, axis);
    this.call("gather", [buf(out), buf(x), index.storage as Int32Array], {
      outer,
      dim,
      inner,
      indexDim: index.shape[axis]!,
    });
  }

  scatterAdd(out: RawTensor, axis: number, index: RawTensor, src: RawTensor): void {
    const { outer, dim, inner } = splitAxis(out.shape, axis);
    this.call("scatter_add", [buf(out), index.storage as Int32Array, buf(src)], {
      outer,
      dim,
      inner,
      indexDim: index.shape[axis]!,
    });
  }

  checkRange(x: RawTensor, low: number, high: number, op: string, name: string): void {
    const values = x.storage as Float32Array | Float64Array;
    try {
      this.call("check_range", [values], { low, high, op, name });
    } catch (error) {
      // The kernel words the error as the reference backend does, naming op, not itself.
      if (!(error instanceof ValueError) || !error.message.startsWith(`checkRange: ${op}: `))
        throw error;
      throw new ValueError(op, error.message.slice(`checkRange: ${op}: `.length), name);
    }
  }

  nllLoss(
    out: RawTensor,
    logProbs: RawTensor,
    targets: RawTensor,
    weight: RawTensor | null,
    reduction: Reduction,
    ignoreIndex: number,
  ): void {
    const buffers: NativeKernels["nll_loss"][0] = [
      out.storage as Float32Array,
      logProbs.storage as Float32Array,
      targets.storage as Int32Array,
      optionalBuf(weight),
    ];
    this.call("nll_loss", buffers, { ...nllAttrs(logProbs.shape), reduction, ignoreIndex });
  }

  nllLossBackward(
    gradLogProbs: RawTensor,
    gradOut: RawTensor,
    targets: RawTensor,
    weight: RawTensor | null,
    reduction: Reduction,
    ignoreIndex: number,
  ): void {
    const buffers: NativeKernels["nll_loss_backward"][0] = [
      gradLogProbs.storage as Float32Array,
      gradOut.storage as Float32Array,
      targets.storage as Int32Array,
      optionalBuf(weight),
    ];
    this.call("nll_loss_backward", buffers, {
      ...nllAttrs(gradLogProbs.shape),
      reduction,
      ignoreIndex,
    });
  }

  sgdStep(
    param: RawTensor,
    grad: RawTensor,
    momentumBuffer: RawTensor | null,
    options: SgdStepOptions,
  ): void {
    const buffers: NativeKernels["sgd_step"][0] = [
      param.storage as Float32Array,
      grad.storage as Float32Array,
      optionalBuf(momentumBuffer),
    ];
    this.call("sgd_step", buffers, { ...options });
  }

  /** One kernel call, as adamSteps; a momentum buffer goes with each item when momentum != 0. */
  sgdSteps(items: readonly SgdStepItem[], options: SgdStepOptions): void {
    const buffers: NativeKernels["sgd_steps"][0] = [];
    for (const item of items) {
      buffers.push(item.param.storage as Float32Array, item.grad.storage as Float32Array);
      if (options.momentum !== 0) buffers.push(optionalBuf(item.momentumBuffer));
    }
    this.call("sgd_steps", buffers, { ...options, count: items.length });
  }

  adamStep(
    param: RawTensor,
    grad: RawTensor,
    expAvg: RawTensor,
    expAvgSq: RawTensor,
    maxExpAvgSq: RawTensor | null,
    options: AdamStepOptions,
  ): void {
    const buffers: NativeKernels["adam_step"][0] = [
      param.storage as Float32Array,
      grad.storage as Float32Array,
      expAvg.storage as Float32Array,
      expAvgSq.storage as Float32Array,
      optionalBuf(maxExpAvgSq),
    ];
    this.call("adam_step", buffers, { ...options });
  }

  /** One kernel call: a native crossing (cpu) or a launch per chunk of params (cuda). */
  adamSteps(items: readonly AdamStepItem[], options: AdamStepOptions): void {
    const buffers: NativeKernels["adam_steps"][0] = [];
    for (const item of items) {
      buffers.push(
        item.param.storage as Float32Array,
        item.grad.storage as Float32Array,
        item.expAvg.storage as Float32Array,
        item.expAvgSq.storage as Float32Array,
      );
      if (options.amsgrad) buffers.push(optionalBuf(item.maxExpAvgSq));
    }
    this.call("adam_steps", buffers, { ...options, count: items.length });
  }

  rmspropStep(
    param: RawTensor,
    grad: RawTensor,
    squareAvg: RawTensor,
    gradAvg: RawTensor | null,
    momentumBuffer: RawTensor | null,
    options: RmspropStepOptions,
  ): void {
    const buffers: NativeKernels["rmsprop_step"][0] = [
      param.storage as Float32Array,
      grad.storage as Float32Array,
      squareAvg.storage as Float32Array,
      optionalBuf(gradAvg),
      optionalBuf(momentumBuffer),
    ];
    this.call("rmsprop_step", buffers, { ...options });
  }

  /** One kernel call, as adamSteps; every item sends rmspropStep's 5 buffers. */
  rmspropSteps(items: readonly RmspropStepItem[], options: RmspropStepOptions): void {
    const buffers: NativeKernels["rmsprop_steps"][0] = items.flatMap((item) => [
      item.param.storage as Float32Array,
      item.grad.storage as Float32Array,
      item.squareAvg.storage as Float32Array,
      optionalBuf(item.gradAvg),
      optionalBuf(item.momentumBuffer),
    ]);
    this.call("rmsprop_steps", buffers, { ...options, count: items.length });
  }

  adagradStep(
    param: RawTensor,
    grad: RawTensor,
    stateSum: RawTensor,
    options: AdagradStepOptions,
  ): void {
    const buffers: NativeKernels["adagrad_step"][0] = [
      param.storage as Float32Array,
      grad.storage as Float32Array,
      stateSum.storage as Float32Array,
    ];
    this.call("adagrad_step", buffers, { ...options });
  }

  /** One kernel call, as adamSteps. */
  adagradSteps(items: readonly AdagradStepItem[], options: AdagradStepOptions): void {
    const buffers: NativeKernels["adagrad_steps"][0] = items.flatMap((item) =>
      [item.param, item.grad, item.stateSum].map((x) => x.storage as Float32Array),
    );
    this.call("adagrad_steps", buffers, { ...options, count: items.length });
  }

  rnnForward(args: RnnForwardArgs<RawTensor>, params: RnnParams): void {
    this.call("rnn_forward", ...rnnForwardCall(args, params));
  }

  rnnBackward(args: RnnBackwardArgs<RawTensor>, params: RnnParams): void {
    this.call("rnn_backward", ...rnnBackwardCall(args, params));
  }

  slice(out: RawTensor, x: RawTensor, axis: number, start: number, step: number): void {
    this.call("slice", [buf(out), buf(x)], sliceAttrs(x, out, axis, start, step));
  }

  sliceAssign(out: RawTensor, x: RawTensor, axis: number, start: number, step: number): void {
    this.call("slice_assign", [buf(out), buf(x)], sliceAttrs(out, x, axis, start, step));
  }

  batchNorm(
    out: RawTensor,
    mean: RawTensor,
    variance: RawTensor,
    x: RawTensor,
    weight: RawTensor | null,
    bias: RawTensor | null,
    training: boolean,
    eps: number,
    running: BatchNormRunning | null = null,
  ): void {
    const buffers: NativeKernels["batch_norm"][0] = [
      out.storage as Float32Array,
      mean.storage as Float32Array,
      variance.storage as Float32Array,
      x.storage as Float32Array,
      optionalBuf(weight),
      optionalBuf(bias),
      optionalBuf(running?.mean ?? null),
      optionalBuf(running?.variance ?? null),
    ];
    const momentum = running?.momentum ?? 0;
    this.call("batch_norm", buffers, { ...channelAttrs(x.shape), training, eps, momentum });
  }

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
  ): void {
    const buffers: NativeKernels["batch_norm_backward"][0] = [
      gradX.storage as Float32Array,
      optionalBuf(gradWeight),
      optionalBuf(gradBias),
      gradOut.storage as Float32Array,
      x.storage as Float32Array,
      mean.storage as Float32Array,
      variance.storage as Float32Array,
      optionalBuf(weight),
    ];
    this.call("batch_norm_backward", buffers, { ...channelAttrs(x.shape), training, eps });
  }

  layerNorm(
    out: RawTensor,
    mean: RawTensor,
    rstd: RawTensor,
    x: RawTensor,
    weight: RawTensor | null,
    bias: RawTensor | null,
    eps: number,
  ): void {
    const buffers: NativeKernels["layer_norm"][0] = [
      out.storage as Float32Array,
      mean.storage as Float32Array,
      rstd.storage as Float32Array,
      x.storage as Float32Array,
      optionalBuf(weight),
      optionalBuf(bias),
    ];
    this.call("layer_norm", buffers, { ...rowAttrs(x.shape, mean.shape), eps });
  }

  layerNormBackward(
    gradX: RawTensor,
    gradWeight: RawTensor | null,
    gradBias: RawTensor | null,
    gradOut: RawTensor,
    x: RawTensor,
    mean: RawTensor,
    rstd: RawTensor,
    weight: RawTensor | null,
  ): void {
    const buffers: NativeKernels["layer_norm_backward"][0] = [
      gradX.storage as Float32Array,
      optionalBuf(gradWeight),
      optionalBuf(gradBias),
      gradOut.storage as Float32Array,
      x.storage as Float32Array,
      mean.storage as Float32Array,
      rstd.storage as Float32Array,
      optionalBuf(weight),
    ];
    this.call("layer_norm_backward", buffers, rowAttrs(x.shape, mean.shape));
  }

  embedding(out: RawTensor, weight: RawTensor, indices: RawTensor): void {
    const buffers: NativeKernels["embedding"][0] = [
      out.storage as Float32Array,
      weight.storage as Float32Array,
      indices.storage as Int32Array,
    ];
    this.call("embedding", buffers, embeddingAttrs(weight.shape, indices.shape, -1));
  }

  embeddingBackward(
    gradWeight: RawTensor,
    gradOut: RawTensor,
    indices: RawTensor,
    paddingIdx: number,
  ): void {
    const buffers: NativeKernels["embedding_backward"][0] = [
      gradWeight.storage as Float32Array,
      gradOut.storage as Float32Array,
      indices.storage as Int32Array,
    ];
    const attrs = embeddingAttrs(gradWeight.shape, indices.shape, paddingIdx);
    this.call("embedding_backward", buffers, attrs);
  }

  maskedSoftmax(out: RawTensor, scores: RawTensor, mask: RawTensor | null, scale: number): void {
    const buffers: NativeKernels["masked_softmax"][0] = [
      out.storage as Float32Array,
      scores.storage as Float32Array,
      optionalBuf(mask),
    ];
    const cols = scores.shape[scores.shape.length - 1] ?? 1;
    const rows = cols === 0 ? 0 : scores.shape.reduce((p, d) => p * d, 1) / cols;
    this.call("masked_softmax", buffers, { rows, cols, scale });
  }

  avgPool2d(out: RawTensor, x: RawTensor, params: AvgPool2dParams): void {
    const buffers: NativeKernels["avg_pool2d"][0] = [
      out.storage as Float32Array,
      x.storage as Float32Array,
    ];
    this.call("avg_pool2d", buffers, avgPoolAttrs(x.shape, params));
  }

  avgPool2dBackward(gradX: RawTensor, gradOut: RawTensor, params: AvgPool2dParams): void {
    const buffers: NativeKernels["avg_pool2d_backward"][0] = [
      gradX.storage as Float32Array,
      gradOut.storage as Float32Array,
    ];
    this.call("avg_pool2d_backward", buffers, avgPoolAttrs(gradX.shape, params));
  }

  adaptiveAvgPool2d(out: RawTensor, x: RawTensor): void {
    const buffers: NativeKernels["adaptive_avg_pool2d"][0] = [
      out.storage as Float32Array,
      x.storage as Float32Array,
    ];
    this.call("adaptive_avg_pool2d", buffers, adaptiveAttrs(x.shape, out.shape));
  }

  adaptiveAvgPool2dBackward(gradX: RawTensor, gradOut: RawTensor): void {
    const buffers: NativeKernels["adaptive_avg_pool2d_backward"][0] = [
      gradX.storage as Float32Array,
      gradOut.storage as Float32Array,
    ];
    this.call("adaptive_avg_pool2d_backward", buffers, adaptiveAttrs(gradX.shape, gradOut.shape));
  }

  ctcLoss(loss: RawTensor, logAlpha: RawTensor, inputs: CtcInputs): void {
    const buffers: NativeKernels["ctc_loss"][0] = [
      loss.storage as Float32Array,
      logAlpha.storage as Float64Array,
      ...ctcBuffers(inputs),
    ];
    this.call("ctc_loss", buffers, ctcAttrs(inputs, false));
  }

  ctcLossBackward(
    gradLogProbs: RawTensor,
    gradLoss: RawTensor,
    inputs: CtcInputs,
    logAlpha: RawTensor,
    loss: RawTensor,
    zeroInfinity: boolean,
  ): void {
    const buffers: NativeKernels["ctc_loss_backward"][0] = [
      gradLogProbs.storage as Float32Array,
      gradLoss.storage as Float32Array,
      ...ctcBuffers(inputs),
      logAlpha.storage as Float64Array,
      loss.storage as Float32Array,
    ];
    this.call("ctc_loss_backward", buffers, ctcAttrs(inputs, zeroInfinity));
  }

  fusedAttention(
    out: RawTensor,
    query: RawTensor,
    key: RawTensor,
    value: RawTensor,
    keyPadding: RawTensor | null,
    params: AttentionParams,
  ): void {
    const inputs = [query, key, value].map((t) => t.storage as Float32Array);
    const buffers: NativeKernels["fused_attention"][0] = [
      out.storage as Float32Array,
      ...(inputs as [Float32Array, Float32Array, Float32Array]),
      keyPadding === null ? null : (keyPadding.storage as Uint8Array),
    ];
    this.call("fused_attention", buffers, attentionAttrs(query, key, value, params));
  }

  fusedAttentionBackward(
    grads: [RawTensor, RawTensor, RawTensor],
    gradOut: RawTensor,
    inputs: [RawTensor, RawTensor, RawTensor],
    keyPadding: RawTensor | null,
    params: AttentionParams,
  ): void {
    const floats = (ts: RawTensor[]) => ts.map((t) => t.storage as Float32Array);
    const buffers = [
      ...floats(grads),
      gradOut.storage as Float32Array,
      ...floats(inputs),
      keyPadding === null ? null : (keyPadding.storage as Uint8Array),
    ] as NativeKernels["fused_attention_backward"][0];
    this.call("fused_attention_backward", buffers, attentionAttrs(...inputs, params));
  }
}

/** fused_attention's sizes from query [B, L, E], key [B, S, E] and value [B, S, Ev]. */
function attentionAttrs(
  query: RawTensor,
  key: RawTensor,
  value: RawTensor,
  params: AttentionParams,
): AttentionAttrs {
  const [batch, queries, dim] = query.shape as [number, number, number];
  const random =
    params.dropoutKey === null
      ? { seedLo: 0, seedHi: 0, offset: 0 }
      : randomAttrs(params.dropoutKey);
  return {
    batch,
    heads: params.heads,
    queries,
    keys: key.shape[1] ?? 0,
    dim,
    valueDim: value.shape[2] ?? 0,
    scale: params.scale,
    causal: params.causal,
    dropoutP: params.dropoutP,
    ...random,
  };
}

/** The [outer, largeDim, inner] view of the large tensor, and the small one's count. */
function sliceAttrs(
  large: RawTensor,
  small: RawTensor,
  axis: number,
  start: number,
  step: number,
): SliceAttrs {
  const outer = large.shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = large.shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  return { outer, largeDim: large.shape[axis]!, inner, count: small.shape[axis]!, start, step };
}

function nllAttrs(shape: readonly number[]): { n: number; c: number; inner: number } {
  let inner = 1;
  for (let i = 2; i < shape.length; i++) inner *= shape[i]!;
  return { n: shape[0]!, c: shape[1] ?? 1, inner };
}

/** x as [n, c, inner] for batch norm. */
function channelAttrs(shape: readonly number[]): { n: number; c: number; inner: number } {
  let inner = 1;
  for (let i = 2; i < shape.length; i++) inner *= shape[i]!;
  return { n: shape[0] ?? 0, c: shape[1] ?? 0, inner };
}

/** x as [rows, normSize] for layer norm: rows are the dims that mean has. */
function rowAttrs(
  shape: readonly number[],
  meanShape: readonly number[],
): { rows: number; normSize: number } {
  let rows = 1;
  let normSize = 1;
  shape.forEach((d, i) => (i < meanShape.length ? (rows *= d) : (normSize *= d)));
  return { rows, normSize };
}

function embeddingAttrs(
  tableShape: readonly number[],
  indicesShape: readonly number[],
  paddingIdx: number,
): NativeKernels["embedding"][1] {
  let count = 1;
  for (const d of indicesShape) count *= d;
  return { numEmbeddings: tableShape[0] ?? 0, dim: tableShape[1] ?? 0, count, paddingIdx };
}

function avgPoolAttrs(
  xShape: readonly number[],
  params: AvgPool2dParams,
): NativeKernels["avg_pool2d"][1] {
  return {
    n: xShape[0] ?? 0,
    c: xShape[1] ?? 0,
    h: xShape[2] ?? 0,
    w: xShape[3] ?? 0,
    kH: params.kernelSize[0],
    kW: params.kernelSize[1],
    strideH: params.stride[0],
    strideW: params.stride[1],
    padH: params.padding[0],
    padW: params.padding[1],
    ceilMode: params.ceilMode,
    countIncludePad: params.countIncludePad,
    divisorOverride: params.divisorOverride ?? 0,
  };
}

function adaptiveAttrs(
  xShape: readonly number[],
  outShape: readonly number[],
): NativeKernels["adaptive_avg_pool2d"][1] {
  const [n, c, h, w] = [0, 1, 2, 3].map((i) => xShape[i] ?? 0) as [number, number, number, number];
  return { n, c, h, w, oH: outShape[2] ?? 0, oW: outShape[3] ?? 0, rank: xShape.length };
}

function ctcBuffers(inputs: CtcInputs): [Float32Array, Int32Array, Int32Array, Int32Array] {
  return [
    inputs.logProbs.storage as Float32Array,
    inputs.targets.storage as Int32Array,
    inputs.inputLengths.storage as Int32Array,
    inputs.targetLengths.storage as Int32Array,
  ];
}

function ctcAttrs(inputs: CtcInputs, zeroInfinity: boolean): NativeKernels["ctc_loss"][1] {
  const [steps, batch, classes] = inputs.logProbs.shape;
  return {
    steps: steps ?? 0,
    batch: batch ?? 0,
    classes: classes ?? 0,
    maxTarget: inputs.targets.shape[1] ?? 0,
    blank: inputs.blank,
    zeroInfinity,
    rank: inputs.logProbs.shape.length,
    targetRank: inputs.targets.shape.length,
  };
}
