// Element-wise ops with broadcasting and type promotion, each with its backward.

import { record } from "../autograd/graph.js";
import { isGradEnabled } from "../autograd/grad-mode.js";
import { COMPARISON_OPS, type BinaryOp, type UnaryOp } from "../backend/backend.js";
import { backendFor } from "../backend/registry.js";
import { isFloating, promoteTypes, type DType } from "../dtype.js";
import { DTypeError, DeviceError, ShapeError, StateError, formatShape } from "../errors.js";
import { broadcastAxes, broadcastShapes, sameShape } from "../shape.js";
import { Tensor, type TensorLike } from "../tensor.js";
import { empty, full } from "./creation.js";
import { reshapeTemporary } from "./shape.js";

// ---- helpers --------------------------------------------------------------------

function checkSameDevice(op: string, a: Tensor, b: Tensor): void {
  if (a.device !== b.device) {
    throw new DeviceError(op, `expected tensors on one device, got ${a.device} and ${b.device}`, [
      a.device,
      b.device,
    ]);
  }
}

/** Turns a JS number into a 0-d tensor beside `like`, in the dtype the pair computes in. */
function operands(op: string, a: Tensor, b: TensorLike): [Tensor, Tensor] {
  if (typeof b === "number") {
    const dtype =
      !isFloating(a.dtype) && !Number.isInteger(b)
        ? "float32"
        : a.dtype === "bool"
          ? "int32"
          : a.dtype;
    return [cast(a, dtype), full([], b, { dtype, device: a.device })];
  }
  checkSameDevice(op, a, b);
  const dtype = promoteTypes(a.dtype, b.dtype);
  return [cast(a, dtype), cast(b, dtype)];
}

/** Sums `grad` over the axes along which a tensor of `shape` was broadcast. */
export function sumTo(grad: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(grad.shape, shape)) return grad;
  const axes = broadcastAxes(shape, grad.shape);
  const keptShape = grad.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = empty(keptShape, grad.dtype, grad.device);
  backendFor(grad.device).reduce("sum", out, grad, axes);
  return reshapeTemporary(out, shape);
}

/** Casts to dtype (a new tensor; the same tensor when it already has it). */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = empty(x.shape, dtype, x.device);
  backendFor(x.device).cast(out, x);
  if (isFloating(dtype) && isFloating(x.dtype)) {
    return record(out, "cast", [x], (g) => [cast(g, x.dtype)], { savesTensors: false });
  }
  return out;
}

export function clone(x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype, x.device);
  backendFor(x.device).cast(out, x);
  return record(out, "clone", [x], (g) => [g], { savesTensors: false });
}

export function checkInPlace(x: Tensor, op: string): void {
  if (x.requiresGrad && x.isLeaf && isGradEnabled()) {
    throw new StateError(
      op,
      "a leaf tensor that requires grad cannot be changed in place while grad is enabled; use " +
        "noGrad()",
    );
  }
}

/** target op= other, without recording; other broadcasts to target's shape. */
export function binaryInPlace(op: BinaryOp, target: Tensor, other: Tensor): void {
  checkSameDevice(op, target, other);
  const full = broadcastShapes(op, target.shape, other.shape);
  if (!sameShape(full, target.shape)) {
    throw new ShapeError(
      op,
      `in-place ${op} cannot broadcast ${formatShape(target.shape)} to ${formatShape(full)}`,
      [target.shape, other.shape],
    );
  }
  backendFor(target.device).binary(op, target, target, cast(other, target.dtype));
}

/**
 * target = alpha * target + beta in place, without recording: one unary call, where
 * target.copy_(target.mul(alpha).add(beta)) takes four (a counter's increment on a GPU).
 */
export function affineInPlace(target: Tensor, alpha: number, beta: number): void {
  checkInPlace(target, "affine_");
  backendFor(target.device).unary("affine", target, target, alpha, beta);
}

export function copyInPlace(target: Tensor, source: Tensor): void {
  checkInPlace(target, "copy_");
  checkSameDevice("copy_", target, source);
  if (!sameShape(target.shape, source.shape)) {
    throw new ShapeError(
      "copy_",
      `shapes ${formatShape(target.shape)} and ${formatShape(source.shape)} differ`,
      [target.shape, source.shape],
    );
  }
  backendFor(target.device).cast(target, source);
}

// ---- binary ---------------------------------------------------------------------

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(op, a.shape, b.shape);
  const dtype = COMPARISON_OPS.includes(op) ? "bool" : a.dtype;
  const out = empty(shape, dtype, a.device);
  backendFor(a.device).binary(op, out, a, b);
  return out;
}

/**
 * A float32 tensor plus, minus or times a number as one affine call, where the binary op
 * would first fill a tensor with the number (a launch on a GPU): alpha * x + beta with the
 * number rounded to float32 gives the binary op's bits (the exact result of two floats,
 * rounded once; beta -0 keeps the sign of a zero product). Null for other dtypes.
 */
function byScalar(op: "add" | "sub" | "mul", a: Tensor, other: TensorLike): Tensor | null {
  if (typeof other !== "number" || a.dtype !== "float32") return null;
  const s = Math.fround(other);
  const [alpha, beta] = op === "mul" ? [s, -0] : [1, op === "sub" ? -s : s];
  const out = empty(a.shape, a.dtype, a.device);
  backendFor(a.device).unary("affine", out, a, alpha, beta);
  return record(out, op, [a], (g) => [op === "mul" ? mul(g, s) : g], { savesTensors: false });
}

export function add(a: Tensor, other: TensorLike): Tensor {
  const scalar = byScalar("add", a, other);
  if (scalar !== null) return scalar;
  const [x, y] = operands("add", a, other);
  const out = binaryRaw("add", x, y);
  return record(out, "add", [x, y], (g) => [sumTo(g, x.shape), sumTo(g, y.shape)], {
    savesTensors: false,
  });
}

export function sub(a: Tensor, other: TensorLike): Tensor {
  const scalar = byScalar("sub", a, other);
  if (scalar !== null) return scalar;
  const [x, y] = operands("sub", a, other);
  const out = binaryRaw("sub", x, y);
  return record(
    out,
    "sub",
    [x, y],
    (g) => [sumTo(g, x.shape), y.requiresGrad ? sumTo(neg(g), y.shape) : null],
    { savesTensors: false },
  );
}

export function mul(a: Tensor, other: TensorLike): Tensor {
  const scalar = byScalar("mul", a, other);
  if (scalar !== null) return scalar;
  const [x, y] = operands("mul", a, other);
  const out = binaryRaw("mul", x, y);
  return record(out, "mul", [x, y], (g) => [
    x.requiresGrad ? sumTo(mul(g, y), x.shape) : null,
    y.requiresGrad ? sumTo(mul(g, x), y.shape) : null,
  ]);
}

export function div(a: Tensor, other: TensorLike): Tensor {
  let [x, y] = operands("div", a, other);
  if (!isFloating(x.dtype)) [x, y] = [cast(x, "float32"), cast(y, "float32")];
  const out = binaryRaw("div", x, y);
  return record(out, "div", [x, y], (g) => [
    x.requiresGrad ? sumTo(div(g, y), x.shape) : null,
    y.requiresGrad ? sumTo(neg(mul(g, div(out, y))), y.shape) : null,
  ]);
}

export function pow(a: Tensor, exponent: TensorLike): Tensor {
  if (typeof exponent === "number") return unaryOp("pow", a, exponent);
  const [x, y] = operands("pow", a, exponent);
  const out = binaryRaw("pow", x, y);
  return record(out, "pow", [x, y], (g) => [
    x.requiresGrad ? sumTo(mul(g, mul(y, pow(x, sub(y, 1)))), x.shape) : null,
    y.requiresGrad ? sumTo(mul(g, mul(out, log(x))), y.shape) : null,
  ]);
}

function extremum(op: "maximum" | "minimum", a: Tensor, other: TensorLike): Tensor {
  const [x, y] = operands(op, a, other);
  const out = binaryRaw(op, x, y);
  // Ties split the gradient evenly, as PyTorch does.
  return record(out, op, [x, y], (g) => {
    const wins = (p: Tensor, q: Tensor) =>
      add(
        cast(binaryRaw(op === "maximum" ? "gt" : "lt", p, q), g.dtype),
        mul(cast(binaryRaw("eq", p, q), g.dtype), 0.5),
      );
    return [
      x.requiresGrad ? sumTo(mul(g, wins(x, y)), x.shape) : null,
      y.requiresGrad ? sumTo(mul(g, wins(y, x)), y.shape) : null,
    ];
  });
}

export function maximum(a: Tensor, other: TensorLike): Tensor {
  return extremum("maximum", a, other);
}

export function minimum(a: Tensor, other: TensorLike): Tensor {
  return extremum("minimum", a, other);
}

export function compare(
  op: "eq" | "ne" | "lt" | "le" | "gt" | "ge",
  a: Tensor,
  other: TensorLike,
): Tensor {
  const [x, y] = operands(op, a, other);
  return binaryRaw(op, x, y);
}

/** cond ? a : b with broadcasting; gradients flow to the chosen side. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  checkSameDevice("where", cond, a);
  checkSameDevice("where", a, b);
  const dtype = promoteTypes(a.dtype, b.dtype);
  const [x, y] = [cast(a, dtype), cast(b, dtype)];
  const c = cast(cond, "bool");
  const shape = broadcastShapes("where", c.shape, broadcastShapes("where", x.shape, y.shape));
  const out = empty(shape, dtype, x.device);
  backendFor(x.device).where(out, c, x, y);
  return record(out, "where", [x, y], (g) => {
    const zero = full([], 0, { dtype: g.dtype, device: g.device });
    return [
      x.requiresGrad ? sumTo(where(c, g, zero), x.shape) : null,
      y.requiresGrad ? sumTo(where(c, zero, g), y.shape) : null,
    ];
  });
}

// ---- unary ----------------------------------------------------------------------

const FLOAT_ONLY: readonly UnaryOp[] = [
  "exp",
  "log",
  "sqrt",
  "relu",
  "sigmoid",
  "tanh",
  "reciprocal",
  "sin",
  "cos",
  "floor",
  "ceil",
  "round",
  "pow",
  "clamp",
  "erf",
  "gelu",
  "gelu_tanh",
  "silu",
];

/** Unary ops whose gradient reads neither x nor the output (unaryBackward). */
const BACKWARD_WITHOUT_VALUES: readonly UnaryOp[] = [
  "neg",
  "affine",
  "sign",
  "floor",
  "ceil",
  "round",
];

function unaryRaw(op: UnaryOp, x: Tensor, alpha = 0, beta = 0): Tensor {
  const out = empty(x.shape, x.dtype, x.device);
  backendFor(x.device).unary(op, out, x, alpha, beta);
  return out;
}

function unaryBackward(
  op: UnaryOp,
  x: Tensor,
  out: Tensor,
  g: Tensor,
  alpha: number,
  beta: number,
): Tensor | null {
  switch (op) {
    case "neg":
      return neg(g);
    case "exp":
      return mul(g, out);
    case "log":
      return div(g, x);
    case "sqrt":
      return div(g, mul(out, 2));
    case "abs":
      return mul(g, unaryRaw("sign", x));
    case "square":
      return mul(g, mul(x, 2));
    case "relu":
      return binaryRaw("relu_backward", g, x);
    case "sigmoid":
      return binaryRaw("sigmoid_backward", g, out);
    case "tanh":
      return binaryRaw("tanh_backward", g, out);
    case "reciprocal":
      return neg(mul(g, mul(out, out)));
    case "sin":
      return mul(g, unaryRaw("cos", x));
    case "cos":
      return neg(mul(g, unaryRaw("sin", x)));
    case "affine":
      return mul(g, alpha);
    case "pow":
      return mul(g, mul(unaryRaw("pow", x, alpha - 1), alpha));
    case "clamp":
      return mul(
        g,
        cast(
          binaryRaw(
            "mul",
            cast(compare("ge", x, alpha), x.dtype),
            cast(compare("le", x, beta), x.dtype),
          ),
          g.dtype,
        ),
      );
    case "gelu":
      return binaryRaw("gelu_backward", g, x);
    case "gelu_tanh":
      return binaryRaw("gelu_tanh_backward", g, x);
    case "silu":
      return binaryRaw("silu_backward", g, x);
    case "erf": // 2 / sqrt(pi) * exp(-x^2)
      return mul(g, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI)));
    default:
      return null; // sign, floor, ceil, round: zero gradient almost everywhere
  }
}

export function unaryOp(op: UnaryOp, a: Tensor, alpha = 0, beta = 0): Tensor {
  let x = a;
  if (FLOAT_ONLY.includes(op) && !isFloating(x.dtype)) {
    if (x.dtype === "bool" || x.dtype === "int32" || x.dtype === "uint8" || x.dtype === "int8")
      x = cast(x, "float32");
  }
  if (x.dtype === "bool") x = cast(x, "int32");
  const out = unaryRaw(op, x, alpha, beta);
  return record(
    out,
    op,
    [x],
    (g) => [
      unaryBackward(op, x, out, g, alpha, beta) ??
        full(x.shape, 0, { dtype: x.dtype, device: x.device }),
    ],
    { savesTensors: !BACKWARD_WITHOUT_VALUES.includes(op) },
  );
}

export const neg = (x: Tensor) => unaryOp("neg", x);
export const exp = (x: Tensor) => unaryOp("exp", x);
export const log = (x: Tensor) => unaryOp("log", x);
export const sqrt = (x: Tensor) => unaryOp("sqrt", x);
export const abs = (x: Tensor) => unaryOp("abs", x);
export const square = (x: Tensor) => unaryOp("square", x);
export const relu = (x: Tensor) => unaryOp("relu", x);
export const sigmoid = (x: Tensor) => unaryOp("sigmoid", x);
export const tanh = (x: Tensor) => unaryOp("tanh", x);
export const sin = (x: Tensor) => unaryOp("sin", x);
export const cos = (x: Tensor) => unaryOp("cos", x);
export const sign = (x: Tensor) => unaryOp("sign", x);
export const reciprocal = (x: Tensor) => unaryOp("reciprocal", x);
export const clamp = (x: Tensor, min: number, max: number) => unaryOp("clamp", x, min, max);
export const erf = (x: Tensor) => unaryOp("erf", x);

export function checkFloatingInput(op: string, x: Tensor): void {
  if (!isFloating(x.dtype))
    throw new DTypeError(op, `expected a float32 or float64 tensor, got ${x.dtype}`, [x.dtype]);
}
