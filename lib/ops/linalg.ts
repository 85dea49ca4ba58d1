// Matrix products: matmul with PyTorch's rules for 1-D and batched operands, and the
// fused linear layer (x @ W^T + b) that reads W transposed instead of copying it.

import { record } from "../autograd/graph.js";
import { backendFor } from "../backend/registry.js";
import { DTypeError, DeviceError, ShapeError, formatShape } from "../errors.js";
import { broadcastShapes, sameShape, sizeOf } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { empty } from "./creation.js";
import { sumTo } from "./elementwise.js";
import { expand } from "./shape.js";

function checkOperands(op: string, a: Tensor, b: Tensor): void {
  if (a.device !== b.device) {
    throw new DeviceError(op, `expected tensors on one device, got ${a.device} and ${b.device}`, [
      a.device,
      b.device,
    ]);
  }
  if (a.dtype !== b.dtype || (a.dtype !== "float32" && a.dtype !== "float64")) {
    throw new DTypeError(
      op,
      `expected two float32 or two float64 tensors, got ${a.dtype} and ${b.dtype}`,
      [a.dtype, b.dtype],
    );
  }
}

/**
 * out = op(a) @ op(b); a and b are [rows, cols] (batch 1) or [batch, rows, cols] with batch 1
 * or the common batch, as the backends take them. out is [m, n] when both are 2-D, else
 * [batch, m, n].
 */
function batchedProduct(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  // Indexed rather than sliced and destructured: this runs for every product and its
  // gradients, and each temporary array is a measurable part of a small one's cost.
  const m = a.shape[a.ndim - (transA ? 1 : 2)]!;
  const n = b.shape[b.ndim - (transB ? 2 : 1)]!;
  const shape = a.ndim === 2 && b.ndim === 2 ? [m, n] : [Math.max(batchOf(a), batchOf(b)), m, n];
  const out = empty(shape, a.dtype, a.device);
  backendFor(a.device).matmul(out, a, b, { transA, transB, alpha: 1, beta: 0 });
  return out;
}

function batchOf(x: Tensor): number {
  return x.ndim === 3 ? x.shape[0]! : 1;
}

function innerMismatch(a: Tensor, b: Tensor): ShapeError {
  return new ShapeError(
    "matmul",
    `shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} cannot be multiplied ` +
      `(inner dimensions ${a.shape[a.ndim - 1]} and ${b.shape[Math.max(0, b.ndim - 2)]} differ)`,
    [a.shape, b.shape],
  );
}

/** Matrix product with broadcasting batch dims; 1-D operands are promoted and squeezed. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkOperands("matmul", a, b);
  if (a.ndim === 0 || b.ndim === 0) {
    throw new ShapeError(
      "matmul",
      `both operands need at least one dimension, got ${formatShape(a.shape)} and ` +
        `${formatShape(b.shape)}`,
      [a.shape, b.shape],
    );
  }
  if (a.ndim === 2 && b.ndim === 2) {
    // Two matrices (the usual case) skip the batch bookkeeping below, which would hand them
    // to the backend unchanged and return the product as it is.
    if (a.shape[1] !== b.shape[0]) throw innerMismatch(a, b);
    return recordProduct(a, b);
  }
  const a2 = a.ndim === 1 ? a.reshape([1, a.shape[0]!]) : a;
  const b2 = b.ndim === 1 ? b.reshape([b.shape[0]!, 1]) : b;
  if (a2.shape[a2.ndim - 1] !== b2.shape[b2.ndim - 2]) throw innerMismatch(a, b);
  const m = a2.shape[a2.ndim - 2]!;
  const n = b2.shape[b2.ndim - 1]!;
  const batch = broadcastShapes("matmul", a2.shape.slice(0, -2), b2.shape.slice(0, -2));
  const out = matmulBroadcast(a2, b2, batch);
  const shape = [...batch, ...(a.ndim === 1 ? [] : [m]), ...(b.ndim === 1 ? [] : [n])];
  // The product is a fresh tensor, so it is returned itself where it has the shape already:
  // each view is one more tensor to track and free, which is most of a small matmul's cost.
  return sameShape(out.shape, shape) ? out : out.reshape(shape);
}

/** x as the backends take an operand: a matrix stays 2-D (batch 1), no view needed. */
function asOperand(x: Tensor, batch: readonly number[]): Tensor {
  const own = x.shape.slice(0, -2);
  const rows = x.shape[x.ndim - 2]!;
  const cols = x.shape[x.ndim - 1]!;
  if (own.length === 0) return x;
  if (sizeOf(own) === 1) return x.reshape([1, rows, cols]);
  const full = expand(x, [...batch, rows, cols]);
  return full.reshape([sizeOf(batch), rows, cols]);
}

function matmulBroadcast(a: Tensor, b: Tensor, batch: readonly number[]): Tensor {
  return recordProduct(asOperand(a, batch), asOperand(b, batch));
}

/** a3 @ b3 for operands as the backends take them, with its backward recorded. */
function recordProduct(a3: Tensor, b3: Tensor): Tensor {
  const out = batchedProduct(a3, b3, false, false);
  return record(out, "matmul", [a3, b3], (g) => [
    a3.requiresGrad ? sumTo3(batchedProduct(g, b3, false, true), a3.shape) : null,
    b3.requiresGrad ? sumTo3(batchedProduct(a3, g, true, false), b3.shape) : null,
  ]);
}

/** Sums a [batch, r, c] gradient down to a [1, r, c] operand. */
function sumTo3(grad: Tensor, shape: readonly number[]): Tensor {
  return sumTo(grad, shape);
}

/** x [..., in] @ weight[out, in]^T + bias[out]. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  checkOperands("linear", x, weight);
  if (weight.ndim !== 2 || x.ndim < 1 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new ShapeError(
      "linear",
      `input ${formatShape(x.shape)} and weight ${formatShape(weight.shape)} do not fit: ` +
        `the input's last dimension must equal the weight's in_features (dimension 1)`,
      [x.shape, weight.shape],
    );
  }
  const outFeatures = weight.shape[0]!;
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== outFeatures)) {
    throw new ShapeError("linear", `bias ${formatShape(bias.shape)} must be [${outFeatures}]`, [
      bias.shape,
      weight.shape,
    ]);
  }
  // A 2-D input and the weight go to the backend as they are: every view is one more tensor
  // to track and free, a large part of a small layer's cost.
  const rows = sizeOf(x.shape.slice(0, -1));
  const x2 = x.ndim === 2 ? x : x.reshape([rows, weight.shape[1]!]);
  const out = empty([rows, outFeatures], x.dtype, x.device);
  const backend = backendFor(x.device);
  if (bias !== null) backend.expand(out, bias);
  backend.matmul(out, x2, weight, {
    transA: false,
    transB: true,
    alpha: 1,
    beta: bias === null ? 0 : 1,
  });
  const inputs = bias === null ? [x2, weight] : [x2, weight, bias];
  const recorded = record(out, "linear", inputs, (g) => [
    x2.requiresGrad ? batchedProduct(g, weight, false, false) : null,
    weight.requiresGrad ? batchedProduct(g, x2, true, false) : null,
    bias !== null && bias.requiresGrad ? sumTo(g, [outFeatures]) : null,
  ]);
  return x.ndim === 2 ? recorded : recorded.reshape([...x.shape.slice(0, -1), outFeatures]);
}
