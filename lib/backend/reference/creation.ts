// Memory, fills, casts and the random kernels. Random numbers come from lib/random.ts, so
// they are the numbers every backend must produce for the same key.

import type { RandomKey, RawTensor } from "../backend.js";
import { allocArray, type DType, type TypedArray } from "../../dtype.js";
import { ValueError } from "../../errors.js";
import { forEachNormal, forEachUniform } from "../../random.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType, toStored } from "./storage.js";
import { expectShape, sizeOf } from "./strides.js";

export function alloc(dtype: DType, size: number): TypedArray {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new ValueError("alloc", `size must be a non-negative integer, got ${size}`, "size");
  }
  return allocArray(dtype, size);
}

export function fromArray(dtype: DType, values: ArrayLike<number>): TypedArray {
  const array = alloc(dtype, values.length);
  for (let i = 0; i < values.length; i++) array[i] = toStored(dtype, values[i]!);
  return array;
}

export function read(x: RawTensor): TypedArray {
  return elements("read", x).slice();
}

export function fill(out: RawTensor, value: number): void {
  elements("fill", out).fill(toStored(out.dtype, value));
}

export function cast(out: RawTensor, x: RawTensor): void {
  const target = elements("cast", out);
  const source = elements("cast", x);
  expectShape("cast", "out", [target.length], [source.length]);
  for (let i = 0; i < source.length; i++) target[i] = toStored(out.dtype, source[i]!);
}

/** low + (high - low) * u in double, rounded once by the store. */
export function randUniform(out: RawTensor, key: RandomKey, low: number, high: number): void {
  requireDType("randUniform", out.dtype, FLOAT_DTYPES);
  const values = elements("randUniform", out);
  forEachUniform(key, values.length, (e, u) => {
    values[e] = low + (high - low) * u;
  });
}

/** mean + std * z in double, rounded once by the store. */
export function randNormal(out: RawTensor, key: RandomKey, mean: number, std: number): void {
  requireDType("randNormal", out.dtype, FLOAT_DTYPES);
  const values = elements("randNormal", out);
  forEachNormal(key, values.length, (e, z) => {
    values[e] = mean + std * z;
  });
}

/**
 * The mask is stored first (1 / (1 - p) rounded to the dtype), and out is x times the
 * stored mask, so out equals binary("mul", x, mask) bit for bit. p = 1 keeps nothing.
 */
export function dropout(
  out: RawTensor,
  mask: RawTensor,
  x: RawTensor,
  p: number,
  key: RandomKey,
): void {
  requireDType("dropout", x.dtype, FLOAT_DTYPES);
  requireSameDType("dropout", [out, mask, x]);
  if (!(p >= 0 && p <= 1)) {
    throw new ValueError("dropout", `p must be in [0, 1], got ${p}`, "p");
  }
  const outValues = elements("dropout", out);
  const maskValues = elements("dropout", mask);
  const xValues = elements("dropout", x);
  expectShape("dropout", "out", out.shape, x.shape);
  expectShape("dropout", "mask", mask.shape, x.shape);
  const scale = 1 / (1 - p);
  forEachUniform(key, sizeOf(x.shape), (e, u) => {
    maskValues[e] = u >= p ? scale : 0;
    outValues[e] = xValues[e]! * maskValues[e]!;
  });
}
