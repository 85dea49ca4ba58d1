// Reuse of the cpu backend's output buffers. A training step allocates the same large
// buffers every time (activations, gradients); fresh ones cost a page fault per 4 KiB
// on first write. Buffers come back here when the last tensor using them is disposed
// (Tensor keeps the count); ones the GC collects are simply gone. Only buffers this pool
// handed out are taken back, never arrays a user passed in. A pooled buffer is made at its
// size class (the size rounded up to three significant bits) and handed out as a view of
// the size asked for; a request takes the smallest free buffer up to twice its size, so
// batches of different lengths (IMDB's, bucketed by length) reuse each other's buffers.
// Small buffers are pooled too: a fresh typed array costs V8 0.5 us or more (one of up to
// 64 bytes lives on V8's heap and is moved off it when native code first reads it), about
// twice a trip through this pool.

import { allocArray, type DType, type TypedArray } from "../../dtype.js";
import { poison, poisonUninit, type AllocInit } from "../uninit.js";

const DEFAULT_LIMIT_MIB = 2048;

export class BufferPool {
  private readonly free = new Map<string, TypedArray[]>();
  /** The whole buffer behind each view handed out. */
  private readonly wholes = new WeakMap<TypedArray, TypedArray>();
  private readonly dtypes = new WeakMap<TypedArray, DType>();
  private pooledBytes = 0;
  readonly limitBytes: number;

  constructor(limitMiB = Number(process.env.DEEPNODE_CPU_POOL_MIB ?? DEFAULT_LIMIT_MIB)) {
    this.limitBytes =
      Number.isFinite(limitMiB) && limitMiB >= 0
        ? limitMiB * 1024 * 1024
        : DEFAULT_LIMIT_MIB * 1024 * 1024;
  }

  /**
   * An array of `size` elements, reused when one is free: zero-filled with init "zero";
   * with "none", a reused one keeps what it held (poisoned when poisonUninit() is on, as
   * is a fresh one).
   */
  acquire(dtype: DType, size: number, init: AllocInit = "zero"): TypedArray {
    const view = this.take(dtype, size, init);
    if (init === "none" && poisonUninit()) poison(view);
    return view;
  }

  private take(dtype: DType, size: number, init: AllocInit): TypedArray {
    const capacity = sizeClass(size);
    const whole = this.takeFree(dtype, capacity);
    const buffer = whole ?? this.freshOrExact(dtype, capacity, size);
    const view = buffer.subarray(0, size);
    if (whole !== undefined && init === "zero") view.fill(0);
    this.wholes.set(view, buffer);
    return view;
  }

  /** A buffer of the size class, or of exactly `size` where the class cannot be had. */
  private freshOrExact(dtype: DType, capacity: number, size: number): TypedArray {
    try {
      return this.fresh(dtype, capacity);
    } catch (error) {
      // allocArray's OutOfMemoryError; the retry's, if it fails too, names the size asked for.
      if (capacity === size) throw error;
      return this.fresh(dtype, size);
    }
  }

  private fresh(dtype: DType, capacity: number): TypedArray {
    const buffer = allocArray(dtype, capacity);
    this.dtypes.set(buffer, dtype);
    return buffer;
  }

  /** The smallest free buffer of at least `capacity` elements and at most twice that. */
  private takeFree(dtype: DType, capacity: number): TypedArray | undefined {
    for (let c = capacity, k = 0; k <= 8 && c <= 2 * capacity; k++, c = sizeClass(c + 1)) {
      const whole = this.free.get(`${dtype}:${c}`)?.pop();
      if (whole === undefined) continue;
      this.pooledBytes -= whole.byteLength;
      return whole;
    }
    return undefined;
  }

  /** Takes back an array no tensor uses any more. */
  release(array: TypedArray): void {
    const whole = this.wholes.get(array);
    if (whole === undefined || this.pooledBytes + whole.byteLength > this.limitBytes) return;
    this.wholes.delete(array);
    const key = `${this.dtypes.get(whole)}:${whole.length}`;
    let list = this.free.get(key);
    if (list === undefined) {
      list = [];
      this.free.set(key, list);
    }
    list.push(whole);
    this.pooledBytes += whole.byteLength;
  }

  /** Drops every free buffer (the GC frees them). */
  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }

  get bytes(): number {
    return this.pooledBytes;
  }
}

/** size rounded up to its three leading bits: 8..15 times a power of two. */
export function sizeClass(size: number): number {
  if (size <= 16) return size;
  const step = 2 ** (Math.floor(Math.log2(size)) - 3);
  return Math.ceil(size / step) * step;
}
