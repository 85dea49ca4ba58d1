// Negative log-likelihood over class scores that are already log-probabilities.
// logProbs [n, c, ...rest], targets int32 [n, ...rest], weight [c] or null. A target equal
// to ignoreIndex contributes nothing, neither loss nor weight; "mean" divides by the sum of
// the weights of the targets that count, so all-ignored gives 0 / 0 = NaN, as PyTorch.

import type { RawTensor, Reduction } from "../backend.js";
import { IndexError, ShapeError, ValueError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape, sizeOf } from "./strides.js";

/** One counted target: where its log-probability lives and its class weight. */
interface Pick {
  sample: number; // flat index into targets
  offset: number; // flat index into logProbs
  weight: number;
}

interface NllShapes {
  classes: number;
  inner: number; // product of ...rest
}

function nllShapes(
  op: string,
  logProbs: RawTensor,
  targets: RawTensor,
  weight: RawTensor | null,
): NllShapes {
  const shape = logProbs.shape;
  if (shape.length < 2) {
    throw new ShapeError(op, `logProbs must be [n, c, ...], got ${formatShape(shape)}`, [shape]);
  }
  expectShape(op, "targets", targets.shape, [shape[0]!, ...shape.slice(2)]);
  if (weight !== null) expectShape(op, "weight", weight.shape, [shape[1]!]);
  return { classes: shape[1]!, inner: sizeOf(shape.slice(2)) };
}

/** The targets that count (not ignoreIndex), checking each against the class count. */
function picks(
  op: string,
  targetValues: ArrayLike<number>,
  weightValues: ArrayLike<number> | null,
  shapes: NllShapes,
  ignoreIndex: number,
): Pick[] {
  const result: Pick[] = [];
  for (let sample = 0; sample < targetValues.length; sample++) {
    const target = targetValues[sample]!;
    if (target === ignoreIndex) continue;
    if (target < 0 || target >= shapes.classes) {
      const message = `target ${target} is out of bounds for ${shapes.classes} classes`;
      throw new IndexError(op, message);
    }
    const n = Math.floor(sample / shapes.inner);
    const offset = (n * shapes.classes + target) * shapes.inner + (sample % shapes.inner);
    result.push({ sample, offset, weight: weightValues === null ? 1 : weightValues[target]! });
  }
  return result;
}

function nllPicks(
  op: string,
  logProbs: RawTensor,
  targets: RawTensor,
  weight: RawTensor | null,
  ignoreIndex: number,
): Pick[] {
  requireDType(op, targets.dtype, ["int32"]);
  const shapes = nllShapes(op, logProbs, targets, weight);
  const weightValues = weight === null ? null : elements(op, weight);
  return picks(op, elements(op, targets), weightValues, shapes, ignoreIndex);
}

function totalWeight(counted: readonly Pick[]): number {
  return counted.reduce((acc, pick) => acc + pick.weight, 0);
}

/** Backend.checkRange: the first element of x outside [low, high], or NaN, is an error of op. */
export function checkRange(x: RawTensor, low: number, high: number, op: string, name: string) {
  requireDType("checkRange", x.dtype, FLOAT_DTYPES);
  const values = elements("checkRange", x);
  for (let k = 0; k < values.length; k++) {
    const value = values[k]!;
    if (!(value >= low && value <= high)) throw rangeError(op, name, low, high, k);
  }
}

/** The error of an element outside [low, high], as every backend words it. */
export function rangeError(op: string, name: string, low: number, high: number, element: number) {
  const message =
    `all elements of ${name} should be between ${low} and ${high}, but element ${element} ` +
    `is not`;
  return new ValueError(op, message, name);
}

export function nllLoss(
  out: RawTensor,
  logProbs: RawTensor,
  targets: RawTensor,
  weight: RawTensor | null,
  reduction: Reduction,
  ignoreIndex: number,
): void {
  const op = "nllLoss";
  requireDType(op, logProbs.dtype, FLOAT_DTYPES);
  requireSameDType(op, weight === null ? [out, logProbs] : [out, logProbs, weight]);
  const counted = nllPicks(op, logProbs, targets, weight, ignoreIndex);
  const logProbValues = elements(op, logProbs);
  const outValues = elements(op, out);
  const losses = counted.map((pick) => -pick.weight * logProbValues[pick.offset]!);

  if (reduction === "none") {
    expectShape(op, "out", out.shape, targets.shape);
    outValues.fill(0);
    counted.forEach((pick, i) => (outValues[pick.sample] = losses[i]!));
    return;
  }
  expectShape(op, "out", out.shape, []);
  const sum = losses.reduce((acc, loss) => acc + loss, 0);
  outValues[0] = reduction === "sum" ? sum : sum / totalWeight(counted);
}

/** gradLogProbs is overwritten: -weight * gradOut (/ total weight for mean) at each target. */
export function nllLossBackward(
  gradLogProbs: RawTensor,
  gradOut: RawTensor,
  targets: RawTensor,
  weight: RawTensor | null,
  reduction: Reduction,
  ignoreIndex: number,
): void {
  const op = "nllLossBackward";
  requireDType(op, gradLogProbs.dtype, FLOAT_DTYPES);
  const tensors = [gradLogProbs, gradOut];
  requireSameDType(op, weight === null ? tensors : [...tensors, weight]);
  const counted = nllPicks(op, gradLogProbs, targets, weight, ignoreIndex);
  expectShape(op, "gradOut", gradOut.shape, reduction === "none" ? targets.shape : []);

  const gradValues = elements(op, gradLogProbs);
  const gradOutValues = elements(op, gradOut);
  const divisor = reduction === "mean" ? totalWeight(counted) : 1;
  gradValues.fill(0);
  for (const pick of counted) {
    const upstream = gradOutValues[reduction === "none" ? pick.sample : 0]!;
    gradValues[pick.offset] = (-pick.weight * upstream) / divisor;
  }
}
