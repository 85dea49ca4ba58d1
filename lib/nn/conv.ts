// Convolution and pooling beyond Conv2d and MaxPool2d, as functions (re-exported by F) and
// modules with PyTorch's names and init: conv1d (conv2d over a unit height),
// convTranspose2d (its forward is conv2d's data gradient and its weight gradient
// conv2d's weight gradient with the roles swapped), avgPool2d and adaptiveAvgPool2d.

import { record } from "../autograd/graph.js";
import type { AvgPool2dParams, Conv2dParams } from "../backend/backend.js";
import { backendFor, getDefaultDevice, parseDevice } from "../backend/registry.js";
import { avgPoolOutShape } from "../backend/reference/avgpool.js";
import type { DType } from "../dtype.js";
import {
  DTypeError,
  DeviceError,
  ShapeError,
  ValueError,
  formatShape,
  formatValue,
} from "../errors.js";
import { empty, zeroFilled, zeros } from "../ops/creation.js";
import { cat } from "../ops/slicing.js";
import { checkFloatingInput } from "../ops/elementwise.js";
import type { Tensor } from "../tensor.js";
import * as F from "./functional.js";
import { defaultLayerInit } from "./init.js";
import { Module, checkPositiveInt } from "./module.js";
import { Parameter } from "./parameter.js";

type Pair = F.Pair;

function intOf(op: string, name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min)
    throw new ValueError(
      op,
      `${name} must be an integer >= ${min}, got ${formatValue(value)}`,
      name,
    );
  return value;
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

// ---- conv1d -----------------------------------------------------------------------------

export interface Conv1dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
}

/** 1-D convolution: x [N, C, L], weight [outChannels, C / groups, k], bias [outChannels]. */
export function conv1d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv1dOptions = {},
): Tensor {
  if (x.ndim !== 3 || weight.ndim !== 3)
    throw new ShapeError(
      "conv1d",
      `expected input [N, C, L] and weight [outChannels, C / groups, k], got ` +
        `${formatShape(x.shape)} and ${formatShape(weight.shape)}`,
      [x.shape, weight.shape],
    );
  const out = F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, {
    stride: [1, intOf("conv1d", "stride", options.stride ?? 1, 1)],
    padding: [0, intOf("conv1d", "padding", options.padding ?? 0, 0)],
    dilation: [1, intOf("conv1d", "dilation", options.dilation ?? 1, 1)],
    groups: options.groups ?? 1,
  });
  return out.squeeze(2);
}

// ---- convTranspose2d --------------------------------------------------------------------

export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  groups?: number;
  dilation?: Pair;
}

interface TransposeGeometry {
  params: Conv2dParams;
  /** What the kernel computes: outputPadding modulo stride. */
  outShape: number[];
  /** Zero rows and columns appended after it: the rest of outputPadding, which no tap reaches. */
  extra: [number, number];
}

function transposeGeometry(
  x: Tensor,
  weight: Tensor,
  options: ConvTranspose2dOptions,
): TransposeGeometry {
  const op = "convTranspose2d";
  const groups = intOf(op, "groups", options.groups ?? 1, 1);
  const params: Conv2dParams = {
    stride: F.pairOf(op, "stride", options.stride ?? 1, 1),
    padding: F.pairOf(op, "padding", options.padding ?? 0, 0),
    dilation: F.pairOf(op, "dilation", options.dilation ?? 1, 1),
    groups,
  };
  const outputPadding = F.pairOf(op, "outputPadding", options.outputPadding ?? 0, 0);
  if (outputPadding.some((v, i) => v >= params.stride[i]! && v >= params.dilation[i]!))
    throw new ValueError(
      op,
      `outputPadding ${formatShape(outputPadding)} must be smaller than stride ` +
        `${formatShape(params.stride)} or dilation ${formatShape(params.dilation)}`,
      "outputPadding",
    );
  const extra = outputPadding.map((v, i) => v - (v % params.stride[i]!)) as [number, number];
  if (x.ndim !== 4 || weight.ndim !== 4 || x.shape[1] !== weight.shape[0] || x.shape[1]! % groups)
    throw new ShapeError(
      op,
      `expected input [N, C, H, W] and weight [C, outChannels / groups, kH, kW] with C divisible ` +
        `by groups ${groups}, got ${formatShape(x.shape)} and ${formatShape(weight.shape)}`,
      [x.shape, weight.shape],
    );
  const size = [0, 1].map(
    (i) =>
      (x.shape[2 + i]! - 1) * params.stride[i]! -
      2 * params.padding[i]! +
      params.dilation[i]! * (weight.shape[2 + i]! - 1) +
      outputPadding[i]! -
      extra[i]! +
      1,
  );
  if (size.some((v) => v < 1))
    throw new ShapeError(op, `output size ${formatShape(size)} must be positive`, [
      x.shape,
      weight.shape,
    ]);
  return { params, outShape: [x.shape[0]!, weight.shape[1]! * groups, ...size], extra };
}

/**
 * Transposed 2-D convolution (the gradient of conv2d with respect to its input):
 * x [N, C, H, W], weight [C, outChannels / groups, kH, kW], bias [outChannels].
 */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: ConvTranspose2dOptions = {},
): Tensor {
  checkSameFloat("convTranspose2d", [x, weight, bias]);
  const { params, outShape, extra } = transposeGeometry(x, weight, options);
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== outShape[1]))
    throw new ShapeError(
      "convTranspose2d",
      `bias ${formatShape(bias.shape)} must be [${outShape[1]}]`,
      [bias.shape],
    );
  const backend = backendFor(x.device);
  const out = empty(outShape, x.dtype, x.device);
  backend.conv2dBackwardData(out, x, weight, params);
  const result = record(out, "convTranspose2d", [x, weight], (g) => {
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    if (x.requiresGrad) {
      gx = empty(x.shape, x.dtype, x.device);
      backend.conv2d(gx, g, weight, null, params);
    }
    if (weight.requiresGrad) {
      gw = empty(weight.shape, weight.dtype, weight.device);
      backend.conv2dBackwardWeight(gw, x, g, params);
    }
    return [gx, gw];
  });
  const padded = padEnd(result, extra);
  return bias === null ? padded : padded.add(bias.reshape([1, outShape[1]!, 1, 1]));
}

/** x [N, C, H, W] with `extra` zero rows and columns appended (through cat, so in the graph). */
function padEnd(x: Tensor, extra: [number, number]): Tensor {
  let out = x;
  extra.forEach((count, i) => {
    if (count === 0) return;
    const shape = [...out.shape];
    shape[2 + i] = count;
    out = cat([out, zeros(shape, { dtype: x.dtype, device: x.device })], 2 + i);
  });
  return out;
}

// ---- average pooling --------------------------------------------------------------------

export interface AvgPool2dOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
  countIncludePad?: boolean;
  divisorOverride?: number | null;
}

function avgPoolParams(kernelSize: Pair, options: AvgPool2dOptions): AvgPool2dParams {
  const op = "avgPool2d";
  const k = F.pairOf(op, "kernelSize", kernelSize, 1);
  const padding = F.pairOf(op, "padding", options.padding ?? 0, 0);
  if (padding[0] > k[0] / 2 || padding[1] > k[1] / 2)
    throw new ValueError(
      op,
      `padding ${formatShape(padding)} must be at most half the kernel size ${formatShape(k)}`,
      "padding",
    );
  const divisor = options.divisorOverride ?? null;
  if (divisor !== null) intOf(op, "divisorOverride", divisor, 1);
  return {
    kernelSize: k,
    stride: F.pairOf(op, "stride", options.stride ?? k, 1),
    padding,
    ceilMode: options.ceilMode ?? false,
    countIncludePad: options.countIncludePad ?? true,
    divisorOverride: divisor,
  };
}

function checkPlanes(op: string, x: Tensor): void {
  checkFloatingInput(op, x);
  if (x.ndim !== 4)
    throw new ShapeError(op, `input must be [N, C, H, W], got ${formatShape(x.shape)}`, [x.shape]);
}

/** Average pooling over [N, C, H, W]; stride defaults to the kernel size. */
export function avgPool2d(x: Tensor, kernelSize: Pair, options: AvgPool2dOptions = {}): Tensor {
  checkPlanes("avgPool2d", x);
  const p = avgPoolParams(kernelSize, options);
  const shape = avgPoolOutShape(x.shape, p);
  if (shape[2]! < 1 || shape[3]! < 1)
    throw new ShapeError(
      "avgPool2d",
      `input ${formatShape(x.shape)} is too small for kernel ${formatShape(p.kernelSize)}`,
      [x.shape],
    );
  const out = empty(shape, x.dtype, x.device);
  const backend = backendFor(x.device);
  backend.avgPool2d(out, x, p);
  return record(
    out,
    "avgPool2d",
    [x],
    (g) => {
      const gx = zeroFilled(x.shape, x.dtype, x.device);
      backend.avgPool2dBackward(gx, g, p);
      return [gx];
    },
    { savesTensors: false },
  );
}

/** An output size: one number for both, or a pair where null keeps the input's size. */
export type AdaptiveSize = number | readonly [number | null, number | null];

/** Average pooling of [N, C, H, W] to the given output size with PyTorch's windows. */
export function adaptiveAvgPool2d(x: Tensor, outputSize: AdaptiveSize): Tensor {
  const op = "adaptiveAvgPool2d";
  checkPlanes(op, x);
  const pairSize = typeof outputSize === "number" ? [outputSize, outputSize] : outputSize;
  const size = pairSize.map((v, i) => intOf(op, "outputSize", v ?? x.shape[2 + i]!, 1));
  if (x.shape[2] === 0 || x.shape[3] === 0)
    throw new ShapeError(op, `input ${formatShape(x.shape)} must have h, w >= 1`, [x.shape]);
  const out = empty([x.shape[0]!, x.shape[1]!, size[0]!, size[1]!], x.dtype, x.device);
  const backend = backendFor(x.device);
  backend.adaptiveAvgPool2d(out, x);
  return record(
    out,
    "adaptiveAvgPool2d",
    [x],
    (g) => {
      const gx = zeroFilled(x.shape, x.dtype, x.device);
      backend.adaptiveAvgPool2dBackward(gx, g);
      return [gx];
    },
    { savesTensors: false },
  );
}

// ---- modules ----------------------------------------------------------------------------

interface FactoryOptions {
  device?: string;
  dtype?: DType;
}

function newParameter(op: string, shape: number[], options: FactoryOptions): Parameter {
  const dtype = options.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float64")
    throw new DTypeError(op, `parameters must be float32 or float64, got ${dtype}`, [dtype]);
  const device = options.device === undefined ? getDefaultDevice() : parseDevice(options.device);
  return new Parameter(empty(shape, dtype, device));
}

function checkGroups(op: string, inChannels: number, outChannels: number, groups: number): void {
  checkPositiveInt(op, "groups", groups);
  if (inChannels % groups !== 0 || outChannels % groups !== 0)
    throw new ValueError(
      op,
      `inChannels (${inChannels}) and outChannels (${outChannels}) must be divisible by groups ` +
        `(${groups})`,
      "groups",
    );
}

const text = (v: Pair): string => (typeof v === "number" ? `(${v},)` : `(${v[0]}, ${v[1]})`);

export interface Conv1dModuleOptions extends Conv1dOptions, FactoryOptions {
  bias?: boolean;
}

/** 1-D convolution. Input [N, inChannels, L], output [N, outChannels, L']. */
export class Conv1d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly options: Required<Conv1dOptions>;
  weight: Parameter; // [outChannels, inChannels / groups, kernelSize]
  bias: Parameter | null; // [outChannels]

  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number,
    options: Conv1dModuleOptions = {},
  ) {
    super();
    this.inChannels = checkPositiveInt("Conv1d", "inChannels", inChannels);
    this.outChannels = checkPositiveInt("Conv1d", "outChannels", outChannels);
    this.kernelSize = checkPositiveInt("Conv1d", "kernelSize", kernelSize);
    const groups = options.groups ?? 1;
    checkGroups("Conv1d", inChannels, outChannels, groups);
    this.options = {
      stride: options.stride ?? 1,
      padding: options.padding ?? 0,
      dilation: options.dilation ?? 1,
      groups,
    };
    this.weight = newParameter("Conv1d", [outChannels, inChannels / groups, kernelSize], options);
    this.bias = options.bias === false ? null : newParameter("Conv1d", [outChannels], options);
    this.resetParameters();
  }

  override resetParameters(): void {
    defaultLayerInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return conv1d(x, this.weight, this.bias, this.options);
  }

  override extraRepr(): string {
    const o = this.options;
    let repr =
      `${this.inChannels}, ${this.outChannels}, kernel_size=(${this.kernelSize},), ` +
      `stride=(${o.stride},)`;
    if (o.padding !== 0) repr += `, padding=(${o.padding},)`;
    if (o.dilation !== 1) repr += `, dilation=(${o.dilation},)`;
    if (o.groups !== 1) repr += `, groups=${o.groups}`;
    return this.bias === null ? `${repr}, bias=False` : repr;
  }
}

export interface ConvTranspose2dModuleOptions extends ConvTranspose2dOptions, FactoryOptions {
  bias?: boolean;
}

/** Transposed 2-D convolution. Input [N, inChannels, H, W], output [N, outChannels, H', W']. */
export class ConvTranspose2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly options: ConvTranspose2dOptions;
  weight: Parameter; // [inChannels, outChannels / groups, kH, kW]
  bias: Parameter | null; // [outChannels]

  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: Pair,
    options: ConvTranspose2dModuleOptions = {},
  ) {
    super();
    this.inChannels = checkPositiveInt("ConvTranspose2d", "inChannels", inChannels);
    this.outChannels = checkPositiveInt("ConvTranspose2d", "outChannels", outChannels);
    this.kernelSize = F.pairOf("ConvTranspose2d", "kernelSize", kernelSize, 1);
    const groups = options.groups ?? 1;
    checkGroups("ConvTranspose2d", inChannels, outChannels, groups);
    this.options = {
      stride: options.stride ?? 1,
      padding: options.padding ?? 0,
      outputPadding: options.outputPadding ?? 0,
      groups,
      dilation: options.dilation ?? 1,
    };
    const shape = [inChannels, outChannels / groups, ...this.kernelSize];
    this.weight = newParameter("ConvTranspose2d", shape, options);
    this.bias =
      options.bias === false ? null : newParameter("ConvTranspose2d", [outChannels], options);
    this.resetParameters();
  }

  override resetParameters(): void {
    defaultLayerInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, this.bias, this.options);
  }

  override extraRepr(): string {
    const o = this.options;
    const pair = (v: Pair | undefined, d: number) =>
      text(typeof v === "number" ? [v, v] : (v ?? [d, d]));
    let repr =
      `${this.inChannels}, ${this.outChannels}, kernel_size=${text(this.kernelSize)}, ` +
      `stride=${pair(o.stride, 1)}`;
    if (pair(o.padding, 0) !== "(0, 0)") repr += `, padding=${pair(o.padding, 0)}`;
    if (pair(o.dilation, 1) !== "(1, 1)") repr += `, dilation=${pair(o.dilation, 1)}`;
    if (pair(o.outputPadding, 0) !== "(0, 0)")
      repr += `, output_padding=${pair(o.outputPadding, 0)}`;
    if ((o.groups ?? 1) !== 1) repr += `, groups=${o.groups}`;
    return this.bias === null ? `${repr}, bias=False` : repr;
  }
}

/** Average pooling; stride defaults to the kernel size. */
export class AvgPool2d extends Module {
  readonly kernelSize: Pair;
  readonly options: AvgPool2dOptions;

  constructor(kernelSize: Pair, options: AvgPool2dOptions = {}) {
    super();
    avgPoolParams(kernelSize, options);
    this.kernelSize = kernelSize;
    this.options = { ...options };
  }

  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }

  override extraRepr(): string {
    const o = this.options;
    const num = (v: Pair) => (typeof v === "number" ? String(v) : text(v));
    return (
      `kernel_size=${num(this.kernelSize)}, stride=${num(o.stride ?? this.kernelSize)}, ` +
      `padding=${num(o.padding ?? 0)}`
    );
  }
}

/** Adaptive average pooling to a fixed output size. */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: AdaptiveSize;

  constructor(outputSize: AdaptiveSize) {
    super();
    this.outputSize = outputSize;
  }

  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }

  override extraRepr(): string {
    const o = this.outputSize;
    return `output_size=${typeof o === "number" ? o : `(${o[0] ?? "None"}, ${o[1] ?? "None"})`}`;
  }
}
