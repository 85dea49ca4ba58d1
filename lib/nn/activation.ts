// Activations as functions (re-exported by the functional layer, F) and as modules, with
// PyTorch's formulas: GELU (exact and tanh forms) and SiLU are fused element-wise ops with
// fused gradients; leaky ReLU is a select.

import { ValueError, formatValue } from "../errors.js";
import { checkFloatingInput, sigmoid, tanh, unaryOp, where } from "../ops/elementwise.js";
import type { Tensor } from "../tensor.js";
import { logSoftmax, softmax } from "./functional.js";
import { Module } from "./module.js";
import { pyFloat } from "./repr.js";

/** x for x > 0, negativeSlope * x otherwise (NaN stays NaN). */
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  checkFloatingInput("leakyRelu", x);
  if (typeof negativeSlope !== "number" || !Number.isFinite(negativeSlope))
    throw new ValueError(
      "leakyRelu",
      `negativeSlope must be a finite number, got ${formatValue(negativeSlope)}`,
      "negativeSlope",
    );
  return where(x.gt(0), x, x.mul(negativeSlope));
}

export type GeluApproximate = "none" | "tanh";

/**
 * GELU: x * Phi(x) with Phi the standard normal CDF, 0.5 * (1 + erf(x / sqrt(2))); with
 * approximate "tanh", 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))). One fused
 * element-wise op each way (forward and gradient).
 */
export function gelu(x: Tensor, approximate: GeluApproximate = "none"): Tensor {
  checkFloatingInput("gelu", x);
  if (approximate === "none") return unaryOp("gelu", x);
  if (approximate === "tanh") return unaryOp("gelu_tanh", x);
  throw new ValueError(
    "gelu",
    `approximate must be "none" or "tanh", got ${JSON.stringify(approximate)}`,
    "approximate",
  );
}

/** x * sigmoid(x), also known as swish. */
export function silu(x: Tensor): Tensor {
  checkFloatingInput("silu", x);
  return unaryOp("silu", x);
}

// ---- modules ------------------------------------------------------------------------

export class LeakyReLU extends Module {
  readonly negativeSlope: number;

  constructor(negativeSlope = 0.01) {
    super();
    if (typeof negativeSlope !== "number" || !Number.isFinite(negativeSlope))
      throw new ValueError(
        "LeakyReLU",
        `negativeSlope must be a finite number, got ${formatValue(negativeSlope)}`,
        "negativeSlope",
      );
    this.negativeSlope = negativeSlope;
  }

  forward(x: Tensor): Tensor {
    return leakyRelu(x, this.negativeSlope);
  }

  override extraRepr(): string {
    return `negative_slope=${pyFloat(this.negativeSlope)}`;
  }
}

export class GELU extends Module {
  readonly approximate: GeluApproximate;

  constructor(options: { approximate?: GeluApproximate } = {}) {
    super();
    const approximate = options.approximate ?? "none";
    if (approximate !== "none" && approximate !== "tanh")
      throw new ValueError(
        "GELU",
        `approximate must be "none" or "tanh", got ${JSON.stringify(approximate)}`,
        "approximate",
      );
    this.approximate = approximate;
  }

  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }

  override extraRepr(): string {
    return `approximate='${this.approximate}'`;
  }
}

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return silu(x);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return tanh(x);
  }
}

function checkDim(op: string, dim: unknown): number {
  if (typeof dim !== "number" || !Number.isInteger(dim))
    throw new ValueError(op, `dim must be an integer, got ${formatValue(dim)}`, "dim");
  return dim;
}

/** Softmax along `dim` (required: PyTorch's implicit choice of dim is deprecated). */
export class Softmax extends Module {
  readonly dim: number;

  constructor(dim: number) {
    super();
    this.dim = checkDim("Softmax", dim);
  }

  forward(x: Tensor): Tensor {
    return softmax(x, this.dim);
  }

  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}

export class LogSoftmax extends Module {
  readonly dim: number;

  constructor(dim: number) {
    super();
    this.dim = checkDim("LogSoftmax", dim);
  }

  forward(x: Tensor): Tensor {
    return logSoftmax(x, this.dim);
  }

  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}
