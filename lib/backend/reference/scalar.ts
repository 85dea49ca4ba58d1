// Scalar functions behind the element-wise kernels, in double precision. Where JavaScript's
// Math and C/PyTorch disagree (pow, round, sign), these follow PyTorch.

import { ValueError } from "../../errors.js";

/** C's pow: 1 for pow(1, y) and pow(x, 0) even with NaN, and for pow(-1, ±inf). */
export function pow(x: number, y: number): number {
  if (y === 0 || x === 1) return 1;
  if (x === -1 && (y === Infinity || y === -Infinity)) return 1;
  return x ** y;
}

/** Rounds half to even, as torch.round and C's nearbyint. */
export function roundHalfEven(x: number): number {
  const rounded = Math.round(x);
  if (rounded - x === 0.5 && rounded % 2 !== 0) return rounded - 1;
  return rounded;
}

/** -1, 0 or 1; 0 for ±0 and, as in PyTorch, for NaN. */
export function sign(x: number): number {
  return (x > 0 ? 1 : 0) - (x < 0 ? 1 : 0);
}

/** max(x, 0) that lets NaN through, as torch.relu. */
export function relu(x: number): number {
  return x > 0 || Number.isNaN(x) ? x : 0;
}

/** 1 / (1 + e^-x) without overflow: e^x / (1 + e^x) for negative x. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** Floating floor division as PyTorch's div_floor: exact for representable quotients. */
export function floorDivFloat(a: number, b: number): number {
  if (b === 0) return a / b;
  const mod = a % b;
  let quotient = (a - mod) / b;
  if (mod !== 0 && b < 0 !== mod < 0) quotient -= 1;
  if (quotient === 0) return copySign(0, a / b);
  const floored = Math.floor(quotient);
  return quotient - floored > 0.5 ? floored + 1 : floored;
}

/** Floating remainder whose sign follows the divisor, as torch.remainder. */
export function remainderFloat(a: number, b: number): number {
  let mod = a % b;
  if (mod !== 0 && b < 0 !== mod < 0) mod += b;
  return mod;
}

/** int32 floor division; the store wraps -2^31 / -1 to -2^31. */
export function floorDivInt(a: number, b: number): number {
  if (b === 0) throw new ValueError("floordiv", "integer division by zero", "b");
  return Math.floor(a / b);
}

/** int32 remainder whose sign follows the divisor. */
export function remainderInt(a: number, b: number): number {
  if (b === 0) throw new ValueError("remainder", "integer division by zero", "b");
  return remainderFloat(a, b);
}

function copySign(magnitude: number, signSource: number): number {
  const negative = signSource < 0 || Object.is(signSource, -0);
  return negative ? -Math.abs(magnitude) : Math.abs(magnitude);
}
