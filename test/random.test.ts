// The counter-based generator: Philox4x32-10 against the published known-answer vectors
// (through an independent BigInt implementation written from the Random123 paper), the
// same uniform numbers, normal numbers and dropout masks bit for bit on cpu and reference,
// seeding, offsets that advance in multiples of 4, and saving/restoring state.

import { describe, expect, it } from "vitest";

import type { Backend, RandomKey, RawTensor } from "../lib/backend/backend.js";
import { cpuBackend } from "../lib/backend/cpu/index.js";
import { referenceBackend } from "../lib/backend/reference/index.js";
import {
  F,
  ValueError,
  getRngState,
  manualSeed,
  rand,
  randn,
  setRngState,
  tensor,
  zeros,
} from "../lib/index.js";
import { forEachNormal, forEachUniform, philox4x32 } from "../lib/random.js";
import { expectClose, expectEqualValues, expectThrows } from "./helpers.js";

// ---- an independent Philox4x32-10 --------------------------------------------------

const MASK32 = 0xffffffffn;

/** Philox4x32-10 on a full 4-word counter and 2-word key, in BigInt arithmetic. */
function philoxBig(counter: readonly bigint[], key: readonly bigint[]): bigint[] {
  let [c0, c1, c2, c3] = counter as [bigint, bigint, bigint, bigint];
  let [k0, k1] = key as [bigint, bigint];
  for (let round = 0; round < 10; round++) {
    const p0 = 0xd2511f53n * c0;
    const p1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [
      ((p1 >> 32n) ^ c1 ^ k0) & MASK32,
      p1 & MASK32,
      ((p0 >> 32n) ^ c3 ^ k1) & MASK32,
      p0 & MASK32,
    ];
    k0 = (k0 + 0x9e3779b9n) & MASK32;
    k1 = (k1 + 0xbb67ae85n) & MASK32;
  }
  return [c0, c1, c2, c3];
}

/** lib/random.ts's philox for a counter and seed below 2^53, as four numbers. */
function philoxLib(counter: number, seed: number): number[] {
  const out = new Uint32Array(4);
  philox4x32(counter, seed, out);
  return Array.from(out);
}

const hex = (values: readonly (number | bigint)[]) => values.map((v) => v.toString(16));

describe("Philox4x32-10", () => {
  // Random123's kat_vectors for philox4x32_10: counter, key, expected output.
  const published: [bigint[], bigint[], bigint[]][] = [
    [
      [0n, 0n, 0n, 0n],
      [0n, 0n],
      [0x6627e8d5n, 0xe169c58dn, 0xbc57ac4cn, 0x9b00dbd8n],
    ],
    [
      [MASK32, MASK32, MASK32, MASK32],
      [MASK32, MASK32],
      [0x408f276dn, 0x41c83b0en, 0xa20bc7c6n, 0x6d5451fdn],
    ],
    [
      [0x243f6a88n, 0x85a308d3n, 0x13198a2en, 0x03707344n],
      [0xa4093822n, 0x299f31d0n],
      [0xd16cfe09n, 0x94fdccebn, 0x5001e420n, 0x24126ea1n],
    ],
  ];

  it.each(published.map((v, i) => [i, ...v] as const))(
    "the BigInt oracle reproduces published vector %i",
    (_i, counter, key, expected) => {
      expect(hex(philoxBig(counter, key))).toEqual(hex(expected));
    },
  );

  it("lib/random.ts gives the published answer for counter 0 and key 0", () => {
    expect(philoxLib(0, 0)).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  });

  it("lib/random.ts agrees with the oracle on counters and seeds with high bits set", () => {
    const values = [0, 1, 3, 0xffffffff, 2 ** 32, 2 ** 32 + 5, 0x123456789ab, 2 ** 53 - 1];
    for (const counter of values) {
      for (const seed of values) {
        const big = philoxBig(
          [BigInt(counter) & MASK32, BigInt(counter) >> 32n, 0n, 0n],
          [BigInt(seed) & MASK32, BigInt(seed) >> 32n],
        );
        expect(hex(philoxLib(counter, seed)), `counter ${counter}, seed ${seed}`).toEqual(hex(big));
      }
    }
  });

  it("maps lanes to uniform and normal numbers as documented", () => {
    const seed = 77;
    const offset = 8; // block 2
    const block = philoxLib(2, seed);
    const uniforms: number[] = [];
    forEachUniform({ seed, offset }, 4, (_, u) => uniforms.push(u));
    expect(uniforms).toEqual(block.map((x) => (x >>> 8) / 2 ** 24));

    const normals: number[] = [];
    forEachNormal({ seed, offset }, 4, (_, z) => normals.push(z));
    const u = block.map((x) => ((x >>> 8) + 1) / 2 ** 24);
    const expected = [0, 2].flatMap((pair) => {
      const r = Math.sqrt(-2 * Math.log(u[pair]!));
      const t = 2 * Math.PI * u[pair + 1]!;
      return [r * Math.cos(t), r * Math.sin(t)];
    });
    expectClose(normals, expected, { atol: 1e-15, rtol: 1e-14 });
  });

  it("starts mid-block at an offset that is not a block boundary", () => {
    const all: number[] = [];
    forEachUniform({ seed: 5, offset: 0 }, 12, (_, u) => all.push(u));
    const tail: number[] = [];
    forEachUniform({ seed: 5, offset: 6 }, 6, (_, u) => tail.push(u));
    expect(tail).toEqual(all.slice(6));
  });
});

// ---- cpu and reference kernels -----------------------------------------------------

function f32(backend: Backend, size: number, values?: number[]): RawTensor {
  const storage =
    values === undefined ? backend.alloc("float32", size) : backend.fromArray("float32", values);
  return { storage, shape: [size], dtype: "float32" };
}

/** The bit patterns of float32 storage, so that -0 and 0 or NaNs differ. */
function bits(x: RawTensor): number[] {
  const array = x.storage as Float32Array;
  return Array.from(new Uint32Array(array.buffer, array.byteOffset, array.length));
}

const SEEDS = [0, 1, 12345, 2 ** 32 + 7, 2 ** 53 - 1];
const OFFSETS = [0, 4, 1020, 2 ** 32, 2 ** 40 + 8];
const SIZES = [1, 3, 4, 5, 17, 1000];

const KEYS: [RandomKey, number][] = SEEDS.flatMap((seed, i) =>
  OFFSETS.map(
    (offset, j) => [{ seed, offset }, SIZES[(i + j) % SIZES.length]!] as [RandomKey, number],
  ),
);

describe("cpu kernels draw the reference numbers", () => {
  it.each(KEYS.map(([key, size]) => [key.seed, key.offset, size, key] as const))(
    "uniform, seed %d offset %d size %d: bit-identical",
    (_seed, _offset, size, key) => {
      const cpu = f32(cpuBackend, size);
      const ref = f32(referenceBackend, size);
      cpuBackend.randUniform(cpu, key, -3, 5);
      referenceBackend.randUniform(ref, key, -3, 5);
      expect(bits(cpu)).toEqual(bits(ref));
      const values = Array.from(cpu.storage as Float32Array);
      expect(values.every((v) => v >= -3 && v < 5)).toBe(true);
    },
  );

  it.each(KEYS.map(([key, size]) => [key.seed, key.offset, size, key] as const))(
    "normal, seed %d offset %d size %d: bit for bit",
    (_seed, _offset, size, key) => {
      // Both compute Box-Muller in double and round once to float32; the two libms' log,
      // sin and cos differ far below float32's resolution (0 mismatches in 4M normals).
      const cpu = f32(cpuBackend, size);
      const ref = f32(referenceBackend, size);
      cpuBackend.randNormal(cpu, key, 0.5, 2);
      referenceBackend.randNormal(ref, key, 0.5, 2);
      expect(bits(cpu)).toEqual(bits(ref));
    },
  );

  const DROPOUT: [number, RandomKey, number][] = [
    [0.5, { seed: 0, offset: 0 }, 1000],
    [0.1, { seed: 99, offset: 12 }, 37],
    [0.9, { seed: 2 ** 33 + 1, offset: 2 ** 34 }, 64],
    [0, { seed: 4, offset: 4 }, 9],
    [1, { seed: 4, offset: 4 }, 9],
    [0.3, { seed: 2 ** 53 - 1, offset: 2 ** 40 }, 5],
  ];

  it.each(DROPOUT.map(([p, key, size]) => [p, key.seed, size, key] as const))(
    "dropout p=%d, seed %d, size %d: mask and output bit-identical",
    (p, _seed, size, key) => {
      const xs = Array.from({ length: size }, (_, i) => Math.sin(i) * 3);
      const run = (backend: Backend) => {
        const out = f32(backend, size);
        const mask = f32(backend, size);
        backend.dropout(out, mask, f32(backend, size, xs), p, key);
        return { out, mask };
      };
      const cpu = run(cpuBackend);
      const ref = run(referenceBackend);
      expect(bits(cpu.mask)).toEqual(bits(ref.mask));
      expect(bits(cpu.out)).toEqual(bits(ref.out));
      const scale = Math.fround(1 / (1 - p));
      const kept: number[] = [];
      forEachUniform(key, size, (_, u) => kept.push(u >= p ? scale : 0));
      expectEqualValues(cpu.mask, kept, "mask = uniform >= p ? 1 / (1 - p) : 0");
    },
  );
});

// ---- the global generator -------------------------------------------------------

describe("manualSeed and the generator state", () => {
  it("reproduces the same numbers after reseeding, on both devices", () => {
    manualSeed(42);
    const a = rand([10]).dataSync();
    const an = randn([7]).dataSync();
    manualSeed(42);
    const b = rand([10], { device: "reference" }).dataSync();
    const bn = randn([7], { device: "reference" }).dataSync();
    expectEqualValues(a, b);
    expectEqualValues(an, bn);
    manualSeed(43);
    expect(Array.from(rand([10]).dataSync())).not.toEqual(Array.from(a));
  });

  it("advances the offset by whole blocks of 4", () => {
    manualSeed(3);
    expect(getRngState()).toEqual({ seed: 3, offset: 0 });
    rand([5]);
    expect(getRngState()).toEqual({ seed: 3, offset: 8 });
    rand([2, 2]);
    expect(getRngState().offset).toBe(12);
    randn([1]);
    expect(getRngState().offset).toBe(16);
    rand([0]);
    expect(getRngState().offset).toBe(16);
    F.dropout(zeros([3, 3]), 0.5);
    expect(getRngState().offset).toBe(28);
    F.dropout(zeros([3, 3]), 0.5, false); // eval mode draws nothing
    expect(getRngState().offset).toBe(28);
  });

  it("continues a stream: later draws are the next blocks of one long draw", () => {
    manualSeed(1);
    const long = Array.from(rand([16]).dataSync());
    manualSeed(1);
    const first = Array.from(rand([5]).dataSync());
    const second = Array.from(rand([3]).dataSync());
    expect(first).toEqual(long.slice(0, 5));
    expect(second).toEqual(long.slice(8, 11));
  });

  it("saves and restores the state", () => {
    manualSeed(9);
    rand([6]);
    const state = getRngState();
    const x = rand([6]).dataSync();
    rand([100]);
    setRngState(state);
    expect(getRngState()).toEqual(state);
    expectEqualValues(rand([6]).dataSync(), x);
    setRngState({ seed: 2 ** 40, offset: 2 ** 36 });
    expect(getRngState()).toEqual({ seed: 2 ** 40, offset: 2 ** 36 });
  });

  it("gives the same dropout mask on cpu and reference after the same seed", () => {
    const xs = Array.from({ length: 50 }, (_, i) => i + 1);
    manualSeed(17);
    const cpu = F.dropout(tensor(xs), 0.4).dataSync();
    manualSeed(17);
    const ref = F.dropout(tensor(xs, { device: "reference" }), 0.4).dataSync();
    expectEqualValues(cpu, ref);
    const zerosCount = Array.from(cpu).filter((v) => v === 0).length;
    expect(zerosCount).toBeGreaterThan(5);
    expect(zerosCount).toBeLessThan(40);
  });

  it("rejects bad seeds and states", () => {
    expectThrows(
      () => manualSeed(1.5),
      ValueError,
      "manualSeed: seed must be an integer in [0, 2^53), got 1.5",
    );
    expectThrows(
      () => manualSeed(2 ** 53),
      ValueError,
      "manualSeed: seed must be an integer in [0, 2^53), got 9007199254740992",
    );
    expectThrows(
      () => setRngState({ seed: 1, offset: -4 }),
      ValueError,
      "setRngState: offset must be a non-negative multiple of 4, got -4",
    );
  });
});
