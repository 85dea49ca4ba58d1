// DataLoader: batches of a dataset as Tensors. Over a TensorDataset a batch is built by
// copying each sample's contiguous slice into one fresh typed array (one copy, no per-value
// JS objects), so an epoch of MNIST costs a few memcpys. Shuffling draws from the global
// seeded generator, so manualSeed(s) fixes the order of every epoch.

import type { TypedArray } from "../dtype.js";
import { ShapeError, ValueError, formatValue } from "../errors.js";
import { defaultGenerator, forEachUniform } from "../random.js";
import { fromTypedArray, type Tensor } from "../tensor.js";
import { TensorDataset, type Dataset, type Field, type Sample } from "./dataset.js";

/** A batch as typed arrays, row-major, before it becomes Tensors. */
export interface ArrayBatch {
  readonly inputs: TypedArray; // [size, ...inputShape]
  readonly targets: TypedArray; // [size, ...targetShape]
  readonly inputShape: readonly number[]; // of one sample
  readonly targetShape: readonly number[]; // of one sample; [] for class indices
  readonly size: number;
}

/** A batch as Tensors: inputs [B, ...inputShape], targets [B, ...targetShape]. */
export interface Batch {
  readonly inputs: Tensor;
  readonly targets: Tensor;
}

/**
 * Augments a batch: it may change the arrays in place (and return nothing), or return a
 * new batch whose arrays it owns (shapes may change, e.g. a random crop). Draw random
 * numbers with `defaultGenerator.next(n)` and `forEachUniform` to stay reproducible.
 */
export type BatchTransform = (batch: ArrayBatch) => ArrayBatch | void;

export interface DataLoaderOptions {
  /** Samples per batch; default 1. */
  readonly batchSize?: number;
  /** Visit samples in a new seeded random order each epoch; default false. */
  readonly shuffle?: boolean;
  /** Skip the last batch when it has fewer than batchSize samples; default false. */
  readonly dropLast?: boolean;
  readonly transform?: BatchTransform;
  /** Device of the yielded tensors; default: the default device (see setDefaultDevice). */
  readonly device?: string;
}

const OPTION_NAMES = ["batchSize", "shuffle", "dropLast", "transform", "device"];

function optionError(name: string, expected: string, value: unknown): ValueError {
  return new ValueError(
    "DataLoader",
    `${name} must be ${expected}, got ${formatValue(value)}`,
    name,
  );
}

interface CheckedOptions {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly device: string | undefined;
}

function checkOptions(options: DataLoaderOptions): CheckedOptions {
  if (typeof options !== "object" || options === null) {
    throw optionError("options", "an object", options);
  }
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.includes(name)) {
      const message = `unknown option ${name}; options are ${OPTION_NAMES.join(", ")}`;
      throw new ValueError("DataLoader", message, name);
    }
  }
  const { batchSize = 1, shuffle = false, dropLast = false, transform, device } = options;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw optionError("batchSize", "a positive integer", batchSize);
  }
  if (typeof shuffle !== "boolean") throw optionError("shuffle", "a boolean", shuffle);
  if (typeof dropLast !== "boolean") throw optionError("dropLast", "a boolean", dropLast);
  if (transform !== undefined && typeof transform !== "function") {
    throw optionError("transform", "a function", transform);
  }
  if (device !== undefined && typeof device !== "string") {
    throw optionError("device", "a device name", device);
  }
  return { batchSize, shuffle, dropLast, device };
}

function checkDataset(dataset: Dataset<Sample>): void {
  const valid =
    typeof dataset === "object" &&
    dataset !== null &&
    Number.isSafeInteger(dataset.length) &&
    dataset.length >= 0 &&
    typeof dataset.get === "function";
  if (!valid) {
    throw new ValueError("DataLoader", "dataset must have a length and a get(index)", "dataset");
  }
}

/**
 * The numbers 0..count-1 in a random order (Fisher-Yates), drawn from the global
 * generator: step i (from count-1 down to 1) swaps i with floor(u * (i + 1)), u being
 * uniform number count-1-i of one key. Uniforms have 24 bits, so for count > 2^24 not
 * every swap target is reachable.
 */
export function shuffledIndices(count: number): Int32Array {
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const key = defaultGenerator.next(count);
  forEachUniform(key, count, (step, u) => {
    const i = count - 1 - step;
    if (i < 1) return;
    const j = Math.floor(u * (i + 1));
    const swapped = order[i]!;
    order[i] = order[j]!;
    order[j] = swapped;
  });
  return order;
}

type ArrayConstructor = new (length: number) => TypedArray;

/** Copies the rows `indices` of a field into one fresh array: [indices.length, ...]. */
export function gatherRows(field: Field, indices: ArrayLike<number>): TypedArray {
  const { data, sampleSize } = field;
  const out = new (data.constructor as ArrayConstructor)(indices.length * sampleSize);
  for (let k = 0; k < indices.length; k++) {
    const row = indices[k]!;
    out.set(data.subarray(row * sampleSize, (row + 1) * sampleSize), k * sampleSize);
  }
  return out;
}

function product(shape: readonly number[]): number {
  return shape.reduce((acc, dim) => acc * dim, 1);
}

function checkBatch(batch: ArrayBatch): ArrayBatch {
  const { inputs, targets, inputShape, targetShape, size } = batch;
  const inputsFit = inputs.length === size * product(inputShape);
  const targetsFit = targets.length === size * product(targetShape);
  if (!inputsFit || !targetsFit) {
    const message =
      `transform returned ${inputs.length} input and ${targets.length} target values for ` +
      `${size} samples of shapes [${inputShape.join(", ")}] and [${targetShape.join(", ")}]`;
    throw new ShapeError("DataLoader", message, [inputShape, targetShape]);
  }
  return batch;
}

/** Iterates over a dataset in batches of Tensors: `for (const { inputs, targets } of loader)`. */
export class DataLoader implements Iterable<Batch> {
  readonly dataset: Dataset<Sample>;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly device: string | undefined;
  readonly transform: BatchTransform | undefined;

  constructor(dataset: Dataset<Sample>, options: DataLoaderOptions = {}) {
    checkDataset(dataset);
    const checked = checkOptions(options);
    this.dataset = dataset;
    this.batchSize = checked.batchSize;
    this.shuffle = checked.shuffle;
    this.dropLast = checked.dropLast;
    this.device = checked.device;
    this.transform = options.transform;
  }

  /** The number of batches in one epoch. */
  get length(): number {
    const count = this.dataset.length / this.batchSize;
    return this.dropLast ? Math.floor(count) : Math.ceil(count);
  }

  *[Symbol.iterator](): Iterator<Batch> {
    const options = this.device === undefined ? {} : { device: this.device };
    for (const batch of this.arrays()) {
      const inputs = fromTypedArray(batch.inputs, [batch.size, ...batch.inputShape], options);
      const targets = fromTypedArray(batch.targets, [batch.size, ...batch.targetShape], options);
      yield { inputs, targets };
    }
  }

  /** One epoch of batches as typed arrays, transformed; the order is drawn when it starts. */
  *arrays(): Generator<ArrayBatch> {
    const count = this.dataset.length;
    const order = this.shuffle ? shuffledIndices(count) : undefined;
    for (let b = 0; b < this.length; b++) {
      const start = b * this.batchSize;
      const end = Math.min(start + this.batchSize, count);
      const indices = order ? order.subarray(start, end) : range(start, end);
      const batch = this.collate(indices);
      yield checkBatch(this.transform?.(batch) ?? batch);
    }
  }

  private collate(indices: Int32Array): ArrayBatch {
    const dataset = this.dataset;
    if (dataset instanceof TensorDataset) {
      return {
        inputs: gatherRows(dataset.inputs, indices),
        targets: gatherRows(dataset.targets, indices),
        inputShape: dataset.inputs.sampleShape,
        targetShape: dataset.targets.sampleShape,
        size: indices.length,
      };
    }
    return collateSamples(Array.from(indices, (index) => dataset.get(index)));
  }
}

function range(start: number, end: number): Int32Array {
  const indices = new Int32Array(end - start);
  for (let k = 0; k < indices.length; k++) indices[k] = start + k;
  return indices;
}

/** Stacks the targets of samples: numbers become int32 class indices. */
function stackTargets(samples: Sample[]): {
  targets: TypedArray;
  targetShape: number[];
} {
  const first = samples[0]!.target;
  if (typeof first !== "number") {
    const rows = samples.map((sample) => sample.target as TypedArray);
    return { targets: stackRows(rows, "target"), targetShape: [first.length] };
  }
  const targets = new Int32Array(samples.length);
  samples.forEach(({ target }, k) => {
    if (typeof target !== "number" || !Number.isInteger(target)) {
      const message =
        `target of sample ${k} in the batch is ${String(target)}; a number target must be ` +
        "an integer class index (give real-valued targets as typed arrays)";
      throw new ValueError("DataLoader", message, "target");
    }
    targets[k] = target;
  });
  return { targets, targetShape: [] };
}

function stackRows(rows: TypedArray[], role: string): TypedArray {
  const size = rows[0]!.length;
  const out = new (rows[0]!.constructor as ArrayConstructor)(rows.length * size);
  rows.forEach((row, k) => {
    if (row.length !== size) {
      const message = `${role} of sample ${k} in the batch has ${row.length} values, not ${size}`;
      throw new ShapeError("DataLoader", message, [[size], [row.length]]);
    }
    out.set(row, k * size);
  });
  return out;
}

/** Stacks samples from a generic dataset; inputs are flat: [B, input.length]. */
function collateSamples(samples: Sample[]): ArrayBatch {
  const inputs = stackRows(
    samples.map((sample) => sample.input),
    "input",
  );
  const { targets, targetShape } = stackTargets(samples);
  const inputShape = [samples[0]!.input.length];
  return { inputs, targets, inputShape, targetShape, size: samples.length };
}
