// The cuda backend. This build has none, so its conformance suite (test/conformance.ts)
// shows as skipped with the reason, and asking for a cuda tensor must fail with a
// DeviceError that says why.

import { describe, expect, it } from "vitest";

import { backendFor } from "../lib/backend/registry.js";
import { DeviceError, buildInfo, zeros } from "../lib/index.js";
import { conformanceSuite } from "./conformance.js";
import { expectThrows } from "./helpers.js";

const cuda = buildInfo().cuda;

describe(`cuda backend (conformance suite skipped: ${cuda.reason})`, () => {
  it.runIf(!cuda.available)(`is reported unavailable, with the reason: ${cuda.reason}`, () => {
    expect(cuda.reason).toBe("this build of deepnode has no CUDA backend yet");
    expectThrows(
      () => zeros([2], { device: "cuda" }),
      DeviceError,
      'device: cuda:0 is not available: this build of deepnode has no CUDA backend yet; use device "cpu"',
    );
  });
});

conformanceSuite({ name: "cuda", device: "cuda:0", backend: () => backendFor("cuda:0") }, cuda);
