// Parameter initialisation, in place and seeded by the global generator. The defaults
// of Linear and Conv2d follow PyTorch: kaimingUniform with a = sqrt(5) for the weight
// (which gives U(-1/sqrt(fanIn), 1/sqrt(fanIn))) and the same bound for the bias.

import { noGrad } from "../autograd/grad-mode.js";
import { backendFor } from "../backend/registry.js";
import { ShapeError, ValueError, formatShape, formatValue } from "../errors.js";
import { defaultGenerator } from "../random.js";
import { empty } from "../ops/creation.js";
import { fromTypedArray, type Tensor } from "../tensor.js";

export function calculateFanInAndFanOut(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) {
    throw new ShapeError(
      "init",
      `fan in and fan out need at least 2 dimensions, got ${formatShape(t.shape)}`,
      [t.shape],
    );
  }
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: t.shape[1]! * receptive, fanOut: t.shape[0]! * receptive };
}

export function uniform_(t: Tensor, low = 0, high = 1): Tensor {
  if (!(low <= high))
    throw new ValueError("uniform_", `low (${low}) must not exceed high (${high})`, "low");
  noGrad(() => backendFor(t.device).randUniform(t, defaultGenerator.next(t.numel), low, high));
  return t;
}

export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  if (typeof std !== "number" || !(std >= 0))
    throw new ValueError("normal_", `std must be >= 0, got ${formatValue(std)}`, "std");
  noGrad(() => backendFor(t.device).randNormal(t, defaultGenerator.next(t.numel), mean, std));
  return t;
}

export function constant_(t: Tensor, value: number): Tensor {
  noGrad(() => backendFor(t.device).fill(t, value));
  return t;
}

export const zeros_ = (t: Tensor): Tensor => constant_(t, 0);
export const ones_ = (t: Tensor): Tensor => constant_(t, 1);

export type Nonlinearity = "linear" | "conv2d" | "sigmoid" | "tanh" | "relu" | "leaky_relu";

/** PyTorch's recommended gain for a nonlinearity. */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case "tanh":
      return 5 / 3;
    case "relu":
      return Math.SQRT2;
    case "leaky_relu": {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    default:
      return 1;
  }
}

export interface KaimingOptions {
  a?: number;
  mode?: "fanIn" | "fanOut";
  nonlinearity?: Nonlinearity;
}

export function kaimingUniform_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  const fan = options.mode === "fanOut" ? fanOut : fanIn;
  const gain = calculateGain(options.nonlinearity ?? "leaky_relu", options.a ?? 0);
  const bound = gain * Math.sqrt(3 / fan);
  return uniform_(t, -bound, bound);
}

export function kaimingNormal_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  const fan = options.mode === "fanOut" ? fanOut : fanIn;
  const gain = calculateGain(options.nonlinearity ?? "leaky_relu", options.a ?? 0);
  return normal_(t, 0, gain / Math.sqrt(fan));
}

export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound);
}

export function xavierNormal_(t: Tensor, gain = 1): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)));
}

/** PyTorch's default for Linear and Conv weights and biases. */
export function defaultLayerInit(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias !== null) {
    const { fanIn } = calculateFanInAndFanOut(weight);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, -bound, bound);
  }
}

/**
 * Orthogonal columns by modified Gram-Schmidt (in double, on the host): Q of A = QR with
 * R's diagonal positive, the unique factor PyTorch's sign-corrected QR also returns.
 * a is [rows][cols] with rows >= cols.
 */
function orthonormalColumns(a: number[][]): number[][] {
  const rows = a.length;
  const cols = a[0]!.length;
  const q = a.map((row) => [...row]);
  for (let j = 0; j < cols; j++) {
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < rows; i++) dot += q[i]![k]! * q[i]![j]!;
      for (let i = 0; i < rows; i++) q[i]![j]! -= dot * q[i]![k]!;
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += q[i]![j]! ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < rows; i++) q[i]![j] = norm > 0 ? q[i]![j]! / norm : 0;
  }
  return q;
}

/**
 * Fills t (2 or more dims, flattened to [shape[0], rest]) with a (semi-)orthogonal matrix
 * times gain: the Q of a standard normal matrix, as PyTorch's orthogonal_. Rows are
 * orthonormal when there are fewer rows than columns, columns otherwise.
 */
export function orthogonal_(t: Tensor, gain = 1): Tensor {
  if (t.ndim < 2)
    throw new ShapeError(
      "orthogonal_",
      `only tensors with 2 or more dimensions are supported, got ${formatShape(t.shape)}`,
      [t.shape],
    );
  const rows = t.shape[0]!;
  const cols = t.numel / Math.max(1, rows);
  if (t.numel === 0) return t;
  const normal = normal_(empty(t.shape, t.dtype, t.device)).dataSync();
  const tall = rows >= cols;
  const [m, n] = tall ? [rows, cols] : [cols, rows];
  // The normal draw as [rows, cols], transposed to [cols, rows] when wide.
  const a = Array.from({ length: m }, (_, i) =>
    Array.from({ length: n }, (_, j) => normal[tall ? i * cols + j : j * cols + i]!),
  );
  const q = orthonormalColumns(a);
  const values = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) values[i * cols + j] = gain * (tall ? q[i]![j]! : q[j]![i]!);
  noGrad(() => t.copy_(fromTypedArray(values, t.shape, { device: t.device })));
  return t;
}
