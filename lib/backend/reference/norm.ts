// Batch and layer normalisation, forward and backward, in double. Batch norm views x as
// [n, c, inner] and normalises each channel over n * inner values; layer norm views x as
// [rows, normSize] and normalises each row. Variances are biased (divided by the count),
// as both PyTorch kernels normalise; the unbiased running variance is the caller's.

import type { BatchNormRunning, RawTensor } from "../backend.js";
import { ShapeError, ValueError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape, sizeOf } from "./strides.js";

interface ChannelExtent {
  n: number;
  c: number;
  inner: number;
}

function channelExtent(op: string, x: RawTensor): ChannelExtent {
  if (x.shape.length < 2)
    throw new ShapeError(op, `input must be [N, C, ...], got ${formatShape(x.shape)}`, [x.shape]);
  return { n: x.shape[0]!, c: x.shape[1]!, inner: sizeOf(x.shape.slice(2)) };
}

/** The flat offsets of channel ch. */
function channelOffsets(e: ChannelExtent, ch: number): number[] {
  const offsets: number[] = [];
  for (let i = 0; i < e.n; i++) {
    const base = (i * e.c + ch) * e.inner;
    for (let j = 0; j < e.inner; j++) offsets.push(base + j);
  }
  return offsets;
}

function meanOf(values: readonly number[]): number {
  return values.reduce((acc, v) => acc + v, 0) / values.length;
}

function checkOptional(op: string, role: string, t: RawTensor | null, shape: number[]): void {
  if (t !== null) expectShape(op, role, t.shape, shape);
}

function checkEps(op: string, eps: number): void {
  if (!(eps >= 0)) throw new ValueError(op, `eps must be >= 0, got ${eps}`, "eps");
}

function checkRunning(op: string, momentum: number, training: boolean): void {
  if (!training)
    throw new ValueError(op, "running statistics are updated only when training", "running");
  if (!(momentum >= 0 && momentum <= 1))
    throw new ValueError(op, `momentum must be in [0, 1], got ${momentum}`, "momentum");
}

function present(tensors: (RawTensor | null)[]): RawTensor[] {
  return tensors.filter((t): t is RawTensor => t !== null);
}

/**
 * out = (x - mean) / sqrt(variance + eps) * weight + bias per channel. With training,
 * mean and variance [c] are the batch's and are written; otherwise they are read. Training
 * also moves `running` toward the batch's mean and unbiased variance (BatchNormRunning).
 */
export function batchNorm(
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
  const op = "batchNorm";
  requireDType(op, x.dtype, FLOAT_DTYPES);
  const runningMean = running?.mean ?? null;
  const runningVar = running?.variance ?? null;
  requireSameDType(op, present([out, mean, variance, x, weight, bias, runningMean, runningVar]));
  checkEps(op, eps);
  const e = channelExtent(op, x);
  expectShape(op, "out", out.shape, x.shape);
  for (const [role, t] of [
    ["mean", mean],
    ["variance", variance],
    ["weight", weight],
    ["bias", bias],
    ["runningMean", runningMean],
    ["runningVar", runningVar],
  ] as const)
    checkOptional(op, role, t, [e.c]);
  const update = runningMean !== null || runningVar !== null ? running : null;
  if (update !== null) checkRunning(op, update.momentum, training);
  const rms = runningMean === null ? null : elements(op, runningMean);
  const rvs = runningVar === null ? null : elements(op, runningVar);

  const [xs, ys, ms, vs] = [x, out, mean, variance].map((t) => elements(op, t));
  const ws = weight === null ? null : elements(op, weight);
  const bs = bias === null ? null : elements(op, bias);
  for (let ch = 0; ch < e.c; ch++) {
    const offsets = channelOffsets(e, ch);
    if (training && offsets.length > 0) {
      const values = offsets.map((o) => xs![o]!);
      const m = meanOf(values);
      const squares = values.reduce((sum, v) => sum + (v - m) * (v - m), 0);
      ms![ch] = m;
      vs![ch] = squares / values.length;
      if (update !== null && values.length > 1) {
        const k = update.momentum;
        if (rms !== null) rms[ch] = (1 - k) * rms[ch]! + k * m;
        if (rvs !== null) rvs[ch] = (1 - k) * rvs[ch]! + k * (squares / (values.length - 1));
      }
    }
    const invStd = 1 / Math.sqrt(vs![ch]! + eps);
    const scale = ws === null ? 1 : ws[ch]!;
    const shift = bs === null ? 0 : bs[ch]!;
    for (const o of offsets) ys![o] = (xs![o]! - ms![ch]!) * invStd * scale + shift;
  }
}

/**
 * Training: gradX = w * invStd * (g - mean(g) - xhat * mean(g * xhat)) per channel, as the
 * batch statistics depend on x; eval: gradX = g * w * invStd. gradWeight = sum(g * xhat)
 * and gradBias = sum(g) are written when given.
 */
export function batchNormBackward(
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
  const op = "batchNormBackward";
  requireDType(op, x.dtype, FLOAT_DTYPES);
  requireSameDType(op, present([gradX, gradWeight, gradBias, gradOut, x, mean, variance, weight]));
  const e = channelExtent(op, x);
  expectShape(op, "gradX", gradX.shape, x.shape);
  expectShape(op, "gradOut", gradOut.shape, x.shape);
  const perChannel = [
    ["gradWeight", gradWeight],
    ["gradBias", gradBias],
    ["mean", mean],
    ["variance", variance],
    ["weight", weight],
  ] as const;
  for (const [role, t] of perChannel) checkOptional(op, role, t, [e.c]);

  const [gx, gy, xs, ms, vs] = [gradX, gradOut, x, mean, variance].map((t) => elements(op, t));
  const ws = weight === null ? null : elements(op, weight);
  const gw = gradWeight === null ? null : elements(op, gradWeight);
  const gb = gradBias === null ? null : elements(op, gradBias);
  for (let ch = 0; ch < e.c; ch++) {
    const offsets = channelOffsets(e, ch);
    const invStd = 1 / Math.sqrt(vs![ch]! + eps);
    const xhat = offsets.map((o) => (xs![o]! - ms![ch]!) * invStd);
    const g = offsets.map((o) => gy![o]!);
    const sumG = g.reduce((acc, v) => acc + v, 0);
    const sumGX = g.reduce((acc, v, j) => acc + v * xhat[j]!, 0);
    if (gw !== null) gw[ch] = sumGX;
    if (gb !== null) gb[ch] = sumG;
    const scale = (ws === null ? 1 : ws[ch]!) * invStd;
    const count = offsets.length;
    offsets.forEach((o, j) => {
      gx![o] = training
        ? scale * (g[j]! - sumG / count - (xhat[j]! * sumGX) / count)
        : scale * g[j]!;
    });
  }
}

interface RowExtent {
  rows: number;
  normSize: number;
}

/** mean and rstd hold one value per row; the row length is what is left of x. */
function rowExtent(op: string, x: RawTensor, mean: RawTensor, rstd: RawTensor): RowExtent {
  const rows = sizeOf(mean.shape);
  expectShape(op, "rstd", rstd.shape, mean.shape);
  const leading = x.shape.slice(0, mean.shape.length);
  if (mean.shape.some((d, i) => d !== leading[i])) {
    const message =
      `mean ${formatShape(mean.shape)} must be the leading dims of x ` + `${formatShape(x.shape)}`;
    throw new ShapeError(op, message, [x.shape, mean.shape]);
  }
  return { rows, normSize: sizeOf(x.shape.slice(mean.shape.length)) };
}

/** out = (x - mean) * rstd * weight + bias over each row; mean and rstd are written. */
export function layerNorm(
  out: RawTensor,
  mean: RawTensor,
  rstd: RawTensor,
  x: RawTensor,
  weight: RawTensor | null,
  bias: RawTensor | null,
  eps: number,
): void {
  const op = "layerNorm";
  requireDType(op, x.dtype, FLOAT_DTYPES);
  requireSameDType(op, present([out, mean, rstd, x, weight, bias]));
  checkEps(op, eps);
  expectShape(op, "out", out.shape, x.shape);
  const e = rowExtent(op, x, mean, rstd);
  checkOptional(op, "weight", weight, [e.normSize]);
  checkOptional(op, "bias", bias, [e.normSize]);

  const [ys, ms, rs, xs] = [out, mean, rstd, x].map((t) => elements(op, t));
  const ws = weight === null ? null : elements(op, weight);
  const bs = bias === null ? null : elements(op, bias);
  for (let r = 0; r < e.rows; r++) {
    const row = Array.from(xs!.subarray(r * e.normSize, (r + 1) * e.normSize));
    const m = meanOf(row);
    const inv = 1 / Math.sqrt(meanOf(row.map((v) => (v - m) * (v - m))) + eps);
    ms![r] = m;
    rs![r] = inv;
    row.forEach((v, j) => {
      const scaled = (v - m) * inv * (ws === null ? 1 : ws[j]!);
      ys![r * e.normSize + j] = scaled + (bs === null ? 0 : bs[j]!);
    });
  }
}

/**
 * gradX = rstd * (h - mean(h) - xhat * mean(h * xhat)) per row with h = g * weight;
 * gradWeight = sum over rows of g * xhat and gradBias = sum of g, when given.
 */
export function layerNormBackward(
  gradX: RawTensor,
  gradWeight: RawTensor | null,
  gradBias: RawTensor | null,
  gradOut: RawTensor,
  x: RawTensor,
  mean: RawTensor,
  rstd: RawTensor,
  weight: RawTensor | null,
): void {
  const op = "layerNormBackward";
  requireDType(op, x.dtype, FLOAT_DTYPES);
  requireSameDType(op, present([gradX, gradWeight, gradBias, gradOut, x, mean, rstd, weight]));
  expectShape(op, "gradX", gradX.shape, x.shape);
  expectShape(op, "gradOut", gradOut.shape, x.shape);
  const e = rowExtent(op, x, mean, rstd);
  for (const [role, t] of [
    ["gradWeight", gradWeight],
    ["gradBias", gradBias],
    ["weight", weight],
  ] as const)
    checkOptional(op, role, t, [e.normSize]);

  const [gx, gy, xs, ms, rs] = [gradX, gradOut, x, mean, rstd].map((t) => elements(op, t));
  const ws = weight === null ? null : elements(op, weight);
  const gw = gradWeight === null ? null : elements(op, gradWeight);
  const gb = gradBias === null ? null : elements(op, gradBias);
  const sumGX = new Float64Array(e.normSize); // gradWeight, summed in double
  const sumG = new Float64Array(e.normSize); // gradBias
  for (let r = 0; r < e.rows; r++) {
    const base = r * e.normSize;
    const xhat = Array.from({ length: e.normSize }, (_, j) => (xs![base + j]! - ms![r]!) * rs![r]!);
    const g = Array.from({ length: e.normSize }, (_, j) => gy![base + j]!);
    const h = g.map((v, j) => v * (ws === null ? 1 : ws[j]!));
    const meanH = meanOf(h);
    const meanHX = meanOf(h.map((v, j) => v * xhat[j]!));
    h.forEach((v, j) => (gx![base + j] = rs![r]! * (v - meanH - xhat[j]! * meanHX)));
    g.forEach((v, j) => {
      sumGX[j] = sumGX[j]! + v * xhat[j]!;
      sumG[j] = sumG[j]! + v;
    });
  }
  gw?.set(sumGX);
  gb?.set(sumG);
}
