// Parameter initialisation, in place and seeded by the global generator. The defaults
// of Linear and Conv2d follow PyTorch: kaimingUniform with a = sqrt(5) for the weight
// (which gives U(-1/sqrt(fanIn), 1/sqrt(fanIn))) and the same bound for the bias.

import { noGrad } from "../autograd/grad-mode.js";
import { backendFor } from "../backend/registry.js";
import { ShapeError, ValueError, formatShape } from "../errors.js";
import { defaultGenerator } from "../random.js";
import type { Tensor } from "../tensor.js";

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
  if (!(std >= 0)) throw new ValueError("normal_", `std must be >= 0, got ${std}`, "std");
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
