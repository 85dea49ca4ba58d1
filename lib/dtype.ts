// The element types tensors can hold and the typed arrays that store them on the CPU.

import { OutOfMemoryError } from "./errors.js";

export type DType = "float32" | "float64" | "int32" | "bool" | "uint8" | "int8";

export const DTYPES: readonly DType[] = ["float32", "float64", "int32", "bool", "uint8", "int8"];

export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array;

export function isDType(value: unknown): value is DType {
  return typeof value === "string" && (DTYPES as readonly string[]).includes(value);
}

export function isFloating(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64";
}

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case "float64":
      return 8;
    case "float32":
    case "int32":
      return 4;
    default:
      return 1;
  }
}

/** A zero-filled typed array of `size` elements for `dtype`. */
export function allocArray(dtype: DType, size: number): TypedArray {
  try {
    return newArray(dtype, size);
  } catch (error) {
    // V8 refuses a typed array past its length limit, or one it cannot get memory for.
    if (!(error instanceof RangeError)) throw error;
    const gib = ((size * bytesPerElement(dtype)) / 2 ** 30).toFixed(1);
    const message = `cannot allocate ${size} ${dtype} elements (${gib} GiB): ${error.message}`;
    throw new OutOfMemoryError("alloc", message);
  }
}

function newArray(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(size);
    case "float64":
      return new Float64Array(size);
    case "int32":
      return new Int32Array(size);
    case "int8":
      return new Int8Array(size);
    default:
      return new Uint8Array(size);
  }
}

/** The dtype a typed array stores (uint8 for a Uint8Array), or null for anything else. */
export function dtypeOfArray(values: ArrayLike<number>): DType | null {
  if (values instanceof Float32Array) return "float32";
  if (values instanceof Float64Array) return "float64";
  if (values instanceof Int32Array) return "int32";
  if (values instanceof Int8Array) return "int8";
  if (values instanceof Uint8Array) return "uint8";
  return null;
}

/** The dtype two operands are computed in: the wider float, else int32, else bool. */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  if (a === "float64" || b === "float64") return "float64";
  if (a === "float32" || b === "float32") return "float32";
  if (a === "int32" || b === "int32") return "int32";
  if (a === "int8" || b === "int8") return "int32";
  return "uint8";
}
