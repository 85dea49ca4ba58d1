// Connectionist temporal classification loss, in double: the forward alpha recursion in
// log space gives each sample's negative log-likelihood and keeps alpha; the backward runs
// the beta recursion and gives the exact derivative with respect to the log-probabilities.

import type { CtcInputs, RawTensor } from "../backend.js";
import { IndexError, ShapeError, ValueError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

/** log(exp(a) + exp(b)), exact for -inf. */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const high = Math.max(a, b);
  return high + Math.log1p(Math.exp(-Math.abs(a - b)));
}

interface Sizes {
  steps: number;
  batch: number;
  classes: number;
  maxTarget: number;
}

/** Checks shapes, dtypes, lengths and labels; returns the sizes. */
function checkInputs(op: string, c: CtcInputs): Sizes {
  requireDType(op, c.logProbs.dtype, FLOAT_DTYPES);
  for (const t of [c.targets, c.inputLengths, c.targetLengths])
    requireDType(op, t.dtype, ["int32"]);
  if (c.logProbs.shape.length !== 3 || c.targets.shape.length !== 2)
    throw new ShapeError(
      op,
      `expected logProbs [T, N, C] and targets [N, S], got ${formatShape(c.logProbs.shape)} and ` +
        `${formatShape(c.targets.shape)}`,
      [c.logProbs.shape, c.targets.shape],
    );
  const [steps, batch, classes] = c.logProbs.shape as [number, number, number];
  const maxTarget = c.targets.shape[1]!;
  expectShape(op, "targets", c.targets.shape, [batch, maxTarget]);
  expectShape(op, "inputLengths", c.inputLengths.shape, [batch]);
  expectShape(op, "targetLengths", c.targetLengths.shape, [batch]);
  if (!Number.isInteger(c.blank) || c.blank < 0 || c.blank >= classes)
    throw new ValueError(op, `blank must be in [0, ${classes}), got ${c.blank}`, "blank");
  const sizes = { steps, batch, classes, maxTarget };
  for (let n = 0; n < batch; n++) checkSample(op, c, n, sizes);
  return sizes;
}

function checkSample(op: string, c: CtcInputs, n: number, s: Sizes): void {
  const inputLength = elements(op, c.inputLengths)[n]!;
  const targetLength = elements(op, c.targetLengths)[n]!;
  if (inputLength < 1 || inputLength > s.steps)
    throw new ValueError(
      op,
      `inputLengths[${n}] must be in [1, ${s.steps}], got ${inputLength}`,
      "inputLengths",
    );
  if (targetLength < 0 || targetLength > s.maxTarget)
    throw new ValueError(
      op,
      `targetLengths[${n}] must be in [0, ${s.maxTarget}], got ${targetLength}`,
      "targetLengths",
    );
  const labels = elements(op, c.targets);
  for (let k = 0; k < targetLength; k++) {
    const label = labels[n * s.maxTarget + k]!;
    if (label < 0 || label >= s.classes || label === c.blank)
      throw new IndexError(
        op,
        `target ${label} of sample ${n} must be in [0, ${s.classes}) and not the blank ${c.blank}`,
      );
  }
}

/** One sample's view: its extended label sequence l' and its log-probabilities. */
interface Sample {
  length: number; // 2 * targetLength + 1
  steps: number; // its input length
  label: (s: number) => number;
  lp: (t: number, c: number) => number;
}

function sampleOf(op: string, c: CtcInputs, sizes: Sizes, n: number): Sample {
  const labels = elements(op, c.targets);
  const lps = elements(op, c.logProbs);
  const targetLength = elements(op, c.targetLengths)[n]!;
  return {
    length: 2 * targetLength + 1,
    steps: elements(op, c.inputLengths)[n]!,
    label: (s) => (s % 2 === 0 ? c.blank : labels[n * sizes.maxTarget + (s - 1) / 2]!),
    lp: (t, k) => lps[(t * sizes.batch + n) * sizes.classes + k]!,
  };
}

/** May the path jump from l'(s - 2) to l'(s)? Only between different non-blank labels. */
function canSkip(sample: Sample, s: number): boolean {
  return s >= 2 && sample.label(s) !== sample.label(s - 2) && s % 2 === 1;
}

/** alpha[t * width + s] for one sample, -inf outside its lengths; returns the loss. */
function forwardSample(sample: Sample, alpha: Float64Array, width: number): number {
  alpha[0] = sample.lp(0, sample.label(0));
  if (sample.length > 1) alpha[1] = sample.lp(0, sample.label(1));
  for (let t = 1; t < sample.steps; t++) {
    for (let s = 0; s < sample.length; s++) {
      const prev = (t - 1) * width;
      let sum = alpha[prev + s]!;
      if (s >= 1) sum = logAddExp(sum, alpha[prev + s - 1]!);
      if (canSkip(sample, s)) sum = logAddExp(sum, alpha[prev + s - 2]!);
      alpha[t * width + s] = sum === -Infinity ? -Infinity : sum + sample.lp(t, sample.label(s));
    }
  }
  const last = (sample.steps - 1) * width + sample.length - 1;
  const total = sample.length > 1 ? logAddExp(alpha[last]!, alpha[last - 1]!) : alpha[last]!;
  return -total;
}

/** beta[t * width + s], the mirror of alpha; both include the emission at t. */
function backwardSample(sample: Sample, width: number): Float64Array {
  const beta = new Float64Array(sample.steps * width).fill(-Infinity);
  const end = (sample.steps - 1) * width;
  const last = sample.length - 1;
  beta[end + last] = sample.lp(sample.steps - 1, sample.label(last));
  if (last >= 1) beta[end + last - 1] = sample.lp(sample.steps - 1, sample.label(last - 1));
  for (let t = sample.steps - 2; t >= 0; t--) {
    for (let s = 0; s < sample.length; s++) {
      const next = (t + 1) * width;
      let sum = beta[next + s]!;
      if (s + 1 < sample.length) sum = logAddExp(sum, beta[next + s + 1]!);
      if (s + 2 < sample.length && canSkip(sample, s + 2))
        sum = logAddExp(sum, beta[next + s + 2]!);
      beta[t * width + s] = sum === -Infinity ? -Infinity : sum + sample.lp(t, sample.label(s));
    }
  }
  return beta;
}

/**
 * loss [N] = -log p(target | logProbs) per sample; logAlpha (float64 [N, T, 2S + 1]) is
 * written for the backward.
 */
export function ctcLoss(loss: RawTensor, logAlpha: RawTensor, c: CtcInputs): void {
  const op = "ctcLoss";
  const sizes = checkInputs(op, c);
  requireSameDType(op, [loss, c.logProbs]);
  requireDType(op, logAlpha.dtype, ["float64"]);
  const width = 2 * sizes.maxTarget + 1;
  expectShape(op, "loss", loss.shape, [sizes.batch]);
  expectShape(op, "logAlpha", logAlpha.shape, [sizes.batch, sizes.steps, width]);
  const [lossValues, alphaValues] = [elements(op, loss), elements(op, logAlpha)];
  for (let n = 0; n < sizes.batch; n++) {
    const alpha = alphaValues.subarray(n * sizes.steps * width, (n + 1) * sizes.steps * width);
    (alpha as Float64Array).fill(-Infinity);
    lossValues[n] = forwardSample(sampleOf(op, c, sizes, n), alpha as Float64Array, width);
  }
}

/**
 * gradLogProbs [T, N, C] = gradLoss[n] * d loss[n] / d logProbs (zero past each input
 * length); with zeroInfinity a sample whose loss is infinite gets zeros.
 */
export function ctcLossBackward(
  gradLogProbs: RawTensor,
  gradLoss: RawTensor,
  c: CtcInputs,
  logAlpha: RawTensor,
  loss: RawTensor,
  zeroInfinity: boolean,
): void {
  const op = "ctcLossBackward";
  const sizes = checkInputs(op, c);
  requireSameDType(op, [gradLogProbs, gradLoss, loss, c.logProbs]);
  requireDType(op, logAlpha.dtype, ["float64"]);
  const width = 2 * sizes.maxTarget + 1;
  expectShape(op, "gradLogProbs", gradLogProbs.shape, c.logProbs.shape);
  expectShape(op, "gradLoss", gradLoss.shape, [sizes.batch]);
  expectShape(op, "loss", loss.shape, [sizes.batch]);
  expectShape(op, "logAlpha", logAlpha.shape, [sizes.batch, sizes.steps, width]);
  const out = elements(op, gradLogProbs);
  out.fill(0);
  for (let n = 0; n < sizes.batch; n++) {
    const nll = elements(op, loss)[n]!;
    if (zeroInfinity && nll === Infinity) continue;
    const alpha = elements(op, logAlpha).subarray(n * sizes.steps * width) as Float64Array;
    const sample = sampleOf(op, c, sizes, n);
    const scale = elements(op, gradLoss)[n]!;
    sampleGradient(
      sample,
      alpha,
      width,
      (t, k, value) => {
        out[(t * sizes.batch + n) * sizes.classes + k] = -scale * value;
      },
      nll,
    );
  }
}

/** For each t and class k on the path: exp(logsumexp(alpha + beta) + nll - lp). */
function sampleGradient(
  sample: Sample,
  alpha: Float64Array,
  width: number,
  write: (t: number, k: number, value: number) => void,
  nll: number,
): void {
  const beta = backwardSample(sample, width);
  for (let t = 0; t < sample.steps; t++) {
    const sums = new Map<number, number>();
    for (let s = 0; s < sample.length; s++) {
      const k = sample.label(s);
      const ab = alpha[t * width + s]! + beta[t * width + s]!;
      sums.set(k, logAddExp(sums.get(k) ?? -Infinity, ab));
    }
    for (const [k, lcab] of sums) write(t, k, Math.exp(lcab + nll - sample.lp(t, k)));
  }
}
