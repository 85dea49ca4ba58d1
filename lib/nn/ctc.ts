// CTC loss with PyTorch's signature and reductions ("mean" divides each sample's loss by
// its target length, then averages), zeroInfinity, and a greedy decoder. The per-sample
// loss and its gradient are backend primitives (reference in double, native cpu kernel).

import { record } from "../autograd/graph.js";
import { isGradEnabled } from "../autograd/grad-mode.js";
import type { CtcInputs } from "../backend/backend.js";
import { backendFor } from "../backend/registry.js";
import { ShapeError, ValueError, formatShape } from "../errors.js";
import { empty } from "../ops/creation.js";
import { checkFloatingInput } from "../ops/elementwise.js";
import { fromTypedArray, type Tensor } from "../tensor.js";
import { allocArray } from "../dtype.js";
import { Module } from "./module.js";

export interface CtcLossOptions {
  blank?: number;
  reduction?: "none" | "mean" | "sum";
  zeroInfinity?: boolean;
}

/** Lengths as host integers: a tensor [N] or an array of N numbers. */
function hostInts(name: string, values: Tensor | readonly number[], batch: number): number[] {
  const list = Array.isArray(values)
    ? [...(values as readonly number[])]
    : Array.from((values as Tensor).dataSync() as ArrayLike<number>);
  if (list.length !== batch || list.some((v) => !Number.isInteger(v)))
    throw new ShapeError("ctcLoss", `${name} must hold ${batch} integers, got ${list.length}`, [
      [list.length],
    ]);
  return list;
}

/** Targets [N, S] (padded) or 1-D (concatenated), as a padded row-major list. */
function paddedTargets(
  targets: Tensor | readonly (readonly number[])[],
  lengths: number[],
): { values: number[]; maxTarget: number } {
  const batch = lengths.length;
  if (Array.isArray(targets)) {
    const rows = targets as readonly (readonly number[])[];
    const maxTarget = Math.max(0, ...rows.map((r) => r.length));
    if (rows.length !== batch)
      throw new ShapeError("ctcLoss", `targets must hold ${batch} rows, got ${rows.length}`, []);
    const values = rows.flatMap((r) => [...r, ...new Array<number>(maxTarget - r.length).fill(0)]);
    return { values, maxTarget };
  }
  const t = targets as Tensor;
  const flat = Array.from(t.dataSync() as ArrayLike<number>);
  if (t.ndim === 2 && t.shape[0] === batch) return { values: flat, maxTarget: t.shape[1]! };
  if (t.ndim !== 1)
    throw new ShapeError(
      "ctcLoss",
      `targets must be [N, S] or concatenated 1-D, got ${formatShape(t.shape)} for N = ${batch}`,
      [t.shape],
    );
  const total = lengths.reduce((a, b) => a + Math.max(0, b), 0);
  if (total !== flat.length)
    throw new ShapeError(
      "ctcLoss",
      `concatenated targets hold ${flat.length} labels but targetLengths sum to ${total}`,
      [t.shape],
    );
  const maxTarget = Math.max(0, ...lengths);
  const values = new Array<number>(batch * maxTarget).fill(0);
  let offset = 0;
  lengths.forEach((length, n) => {
    for (let k = 0; k < length; k++) values[n * maxTarget + k] = flat[offset + k]!;
    offset += length;
  });
  return { values, maxTarget };
}

function reductionOf(value: string): "none" | "mean" | "sum" {
  if (value !== "none" && value !== "mean" && value !== "sum")
    throw new ValueError(
      "ctcLoss",
      `reduction must be "none", "mean" or "sum", got ${JSON.stringify(value)}`,
      "reduction",
    );
  return value;
}

/** The per-sample loss [N], its graph recorded; infinite losses zeroed with zeroInfinity. */
function perSampleLoss(inputs: CtcInputs, logProbs: Tensor, zeroInfinity: boolean): Tensor {
  const [steps, batch] = logProbs.shape as [number, number];
  const width = 2 * inputs.targets.shape[1]! + 1;
  const backend = backendFor(logProbs.device);
  const nll = empty([batch], logProbs.dtype, logProbs.device);
  const logAlpha = empty([batch, steps, width], "float64", logProbs.device);
  backend.ctcLoss(nll, logAlpha, inputs);
  let out = nll;
  if (zeroInfinity) {
    const values = allocArray(logProbs.dtype, batch);
    Array.from(nll.dataSync() as ArrayLike<number>).forEach((v, n) => {
      values[n] = v === Infinity ? 0 : v;
    });
    out = fromTypedArray(values, [batch], { device: logProbs.device, dtype: logProbs.dtype });
  }
  if (!isGradEnabled() || !logProbs.requiresGrad) {
    for (const t of [logAlpha, inputs.targets, inputs.inputLengths, inputs.targetLengths])
      (t as Tensor).dispose();
    if (out !== nll) nll.dispose();
    return out;
  }
  return record(out, "ctcLoss", [logProbs], (g) => {
    const grad = empty(logProbs.shape, logProbs.dtype, logProbs.device);
    backend.ctcLossBackward(grad, g, inputs, logAlpha, nll, zeroInfinity);
    return [grad];
  });
}

/**
 * Connectionist temporal classification loss. logProbs [T, N, C] (log-softmax over C);
 * targets [N, S] padded or 1-D concatenated (or arrays of labels); inputLengths and
 * targetLengths [N]. Its gradient is the exact derivative with respect to logProbs (PyTorch
 * returns one that assumes logProbs is normalised; the two agree through logSoftmax).
 */
export function ctcLoss(
  logProbs: Tensor,
  targets: Tensor | readonly (readonly number[])[],
  inputLengths: Tensor | readonly number[],
  targetLengths: Tensor | readonly number[],
  options: CtcLossOptions = {},
): Tensor {
  checkFloatingInput("ctcLoss", logProbs);
  if (logProbs.ndim !== 3)
    throw new ShapeError(
      "ctcLoss",
      `logProbs must be [T, N, C], got ${formatShape(logProbs.shape)}`,
      [logProbs.shape],
    );
  const reduction = reductionOf(options.reduction ?? "mean");
  const batch = logProbs.shape[1]!;
  const inLengths = hostInts("inputLengths", inputLengths, batch);
  const tgLengths = hostInts("targetLengths", targetLengths, batch);
  const padded = paddedTargets(targets, tgLengths);
  const ints = (values: number[], shape: number[]) =>
    fromTypedArray(Int32Array.from(values), shape, { device: logProbs.device, dtype: "int32" });
  const inputs: CtcInputs = {
    logProbs,
    targets: ints(padded.values, [batch, padded.maxTarget]),
    inputLengths: ints(inLengths, [batch]),
    targetLengths: ints(tgLengths, [batch]),
    blank: options.blank ?? 0,
  };
  const loss = perSampleLoss(inputs, logProbs, options.zeroInfinity ?? false);
  if (reduction === "none") return loss;
  if (reduction === "sum") return loss.sum();
  const divisors = allocArray(logProbs.dtype, batch);
  tgLengths.forEach((length, n) => (divisors[n] = Math.max(1, length)));
  const scale = fromTypedArray(divisors, [batch], {
    device: logProbs.device,
    dtype: logProbs.dtype,
  });
  return loss.div(scale).mean();
}

/**
 * Greedy (best-path) CTC decoding: the most likely class at each step of each sample (up
 * to its input length), repeats collapsed and blanks removed.
 */
export function ctcGreedyDecode(
  logProbs: Tensor,
  inputLengths?: Tensor | readonly number[],
  blank = 0,
): number[][] {
  if (logProbs.ndim !== 3)
    throw new ShapeError(
      "ctcGreedyDecode",
      `logProbs must be [T, N, C], got ${formatShape(logProbs.shape)}`,
      [logProbs.shape],
    );
  const [steps, batch, classes] = logProbs.shape as [number, number, number];
  const lengths =
    inputLengths === undefined
      ? new Array<number>(batch).fill(steps)
      : hostInts("inputLengths", inputLengths, batch);
  const values = logProbs.dataSync() as ArrayLike<number>;
  return lengths.map((length, n) => {
    const labels: number[] = [];
    let previous = -1;
    for (let t = 0; t < Math.min(length, steps); t++) {
      let best = 0;
      const row = (t * batch + n) * classes;
      for (let k = 1; k < classes; k++) if (values[row + k]! > values[row + best]!) best = k;
      if (best !== previous && best !== blank) labels.push(best);
      previous = best;
    }
    return labels;
  });
}

/** The CTC loss as a module: forward(logProbs, targets, inputLengths, targetLengths). */
export class CTCLoss extends Module {
  readonly options: CtcLossOptions;

  constructor(options: CtcLossOptions = {}) {
    super();
    reductionOf(options.reduction ?? "mean");
    this.options = { ...options };
  }

  forward(
    logProbs: Tensor,
    targets: Tensor | readonly (readonly number[])[],
    inputLengths: Tensor | readonly number[],
    targetLengths: Tensor | readonly number[],
  ): Tensor {
    return ctcLoss(logProbs, targets, inputLengths, targetLengths, this.options);
  }
}
