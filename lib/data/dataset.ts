// Datasets: anything with a length and an indexed `get`, and TensorDataset, which keeps
// inputs and targets as two flat row-major typed arrays so batches are contiguous copies.

import type { TypedArray } from "../dtype.js";
import { IndexError, ShapeError } from "../errors.js";
import type { Tensor } from "../tensor.js";

export interface Dataset<T> {
  readonly length: number;
  get(index: number): T;
}

/** One example: its input values, row-major, and its target (a class index, or values). */
export interface Sample {
  readonly input: TypedArray;
  readonly target: number | TypedArray;
}

/** A typed array with its full shape, first dimension the sample index. */
export interface ShapedArray {
  readonly data: TypedArray;
  readonly shape: readonly number[];
}

/** A dataset field: every sample's values stored back to back. */
export interface Field {
  readonly data: TypedArray; // [length, ...sampleShape]
  readonly sampleShape: readonly number[];
  readonly sampleSize: number; // product of sampleShape
}

type FieldSource = Tensor | ShapedArray | TypedArray;

/** The array and full shape of a field; a bare array is [rows, rest] or, without rows, [n]. */
function toShaped(source: FieldSource, rows?: number): ShapedArray {
  if (!ArrayBuffer.isView(source)) {
    return "dataSync" in source ? { data: source.dataSync(), shape: source.shape } : source;
  }
  if (rows === undefined) return { data: source, shape: [source.length] };
  return { data: source, shape: [rows, rows === 0 ? 0 : source.length / rows] };
}

function toField(shaped: ShapedArray, role: string, length: number): Field {
  const [rows, ...sampleShape] = shaped.shape;
  const sampleSize = sampleShape.reduce((product, dim) => product * dim, 1);
  if (rows !== length || shaped.data.length !== length * sampleSize) {
    const message =
      `${role} of shape [${shaped.shape.join(", ")}] and ${shaped.data.length} values ` +
      `does not hold ${length} samples`;
    throw new ShapeError("TensorDataset", message, [shaped.shape]);
  }
  return { data: shaped.data, sampleShape, sampleSize };
}

/**
 * Inputs and targets sharing their first dimension. Each may be a Tensor (its values are
 * copied out once), a `{ data, shape }` pair, or a bare typed array: targets as a bare
 * array hold one value per sample, inputs as a bare array are split evenly over the samples.
 */
export class TensorDataset implements Dataset<Sample> {
  readonly length: number;
  readonly inputs: Field;
  readonly targets: Field;

  constructor(inputs: FieldSource, targets: FieldSource) {
    const targetArray = toShaped(targets);
    this.length = targetArray.shape[0] ?? 0;
    const inputArray = toShaped(inputs, this.length);
    if (ArrayBuffer.isView(inputs) && inputs.length % Math.max(this.length, 1) !== 0) {
      const message = `${inputs.length} input values do not split into ${this.length} samples`;
      throw new ShapeError("TensorDataset", message, [[inputs.length], targetArray.shape]);
    }
    this.inputs = toField(inputArray, "inputs", this.length);
    this.targets = toField(targetArray, "targets", this.length);
  }

  /** Views (no copy) of sample `index`; a scalar target is returned as a number. */
  get(index: number): Sample {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new IndexError("TensorDataset.get", `index ${index} is outside [0, ${this.length})`);
    }
    const { inputs, targets } = this;
    const input = inputs.data.subarray(index * inputs.sampleSize, (index + 1) * inputs.sampleSize);
    const target =
      targets.sampleShape.length === 0
        ? targets.data[index]!
        : targets.data.subarray(index * targets.sampleSize, (index + 1) * targets.sampleSize);
    return { input, target };
  }
}
