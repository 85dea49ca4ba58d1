// The cpu backend: each primitive is one call into the native addon's threaded,
// vectorised kernels (the argument marshalling is shared with cuda: ../kernel-backend.ts).
// Storage is a typed array that JavaScript owns and C++ borrows.

import type {
  NativeBinding,
  NativeBuffer,
  NativeKernelName,
  NativeKernels,
} from "../../../binding.js";
import { allocArray, type DType, type TypedArray } from "../../dtype.js";
import type { RawTensor, Storage } from "../backend.js";
import { KernelBackend, translate } from "../kernel-backend.js";
import { native } from "../native.js";
import type { AllocInit } from "../uninit.js";
import { BufferPool } from "./pool.js";

function buf(x: RawTensor): NativeBuffer {
  return x.storage as NativeBuffer;
}

export class CpuBackend extends KernelBackend {
  readonly name = "cpu" as const;
  private binding: NativeBinding | undefined;

  protected call<K extends NativeKernelName>(
    op: K,
    buffers: NativeKernels[K][0],
    attrs: NativeKernels[K][1],
  ): void {
    this.binding ??= native();
    try {
      this.binding.run(op, buffers, attrs);
    } catch (error) {
      throw translate(op, error, "cpu");
    }
  }

  /** Output buffers, reused across steps (see pool.ts). */
  readonly pool = new BufferPool();

  alloc(dtype: DType, size: number, init: AllocInit = "zero"): Storage {
    return this.pool.acquire(dtype, size, init);
  }

  release(storage: Storage): void {
    this.pool.release(storage as TypedArray);
  }

  fromArray(dtype: DType, values: ArrayLike<number>): Storage {
    const out = allocArray(dtype, values.length);
    if (dtype === "bool") {
      for (let i = 0; i < values.length; i++) out[i] = values[i] !== 0 ? 1 : 0;
    } else {
      out.set(values as ArrayLike<number>);
    }
    return out;
  }

  read(x: RawTensor): TypedArray {
    return (x.storage as TypedArray).slice();
  }

  /**
   * The kernel sees uint8 storage as bool (any non-zero value becomes 1). A true uint8
   * target wraps like a typed-array store instead, and uint8 -> bool must still map
   * non-zero to 1; both are done here, where the dtypes are known.
   */
  cast(out: RawTensor, x: RawTensor): void {
    const target = out.storage as TypedArray;
    const source = x.storage as TypedArray;
    if (out.dtype === "uint8" && x.dtype !== "uint8" && x.dtype !== "bool") {
      if (target.length !== source.length) this.call("cast", [buf(out), buf(x)], {});
      target.set(source);
      return;
    }
    if (out.dtype === "bool" && x.dtype === "uint8") {
      if (target.length !== source.length) this.call("cast", [buf(out), buf(x)], {});
      for (let i = 0; i < source.length; i++) target[i] = source[i] !== 0 ? 1 : 0;
      return;
    }
    this.call("cast", [buf(out), buf(x)], {});
  }
}

export const cpuBackend = new CpuBackend();
