// Reuse of the cpu backend's output buffers. A training step allocates the same large
// buffers every time (activations, gradients); fresh ones cost a page fault per 4 KiB
// on first write. Buffers come back here when the last tensor using them is disposed
// (Tensor keeps the count); ones the GC collects are simply gone. Only buffers this pool
// handed out are taken back, never arrays a user passed in.

import { allocArray, type DType, type TypedArray } from "../../dtype.js";

const MIN_POOLED_BYTES = 64 * 1024;
const DEFAULT_LIMIT_MIB = 512;

export class BufferPool {
  private readonly free = new Map<string, TypedArray[]>();
  private readonly ours = new WeakSet<TypedArray>();
  private readonly dtypes = new WeakMap<TypedArray, DType>();
  private pooledBytes = 0;
  readonly limitBytes: number;

  constructor(limitMiB = Number(process.env.DEEPNODE_CPU_POOL_MIB ?? DEFAULT_LIMIT_MIB)) {
    this.limitBytes =
      Number.isFinite(limitMiB) && limitMiB >= 0
        ? limitMiB * 1024 * 1024
        : DEFAULT_LIMIT_MIB * 1024 * 1024;
  }

  /** A zero-filled array of `size` elements, reused when one is free. */
  acquire(dtype: DType, size: number): TypedArray {
    const list = this.free.get(`${dtype}:${size}`);
    const reused = list?.pop();
    if (reused !== undefined) {
      this.pooledBytes -= reused.byteLength;
      reused.fill(0);
      return reused;
    }
    const array = allocArray(dtype, size);
    if (array.byteLength >= MIN_POOLED_BYTES) {
      this.ours.add(array);
      this.dtypes.set(array, dtype);
    }
    return array;
  }

  /** Takes back an array no tensor uses any more. */
  release(array: TypedArray): void {
    if (!this.ours.has(array) || this.pooledBytes + array.byteLength > this.limitBytes) return;
    const key = `${this.dtypes.get(array)}:${array.length}`;
    let list = this.free.get(key);
    if (list === undefined) {
      list = [];
      this.free.set(key, list);
    }
    list.push(array);
    this.pooledBytes += array.byteLength;
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
