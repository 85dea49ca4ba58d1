// The recurrent primitives as plain loops: one sequence at a time, one step at a time, the
// cell's arithmetic written out in double. This is the specification of the fused cpu
// kernels (native/cpu/rnn.cc); see lib/backend/rnn.ts for shapes and the workspace layout.

import type { RawTensor } from "../backend.js";
import {
  rnnGateCount,
  rnnWorkspaceWidth,
  type RnnBackwardArgs,
  type RnnForwardArgs,
  type RnnMode,
  type RnnParams,
} from "../rnn.js";
import type { TypedArray } from "../../dtype.js";
import { IndexError, ShapeError, ValueError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

interface Dims {
  steps: number; // T
  batch: number; // N
  hidden: number; // H
  gates: number; // G
  width: number; // workspace values per (step, sequence), in units of H
  outWidth: number;
  slots: number;
}

function checkParams(op: string, p: RnnParams, dims: Dims): void {
  if (!["rnn_tanh", "rnn_relu", "lstm", "gru"].includes(p.mode))
    throw new ValueError(op, `unknown mode ${JSON.stringify(p.mode)}`, "mode");
  if (!Number.isInteger(p.slot) || p.slot < 0 || p.slot >= dims.slots)
    throw new ValueError(op, `slot ${p.slot} is outside [0, ${dims.slots})`, "slot");
  if (!Number.isInteger(p.column) || p.column < 0 || p.column + dims.hidden > dims.outWidth) {
    const message =
      `columns [${p.column}, ${p.column + dims.hidden}) do not fit an output of ` +
      `width ${dims.outWidth}`;
    throw new ValueError(op, message, "column");
  }
}

/** Sizes from xProj [T, N, G * H] and wHh [G * H, H], then every other shape against them. */
function dimsOf(op: string, mode: RnnMode, xProj: RawTensor, wHh: RawTensor, h0: RawTensor): Dims {
  if (xProj.shape.length !== 3 || wHh.shape.length !== 2 || h0.shape.length !== 3) {
    const message =
      `xProj must be [T, N, G * H], wHh [G * H, H] and h0 [slots, N, H], got ` +
      `${formatShape(xProj.shape)}, ${formatShape(wHh.shape)} and ${formatShape(h0.shape)}`;
    throw new ShapeError(op, message, [xProj.shape, wHh.shape, h0.shape]);
  }
  const [steps, batch] = xProj.shape as [number, number, number];
  const hidden = wHh.shape[1]!;
  const gates = rnnGateCount(mode);
  expectShape(op, "xProj", xProj.shape, [steps, batch, gates * hidden]);
  expectShape(op, "wHh", wHh.shape, [gates * hidden, hidden]);
  const slots = h0.shape[0]!;
  expectShape(op, "h0", h0.shape, [slots, batch, hidden]);
  return { steps, batch, hidden, gates, width: rnnWorkspaceWidth(mode), outWidth: 0, slots };
}

function checkState(op: string, role: string, x: RawTensor | null, dims: Dims, lstm: boolean) {
  if (lstm && x === null) throw new ValueError(op, `${role} is required in lstm mode`, role);
  if (!lstm && x !== null) throw new ValueError(op, `${role} is only taken in lstm mode`, role);
  if (x !== null) expectShape(op, role, x.shape, [dims.slots, dims.batch, dims.hidden]);
}

function lengthsOf(op: string, lengths: RawTensor | null, dims: Dims): number[] {
  if (lengths === null) return new Array<number>(dims.batch).fill(dims.steps);
  requireDType(op, lengths.dtype, ["int32"]);
  expectShape(op, "lengths", lengths.shape, [dims.batch]);
  const values = Array.from(elements(op, lengths));
  for (const length of values) {
    if (length < 0 || length > dims.steps)
      throw new IndexError(op, `length ${length} is outside [0, ${dims.steps}]`);
  }
  return values;
}

function checkFloats(op: string, tensors: (RawTensor | null)[]): void {
  const present = tensors.filter((t): t is RawTensor => t !== null);
  requireDType(op, present[0]!.dtype, FLOAT_DTYPES);
  requireSameDType(op, present);
}

// ---- the cells ----------------------------------------------------------------------

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** What one step of one sequence reads: its input projection, hidden projection and state. */
interface StepIn {
  xp: number[]; // [G * H]
  hp: number[]; // W_hh h + b_hh, [G * H]
  h: number[];
  c: number[];
}

/** The step's result: the new state and the values the workspace keeps (see rnn.ts). */
interface StepOut {
  h: number[];
  c: number[];
  saved: number[]; // [width * H]
}

function cellStep(mode: RnnMode, s: StepIn, hidden: number): StepOut {
  const range = Array.from({ length: hidden }, (_, j) => j);
  if (mode === "rnn_tanh" || mode === "rnn_relu") {
    const h = range.map((j) => {
      const a = s.xp[j]! + s.hp[j]!;
      return mode === "rnn_tanh" ? Math.tanh(a) : Math.max(a, 0);
    });
    return { h, c: s.c, saved: h };
  }
  if (mode === "lstm") {
    const pre = (gate: number, j: number) => s.xp[gate * hidden + j]! + s.hp[gate * hidden + j]!;
    const i = range.map((j) => sigmoid(pre(0, j)));
    const f = range.map((j) => sigmoid(pre(1, j)));
    const g = range.map((j) => Math.tanh(pre(2, j)));
    const o = range.map((j) => sigmoid(pre(3, j)));
    const c = range.map((j) => f[j]! * s.c[j]! + i[j]! * g[j]!);
    const h = range.map((j) => o[j]! * Math.tanh(c[j]!));
    return { h, c, saved: [...i, ...f, ...g, ...o, ...c, ...h] };
  }
  const r = range.map((j) => sigmoid(s.xp[j]! + s.hp[j]!));
  const z = range.map((j) => sigmoid(s.xp[hidden + j]! + s.hp[hidden + j]!));
  const hn = range.map((j) => s.hp[2 * hidden + j]!);
  const n = range.map((j) => Math.tanh(s.xp[2 * hidden + j]! + r[j]! * hn[j]!));
  const h = range.map((j) => (1 - z[j]!) * n[j]! + z[j]! * s.h[j]!);
  return { h, c: s.c, saved: [...r, ...z, ...n, ...hn, ...h] };
}

/** The gradients one step hands back: to its pre-activations and to the previous state. */
interface StepGrads {
  dXp: number[]; // gradient of xProj, [G * H]
  dHp: number[]; // gradient of W_hh h + b_hh, [G * H]
  dhDirect: number[]; // gradient of the previous h other than through W_hh (GRU's z * h)
  dcPrev: number[];
}

/** Backward of cellStep: saved is the step's workspace row, hPrev and cPrev its input state. */
function cellStepBackward(
  mode: RnnMode,
  saved: ArrayLike<number>,
  hPrev: number[],
  cPrev: number[],
  dh: number[],
  dc: number[],
  hidden: number,
): StepGrads {
  const range = Array.from({ length: hidden }, (_, j) => j);
  const at = (block: number, j: number) => saved[block * hidden + j]!;
  const zeros = range.map(() => 0);
  if (mode === "rnn_tanh" || mode === "rnn_relu") {
    const da = range.map((j) => {
      const h = at(0, j);
      return dh[j]! * (mode === "rnn_tanh" ? 1 - h * h : h > 0 ? 1 : 0);
    });
    return { dXp: da, dHp: da, dhDirect: zeros, dcPrev: zeros };
  }
  if (mode === "lstm") {
    const dcTotal = range.map((j) => {
      const tc = Math.tanh(at(4, j));
      return dc[j]! + dh[j]! * at(3, j) * (1 - tc * tc);
    });
    const di = range.map((j) => dcTotal[j]! * at(2, j) * at(0, j) * (1 - at(0, j)));
    const df = range.map((j) => dcTotal[j]! * cPrev[j]! * at(1, j) * (1 - at(1, j)));
    const dg = range.map((j) => dcTotal[j]! * at(0, j) * (1 - at(2, j) * at(2, j)));
    const dO = range.map((j) => dh[j]! * Math.tanh(at(4, j)) * at(3, j) * (1 - at(3, j)));
    const dPre = [...di, ...df, ...dg, ...dO];
    const dcPrev = range.map((j) => dcTotal[j]! * at(1, j));
    return { dXp: dPre, dHp: dPre, dhDirect: zeros, dcPrev };
  }
  const dnPre = range.map((j) => dh[j]! * (1 - at(1, j)) * (1 - at(2, j) * at(2, j)));
  const dzPre = range.map((j) => dh[j]! * (hPrev[j]! - at(2, j)) * at(1, j) * (1 - at(1, j)));
  const drPre = range.map((j) => dnPre[j]! * at(3, j) * at(0, j) * (1 - at(0, j)));
  const dHn = range.map((j) => dnPre[j]! * at(0, j));
  return {
    dXp: [...drPre, ...dzPre, ...dnPre],
    dHp: [...drPre, ...dzPre, ...dHn],
    dhDirect: range.map((j) => dh[j]! * at(1, j)),
    dcPrev: zeros,
  };
}

// ---- running a sequence -------------------------------------------------------------

/** Row `row` of length `size` of a flat array. */
function rowOf(values: ArrayLike<number>, row: number, size: number): number[] {
  return Array.from({ length: size }, (_, j) => values[row * size + j]!);
}

/** b + W v for W [rows, cols]. */
function matVec(w: ArrayLike<number>, v: number[], b: ArrayLike<number> | null, rows: number) {
  const cols = v.length;
  return Array.from({ length: rows }, (_, r) => {
    let sum = b === null ? 0 : b[r]!;
    for (let k = 0; k < cols; k++) sum += w[r * cols + k]! * v[k]!;
    return sum;
  });
}

/** Time index of processing step `step`: forward runs 0..T-1, reverse T-1..0. */
function timeOf(p: RnnParams, dims: Dims, step: number): number {
  return p.reverse ? dims.steps - 1 - step : step;
}

function write(target: TypedArray, offset: number, values: readonly number[]): void {
  for (let j = 0; j < values.length; j++) target[offset + j] = values[j]!;
}

function checkForward(op: string, a: RnnForwardArgs<RawTensor>, p: RnnParams): Dims {
  checkFloats(op, [a.output, a.hN, a.cN, a.workspace, a.xProj, a.wHh, a.bHh, a.h0, a.c0]);
  const dims = dimsOf(op, p.mode, a.xProj, a.wHh, a.h0);
  const { steps, batch, hidden, gates, width } = dims;
  if (a.output.shape.length !== 3)
    throw new ShapeError(op, `output must be [T, N, width], got ${formatShape(a.output.shape)}`);
  dims.outWidth = a.output.shape[2]!;
  checkParams(op, p, dims);
  expectShape(op, "output", a.output.shape, [steps, batch, dims.outWidth]);
  expectShape(op, "hN", a.hN.shape, a.h0.shape);
  expectShape(op, "workspace", a.workspace.shape, [steps, batch, width * hidden]);
  if (a.bHh !== null) expectShape(op, "bHh", a.bHh.shape, [gates * hidden]);
  checkState(op, "c0", a.c0, dims, p.mode === "lstm");
  checkState(op, "cN", a.cN, dims, p.mode === "lstm");
  return dims;
}

export function rnnForward(args: RnnForwardArgs<RawTensor>, p: RnnParams): void {
  const op = "rnnForward";
  const dims = checkForward(op, args, p);
  const lengths = lengthsOf(op, args.lengths, dims);
  for (let n = 0; n < dims.batch; n++) forwardSequence(args, p, dims, n, lengths[n]!);
}

/** Runs sequence n: outputs, workspace rows, and its final state into hN and cN. */
function forwardSequence(
  a: RnnForwardArgs<RawTensor>,
  p: RnnParams,
  dims: Dims,
  n: number,
  length: number,
): void {
  const v = (x: RawTensor) => elements("rnnForward", x);
  const { steps, batch, hidden, gates, width } = dims;
  const [xProj, wHh, output, workspace] = [v(a.xProj), v(a.wHh), v(a.output), v(a.workspace)];
  const bHh = a.bHh === null ? null : v(a.bHh);
  const stateRow = p.slot * batch + n;
  let h = rowOf(v(a.h0), stateRow, hidden);
  let c = a.c0 === null ? [] : rowOf(v(a.c0), stateRow, hidden);
  for (let step = 0; step < steps; step++) {
    const base = timeOf(p, dims, step) * batch + n;
    let saved: number[];
    if (timeOf(p, dims, step) < length) {
      const hp = matVec(wHh, h, bHh, gates * hidden);
      const xp = rowOf(xProj, base, gates * hidden);
      ({ h, c, saved } = cellStep(p.mode, { xp, hp, h, c }, hidden));
      write(output, base * dims.outWidth + p.column, h);
    } else {
      saved = carriedRow(p.mode, h, c, hidden);
      write(output, base * dims.outWidth + p.column, new Array<number>(hidden).fill(0));
    }
    write(workspace, base * width * hidden, saved);
  }
  write(v(a.hN), stateRow * hidden, h);
  if (a.cN !== null) write(v(a.cN), stateRow * hidden, c);
}

/** The workspace row of a step a sequence does not take: zero gates, the carried state. */
function carriedRow(mode: RnnMode, h: number[], c: number[], hidden: number): number[] {
  const zeros = (blocks: number) => new Array<number>(blocks * hidden).fill(0);
  if (mode === "lstm") return [...zeros(4), ...c, ...h];
  if (mode === "gru") return [...zeros(4), ...h];
  return [...h];
}

function checkBackward(op: string, a: RnnBackwardArgs<RawTensor>, p: RnnParams): Dims {
  checkFloats(op, [a.gradXProj, a.gradWHh, a.gradBHh, a.gradH0, a.gradC0, a.gradOutput]);
  checkFloats(op, [a.gradXProj, a.gradHN, a.gradCN, a.workspace, a.wHh, a.h0, a.c0]);
  const dims = dimsOf(op, p.mode, a.gradXProj, a.wHh, a.h0);
  const { steps, batch, hidden, gates, width } = dims;
  dims.outWidth = a.gradOutput === null ? p.column + hidden : a.gradOutput.shape[2]!;
  checkParams(op, p, dims);
  if (a.gradOutput !== null)
    expectShape(op, "gradOutput", a.gradOutput.shape, [steps, batch, dims.outWidth]);
  expectShape(op, "gradWHh", a.gradWHh.shape, a.wHh.shape);
  if (a.gradBHh !== null) expectShape(op, "gradBHh", a.gradBHh.shape, [gates * hidden]);
  expectShape(op, "gradH0", a.gradH0.shape, a.h0.shape);
  if (a.gradHN !== null) expectShape(op, "gradHN", a.gradHN.shape, a.h0.shape);
  expectShape(op, "workspace", a.workspace.shape, [steps, batch, width * hidden]);
  const lstm = p.mode === "lstm";
  checkState(op, "c0", a.c0, dims, lstm);
  checkState(op, "gradC0", a.gradC0, dims, lstm);
  if (a.gradCN !== null) checkState(op, "gradCN", a.gradCN, dims, lstm);
  return dims;
}

export function rnnBackward(args: RnnBackwardArgs<RawTensor>, p: RnnParams): void {
  const op = "rnnBackward";
  const dims = checkBackward(op, args, p);
  const lengths = lengthsOf(op, args.lengths, dims);
  const { hidden, gates } = dims;
  const gradWHh = new Array<number>(gates * hidden * hidden).fill(0);
  const gradBHh = new Array<number>(gates * hidden).fill(0);
  for (let n = 0; n < dims.batch; n++) {
    backwardSequence(args, p, dims, n, lengths[n]!, { gradWHh, gradBHh });
  }
  write(elements(op, args.gradWHh), 0, gradWHh);
  if (args.gradBHh !== null) write(elements(op, args.gradBHh), 0, gradBHh);
}

/** BPTT over sequence n, accumulating the weight gradients into sums. */
function backwardSequence(
  a: RnnBackwardArgs<RawTensor>,
  p: RnnParams,
  dims: Dims,
  n: number,
  length: number,
  sums: { gradWHh: number[]; gradBHh: number[] },
): void {
  const op = "rnnBackward";
  const { steps, batch, hidden, gates, width } = dims;
  const v = (x: RawTensor) => elements(op, x);
  const workspace = v(a.workspace);
  const wHh = v(a.wHh);
  const stateRow = p.slot * batch + n;
  const zeros = new Array<number>(hidden).fill(0);
  let dh = a.gradHN === null ? zeros : rowOf(v(a.gradHN), stateRow, hidden);
  let dc = a.gradCN === null ? zeros : rowOf(v(a.gradCN), stateRow, hidden);
  const h0 = rowOf(v(a.h0), stateRow, hidden);
  const c0 = a.c0 === null ? zeros : rowOf(v(a.c0), stateRow, hidden);
  const gradXProj = v(a.gradXProj);
  const hOffset = (width - 1) * hidden;
  const cOffset = 4 * hidden;
  for (let step = steps - 1; step >= 0; step--) {
    const t = timeOf(p, dims, step);
    const base = t * batch + n;
    if (t >= length) {
      write(gradXProj, base * gates * hidden, new Array<number>(gates * hidden).fill(0));
      continue;
    }
    const saved = rowOf(workspace, base, width * hidden);
    const prevBase = step === 0 ? -1 : timeOf(p, dims, step - 1) * batch + n;
    const previous = (offset: number, initial: number[]) =>
      prevBase < 0
        ? initial
        : rowOf(workspace, prevBase, width * hidden).slice(offset, offset + hidden);
    const hPrev = previous(hOffset, h0);
    const cPrev = p.mode === "lstm" ? previous(cOffset, c0) : zeros;
    const gradOut =
      a.gradOutput === null
        ? zeros
        : rowOf(v(a.gradOutput), base, dims.outWidth).slice(p.column, p.column + hidden);
    const dhTotal = dh.map((d, j) => d + gradOut[j]!);
    const g = cellStepBackward(p.mode, saved, hPrev, cPrev, dhTotal, dc, hidden);
    write(gradXProj, base * gates * hidden, g.dXp);
    for (let r = 0; r < gates * hidden; r++) {
      sums.gradBHh[r]! += g.dHp[r]!;
      for (let k = 0; k < hidden; k++) sums.gradWHh[r * hidden + k]! += g.dHp[r]! * hPrev[k]!;
    }
    dh = g.dhDirect.map((d, k) => {
      let sum = d;
      for (let r = 0; r < gates * hidden; r++) sum += wHh[r * hidden + k]! * g.dHp[r]!;
      return sum;
    });
    dc = g.dcPrev;
  }
  write(v(a.gradH0), stateRow * hidden, dh);
  if (a.gradC0 !== null) write(v(a.gradC0), stateRow * hidden, dc);
}
