// The cpu backend (native kernels) against the reference backend: the conformance suite of
// test/conformance.ts, plus the checks of the helpers that suite's failure messages rest on.

import { describe, expect, it } from "vitest";

import type { RawTensor } from "../lib/backend/backend.js";
import { cpuBackend } from "../lib/backend/cpu/index.js";
import { buildInfo } from "../lib/index.js";
import { EXACT, ONE_ULP, conformanceSuite } from "./conformance.js";
import { expectClose, worstElement } from "./helpers.js";

describe("helpers used by the suite", () => {
  it("expectClose names the worst element, its index and its ratio to the tolerance", () => {
    const tensor = { storage: new Float32Array([1, 2, 3, 4]), shape: [2, 2], dtype: "float32" };
    expect(() =>
      expectClose(tensor as RawTensor, [1, 2.001, 3.1, 4], { atol: 0.01, rtol: 0 }, "demo"),
    ).toThrow("demo: element 2 [1, 0] is 3, expected 3.1 (10.0x the tolerance atol=0.01, rtol=0)");
    expect(worstElement([NaN, 1], [NaN, 1], EXACT)).toEqual({ index: -1, ratio: 0 });
    expect(worstElement([Infinity], [1e38], ONE_ULP).ratio).toBe(Infinity);
  });
});

const native = buildInfo().native !== null;

conformanceSuite(
  { name: "cpu", device: "cpu", backend: () => cpuBackend },
  { available: native, reason: "the native addon did not load" },
);

// ---- the native cast's uint8 modes, which the cuda kernel shares (native/core/args/cast.h) --

import { translate } from "../lib/backend/kernel-backend.js";
import { native as nativeAddon } from "../lib/backend/native.js";
import { DTypeError, ValueError } from "../lib/index.js";
import { expectThrows } from "./helpers.js";

describe.skipIf(!native)("the native cast's uint8 modes", () => {
  const castInto = (out: Uint8Array, x: Float32Array | Uint8Array, uint8?: string) => {
    try {
      nativeAddon().run("cast", [out, x], (uint8 === undefined ? {} : { uint8 }) as never);
    } catch (error) {
      throw translate("cast", error, "cpu");
    }
    return Array.from(out);
  };

  it("wraps into a true uint8, reads one as bool, and keeps the bool view by default", () => {
    const floats = Float32Array.from([-1.5, 300.5, NaN, 255]);
    expect(castInto(new Uint8Array(4), floats, "wrap")).toEqual([255, 44, 0, 255]);
    expect(castInto(new Uint8Array(4), floats)).toEqual([1, 1, 1, 1]);
    const bytes = Uint8Array.from([0, 2, 255, 1]);
    expect(castInto(new Uint8Array(4), bytes, "bool")).toEqual([0, 1, 1, 1]);
    expect(castInto(new Uint8Array(4), bytes)).toEqual([0, 2, 255, 1]);
  });

  it("names a mode it does not know, and a mode that does not fit the dtypes", () => {
    const out = new Uint8Array(2);
    expectThrows(
      () => castInto(out, new Float32Array(2), "clamp"),
      ValueError,
      "cast: uint8 must be 'wrap' or 'bool', got 'clamp'",
    );
    expectThrows(
      () => castInto(out, new Float32Array(2), "bool"),
      DTypeError,
      "cast: uint8 'bool' casts from uint8 to uint8 (bool), got float32 to uint8 (cpu backend)",
    );
    expectThrows(
      () => castInto(out, new Uint8Array(2), "wrap"),
      DTypeError,
      "cast: uint8 'wrap' casts from another dtype to uint8, got uint8 to uint8 (cpu backend)",
    );
  });
});

// ---- the cpu backend's buffer pool (lib/backend/cpu/pool.ts) -------------------------------

import { BufferPool, sizeClass } from "../lib/backend/cpu/pool.js";

describe("BufferPool: size classes and reuse across nearby sizes", () => {
  it("rounds sizes up to three leading bits", () => {
    expect([1, 16, 17, 100, 2 ** 20, 2 ** 20 + 1, 1_769_472].map(sizeClass)).toEqual([
      1,
      16,
      18,
      104,
      2 ** 20,
      2 ** 20 + 2 ** 17,
      1_835_008,
    ]);
  });

  it("hands a freed buffer, zeroed, to a request up to half its size, and no smaller", () => {
    const pool = new BufferPool(64);
    const first = pool.acquire("float32", 100_000);
    expect(first.length).toBe(100_000);
    first.fill(7);
    pool.release(first);
    expect(pool.bytes).toBe(sizeClass(100_000) * 4);
    const smaller = pool.acquire("float32", 60_000);
    expect(smaller.buffer).toBe(first.buffer);
    expect(smaller.length).toBe(60_000);
    expect(smaller.every((v) => v === 0)).toBe(true);
    pool.release(smaller);
    pool.release(smaller); // a second release of the same view is ignored
    expect(pool.bytes).toBe(sizeClass(100_000) * 4);
    expect(pool.acquire("float32", 40_000).buffer).not.toBe(first.buffer); // under half
    expect(pool.acquire("int32", 100_000).buffer).not.toBe(first.buffer); // another dtype
    expect(pool.acquire("float32", 100_000).buffer).toBe(first.buffer);
  });

  it("keeps nothing past its limit", () => {
    const pool = new BufferPool(0);
    const big = pool.acquire("float32", 100_000);
    pool.release(big);
    expect(pool.bytes).toBe(0);
    expect(pool.acquire("float32", 100_000).buffer).not.toBe(big.buffer);
  });

  it("reuses small buffers too, down to one element", () => {
    const pool = new BufferPool(64);
    for (const size of [1, 16, 100]) {
      const small = pool.acquire("float32", size);
      small.fill(3);
      pool.release(small);
      expect(pool.bytes).toBe(sizeClass(size) * 4);
      const again = pool.acquire("float32", size);
      expect(again.buffer).toBe(small.buffer);
      expect(Array.from(again)).toEqual(new Array<number>(size).fill(0));
      expect(pool.bytes).toBe(0);
    }
    // Below 16 elements the size classes are every size: still no more than twice the request.
    const twelve = pool.acquire("float32", 12);
    pool.release(twelve);
    expect(pool.acquire("float32", 5).buffer).not.toBe(twelve.buffer);
    expect(pool.acquire("float32", 6).buffer).toBe(twelve.buffer);
  });
});
