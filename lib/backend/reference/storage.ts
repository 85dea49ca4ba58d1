// How the reference backend holds tensors: a plain typed array per tensor (allocArray), and
// the checks every kernel makes before it trusts one: the storage kind, its length, the dtype.

import type { RawTensor } from "../backend.js";
import type { DType, TypedArray } from "../../dtype.js";
import { DTypeError, DeviceError, ShapeError, formatShape } from "../../errors.js";
import { sizeOf } from "./strides.js";

export const BACKEND_NAME = "reference";

export const FLOAT_DTYPES: readonly DType[] = ["float32", "float64"];
export const NUMERIC_DTYPES: readonly DType[] = ["float32", "float64", "int32"];
export const ALL_DTYPES: readonly DType[] = [
  "float32",
  "float64",
  "int32",
  "bool",
  "uint8",
  "int8",
];

type ArrayType = new (length: number) => TypedArray;

const ARRAY_TYPES: Record<DType, ArrayType> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  bool: Uint8Array,
  uint8: Uint8Array,
  int8: Int8Array,
};

/** The typed array of x, after checking that it is reference storage that fits x's shape. */
export function elements(op: string, x: RawTensor): TypedArray {
  const storage = x.storage;
  if (!ArrayBuffer.isView(storage)) {
    const message = `the ${BACKEND_NAME} backend needs typed-array storage, got a native handle`;
    throw new DeviceError(op, message, [BACKEND_NAME]);
  }
  const arrayType = ARRAY_TYPES[x.dtype];
  if (!(storage instanceof arrayType)) {
    const got = storage.constructor.name;
    const message = `a ${x.dtype} tensor needs a ${arrayType.name}, got a ${got}`;
    throw new DTypeError(op, message, [x.dtype]);
  }
  if (storage.length !== sizeOf(x.shape)) {
    const message =
      `storage holds ${storage.length} elements but shape ${formatShape(x.shape)} ` +
      `needs ${sizeOf(x.shape)}`;
    throw new ShapeError(op, message, [x.shape]);
  }
  return storage;
}

/** Throws DTypeError unless dtype is one of `supported`. */
export function requireDType(op: string, dtype: DType, supported: readonly DType[]): void {
  if (!supported.includes(dtype)) {
    const message =
      `dtype ${dtype} is not supported by the ${BACKEND_NAME} backend ` +
      `(supported: ${supported.join(", ")})`;
    throw new DTypeError(op, message, [dtype]);
  }
}

/** Throws DTypeError unless every tensor has the dtype of the first. */
export function requireSameDType(op: string, tensors: readonly RawTensor[]): void {
  const dtypes = tensors.map((t) => t.dtype);
  if (dtypes.some((dtype) => dtype !== dtypes[0])) {
    throw new DTypeError(op, `operands must share a dtype, got ${dtypes.join(", ")}`, dtypes);
  }
}

/**
 * A number as it is stored in `dtype`: bool is 1 for any non-zero (NaN included), the
 * integer types truncate toward zero and wrap (a typed-array store), floats store as is.
 */
export function toStored(dtype: DType, value: number): number {
  if (dtype === "bool") return value !== 0 ? 1 : 0;
  return value;
}
