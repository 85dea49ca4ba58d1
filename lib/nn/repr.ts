// Python's spelling of values in extraRepr, so a printed model reads as PyTorch prints it.

/** A float as Python's repr writes it: 1.0, 0.1, 1e-05, 1e+20. */
export function pyFloat(value: number): string {
  if (Number.isNaN(value)) return "nan";
  if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    const [mantissa, exponent] = value.toExponential().split("e") as [string, string];
    const sign = exponent.startsWith("-") ? "-" : "+";
    const digits = exponent.replace(/^[-+]/, "").padStart(2, "0");
    return `${mantissa}e${sign}${digits}`;
  }
  return Number.isInteger(value) ? `${value}.0` : String(value);
}

export function pyBool(value: boolean): string {
  return value ? "True" : "False";
}

/** A tuple of integers: (4,) or (3, 4). */
export function pyTuple(values: readonly number[]): string {
  return values.length === 1 ? `(${values[0]},)` : `(${values.join(", ")})`;
}
