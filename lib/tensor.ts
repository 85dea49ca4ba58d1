// The Tensor: shape, dtype, device and a storage owned by the device's backend, plus
// the autograd fields. Its methods are thin doors into the differentiable ops of
// lib/ops/, where every op checks its arguments and records its backward.

import { runBackward, type BackwardOptions, type GradNode } from "./autograd/graph.js";
import type { RawTensor, Storage } from "./backend/backend.js";
import { backendFor, getDefaultDevice, parseDevice, type Device } from "./backend/registry.js";
import { dtypeOfArray, isDType, type DType, type TypedArray } from "./dtype.js";
import { DTypeError, StateError, ValueError, formatShape, formatValue } from "./errors.js";
import { trackTensor, untrackTensor } from "./memory.js";
import * as el from "./ops/elementwise.js";
import * as red from "./ops/reduce.js";
import * as sh from "./ops/shape.js";
import * as slicing from "./ops/slicing.js";
import * as create from "./ops/creation.js";
import { matmul } from "./ops/linalg.js";
import { gather, scatterAdd } from "./ops/indexing.js";
import { checkShape, sameShape, sizeOf } from "./shape.js";

export type { Device } from "./backend/registry.js";
export type NestedArray = number | boolean | NestedArray[];
export type TensorLike = Tensor | number;

export interface TensorOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

/** How many live tensors use each storage; the last dispose hands it back to the backend. */
const storageUsers = new WeakMap<object, number>();
/** Numbers tensors in the order they were made (Tensor.serial). */
let tensorsMade = 0;

/** The serial the next tensor made will get: those made from now on have one at least this. */
export function nextTensorSerial(): number {
  return tensorsMade;
}

/** Whether another live tensor (a view) uses t's storage too. */
export function sharesStorage(t: Tensor): boolean {
  return (storageUsers.get(t.storage) ?? 0) > 1;
}

export class Tensor implements RawTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  private deviceRef: Device;
  /** Gradient accumulated by backward(); null until then. */
  grad: Tensor | null = null;
  /** The order this tensor was made in, among all tensors (see nextTensorSerial). */
  readonly serial: number;
  private storageRef: Storage | null;
  private gradNode: GradNode | null = null;
  private gradNodeOutput = 0;
  private needsGrad = false;

  /** Wraps storage the backend allocated; use the creation functions instead. */
  constructor(storage: Storage, shape: readonly number[], dtype: DType, device: Device) {
    this.storageRef = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.deviceRef = device;
    this.serial = tensorsMade++;
    storageUsers.set(storage, (storageUsers.get(storage) ?? 0) + 1);
    trackTensor(this);
  }

  get device(): Device {
    return this.deviceRef;
  }

  get storage(): Storage {
    if (this.storageRef === null) {
      throw new StateError(
        "tensor",
        `this tensor of shape ${formatShape(this.shape)} was disposed`,
      );
    }
    return this.storageRef;
  }

  get isDisposed(): boolean {
    return this.storageRef === null;
  }

  get numel(): number {
    return sizeOf(this.shape);
  }

  get ndim(): number {
    return this.shape.length;
  }

  size(dim?: number): number | readonly number[] {
    if (dim === undefined) return this.shape;
    const d = dim < 0 ? dim + this.ndim : dim;
    if (d < 0 || d >= this.ndim) {
      throw new ValueError("size", `dim ${dim} is out of range for rank ${this.ndim}`, "dim");
    }
    return this.shape[d]!;
  }

  // ---- lifetime -----------------------------------------------------------------

  /**
   * Releases this tensor's storage now (views that share it keep it alive); the backend
   * may reuse the memory, so a disposed tensor must not be read again. Idempotent.
   */
  dispose(): void {
    if (this.storageRef === null) return;
    const storage = this.storageRef;
    this.storageRef = null;
    const users = (storageUsers.get(storage) ?? 1) - 1;
    if (users > 0) storageUsers.set(storage, users);
    else {
      storageUsers.delete(storage);
      backendFor(this.device).release?.(storage);
    }
    this.gradNode = null;
    untrackTensor(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * Takes `other`'s storage and device as this tensor's, in place, and disposes `other`
   * without freeing it; this tensor's old storage is released as dispose() would (views of it
   * keep it). Module.to's move, which keeps every parameter the same object as PyTorch's
   * module.to() does. `other` must have this tensor's shape and dtype, and this must be a
   * leaf (a graph node's output cannot change device under it).
   */
  adoptStorage(other: Tensor): void {
    if (
      this.gradNode !== null ||
      !sameShape(other.shape, this.shape) ||
      other.dtype !== this.dtype
    ) {
      throw new StateError("adoptStorage", "expected a leaf and a tensor of its shape and dtype");
    }
    const [old, oldDevice] = [this.storage, this.deviceRef];
    this.storageRef = other.storage;
    this.deviceRef = other.device;
    other.storageRef = null; // its one use of the storage is now this tensor's
    other.gradNode = null;
    untrackTensor(other);
    const users = (storageUsers.get(old) ?? 1) - 1;
    if (users > 0) storageUsers.set(old, users);
    else {
      storageUsers.delete(old);
      backendFor(oldDevice).release?.(old);
    }
  }

  // ---- autograd -----------------------------------------------------------------

  get requiresGrad(): boolean {
    return this.needsGrad;
  }

  set requiresGrad(value: boolean) {
    this.requiresGrad_(value);
  }

  /** Marks a leaf as needing gradients; returns this. */
  requiresGrad_(value = true): this {
    if (this.gradNode !== null && !value) {
      throw new StateError(
        "requiresGrad",
        "requiresGrad cannot be turned off on a non-leaf tensor; use detach()",
      );
    }
    if (value && this.dtype !== "float32" && this.dtype !== "float64") {
      throw new DTypeError(
        "requiresGrad",
        `only floating tensors can require grad, got ${this.dtype}`,
        [this.dtype],
      );
    }
    this.needsGrad = value;
    return this;
  }

  get gradFn(): GradNode | null {
    return this.gradNode;
  }

  get isLeaf(): boolean {
    return this.gradNode === null;
  }

  /** Which of gradFn's outputs this tensor is (0 for an op with one output). */
  get outputIndex(): number {
    return this.gradNodeOutput;
  }

  /** Used by autograd.record: this tensor is output `output` of a recorded op. */
  setGradFn(node: GradNode, output = 0): void {
    this.gradNode = node;
    this.gradNodeOutput = output;
    this.needsGrad = true;
  }

  /** Used by the backward pass and optimizers. */
  setGrad(grad: Tensor | null): void {
    this.grad = grad;
  }

  backward(gradient?: Tensor, options: Omit<BackwardOptions, "gradient"> = {}): void {
    if (gradient !== undefined && !(gradient instanceof Tensor)) {
      // backward({ retainGraph: true }) would otherwise fail deep in the pass.
      const message =
        "the first argument is the gradient (a Tensor or undefined); options go second, " +
        "as backward(undefined, { retainGraph: true })";
      throw new ValueError("backward", message, "gradient");
    }
    runBackward(this, gradient === undefined ? options : { ...options, gradient });
  }

  /** A tensor sharing storage with this one, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.dtype, this.device);
  }

  /** Sets .grad to null (the default) or to zeros. */
  zeroGrad(setToNone = true): void {
    if (this.grad === null) return;
    if (setToNone) {
      this.grad.dispose();
      this.grad = null;
    } else {
      this.grad.fill_(0);
    }
  }

  // ---- reading values -------------------------------------------------------------

  /** A copy of the values, row-major. */
  dataSync(): TypedArray {
    return backendFor(this.device).read(this);
  }

  /** A copy of the values; waits off the JS thread on devices that queue work. */
  async data(): Promise<TypedArray> {
    const backend = backendFor(this.device);
    return backend.readAsync === undefined ? backend.read(this) : backend.readAsync(this);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) {
      throw new ValueError(
        "item",
        `only one-element tensors can be converted, got shape ${formatShape(this.shape)}`,
      );
    }
    return this.dataSync()[0]!;
  }

  /** Nested arrays of numbers, like PyTorch's tolist(). */
  toArray(): NestedArray {
    const values = Array.from(this.dataSync() as ArrayLike<number>);
    if (this.ndim === 0) return values[0]!;
    return nest(values, this.shape, 0, 0).value;
  }

  toString(): string {
    return `tensor(shape=${formatShape(this.shape)}, dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- conversions ----------------------------------------------------------------

  to(target: string | DType): Tensor {
    if (isDType(target)) return el.cast(this, target);
    return sh.toDevice(this, parseDevice(target));
  }

  float(): Tensor {
    return el.cast(this, "float32");
  }

  int(): Tensor {
    return el.cast(this, "int32");
  }

  clone(): Tensor {
    return el.clone(this);
  }

  onesLike(): Tensor {
    return create.full(this.shape, 1, { dtype: this.dtype, device: this.device });
  }

  zerosLike(): Tensor {
    return create.full(this.shape, 0, { dtype: this.dtype, device: this.device });
  }

  // ---- in place (no graph; for optimizers and initialisation) ---------------------

  fill_(value: number): this {
    el.checkInPlace(this, "fill_");
    backendFor(this.device).fill(this, value);
    return this;
  }

  /** this += other (other broadcast to this shape), without recording. */
  addInPlace(other: Tensor): this {
    el.binaryInPlace("add", this, other);
    return this;
  }

  /** Copies other's values into this tensor (same shape; dtype converted). */
  copy_(other: Tensor): this {
    el.copyInPlace(this, other);
    return this;
  }

  // ---- element-wise ---------------------------------------------------------------

  add(other: TensorLike): Tensor {
    return el.add(this, other);
  }
  sub(other: TensorLike): Tensor {
    return el.sub(this, other);
  }
  mul(other: TensorLike): Tensor {
    return el.mul(this, other);
  }
  div(other: TensorLike): Tensor {
    return el.div(this, other);
  }
  pow(exponent: TensorLike): Tensor {
    return el.pow(this, exponent);
  }
  maximum(other: TensorLike): Tensor {
    return el.maximum(this, other);
  }
  minimum(other: TensorLike): Tensor {
    return el.minimum(this, other);
  }
  neg(): Tensor {
    return el.neg(this);
  }
  exp(): Tensor {
    return el.exp(this);
  }
  log(): Tensor {
    return el.log(this);
  }
  sqrt(): Tensor {
    return el.sqrt(this);
  }
  abs(): Tensor {
    return el.abs(this);
  }
  square(): Tensor {
    return el.square(this);
  }
  relu(): Tensor {
    return el.relu(this);
  }
  sigmoid(): Tensor {
    return el.sigmoid(this);
  }
  tanh(): Tensor {
    return el.tanh(this);
  }
  clamp(min: number, max: number): Tensor {
    return el.clamp(this, min, max);
  }
  eq(other: TensorLike): Tensor {
    return el.compare("eq", this, other);
  }
  ne(other: TensorLike): Tensor {
    return el.compare("ne", this, other);
  }
  lt(other: TensorLike): Tensor {
    return el.compare("lt", this, other);
  }
  le(other: TensorLike): Tensor {
    return el.compare("le", this, other);
  }
  gt(other: TensorLike): Tensor {
    return el.compare("gt", this, other);
  }
  ge(other: TensorLike): Tensor {
    return el.compare("ge", this, other);
  }

  // ---- reductions -----------------------------------------------------------------

  sum(dim?: number | readonly number[], keepdim = false): Tensor {
    return red.sum(this, dim, keepdim);
  }
  mean(dim?: number | readonly number[], keepdim = false): Tensor {
    return red.mean(this, dim, keepdim);
  }
  max(dim?: number | readonly number[], keepdim = false): Tensor {
    return red.max(this, dim, keepdim);
  }
  min(dim?: number | readonly number[], keepdim = false): Tensor {
    return red.min(this, dim, keepdim);
  }
  /** The 2-norm over dims (all by default). */
  norm(dim?: number | readonly number[], keepdim = false): Tensor {
    return red.norm(this, dim, keepdim);
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return red.argReduce("argmax", this, dim, keepdim);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return red.argReduce("argmin", this, dim, keepdim);
  }

  // ---- shape ----------------------------------------------------------------------

  reshape(...shape: number[] | [readonly number[]]): Tensor {
    return sh.reshape(this, flattenArgs(shape));
  }
  view(...shape: number[] | [readonly number[]]): Tensor {
    return sh.reshape(this, flattenArgs(shape));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return sh.flatten(this, startDim, endDim);
  }
  squeeze(dim?: number): Tensor {
    return sh.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return sh.unsqueeze(this, dim);
  }
  permute(...dims: number[] | [readonly number[]]): Tensor {
    return sh.permute(this, flattenArgs(dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return sh.transpose(this, dim0, dim1);
  }
  /** this[start:end:step] along dim, as a Python slice (a copy). */
  slice(dim: number, start = 0, end?: number, step = 1): Tensor {
    return slicing.slice(this, dim, start, end, step);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return slicing.narrow(this, dim, start, length);
  }
  /** Entry `index` of dim, with the dim removed: `h.select(0, -1)` is PyTorch's h[-1]. */
  select(dim: number, index: number): Tensor {
    return slicing.select(this, dim, index);
  }
  split(sizes: number | readonly number[], dim = 0): Tensor[] {
    return slicing.split(this, sizes, dim);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return slicing.chunk(this, chunks, dim);
  }
  /** Transpose of a 2-D tensor. */
  get T(): Tensor {
    return sh.transpose(this, 0, 1);
  }
  expand(...shape: number[] | [readonly number[]]): Tensor {
    return sh.expand(this, flattenArgs(shape));
  }
  matmul(other: Tensor): Tensor {
    return matmul(this, other);
  }

  // ---- indexing -------------------------------------------------------------------

  /** Values at int32 `index` along dim (PyTorch's gather); out has index's shape. */
  gather(dim: number, index: Tensor): Tensor {
    return gather(this, dim, index);
  }

  /** A copy with src added at int32 `index` along dim. */
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return scatterAdd(this, dim, index, src);
  }
}

function flattenArgs(args: number[] | [readonly number[]]): number[] {
  const first = args[0];
  return Array.isArray(first) ? [...(first as readonly number[])] : (args as number[]);
}

function nest(
  values: number[],
  shape: readonly number[],
  dim: number,
  start: number,
): { value: NestedArray } {
  const n = shape[dim]!;
  if (dim === shape.length - 1) return { value: values.slice(start, start + n) };
  const stride = sizeOf(shape.slice(dim + 1));
  const out: NestedArray[] = [];
  for (let i = 0; i < n; i++) out.push(nest(values, shape, dim + 1, start + i * stride).value);
  return { value: out };
}

// ---- creation ---------------------------------------------------------------------

function resolveDevice(device: string | undefined): Device {
  return device === undefined ? getDefaultDevice() : parseDevice(device);
}

/** Wraps a typed array as a tensor of `shape`; on cpu and reference no copy is made. */
export function fromTypedArray(
  array: TypedArray,
  shape: readonly number[],
  options: { device?: string; dtype?: DType } = {},
): Tensor {
  checkShape("fromTypedArray", shape);
  if (sizeOf(shape) !== array.length) {
    throw new ValueError(
      "fromTypedArray",
      `shape ${formatShape(shape)} needs ${sizeOf(shape)} values, got ${array.length}`,
      "shape",
    );
  }
  const dtype = options.dtype ?? dtypeOfArray(array) ?? "uint8";
  const device = resolveDevice(options.device);
  const backend = backendFor(device);
  const own = (device === "cpu" || device === "reference") && dtypeOfArray(array) === dtype;
  const storage = own ? array : backend.fromArray(dtype, array);
  return new Tensor(storage, shape, dtype, device);
}

function inferNestedShape(value: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0]!;
  }
  return shape;
}

function flattenNested(
  value: NestedArray,
  shape: readonly number[],
  dim: number,
  out: number[],
): void {
  if (dim === shape.length) {
    if (Array.isArray(value)) throw new ValueError("tensor", "nested arrays are ragged", "data");
    const v: unknown = value;
    if (typeof v !== "number" && typeof v !== "boolean") {
      // Number() would make "a" NaN and null 0, silently.
      const shown = typeof v === "object" && v !== null ? "an object" : formatValue(v);
      const message = `expected numbers or booleans, got ${shown} (element ${out.length})`;
      throw new ValueError("tensor", message, "data");
    }
    out.push(Number(v));
    return;
  }
  if (!Array.isArray(value) || value.length !== shape[dim]) {
    throw new ValueError(
      "tensor",
      `nested arrays are ragged: expected ${shape[dim]} items at depth ${dim}`,
      "data",
    );
  }
  for (const item of value) flattenNested(item, shape, dim + 1, out);
}

/**
 * A tensor from numbers, nested arrays or a typed array (whose values are copied).
 * dtype defaults to float32 for numbers and to the typed array's own type.
 */
export function tensor(data: NestedArray | TypedArray, options: TensorOptions = {}): Tensor {
  let result: Tensor;
  if (ArrayBuffer.isView(data)) {
    const array = data as TypedArray;
    result = fromTypedArray(array.slice(), [array.length], options);
  } else {
    const shape = inferNestedShape(data);
    const values: number[] = [];
    flattenNested(data, shape, 0, values);
    const dtype = options.dtype ?? "float32";
    const device = resolveDevice(options.device);
    const storage = backendFor(device).fromArray(dtype, values);
    result = new Tensor(storage, shape, dtype, device);
  }
  if (options.requiresGrad === true) result.requiresGrad_(true);
  return result;
}
