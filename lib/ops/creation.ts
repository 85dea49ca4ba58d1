// Creation ops: empty storage of a shape, constants, ranges and seeded random tensors.

import { backendFor, getDefaultDevice, parseDevice, type Device } from "../backend/registry.js";
import type { DType } from "../dtype.js";
import { DTypeError, ValueError, formatValue } from "../errors.js";
import { defaultGenerator } from "../random.js";
import { checkShape, sizeOf } from "../shape.js";
import { Tensor } from "../tensor.js";

export interface CreationOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

function deviceOf(options: CreationOptions): Device {
  return options.device === undefined ? getDefaultDevice() : parseDevice(options.device);
}

function finish(t: Tensor, options: CreationOptions): Tensor {
  if (options.requiresGrad === true) t.requiresGrad_(true);
  return t;
}

/**
 * An uninitialised tensor (as torch.empty): the output buffer of an op whose kernel writes
 * every element. It may hold any values, NaN under DEEPNODE_POISON_UNINIT (./uninit.ts).
 */
export function empty(shape: readonly number[], dtype: DType, device: Device): Tensor {
  const storage = backendFor(device).alloc(dtype, sizeOf(shape), "none");
  return new Tensor(storage, shape, dtype, device);
}

/** A zero-filled tensor: the output buffer of an op that adds into it or writes only part. */
export function zeroFilled(shape: readonly number[], dtype: DType, device: Device): Tensor {
  const storage = backendFor(device).alloc(dtype, sizeOf(shape), "zero");
  return new Tensor(storage, shape, dtype, device);
}

export function full(
  shape: readonly number[],
  value: number,
  options: CreationOptions = {},
): Tensor {
  checkShape("full", shape);
  const [dtype, device] = [options.dtype ?? "float32", deviceOf(options)];
  // -0 is filled (PyTorch keeps its sign in float tensors); only +0 is zero memory.
  if (Object.is(value, 0)) return finish(zeroFilled(shape, dtype, device), options);
  const t = empty(shape, dtype, device);
  backendFor(t.device).fill(t, value);
  return finish(t, options);
}

export function zeros(shape: readonly number[], options: CreationOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: readonly number[], options: CreationOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** Numbers start, start + step, ... below end (above end for a negative step). */
export function arange(
  start: number,
  end?: number,
  step = 1,
  options: CreationOptions = {},
): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  if (step === 0 || !Number.isFinite(step))
    throw new ValueError(
      "arange",
      `step must be a non-zero number, got ${formatValue(step)}`,
      "step",
    );
  const count = Math.max(0, Math.ceil((to - from) / step));
  const values = Array.from({ length: count }, (_, i) => from + i * step);
  const allIntegers = Number.isInteger(from) && Number.isInteger(step);
  const dtype = options.dtype ?? (allIntegers ? "int32" : "float32");
  const device = deviceOf(options);
  const t = new Tensor(backendFor(device).fromArray(dtype, values), [count], dtype, device);
  return finish(t, options);
}

function checkFloat(op: string, dtype: DType): void {
  if (dtype !== "float32" && dtype !== "float64") {
    throw new DTypeError(op, `random tensors must be float32 or float64, got ${dtype}`, [dtype]);
  }
}

/** Uniform numbers in [low, high) from the seeded generator (see manualSeed). */
export function rand(
  shape: readonly number[],
  options: CreationOptions & { low?: number; high?: number } = {},
): Tensor {
  checkShape("rand", shape);
  const dtype = options.dtype ?? "float32";
  checkFloat("rand", dtype);
  const t = empty(shape, dtype, deviceOf(options));
  backendFor(t.device).randUniform(
    t,
    defaultGenerator.next(t.numel),
    options.low ?? 0,
    options.high ?? 1,
  );
  return finish(t, options);
}

/** Normal numbers with the given mean and std from the seeded generator. */
export function randn(
  shape: readonly number[],
  options: CreationOptions & { mean?: number; std?: number } = {},
): Tensor {
  checkShape("randn", shape);
  const dtype = options.dtype ?? "float32";
  checkFloat("randn", dtype);
  const t = empty(shape, dtype, deviceOf(options));
  backendFor(t.device).randNormal(
    t,
    defaultGenerator.next(t.numel),
    options.mean ?? 0,
    options.std ?? 1,
  );
  return finish(t, options);
}
