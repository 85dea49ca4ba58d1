// Shared test helpers: value comparison with stated tolerances (a failure names the worst
// element, its index and how far past the tolerance it was), typed error assertions, a
// small seeded number source for test data, and raw-tensor builders for backend tests.

import { expect } from "vitest";

import type { Backend, RawTensor } from "../lib/backend/backend.js";
import type { DType } from "../lib/dtype.js";
import { Tensor, type NestedArray } from "../lib/tensor.js";

export interface Tolerance {
  atol: number;
  rtol: number;
}

export type Values = Tensor | RawTensor | ArrayLike<number> | NestedArray;

function isRaw(value: unknown): value is RawTensor {
  return typeof value === "object" && value !== null && "storage" in value && "dtype" in value;
}

/** Flattens a tensor, a raw tensor, a typed array or nested arrays into numbers. */
export function flatValues(value: Values): number[] {
  if (value instanceof Tensor) return Array.from(value.dataSync() as ArrayLike<number>);
  if (isRaw(value)) return Array.from(value.storage as ArrayLike<number>);
  if (typeof value === "number" || typeof value === "boolean") return [Number(value)];
  if (Array.isArray(value)) return (value as NestedArray[]).flatMap((v) => flatValues(v));
  return Array.from(value as ArrayLike<number>);
}

function unravel(index: number, shape: readonly number[] | undefined): string {
  if (shape === undefined || shape.length === 0) return `${index}`;
  const coords: number[] = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    coords.unshift(rest % shape[d]!);
    rest = Math.floor(rest / shape[d]!);
  }
  return `${index} [${coords.join(", ")}]`;
}

function shapeOf(value: Values): readonly number[] | undefined {
  if (value instanceof Tensor || isRaw(value)) return value.shape;
  return undefined;
}

/**
 * The worst ratio |actual - expected| / (atol + rtol * |expected|) over all elements;
 * NaN matches NaN and infinities must match exactly (ratio Infinity otherwise).
 */
export function worstElement(
  actual: readonly number[],
  expected: readonly number[],
  tol: Tolerance,
): { index: number; ratio: number } {
  let worst = { index: -1, ratio: 0 };
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    let ratio: number;
    if (Number.isNaN(e) || Number.isNaN(a))
      ratio = Number.isNaN(e) && Number.isNaN(a) ? 0 : Infinity;
    else if (!Number.isFinite(e) || !Number.isFinite(a)) ratio = a === e ? 0 : Infinity;
    else ratio = Math.abs(a - e) / (tol.atol + tol.rtol * Math.abs(e));
    if (ratio > worst.ratio || (worst.index < 0 && ratio > 1)) worst = { index: i, ratio };
  }
  return worst;
}

/**
 * Asserts element-wise closeness. On failure the message shows the worst element, its
 * (flat and multi-dimensional) index, both values and its ratio to the tolerance.
 */
export function expectClose(
  actual: Values,
  expected: Values,
  tol: Tolerance = { atol: 1e-6, rtol: 1e-6 },
  label = "values",
): void {
  const a = flatValues(actual);
  const e = flatValues(expected);
  const shape = shapeOf(actual) ?? shapeOf(expected);
  if (a.length !== e.length) {
    expect.fail(`${label}: ${a.length} actual values but ${e.length} expected`);
  }
  const worst = worstElement(a, e, tol);
  if (worst.ratio > 1) {
    expect.fail(
      `${label}: element ${unravel(worst.index, shape)} is ${a[worst.index]}, expected ` +
        `${e[worst.index]} (${worst.ratio.toPrecision(3)}x the tolerance ` +
        `atol=${tol.atol}, rtol=${tol.rtol})`,
    );
  }
}

/** Asserts exact equality of values (bitwise for floats, NaN matching NaN). */
export function expectEqualValues(actual: Values, expected: Values, label = "values"): void {
  expectClose(actual, expected, { atol: 0, rtol: 0 }, label);
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** Runs fn, asserts it throws an instance of errorClass whose message matches, returns it. */
export function expectThrows<E extends ErrorClass>(
  fn: () => unknown,
  errorClass: E,
  message: string | RegExp,
): InstanceType<E> {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, "expected an error to be thrown").toBeInstanceOf(errorClass);
  const text = (caught as Error).message;
  if (typeof message === "string") expect(text).toBe(message);
  else expect(text).toMatch(message);
  return caught as InstanceType<E>;
}

/** mulberry32: a tiny seeded generator for test data (independent of deepnode's own). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` numbers uniform in [low, high). */
export function randomValues(random: () => number, count: number, low = -1, high = 1): number[] {
  return Array.from({ length: count }, () => low + (high - low) * random());
}

/** `count` numbers with |v| in [minAbs, maxAbs) and a random sign: away from kinks at 0. */
export function awayFromZero(
  random: () => number,
  count: number,
  minAbs = 0.2,
  maxAbs = 1,
): number[] {
  return Array.from({ length: count }, () => {
    const magnitude = minAbs + (maxAbs - minAbs) * random();
    return random() < 0.5 ? -magnitude : magnitude;
  });
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((acc, d) => acc * d, 1);
}

/**
 * A raw tensor of `backend` holding `values`; uninitialised when they are omitted, as an
 * output a kernel must write whole (poisoned under DEEPNODE_POISON_UNINIT; the reference
 * backend zero-fills it).
 */
export function raw(
  backend: Backend,
  dtype: DType,
  shape: readonly number[],
  values?: ArrayLike<number>,
): RawTensor {
  const storage =
    values === undefined
      ? backend.alloc(dtype, sizeOf(shape), "none")
      : backend.fromArray(dtype, values);
  return { storage, shape: [...shape], dtype };
}

/** A zero-filled raw tensor: an output a kernel adds into, or an input of zeros. */
export function rawZeros(backend: Backend, dtype: DType, shape: readonly number[]): RawTensor {
  return { storage: backend.alloc(dtype, sizeOf(shape), "zero"), shape: [...shape], dtype };
}

/** Values of a raw tensor as plain numbers. */
export function readRaw(backend: Backend, x: RawTensor): number[] {
  return Array.from(backend.read(x) as ArrayLike<number>);
}

/** Numbers rounded to float32, as a float32 tensor would hold them. */
export function toFloat32(values: readonly number[]): number[] {
  return Array.from(Float32Array.from(values));
}
