// The multi-tensor ops of gradient clipping (PyTorch's foreach norm and foreach mul): the
// norms of many tensors, and many tensors scaled by one factor in place. Values in double,
// rounded once where they are stored.

import type { RawTensor } from "../backend.js";
import { ValueError } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

function checkNormType(normType: number): void {
  if (normType === Infinity || (Number.isFinite(normType) && normType > 0)) return;
  throw new ValueError("norms", `normType must be > 0 or Infinity, got ${normType}`, "normType");
}

/**
 * ||values||_p: |x|^p added up in order, then its 1/p-th power (0 for no values); for
 * p = Infinity the largest |x|, a NaN winning over every number.
 */
function norm(values: ArrayLike<number>, p: number): number {
  let acc = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    if (p === Infinity) {
      if (a > acc || Number.isNaN(a)) acc = a; // once NaN, acc stays NaN: nothing is greater
    } else {
      acc += p === 1 ? a : p === 2 ? a * a : a ** p;
    }
  }
  if (p === 2) return Math.sqrt(acc);
  return p === 1 || p === Infinity ? acc : acc ** (1 / p);
}

/** out[k] = ||xs[k]||_normType; every tensor is checked before out is written. */
export function norms(out: RawTensor, xs: readonly RawTensor[], normType: number): void {
  checkNormType(normType);
  requireDType("norms", out.dtype, FLOAT_DTYPES);
  requireSameDType("norms", [out, ...xs]);
  expectShape("norms", "out", out.shape, [xs.length]);
  const result = elements("norms", out);
  const inputs = xs.map((x) => elements("norms", x));
  inputs.forEach((values, k) => {
    result[k] = norm(values, normType);
  });
}

/**
 * min(1, maxNorm / (norm + 1e-6)) with each step rounded as `round` rounds (float32's for a
 * float32 norm), and 1 for a norm that is NaN or infinite: Backend.scaleInPlace's clipping.
 * The division is PyTorch's, a reciprocal times maxNorm (Tensor.__rtruediv__).
 */
export function clipFactor(norm: number, maxNorm: number, round = (x: number) => x): number {
  if (!Number.isFinite(norm)) return 1;
  const reciprocal = round(1 / round(norm + round(1e-6)));
  return Math.min(1, round(reciprocal * round(maxNorm)));
}

/**
 * xs[k] *= factor for every k, or by clipFactor(factor, maxNorm) when maxNorm is given;
 * every tensor is checked before any is written.
 */
export function scaleInPlace(xs: readonly RawTensor[], factor: RawTensor, maxNorm?: number): void {
  requireDType("scaleInPlace", factor.dtype, FLOAT_DTYPES);
  requireSameDType("scaleInPlace", [factor, ...xs]);
  expectShape("scaleInPlace", "factor", factor.shape, []);
  if (maxNorm !== undefined && !(maxNorm >= 0 && Number.isFinite(maxNorm)))
    throw new ValueError(
      "scaleInPlace",
      `maxNorm must be finite and >= 0, got ${maxNorm}`,
      "maxNorm",
    );
  const k = xs.findIndex((x) => x.storage === factor.storage);
  if (k >= 0) {
    const message = `item ${k}: the factor must not be one of the tensors it scales`;
    throw new ValueError("scaleInPlace", message, "factor");
  }
  const given = elements("scaleInPlace", factor)[0]!;
  const round = factor.dtype === "float32" ? Math.fround : undefined;
  const f = maxNorm === undefined ? given : clipFactor(given, maxNorm, round);
  const targets = xs.map((x) => elements("scaleInPlace", x));
  for (const values of targets) {
    for (let i = 0; i < values.length; i++) values[i] = values[i]! * f;
  }
}
