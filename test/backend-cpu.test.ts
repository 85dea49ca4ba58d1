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
