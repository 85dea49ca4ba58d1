// The cuda backend: every primitive is one kernel of the CUDA plugin, queued on the
// device's stream with the buffers and attributes the cpu kernel of the same name takes
// (the marshalling is shared: ../kernel-backend.ts). Storage is device memory from the
// plugin's caching allocator behind an opaque handle; reading it back waits for the work
// queued before, on the JS thread (read) or on a worker thread (readAsync).

import type {
  NativeBinding,
  NativeCudaHandle,
  NativeKernelName,
  NativeKernels,
  NativeStorageDType,
} from "../../../binding.js";
import { allocArray, dtypeOfArray, type DType, type TypedArray } from "../../dtype.js";
import type { RawTensor, Storage } from "../backend.js";
import { KernelBackend, translate } from "../kernel-backend.js";
import { native } from "../native.js";
import { POISON_BYTE, poisonUninit, type AllocInit } from "../uninit.js";
import { sendSyncChecksFromEnv } from "./sync-checks.js";

/** A device buffer: `size` elements of `dtype` on cuda:`device`. */
export class CudaStorage {
  constructor(
    readonly handle: NativeCudaHandle,
    readonly size: number,
    readonly dtype: DType,
    readonly device: number,
  ) {}
}

function storageDType(dtype: DType): NativeStorageDType {
  return dtype === "bool" ? "uint8" : dtype;
}

function hostCopy(dtype: DType, values: ArrayLike<number>): TypedArray {
  const host = allocArray(dtype, values.length);
  if (dtype === "bool") {
    for (let i = 0; i < values.length; i++) host[i] = values[i] !== 0 ? 1 : 0;
  } else {
    host.set(values);
  }
  return host;
}

function handleOf(storage: unknown): NativeCudaHandle | null {
  return storage === null || storage === undefined ? null : (storage as CudaStorage).handle;
}

export class CudaBackend extends KernelBackend {
  readonly name = "cuda" as const;
  private readonly binding: NativeBinding = native();

  constructor(readonly device: number) {
    super();
    sendSyncChecksFromEnv(this.binding);
  }

  protected call<K extends NativeKernelName>(
    op: K,
    buffers: NativeKernels[K][0],
    attrs: NativeKernels[K][1],
  ): void {
    const handles = (buffers as readonly unknown[]).map(handleOf);
    try {
      this.binding.cudaRun(this.device, op, handles, attrs as Record<string, unknown>);
    } catch (error) {
      throw translate(op, error, "cuda");
    }
  }

  /** Runs a plugin entry point, turning its native error into deepnode's typed error. */
  private guard<T>(op: string, body: () => T): T {
    try {
      return body();
    } catch (error) {
      throw translate(op, error, "cuda");
    }
  }

  alloc(dtype: DType, size: number, init: AllocInit = "zero"): Storage {
    const fillByte = init === "zero" ? 0 : poisonUninit() ? POISON_BYTE : -1;
    const handle = this.guard("alloc", () =>
      this.binding.cudaAlloc(this.device, storageDType(dtype), size, fillByte),
    );
    return new CudaStorage(handle, size, dtype, this.device);
  }

  release(storage: Storage): void {
    this.guard("release", () => this.binding.cudaFree((storage as CudaStorage).handle));
  }

  /** A typed array of the dtype's own kind is uploaded as it is (the upload is done with it
   * when it returns); anything else, and bool's 0/1, goes through a host copy first. */
  fromArray(dtype: DType, values: ArrayLike<number>): Storage {
    const own = dtype !== "bool" && dtypeOfArray(values) === dtype;
    const host = own ? (values as TypedArray) : hostCopy(dtype, values);
    const storage = this.alloc(dtype, values.length, "none") as CudaStorage;
    this.guard("fromArray", () => this.binding.cudaUpload(storage.handle, host));
    return storage;
  }

  read(x: RawTensor): TypedArray {
    const storage = x.storage as CudaStorage;
    const host = allocArray(x.dtype, storage.size);
    this.guard("read", () => this.binding.cudaDownload(storage.handle, host));
    return host;
  }

  async readAsync(x: RawTensor): Promise<TypedArray> {
    const storage = x.storage as CudaStorage;
    const host = allocArray(x.dtype, storage.size);
    try {
      await this.binding.cudaDownloadAsync(storage.handle, host);
    } catch (error) {
      throw translate("read", error, "cuda");
    }
    return host;
  }

  /**
   * The kernel sees uint8 storage as bool, as on cpu. The two casts where uint8 and bool
   * differ name their mode: to a true uint8, which wraps like a typed-array store, and
   * uint8 to bool.
   */
  cast(out: RawTensor, x: RawTensor): void {
    const toUint8 = out.dtype === "uint8" && x.dtype !== "uint8" && x.dtype !== "bool";
    const uint8ToBool = out.dtype === "bool" && x.dtype === "uint8";
    const attrs = toUint8
      ? { uint8: "wrap" as const }
      : uint8ToBool
        ? { uint8: "bool" as const }
        : {};
    this.call("cast", [out.storage as Float32Array, x.storage as Float32Array], attrs);
  }

  /** Waits until every kernel queued on this device has finished. */
  synchronize(): void {
    this.guard("synchronize", () => this.binding.cudaSynchronize(this.device));
  }
}
