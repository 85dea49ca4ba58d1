// Special functions JavaScript's Math lacks, in double precision: erf, for the exact GELU.

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erf by its Maclaurin series; used for |x| < 2.5, where the terms stay small. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x; // (-1)^n x^(2n+1) / n!
  let sum = x;
  for (let n = 1; n < 100; n++) {
    term *= -x2 / n;
    const next = term / (2 * n + 1);
    sum += next;
    if (Math.abs(next) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * sum;
}

/**
 * erfc for x >= 2.5 by its continued fraction
 * erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + 2 / (x + ...))))),
 * evaluated from a fixed depth upward; 80 levels converge to double precision there.
 */
function erfcContinuedFraction(x: number): number {
  let tail = x;
  for (let k = 80; k >= 1; k--) tail = x + k / 2 / tail;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / tail;
}

/** The error function, accurate to about 1e-15; odd, erf(+-inf) = +-1, NaN stays NaN. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  const ax = Math.abs(x);
  if (ax < 2.5) return erfSeries(x);
  if (ax > 6) return Math.sign(x); // erfc(6) < 2.2e-17
  const value = 1 - erfcContinuedFraction(ax);
  return x < 0 ? -value : value;
}
