// The layers of the first milestone: Linear, Conv2d, MaxPool2d, Dropout, Flatten, ReLU
// and Sequential. Each stores its configuration, creates its parameters, calls
// resetParameters(), and forwards in one call into the functional layer.

import { DTypeError, ValueError, formatValue } from "../errors.js";
import { empty } from "../ops/creation.js";
import { getDefaultDevice, parseDevice } from "../backend/registry.js";
import type { DType } from "../dtype.js";
import type { Tensor } from "../tensor.js";
import * as F from "./functional.js";
import { defaultLayerInit } from "./init.js";
import { Module, checkPositiveInt } from "./module.js";
import { Parameter } from "./parameter.js";

export interface FactoryOptions {
  device?: string;
  dtype?: DType;
}

function newParameter(shape: number[], options: FactoryOptions): Parameter {
  const dtype = options.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float64") {
    throw new DTypeError("Parameter", `parameters must be float32 or float64, got ${dtype}`, [
      dtype,
    ]);
  }
  const device = options.device === undefined ? getDefaultDevice() : parseDevice(options.device);
  return new Parameter(empty(shape, dtype, device));
}

function pairString(value: F.Pair): string {
  const [a, b] = typeof value === "number" ? [value, value] : value;
  return `(${a}, ${b})`;
}

/** y = x W^T + b. Input [..., inFeatures], output [..., outFeatures]. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Parameter; // [outFeatures, inFeatures]
  bias: Parameter | null; // [outFeatures]

  constructor(
    inFeatures: number,
    outFeatures: number,
    options: FactoryOptions & { bias?: boolean } = {},
  ) {
    super();
    this.inFeatures = checkPositiveInt("Linear", "inFeatures", inFeatures);
    this.outFeatures = checkPositiveInt("Linear", "outFeatures", outFeatures);
    this.weight = newParameter([outFeatures, inFeatures], options);
    this.bias = options.bias === false ? null : newParameter([outFeatures], options);
    this.resetParameters();
  }

  override resetParameters(): void {
    defaultLayerInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return (
      `in_features=${this.inFeatures}, out_features=${this.outFeatures}, ` +
      `bias=${this.bias !== null ? "True" : "False"}`
    );
  }
}

export interface Conv2dModuleOptions extends F.Conv2dOptions, FactoryOptions {
  bias?: boolean;
}

/** 2-D convolution. Input [N, inChannels, H, W], output [N, outChannels, H', W']. */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly options: F.Conv2dOptions;
  weight: Parameter; // [outChannels, inChannels / groups, kH, kW]
  bias: Parameter | null; // [outChannels]

  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: F.Pair,
    options: Conv2dModuleOptions = {},
  ) {
    super();
    this.inChannels = checkPositiveInt("Conv2d", "inChannels", inChannels);
    this.outChannels = checkPositiveInt("Conv2d", "outChannels", outChannels);
    this.kernelSize = F.pairOf("Conv2d", "kernelSize", kernelSize, 1);
    const groups = checkPositiveInt("Conv2d", "groups", options.groups ?? 1);
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new ValueError(
        "Conv2d",
        `inChannels (${inChannels}) and outChannels (${outChannels}) must be divisible by groups ` +
          `(${groups})`,
        "groups",
      );
    }
    this.options = {
      stride: options.stride ?? 1,
      padding: options.padding ?? 0,
      dilation: options.dilation ?? 1,
      groups,
    };
    this.weight = newParameter([outChannels, inChannels / groups, ...this.kernelSize], options);
    this.bias = options.bias === false ? null : newParameter([outChannels], options);
    this.resetParameters();
  }

  override resetParameters(): void {
    defaultLayerInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.options);
  }

  override extraRepr(): string {
    const o = this.options;
    let text =
      `${this.inChannels}, ${this.outChannels}, ` +
      `kernel_size=${pairString(this.kernelSize)}, stride=${pairString(o.stride ?? 1)}`;
    if (pairString(o.padding ?? 0) !== "(0, 0)") text += `, padding=${pairString(o.padding ?? 0)}`;
    if (pairString(o.dilation ?? 1) !== "(1, 1)")
      text += `, dilation=${pairString(o.dilation ?? 1)}`;
    if ((o.groups ?? 1) !== 1) text += `, groups=${o.groups}`;
    if (this.bias === null) text += ", bias=False";
    return text;
  }
}

/** Max pooling; stride defaults to the kernel size. */
export class MaxPool2d extends Module {
  readonly kernelSize: F.Pair;
  readonly options: F.MaxPool2dOptions;

  constructor(kernelSize: F.Pair, options: F.MaxPool2dOptions = {}) {
    super();
    this.kernelSize = kernelSize;
    this.options = { ...options };
  }

  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.options);
  }

  override extraRepr(): string {
    const o = this.options;
    const num = (v: F.Pair | undefined, d: number) =>
      v === undefined ? String(d) : typeof v === "number" ? String(v) : pairString(v);
    const k = typeof this.kernelSize === "number" ? this.kernelSize : pairString(this.kernelSize);
    return (
      `kernel_size=${k}, stride=${o.stride === undefined ? k : num(o.stride, 1)}, ` +
      `padding=${num(o.padding, 0)}, dilation=${num(o.dilation, 1)}, ` +
      `ceil_mode=${o.ceilMode === true ? "True" : "False"}`
    );
  }
}

/** Zeroes elements with probability p while training; the identity in eval mode. */
export class Dropout extends Module {
  readonly p: number;

  constructor(p = 0.5) {
    super();
    if (typeof p !== "number" || !(p >= 0 && p <= 1))
      throw new ValueError("Dropout", `p must be in [0, 1], got ${formatValue(p)}`, "p");
    this.p = p;
  }

  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }

  override extraRepr(): string {
    return `p=${this.p}, inplace=False`;
  }
}

/** Flattens dims startDim..endDim (by default all but the batch dim). */
export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }

  override extraRepr(): string {
    return `start_dim=${this.startDim}, end_dim=${this.endDim}`;
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

/** Runs its modules in order; their names are "0", "1", ... as in PyTorch. */
export class Sequential extends Module {
  constructor(...modules: Module[]) {
    super();
    modules.forEach((m, i) => {
      if (!(m instanceof Module))
        throw new ValueError("Sequential", `argument ${i} is not a Module`, String(i));
      (this as unknown as Record<string, Module>)[String(i)] = m;
    });
  }

  get length(): number {
    return [...this.children()].length;
  }

  at(index: number): Module {
    const list = [...this.children()];
    const m = list[index < 0 ? index + list.length : index];
    if (m === undefined)
      throw new ValueError(
        "Sequential",
        `index ${index} is out of range for ${list.length} modules`,
        "index",
      );
    return m;
  }

  forward(x: Tensor): Tensor {
    let out = x;
    for (const m of this.children())
      out = (m as unknown as { forward(t: Tensor): Tensor }).forward(out);
    return out;
  }
}
