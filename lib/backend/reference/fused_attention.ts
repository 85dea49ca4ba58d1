// Fused attention, head by head and row by row in double: the scores of query i against
// every key, the masks, the softmax, the dropout multipliers, then the weighted sum of the
// values. The backward recomputes the weights of each row and runs the chain rule through
// the same steps. The cpu kernel does this with sgemm on a head at a time.

import { ShapeError } from "../../errors.js";
import { forEachUniform } from "../../random.js";
import type { AttentionParams, RawTensor } from "../backend.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

const OP = "fusedAttention";

/** The sizes of query [B, L, E], key [B, S, E], value [B, S, Ev], after checking them. */
function sizesOf(query: RawTensor, key: RawTensor, value: RawTensor, params: AttentionParams) {
  requireDType(OP, query.dtype, FLOAT_DTYPES);
  requireSameDType(OP, [query, key, value]);
  const [B, L, E] = query.shape as [number, number, number];
  const [S, Ev] = [key.shape[1]!, value.shape[2]!];
  if (query.shape.length !== 3 || B % params.heads !== 0) {
    const message = `query must be [B, L, E] with B a multiple of heads ${params.heads}`;
    throw new ShapeError(OP, message, [query.shape]);
  }
  expectShape(OP, "key", key.shape, [B, S, E]);
  expectShape(OP, "value", value.shape, [B, S, Ev]);
  return { B, L, E, S, Ev };
}

type Sizes = ReturnType<typeof sizesOf>;

/** Each weight's dropout multiplier, [B * L * S], or null without dropout. */
function keepMultipliers(sizes: Sizes, params: AttentionParams): Float64Array | null {
  if (params.dropoutP === 0 || params.dropoutKey === null) return null;
  const keep = new Float64Array(sizes.B * sizes.L * sizes.S);
  const multiplier = Math.fround(1 / (1 - params.dropoutP));
  forEachUniform(params.dropoutKey, keep.length, (e, u) => {
    keep[e] = u >= params.dropoutP ? multiplier : 0;
  });
  return keep;
}

interface Operands {
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  padding: ArrayLike<number> | null;
}

/** Softmax weights of query i of head b over the keys: zeros when every key is masked. */
function rowWeights(o: Operands, z: Sizes, params: AttentionParams, b: number, i: number) {
  const scores = Array.from({ length: z.S }, (_, j) => {
    const padded = o.padding !== null && o.padding[Math.floor(b / params.heads) * z.S + j] !== 0;
    if (padded || (params.causal && j > i)) return -Infinity;
    let dot = 0;
    for (let e = 0; e < z.E; e++)
      dot += o.q[(b * z.L + i) * z.E + e]! * o.k[(b * z.S + j) * z.E + e]!;
    return params.scale * dot;
  });
  const max = Math.max(-Infinity, ...scores);
  if (max === -Infinity) return scores.map(() => 0);
  const exps = scores.map((s) => Math.exp(s - max));
  const sum = exps.reduce((a, x) => a + x, 0);
  return exps.map((x) => x / sum);
}

function operands(
  inputs: [RawTensor, RawTensor, RawTensor],
  keyPadding: RawTensor | null,
  sizes: Sizes,
  params: AttentionParams,
): Operands {
  const [q, k, v] = inputs.map((t) => elements(OP, t)) as [
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  if (keyPadding === null) return { q, k, v, padding: null };
  expectShape(OP, "keyPadding", keyPadding.shape, [sizes.B / params.heads, sizes.S]);
  return { q, k, v, padding: elements(OP, keyPadding) };
}

export function fusedAttention(
  out: RawTensor,
  query: RawTensor,
  key: RawTensor,
  value: RawTensor,
  keyPadding: RawTensor | null,
  params: AttentionParams,
): void {
  const z = sizesOf(query, key, value, params);
  expectShape(OP, "out", out.shape, [z.B, z.L, z.Ev]);
  const o = operands([query, key, value], keyPadding, z, params);
  const keep = keepMultipliers(z, params);
  const result = elements(OP, out);
  for (let b = 0; b < z.B; b++) {
    for (let i = 0; i < z.L; i++) {
      const row = (b * z.L + i) * z.S;
      const weights = rowWeights(o, z, params, b, i).map((w, j) => w * (keep?.[row + j] ?? 1));
      for (let c = 0; c < z.Ev; c++) {
        let sum = 0;
        weights.forEach((w, j) => (sum += w * o.v[(b * z.S + j) * z.Ev + c]!));
        result[(b * z.L + i) * z.Ev + c] = sum;
      }
    }
  }
}

/** Adds the gradients of query i of head b into gq, gk, gv (double accumulators). */
function rowBackward(
  o: Operands & { g: ArrayLike<number>; keep: Float64Array | null },
  z: Sizes,
  params: AttentionParams,
  [b, i]: [number, number],
  [gq, gk, gv]: [Float64Array, Float64Array, Float64Array],
): void {
  const p = rowWeights(o, z, params, b, i);
  const keep = (j: number) => o.keep?.[(b * z.L + i) * z.S + j] ?? 1;
  const gOut = (c: number) => o.g[(b * z.L + i) * z.Ev + c]!;
  // dP[j] = keep[j] * (gOut . v[j]); the value gradient takes the dropped weights.
  const dP = p.map((w, j) => {
    let dot = 0;
    for (let c = 0; c < z.Ev; c++) {
      dot += gOut(c) * o.v[(b * z.S + j) * z.Ev + c]!;
      gv[(b * z.S + j) * z.Ev + c]! += w * keep(j) * gOut(c);
    }
    return keep(j) * dot;
  });
  const shift = dP.reduce((acc, d, j) => acc + d * p[j]!, 0);
  p.forEach((w, j) => {
    const dScore = params.scale * w * (dP[j]! - shift);
    for (let e = 0; e < z.E; e++) {
      gq[(b * z.L + i) * z.E + e]! += dScore * o.k[(b * z.S + j) * z.E + e]!;
      gk[(b * z.S + j) * z.E + e]! += dScore * o.q[(b * z.L + i) * z.E + e]!;
    }
  });
}

export function fusedAttentionBackward(
  grads: [RawTensor, RawTensor, RawTensor],
  gradOut: RawTensor,
  inputs: [RawTensor, RawTensor, RawTensor],
  keyPadding: RawTensor | null,
  params: AttentionParams,
): void {
  const z = sizesOf(...inputs, params);
  grads.forEach((grad, n) => expectShape(OP, "gradient", grad.shape, inputs[n]!.shape));
  expectShape(OP, "gradOut", gradOut.shape, [z.B, z.L, z.Ev]);
  const o = operands(inputs, keyPadding, z, params);
  const sums = grads.map((grad) => new Float64Array(elements(OP, grad).length)) as [
    Float64Array,
    Float64Array,
    Float64Array,
  ];
  const withGrad = { ...o, g: elements(OP, gradOut), keep: keepMultipliers(z, params) };
  for (let b = 0; b < z.B; b++) {
    for (let i = 0; i < z.L; i++) rowBackward(withGrad, z, params, [b, i], sums);
  }
  grads.forEach((grad, n) => elements(OP, grad).set(sums[n]!));
}
