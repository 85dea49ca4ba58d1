// The functional layer (imported as F): every nn module's forward is one call in here.
// Each function checks its arguments, runs backend primitives and records its backward.

import { record } from "../autograd/graph.js";
import { isGradEnabled } from "../autograd/grad-mode.js";
import type { Conv2dParams, Pool2dParams, Reduction } from "../backend/backend.js";
import { backendFor } from "../backend/registry.js";
import {
  DTypeError,
  DeviceError,
  ShapeError,
  ValueError,
  formatShape,
  formatValue,
} from "../errors.js";
import { empty, zeroFilled } from "../ops/creation.js";
import {
  checkFloatingInput,
  relu as reluOp,
  sigmoid as sigmoidOp,
  tanh as tanhOp,
} from "../ops/elementwise.js";
import { linear as linearOp } from "../ops/linalg.js";
import { defaultGenerator } from "../random.js";
import { normalizeAxis } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { extendedCrossEntropy, type CrossEntropyOptions } from "./loss.js";

export type Pair = number | readonly [number, number];

/** A size given as one integer or a pair of them, each at least `min`, as a pair. */
export function pairOf(op: string, name: string, value: Pair, min: number): [number, number] {
  const p: readonly unknown[] = Array.isArray(value) ? value : [value, value];
  if (p.length !== 2 || p.some((v) => !Number.isInteger(v) || (v as number) < min)) {
    const expected = `an integer >= ${min} or a pair of them`;
    throw new ValueError(op, `${name} must be ${expected}, got ${formatValue(value)}`, name);
  }
  return [p[0] as number, p[1] as number];
}

export const relu = reluOp;
export const sigmoid = sigmoidOp;
export const tanh = tanhOp;
export const linear = linearOp;

// ---- convolution ------------------------------------------------------------------

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

function convOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padding: number,
  dilation: number,
): number {
  return Math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
}

function conv2dParams(options: Conv2dOptions): Conv2dParams {
  const groups = options.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1)
    throw new ValueError(
      "conv2d",
      `groups must be a positive integer, got ${formatValue(groups)}`,
      "groups",
    );
  return {
    stride: pairOf("conv2d", "stride", options.stride ?? 1, 1),
    padding: pairOf("conv2d", "padding", options.padding ?? 0, 0),
    dilation: pairOf("conv2d", "dilation", options.dilation ?? 1, 1),
    groups,
  };
}

function checkConvShapes(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  p: Conv2dParams,
): [number, number] {
  const shapes = [x.shape, weight.shape];
  if (x.ndim !== 4)
    throw new ShapeError(
      "conv2d",
      `input must be [N, C, H, W], got ${formatShape(x.shape)}`,
      shapes,
    );
  if (weight.ndim !== 4)
    throw new ShapeError(
      "conv2d",
      `weight must be [outChannels, inChannels / groups, kH, kW], got ${formatShape(weight.shape)}`,
      shapes,
    );
  const [, cIn, h, w] = x.shape as [number, number, number, number];
  const [cOut, cPerGroup, kH, kW] = weight.shape as [number, number, number, number];
  if (cIn !== cPerGroup * p.groups || cOut % p.groups !== 0) {
    throw new ShapeError(
      "conv2d",
      `input ${formatShape(x.shape)} has ${cIn} channels but weight ${formatShape(weight.shape)} ` +
        `expects ${cPerGroup * p.groups} (groups=${p.groups})`,
      shapes,
      1,
    );
  }
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== cOut)) {
    throw new ShapeError("conv2d", `bias ${formatShape(bias.shape)} must be [${cOut}]`, [
      ...shapes,
      bias.shape,
    ]);
  }
  const oH = convOutputSize(h, kH, p.stride[0], p.padding[0], p.dilation[0]);
  const oW = convOutputSize(w, kW, p.stride[1], p.padding[1], p.dilation[1]);
  if (oH < 1 || oW < 1) {
    throw new ShapeError(
      "conv2d",
      `input ${formatShape(x.shape)} is smaller than the (dilated) kernel ` +
        `${formatShape(weight.shape)} after padding`,
      shapes,
    );
  }
  return [oH, oW];
}

function checkSameFloat(op: string, tensors: (Tensor | null)[]): void {
  const present = tensors.filter((t): t is Tensor => t !== null);
  const first = present[0]!;
  checkFloatingInput(op, first);
  for (const t of present) {
    if (t.device !== first.device)
      throw new DeviceError(
        op,
        `expected tensors on one device, got ${first.device} and ${t.device}`,
        [first.device, t.device],
      );
    if (t.dtype !== first.dtype)
      throw new DTypeError(op, `expected one dtype, got ${first.dtype} and ${t.dtype}`, [
        first.dtype,
        t.dtype,
      ]);
  }
}

/** 2-D convolution: x [N, C, H, W], weight [outChannels, C / groups, kH, kW]. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv2dOptions = {},
): Tensor {
  checkSameFloat("conv2d", [x, weight, bias]);
  const p = conv2dParams(options);
  const [oH, oW] = checkConvShapes(x, weight, bias, p);
  const out = empty([x.shape[0]!, weight.shape[0]!, oH, oW], x.dtype, x.device);
  const backend = backendFor(x.device);
  backend.conv2d(out, x, weight, bias, p);
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  return record(out, "conv2d", inputs, (g) => {
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    if (x.requiresGrad) {
      gx = empty(x.shape, x.dtype, x.device);
      backend.conv2dBackwardData(gx, g, weight, p);
    }
    if (weight.requiresGrad) {
      gw = empty(weight.shape, weight.dtype, weight.device);
      backend.conv2dBackwardWeight(gw, g, x, p);
    }
    const gb = bias !== null && bias.requiresGrad ? g.sum([0, 2, 3]) : null;
    return [gx, gw, gb];
  });
}

// ---- pooling ----------------------------------------------------------------------

export interface MaxPool2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

function poolOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padding: number,
  dilation: number,
  ceil: boolean,
): number {
  const span = size + 2 * padding - dilation * (kernel - 1) - 1;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  // The last window must start inside the input or the left padding (PyTorch's rule).
  if (ceil && (out - 1) * stride >= size + padding) out--;
  return out;
}

function pool2dParams(kernelSize: Pair, options: MaxPool2dOptions): Pool2dParams {
  const k = pairOf("maxPool2d", "kernelSize", kernelSize, 1);
  const padding = pairOf("maxPool2d", "padding", options.padding ?? 0, 0);
  if (padding[0] > k[0] / 2 || padding[1] > k[1] / 2) {
    throw new ValueError(
      "maxPool2d",
      `padding ${JSON.stringify(padding)} must be at most half the kernel size ` +
        `${JSON.stringify(k)}`,
      "padding",
    );
  }
  return {
    kernelSize: k,
    stride: pairOf("maxPool2d", "stride", options.stride ?? k, 1),
    padding,
    dilation: pairOf("maxPool2d", "dilation", options.dilation ?? 1, 1),
    ceilMode: options.ceilMode ?? false,
  };
}

/** Max pooling over [N, C, H, W]; stride defaults to the kernel size. */
export function maxPool2d(x: Tensor, kernelSize: Pair, options: MaxPool2dOptions = {}): Tensor {
  checkFloatingInput("maxPool2d", x);
  if (x.ndim !== 4)
    throw new ShapeError("maxPool2d", `input must be [N, C, H, W], got ${formatShape(x.shape)}`, [
      x.shape,
    ]);
  const p = pool2dParams(kernelSize, options);
  const dims = [0, 1].map((i) =>
    poolOutputSize(
      x.shape[2 + i]!,
      p.kernelSize[i]!,
      p.stride[i]!,
      p.padding[i]!,
      p.dilation[i]!,
      p.ceilMode,
    ),
  );
  if (dims[0]! < 1 || dims[1]! < 1) {
    throw new ShapeError(
      "maxPool2d",
      `input ${formatShape(x.shape)} is too small for kernel ${JSON.stringify(p.kernelSize)}`,
      [x.shape],
    );
  }
  const shape = [x.shape[0]!, x.shape[1]!, dims[0]!, dims[1]!];
  const out = empty(shape, x.dtype, x.device);
  const indices = empty(shape, "int32", x.device);
  const backend = backendFor(x.device);
  backend.maxPool2d(out, indices, x, p);
  return record(out, "maxPool2d", [x], (g) => {
    const gx = zeroFilled(x.shape, x.dtype, x.device);
    backend.maxPool2dBackward(gx, g, indices);
    return [gx];
  });
}

// ---- softmax and losses -----------------------------------------------------------

function softmaxImpl(x: Tensor, dim: number, log: boolean): Tensor {
  const name = log ? "logSoftmax" : "softmax";
  checkFloatingInput(name, x);
  const axis = normalizeAxis(name, dim, x.ndim);
  const out = empty(x.shape, x.dtype, x.device);
  const backend = backendFor(x.device);
  const source = x.ndim === 0 ? x.reshape([1]) : x;
  backend.softmax(out.ndim === 0 ? out.reshape([1]) : out, source, axis, log);
  return record(out, name, [x], (g) => {
    const gx = empty(x.shape, x.dtype, x.device);
    backend.softmaxBackward(gx, g, out, axis, log);
    return [gx];
  });
}

/**
 * The dim of softmax and logSoftmax, which must be given, as nn.Softmax's: PyTorch's implicit
 * choice (deprecated there) depends on the input's rank, dim 1 of a 4-d input, so a default of
 * -1 would quietly differ from ported code.
 */
function givenDim(op: string, dim: number | undefined): number {
  if (dim === undefined) {
    const message =
      "dim is required (pass -1 for the last dim; PyTorch's implicit dim is deprecated)";
    throw new ValueError(op, message, "dim");
  }
  return dim;
}

export function softmax(x: Tensor, dim: number): Tensor {
  return softmaxImpl(x, givenDim("softmax", dim), false);
}

export function logSoftmax(x: Tensor, dim: number): Tensor {
  return softmaxImpl(x, givenDim("logSoftmax", dim), true);
}

export interface NllLossOptions {
  weight?: Tensor | null;
  ignoreIndex?: number;
  reduction?: Reduction;
}

function checkReduction(op: string, reduction: string): Reduction {
  if (reduction !== "none" && reduction !== "mean" && reduction !== "sum") {
    throw new ValueError(
      op,
      `reduction must be "none", "mean" or "sum", got ${JSON.stringify(reduction)}`,
      "reduction",
    );
  }
  return reduction;
}

function checkNllShapes(
  op: string,
  logProbs: Tensor,
  targets: Tensor,
  weight: Tensor | null,
): void {
  const shapes = [logProbs.shape, targets.shape];
  if (targets.dtype !== "int32")
    throw new DTypeError(op, `targets must be int32 class indices, got ${targets.dtype}`, [
      targets.dtype,
    ]);
  if (logProbs.ndim < 2)
    throw new ShapeError(
      op,
      `input must be [N, C, ...], got ${formatShape(logProbs.shape)}`,
      shapes,
    );
  const expected = [logProbs.shape[0]!, ...logProbs.shape.slice(2)];
  if (targets.ndim !== expected.length || targets.shape.some((d, i) => d !== expected[i])) {
    throw new ShapeError(
      op,
      `targets ${formatShape(targets.shape)} do not match input ${formatShape(logProbs.shape)}: ` +
        `expected ${formatShape(expected)}`,
      shapes,
    );
  }
  if (weight !== null && (weight.ndim !== 1 || weight.shape[0] !== logProbs.shape[1])) {
    throw new ShapeError(op, `weight ${formatShape(weight.shape)} must be [${logProbs.shape[1]}]`, [
      ...shapes,
      weight.shape,
    ]);
  }
  if (targets.device !== logProbs.device)
    throw new DeviceError(op, `targets are on ${targets.device}, input on ${logProbs.device}`, [
      targets.device,
      logProbs.device,
    ]);
}

/** Negative log-likelihood of log-probabilities [N, C, ...] for int32 class targets [N, ...]. */
export function nllLoss(logProbs: Tensor, targets: Tensor, options: NllLossOptions = {}): Tensor {
  checkFloatingInput("nllLoss", logProbs);
  const weight = options.weight ?? null;
  const reduction = checkReduction("nllLoss", options.reduction ?? "mean");
  const ignoreIndex = options.ignoreIndex ?? -100;
  checkNllShapes("nllLoss", logProbs, targets, weight);
  const out = empty(reduction === "none" ? targets.shape : [], logProbs.dtype, logProbs.device);
  const backend = backendFor(logProbs.device);
  backend.nllLoss(out, logProbs, targets, weight, reduction, ignoreIndex);
  return record(out, "nllLoss", [logProbs], (g) => {
    const gx = empty(logProbs.shape, logProbs.dtype, logProbs.device);
    backend.nllLossBackward(gx, g, targets, weight, reduction, ignoreIndex);
    return [gx];
  });
}

/**
 * logSoftmax over dim 1 followed by nllLoss for int32 class targets; float targets are
 * class probabilities. labelSmoothing and probabilities as PyTorch (lib/nn/loss.ts).
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  options: CrossEntropyOptions = {},
): Tensor {
  const probabilities = targets.dtype === "float32" || targets.dtype === "float64";
  if (probabilities || (options.labelSmoothing ?? 0) !== 0)
    return extendedCrossEntropy(logits, targets, options);
  return nllLoss(logSoftmax(logits, 1), targets, options);
}

export interface BceWithLogitsOptions {
  weight?: Tensor | null; // rescales each element's loss; broadcasts to the input
  posWeight?: Tensor | null; // weight of positive examples, per class (broadcast on the last dim)
  reduction?: Reduction;
}

/**
 * Binary cross-entropy on logits, stable for any logit: with z = x and p = posWeight,
 * loss = (1 - y) z + (1 + (p - 1) y) (log(1 + exp(-|z|)) + max(-z, 0)),
 * which is exact at +-1000 where sigmoid followed by a log would give inf.
 */
export function binaryCrossEntropyWithLogits(
  logits: Tensor,
  targets: Tensor,
  options: BceWithLogitsOptions = {},
): Tensor {
  checkFloatingInput("binaryCrossEntropyWithLogits", logits);
  const reduction = checkReduction("binaryCrossEntropyWithLogits", options.reduction ?? "mean");
  if (
    targets.shape.length !== logits.shape.length ||
    targets.shape.some((d, i) => d !== logits.shape[i])
  ) {
    throw new ShapeError(
      "binaryCrossEntropyWithLogits",
      `targets ${formatShape(targets.shape)} must have the shape of the logits ` +
        `${formatShape(logits.shape)}`,
      [logits.shape, targets.shape],
    );
  }
  const y = targets.to(logits.dtype);
  const softplus = logits.abs().neg().exp().add(1).log().add(logits.neg().maximum(0));
  const posWeight = options.posWeight ?? null;
  const factor = posWeight === null ? null : posWeight.sub(1).mul(y).add(1);
  let loss = y
    .neg()
    .add(1)
    .mul(logits)
    .add(factor === null ? softplus : factor.mul(softplus));
  if (options.weight !== undefined && options.weight !== null) loss = loss.mul(options.weight);
  if (reduction === "none") return loss;
  return reduction === "sum" ? loss.sum() : loss.mean();
}

// ---- dropout ----------------------------------------------------------------------

/** Zeroes each element with probability p and scales the rest by 1 / (1 - p) when training. */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  if (typeof p !== "number" || !(p >= 0 && p <= 1))
    throw new ValueError("dropout", `p must be in [0, 1], got ${formatValue(p)}`, "p");
  if (!training || p === 0) return x;
  checkFloatingInput("dropout", x);
  const out = empty(x.shape, x.dtype, x.device);
  const mask = empty(x.shape, x.dtype, x.device);
  const backend = backendFor(x.device);
  backend.dropout(out, mask, x, p, defaultGenerator.next(x.numel));
  if (!isGradEnabled() || !x.requiresGrad) {
    mask.dispose();
    return out;
  }
  return record(out, "dropout", [x], (g) => {
    const gx = empty(x.shape, x.dtype, x.device);
    backend.binary("mul", gx, g, mask);
    return [gx];
  });
}

// ---- recurrent layers (lib/nn/rnn.ts) ---------------------------------------------

export { recurrent } from "./rnn.js";
export type { RecurrentOptions, RecurrentResult } from "./rnn.js";
// ---- activations and normalisation (lib/nn/activation.ts, lib/nn/normalization.ts) ----

export { leakyRelu, gelu, silu } from "./activation.js";
export type { GeluApproximate } from "./activation.js";
export { batchNorm, layerNorm, groupNorm } from "./normalization.js";
export type { BatchNormOptions } from "./normalization.js";

// ---- losses and embedding (lib/nn/loss.ts, lib/nn/embedding.ts) -------------------------

export { mseLoss, l1Loss, smoothL1Loss, binaryCrossEntropy, klDiv } from "./loss.js";
export type {
  BceOptions,
  CrossEntropyOptions,
  KlDivOptions,
  LossOptions,
  SmoothL1Options,
} from "./loss.js";
export { embedding } from "./embedding.js";
export type { EmbeddingOptions } from "./embedding.js";

// ---- attention (lib/nn/attention.ts) ----------------------------------------------

export { scaledDotProductAttention } from "./attention.js";
export type { AttentionOptions } from "./attention.js";
// ---- convolution and pooling breadth (lib/nn/conv.ts), CTC loss (lib/nn/ctc.ts) ----------

export { conv1d, convTranspose2d, avgPool2d, adaptiveAvgPool2d } from "./conv.js";
export type {
  AdaptiveSize,
  AvgPool2dOptions,
  Conv1dOptions,
  ConvTranspose2dOptions,
} from "./conv.js";
export { ctcLoss, ctcGreedyDecode } from "./ctc.js";
export type { CtcLossOptions } from "./ctc.js";
