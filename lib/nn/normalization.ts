// Normalisation: batch norm and layer norm as functions over the backends' fused
// primitives (batchNorm / layerNorm and their backward), group norm as layer norm over
// [N, G, C / G * ...] followed by a per-channel affine, and the modules BatchNorm1d,
// BatchNorm2d, LayerNorm and GroupNorm with PyTorch's parameter and buffer names.

import { isRecording, record } from "../autograd/graph.js";
import { noGrad } from "../autograd/grad-mode.js";
import type { BatchNormRunning, RawTensor } from "../backend/backend.js";
import { backendFor, getDefaultDevice, parseDevice } from "../backend/registry.js";
import {
  DTypeError,
  DeviceError,
  ShapeError,
  ValueError,
  formatShape,
  formatValue,
} from "../errors.js";
import { empty, full } from "../ops/creation.js";
import { affineInPlace, checkFloatingInput } from "../ops/elementwise.js";
import type { Tensor } from "../tensor.js";
import type { FactoryOptions } from "./layers.js";
import { Module, checkPositiveInt } from "./module.js";
import { Parameter } from "./parameter.js";
import { pyBool, pyFloat, pyTuple } from "./repr.js";

// ---- checks -------------------------------------------------------------------------

function checkCompanion(op: string, role: string, x: Tensor, t: Tensor | null, shape: number[]) {
  if (t === null) return;
  if (t.device !== x.device)
    throw new DeviceError(op, `${role} is on ${t.device}, input on ${x.device}`, [
      t.device,
      x.device,
    ]);
  if (t.dtype !== x.dtype)
    throw new DTypeError(op, `${role} is ${t.dtype}, input is ${x.dtype}`, [t.dtype, x.dtype]);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
    throw new ShapeError(
      op,
      `${role} ${formatShape(t.shape)} must be ${formatShape(shape)} for input ` +
        `${formatShape(x.shape)}`,
      [x.shape, t.shape],
    );
}

function checkEps(op: string, eps: number): number {
  if (typeof eps !== "number" || !(eps >= 0))
    throw new ValueError(op, `eps must be a number >= 0, got ${formatValue(eps)}`, "eps");
  return eps;
}

/** The tensors that exist, and a function putting their gradients back in that order. */
function optionalInputs(x: Tensor, weight: Tensor | null, bias: Tensor | null): Tensor[] {
  return [x, ...(weight === null ? [] : [weight]), ...(bias === null ? [] : [bias])];
}

function optionalGrads(
  gx: Tensor,
  weight: Tensor | null,
  gw: Tensor | null,
  bias: Tensor | null,
  gb: Tensor | null,
): (Tensor | null)[] {
  return [gx, ...(weight === null ? [] : [gw]), ...(bias === null ? [] : [gb])];
}

function gradFor(t: Tensor | null, shape: readonly number[]): Tensor | null {
  return t !== null && t.requiresGrad ? empty(shape, t.dtype, t.device) : null;
}

// ---- batch norm ---------------------------------------------------------------------

export interface BatchNormOptions {
  weight?: Tensor | null; // [C]
  bias?: Tensor | null; // [C]
  /** Normalise with the batch's statistics (and update the running ones) instead of them. */
  training?: boolean;
  /** running = (1 - momentum) * running + momentum * batch statistic. */
  momentum?: number;
  eps?: number;
}

/**
 * The batch's mean and biased variance, x normalised by them into out, and the running
 * statistics (those given) moved toward the batch's mean and unbiased variance, all in one
 * backend call.
 */
function batchStatistics(
  x: Tensor,
  out: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  running: BatchNormRunning,
): { mean: Tensor; variance: Tensor } {
  const c = x.shape[1]!;
  const mean = empty([c], x.dtype, x.device);
  const variance = empty([c], x.dtype, x.device);
  backendFor(x.device).batchNorm(out, mean, variance, x, weight, bias, true, eps, running);
  return { mean, variance };
}

/**
 * Batch normalisation of x [N, C, ...] per channel. Training normalises with the batch's
 * mean and biased variance and moves runningMean / runningVar (when given) toward the
 * batch's mean and unbiased variance; otherwise the running statistics are used.
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  options: BatchNormOptions = {},
): Tensor {
  const op = "batchNorm";
  checkFloatingInput(op, x);
  if (x.ndim < 2)
    throw new ShapeError(op, `input must be [N, C, ...], got ${formatShape(x.shape)}`, [x.shape]);
  const c = x.shape[1]!;
  const weight = options.weight ?? null;
  const bias = options.bias ?? null;
  const roles: [string, Tensor | null][] = [
    ["weight", weight],
    ["bias", bias],
    ["runningMean", runningMean],
    ["runningVar", runningVar],
  ];
  for (const [role, t] of roles) checkCompanion(op, role, x, t, [c]);
  const training = options.training ?? false;
  const momentum = options.momentum ?? 0.1;
  if (typeof momentum !== "number" || !(momentum >= 0 && momentum <= 1)) {
    const message = `momentum must be a number in [0, 1], got ${formatValue(momentum)}`;
    throw new ValueError(op, message, "momentum");
  }
  const eps = checkEps(op, options.eps ?? 1e-5);
  const count = c === 0 ? 0 : x.numel / c;
  if (training && count === 1)
    throw new ValueError(
      op,
      `Expected more than 1 value per channel when training, got input size ` +
        `${formatShape(x.shape)}`,
      "input",
    );
  if (!training && (runningMean === null || runningVar === null))
    throw new ValueError(op, "runningMean and runningVar are required when not training");

  const inputs = optionalInputs(x, weight, bias);
  const out = empty(x.shape, x.dtype, x.device);
  let mean: Tensor;
  let variance: Tensor;
  if (training) {
    const running = { mean: runningMean, variance: runningVar, momentum };
    ({ mean, variance } = batchStatistics(x, out, weight, bias, eps, running));
  } else {
    // Backward reads the statistics the forward used: copies, when a graph is recorded, so
    // that a later training step's update of the running ones does not change them.
    [mean, variance] = isRecording(inputs)
      ? noGrad(() => [runningMean!.clone(), runningVar!.clone()])
      : [runningMean!, runningVar!];
    backendFor(x.device).batchNorm(out, mean, variance, x, weight, bias, false, eps);
  }
  return record(out, op, inputs, (g) => {
    const gx = empty(x.shape, x.dtype, x.device);
    const [gw, gb] = [gradFor(weight, [c]), gradFor(bias, [c])];
    backendFor(x.device).batchNormBackward(gx, gw, gb, g, x, mean, variance, weight, training, eps);
    return optionalGrads(gx, weight, gw, bias, gb);
  });
}

// ---- layer norm ---------------------------------------------------------------------

/** t's storage seen as one flat dim, as the layer-norm primitive takes weight and bias. */
function flat(t: Tensor | null): RawTensor | null {
  return t === null ? null : { storage: t.storage, shape: [t.numel], dtype: t.dtype };
}

/** Layer norm over the trailing `dims` dims of x, weight and bias shaped like them. */
function layerNormTrailing(
  x: Tensor,
  dims: number,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
): Tensor {
  const rowShape = x.shape.slice(0, x.ndim - dims);
  const backend = backendFor(x.device);
  const out = empty(x.shape, x.dtype, x.device);
  const mean = empty(rowShape, x.dtype, x.device);
  const rstd = empty(rowShape, x.dtype, x.device);
  backend.layerNorm(out, mean, rstd, x, flat(weight), flat(bias), eps);
  return record(out, "layerNorm", optionalInputs(x, weight, bias), (g) => {
    const gx = empty(x.shape, x.dtype, x.device);
    const normShape = x.shape.slice(x.ndim - dims);
    const [gw, gb] = [gradFor(weight, normShape), gradFor(bias, normShape)];
    backend.layerNormBackward(gx, flat(gw), flat(gb), g, x, mean, rstd, flat(weight));
    return optionalGrads(gx, weight, gw, bias, gb);
  });
}

function normalizedShapeOf(op: string, normalizedShape: number | readonly number[]): number[] {
  const shape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d < 1))
    throw new ValueError(
      op,
      `normalizedShape must be a positive integer or a non-empty list of them, got ` +
        `${JSON.stringify(normalizedShape)}`,
      "normalizedShape",
    );
  return shape;
}

/** Normalises over the trailing dims of x given by normalizedShape, as F.layer_norm. */
export function layerNorm(
  x: Tensor,
  normalizedShape: number | readonly number[],
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  const op = "layerNorm";
  checkFloatingInput(op, x);
  const shape = normalizedShapeOf(op, normalizedShape);
  const trailing = x.shape.slice(Math.max(0, x.ndim - shape.length));
  if (x.ndim < shape.length || trailing.some((d, i) => d !== shape[i]))
    throw new ShapeError(
      op,
      `input ${formatShape(x.shape)} does not end with normalizedShape ${formatShape(shape)}`,
      [x.shape, shape],
    );
  checkCompanion(op, "weight", x, weight, shape);
  checkCompanion(op, "bias", x, bias, shape);
  return layerNormTrailing(x, shape.length, weight, bias, checkEps(op, eps));
}

/** Group norm of x [N, C, ...]: C split in numGroups groups, each normalised on its own. */
export function groupNorm(
  x: Tensor,
  numGroups: number,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  const op = "groupNorm";
  checkFloatingInput(op, x);
  checkPositiveInt(op, "numGroups", numGroups);
  if (x.ndim < 2 || x.shape[1]! % numGroups !== 0)
    throw new ShapeError(
      op,
      `input must be [N, C, ...] with C divisible by numGroups (${numGroups}), got ` +
        `${formatShape(x.shape)}`,
      [x.shape],
    );
  const c = x.shape[1]!;
  checkCompanion(op, "weight", x, weight, [c]);
  checkCompanion(op, "bias", x, bias, [c]);
  const grouped = x.reshape([
    x.shape[0]!,
    numGroups,
    x.numel / Math.max(1, x.shape[0]! * numGroups),
  ]);
  let out = layerNormTrailing(grouped, 1, null, null, checkEps(op, eps)).reshape(x.shape);
  const perChannel = [1, c, ...x.shape.slice(2).map(() => 1)];
  if (weight !== null) out = out.mul(weight.reshape(perChannel));
  if (bias !== null) out = out.add(bias.reshape(perChannel));
  return out;
}

// ---- modules ------------------------------------------------------------------------

function newTensor(op: string, shape: number[], value: number, options: FactoryOptions): Tensor {
  const dtype = options.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float64")
    throw new DTypeError(op, `parameters must be float32 or float64, got ${dtype}`, [dtype]);
  const device = options.device === undefined ? getDefaultDevice() : parseDevice(options.device);
  return full(shape, value, { dtype, device });
}

export interface BatchNormModuleOptions extends FactoryOptions {
  eps?: number;
  /** null: a cumulative moving average (each batch weighs 1 / batches seen). */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/** The shared body of BatchNorm1d and BatchNorm2d (PyTorch's _BatchNorm). */
abstract class BatchNormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  weight: Parameter | null; // [numFeatures]
  bias: Parameter | null; // [numFeatures]
  running_mean: Tensor | null = null; // [numFeatures]
  running_var: Tensor | null = null; // [numFeatures]
  num_batches_tracked: Tensor | null = null; // [], int32

  constructor(name: string, numFeatures: number, options: BatchNormModuleOptions) {
    super();
    this.numFeatures = checkPositiveInt(name, "numFeatures", numFeatures);
    this.eps = checkEps(name, options.eps ?? 1e-5);
    const momentum = options.momentum === undefined ? 0.1 : options.momentum;
    if (momentum !== null && !(typeof momentum === "number" && momentum >= 0 && momentum <= 1))
      throw new ValueError(
        name,
        `momentum must be in [0, 1] or null, got ${formatValue(momentum)}`,
        "momentum",
      );
    this.momentum = momentum;
    this.affine = options.affine ?? true;
    this.trackRunningStats = options.trackRunningStats ?? true;
    const shape = [numFeatures];
    this.weight = this.affine ? new Parameter(newTensor(name, shape, 1, options)) : null;
    this.bias = this.affine ? new Parameter(newTensor(name, shape, 0, options)) : null;
    if (this.trackRunningStats) {
      this.registerBuffer("running_mean", newTensor(name, shape, 0, options));
      this.registerBuffer("running_var", newTensor(name, shape, 1, options));
      const device = this.running_mean!.device;
      this.registerBuffer("num_batches_tracked", full([], 0, { dtype: "int32", device }));
    }
  }

  /** Running mean 0, running variance 1, no batches seen. */
  resetRunningStats(): void {
    noGrad(() => {
      this.running_mean?.fill_(0);
      this.running_var?.fill_(1);
      this.num_batches_tracked?.fill_(0);
    });
  }

  override resetParameters(): void {
    this.resetRunningStats();
    noGrad(() => {
      this.weight?.fill_(1);
      this.bias?.fill_(0);
    });
  }

  protected abstract checkInputDim(x: Tensor): void;

  /** The weight of this batch in the running statistics; counts the batch when training. */
  private averagingFactor(): number {
    if (!this.training || this.num_batches_tracked === null) return this.momentum ?? 0;
    const counter = this.num_batches_tracked;
    noGrad(() => affineInPlace(counter, 1, 1));
    return this.momentum ?? 1 / counter.item();
  }

  forward(x: Tensor): Tensor {
    this.checkInputDim(x);
    const useBatch = this.training || this.running_mean === null;
    if (useBatch && x.ndim >= 2 && x.numel === x.shape[1])
      throw new ValueError(
        this.constructor.name,
        `Expected more than 1 value per channel when training, got input size ` +
          `${formatShape(x.shape)}`,
        "input",
      );
    const momentum = this.averagingFactor();
    const running = !this.training || this.trackRunningStats;
    return batchNorm(x, running ? this.running_mean : null, running ? this.running_var : null, {
      weight: this.weight,
      bias: this.bias,
      training: useBatch,
      momentum,
      eps: this.eps,
    });
  }

  override extraRepr(): string {
    const momentum = this.momentum === null ? "None" : pyFloat(this.momentum);
    return (
      `${this.numFeatures}, eps=${pyFloat(this.eps)}, momentum=${momentum}, ` +
      `affine=${pyBool(this.affine)}, track_running_stats=${pyBool(this.trackRunningStats)}`
    );
  }
}

/** Batch norm over [N, C] or [N, C, L]; statistics per channel C. */
export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormModuleOptions = {}) {
    super("BatchNorm1d", numFeatures, options);
  }

  protected checkInputDim(x: Tensor): void {
    if (x.ndim !== 2 && x.ndim !== 3)
      throw new ValueError(
        "BatchNorm1d",
        `expected 2D or 3D input (got ${x.ndim}D input)`,
        "input",
      );
  }
}

/** Batch norm over [N, C, H, W]; statistics per channel C. */
export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormModuleOptions = {}) {
    super("BatchNorm2d", numFeatures, options);
  }

  protected checkInputDim(x: Tensor): void {
    if (x.ndim !== 4)
      throw new ValueError("BatchNorm2d", `expected 4D input (got ${x.ndim}D input)`, "input");
  }
}

export interface LayerNormOptions extends FactoryOptions {
  eps?: number;
  elementwiseAffine?: boolean;
}

/** Normalises over the trailing dims normalizedShape; weight 1 and bias 0 of that shape. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly elementwiseAffine: boolean;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = normalizedShapeOf("LayerNorm", normalizedShape);
    this.eps = checkEps("LayerNorm", options.eps ?? 1e-5);
    this.elementwiseAffine = options.elementwiseAffine ?? true;
    const shape = this.normalizedShape;
    const affine = this.elementwiseAffine;
    this.weight = affine ? new Parameter(newTensor("LayerNorm", shape, 1, options)) : null;
    this.bias = affine ? new Parameter(newTensor("LayerNorm", shape, 0, options)) : null;
  }

  override resetParameters(): void {
    noGrad(() => {
      this.weight?.fill_(1);
      this.bias?.fill_(0);
    });
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return (
      `${pyTuple(this.normalizedShape)}, eps=${pyFloat(this.eps)}, ` +
      `elementwise_affine=${pyBool(this.elementwiseAffine)}`
    );
  }
}

export interface GroupNormOptions extends FactoryOptions {
  eps?: number;
  affine?: boolean;
}

/** Group norm over [N, C, ...]: numChannels in numGroups groups; weight and bias [C]. */
export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  readonly affine: boolean;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(numGroups: number, numChannels: number, options: GroupNormOptions = {}) {
    super();
    this.numGroups = checkPositiveInt("GroupNorm", "numGroups", numGroups);
    this.numChannels = checkPositiveInt("GroupNorm", "numChannels", numChannels);
    if (numChannels % numGroups !== 0)
      throw new ValueError(
        "GroupNorm",
        `numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`,
        "numGroups",
      );
    this.eps = checkEps("GroupNorm", options.eps ?? 1e-5);
    this.affine = options.affine ?? true;
    const shape = [numChannels];
    this.weight = this.affine ? new Parameter(newTensor("GroupNorm", shape, 1, options)) : null;
    this.bias = this.affine ? new Parameter(newTensor("GroupNorm", shape, 0, options)) : null;
  }

  override resetParameters(): void {
    noGrad(() => {
      this.weight?.fill_(1);
      this.bias?.fill_(0);
    });
  }

  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return (
      `${this.numGroups}, ${this.numChannels}, eps=${pyFloat(this.eps)}, ` +
      `affine=${pyBool(this.affine)}`
    );
  }
}
