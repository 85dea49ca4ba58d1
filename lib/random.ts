// The one random generator of deepnode: Philox4x32-10, counter-based, so any element
// of any random tensor is a pure function of (seed, element index). Every backend
// implements the same numbers (native/core/philox.h mirrors this file):
//
//   element e of an op whose key is (seed, offset) uses block b = floor((offset + e) / 4)
//   and lane l = (offset + e) % 4 of philox(counter = [b lo32, b hi32, 0, 0],
//   key = [seed lo32, seed hi32]).
//   uniform(e)  = (x[l] >>> 8) * 2^-24, in [0, 1); scaled as low + (high - low) * u in
//                 double, then rounded to float32.
//   normal(e)   = Box-Muller on the block's pairs (x0, x1) and (x2, x3), in double:
//                 u = ((x >>> 8) + 1) * 2^-24 in (0, 1], r = sqrt(-2 ln u_even),
//                 t = 2 pi u_odd; lane 0/2 = r cos t, lane 1/3 = r sin t.
//   dropout     keeps element e when uniform(e) >= p.
//
// Uniform numbers and dropout masks are bit-identical across backends. Normal numbers are
// too in practice: log, sin and cos run in double and the result is rounded once to
// float32, so the platforms' libms would have to differ near a float32 rounding boundary
// (none of 4M normals did; test/random.test.ts checks bit for bit).

import { ValueError } from "./errors.js";
import type { RandomKey } from "./backend/backend.js";

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const TWO_POW_32 = 4294967296;

/** High 32 bits of the 64-bit product of two unsigned 32-bit integers. */
function mulHi(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const mid1 = aHi * bLo + (lolo >>> 16);
  const mid2 = aLo * bHi + (mid1 & 0xffff);
  return (aHi * bHi + (mid1 >>> 16) + (mid2 >>> 16)) >>> 0;
}

/** Philox4x32-10 of one counter block; writes four uint32 into out. */
export function philox4x32(counter: number, seed: number, out: Uint32Array): void {
  let c0 = counter >>> 0;
  let c1 = Math.floor(counter / TWO_POW_32) >>> 0;
  let c2 = 0;
  let c3 = 0;
  let k0 = seed >>> 0;
  let k1 = Math.floor(seed / TWO_POW_32) >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulHi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

const INV_2_POW_24 = 1 / 16777216;

/**
 * Calls visit(e, numbers[lane]) for e in [0, count), where `numbers` are the four values
 * that `transform` derives from the Philox block of element e (computed once per block).
 */
function forEachOfBlocks(
  key: RandomKey,
  count: number,
  transform: (words: Uint32Array, numbers: Float64Array) => void,
  visit: (index: number, value: number) => void,
): void {
  const words = new Uint32Array(4);
  const numbers = new Float64Array(4);
  let lastBlock = -1;
  for (let e = 0; e < count; e++) {
    const g = key.offset + e;
    const b = Math.floor(g / 4);
    if (b !== lastBlock) {
      philox4x32(b, key.seed, words);
      transform(words, numbers);
      lastBlock = b;
    }
    visit(e, numbers[g % 4]!);
  }
}

function uniformsOf(words: Uint32Array, numbers: Float64Array): void {
  for (let lane = 0; lane < 4; lane++) numbers[lane] = (words[lane]! >>> 8) * INV_2_POW_24;
}

function normalsOf(words: Uint32Array, numbers: Float64Array): void {
  for (let pair = 0; pair < 4; pair += 2) {
    const u0 = ((words[pair]! >>> 8) + 1) * INV_2_POW_24;
    const u1 = ((words[pair + 1]! >>> 8) + 1) * INV_2_POW_24;
    const r = Math.sqrt(-2 * Math.log(u0));
    const t = 2 * Math.PI * u1;
    numbers[pair] = r * Math.cos(t);
    numbers[pair + 1] = r * Math.sin(t);
  }
}

/** Calls visit(e, u) for e in [0, count) with the uniform number of element e. */
export function forEachUniform(
  key: RandomKey,
  count: number,
  visit: (index: number, u: number) => void,
): void {
  forEachOfBlocks(key, count, uniformsOf, visit);
}

/** Calls visit(e, z) for e in [0, count) with the standard normal number of element e. */
export function forEachNormal(
  key: RandomKey,
  count: number,
  visit: (index: number, z: number) => void,
): void {
  forEachOfBlocks(key, count, normalsOf, visit);
}

/** The global generator: a seed and the offset of the next unused number. */
class Generator {
  seed = 0;
  offset = 0;

  manualSeed(seed: number): void {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new ValueError(
        "manualSeed",
        `seed must be an integer in [0, 2^53), got ${seed}`,
        "seed",
      );
    }
    this.seed = seed;
    this.offset = 0;
  }

  /** Reserves `count` numbers and returns the key of the first; offsets stay multiples of 4. */
  next(count: number): RandomKey {
    const key = { seed: this.seed, offset: this.offset };
    this.offset += Math.ceil(count / 4) * 4;
    return key;
  }

  getState(): { seed: number; offset: number } {
    return { seed: this.seed, offset: this.offset };
  }

  setState(state: { seed: number; offset: number }): void {
    this.manualSeed(state.seed);
    if (!Number.isSafeInteger(state.offset) || state.offset < 0 || state.offset % 4 !== 0) {
      throw new ValueError(
        "setRngState",
        `offset must be a non-negative multiple of 4, got ${state.offset}`,
        "offset",
      );
    }
    this.offset = state.offset;
  }
}

export const defaultGenerator = new Generator();

/** Seeds the generator behind every random op (initialisation, dropout, shuffling). */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}

export function getRngState(): { seed: number; offset: number } {
  return defaultGenerator.getState();
}

export function setRngState(state: { seed: number; offset: number }): void {
  defaultGenerator.setState(state);
}
