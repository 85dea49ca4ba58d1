// Recurrent layers: RNN (tanh or relu), LSTM and GRU with PyTorch's semantics, gate
// orders, parameter names and layouts, so that weights move between the two through
// stateDict. One recorded op runs the whole stack: per layer and direction, one matmul
// projects the input for every step at once, then the backend's rnnForward runs the
// recurrence; backward runs rnnBackward layer by layer in reverse.

import { recordOutputs } from "../autograd/graph.js";
import type { Backend, RawTensor } from "../backend/backend.js";
import { backendFor, getDefaultDevice, parseDevice } from "../backend/registry.js";
import {
  RNN_MODES,
  rnnGateCount,
  rnnWorkspaceWidth,
  type RnnMode,
  type RnnParams,
} from "../backend/rnn.js";
import type { DType } from "../dtype.js";
import {
  DTypeError,
  DeviceError,
  ShapeError,
  ValueError,
  formatShape,
  formatValue,
} from "../errors.js";
import { empty, zeroFilled } from "../ops/creation.js";
import { checkFloatingInput } from "../ops/elementwise.js";
import { defaultGenerator } from "../random.js";
import { Tensor, fromTypedArray } from "../tensor.js";
import { uniform_ } from "./init.js";
import { Module, checkPositiveInt } from "./module.js";
import { Parameter } from "./parameter.js";

export type { RnnMode } from "../backend/rnn.js";

/** Per-sequence lengths of a padded batch: ints, or an int32 tensor [N]. */
export type Lengths = readonly number[] | Int32Array | Tensor;

export interface RecurrentOptions {
  numLayers?: number;
  bidirectional?: boolean;
  batchFirst?: boolean; // input and output [N, T, features] instead of [T, N, features]
  dropout?: number; // on the outputs of every layer but the last, when training
  training?: boolean;
  /**
   * Real length of each sequence; steps past it do not change that sequence's state and
   * output zeros there, as PyTorch's pack_padded_sequence gives.
   */
  lengths?: Lengths | null;
}

export interface RecurrentResult {
  output: Tensor; // [T, N, D * H] ([N, T, D * H] with batchFirst)
  hN: Tensor; // [numLayers * D, N, H]
  cN: Tensor | null; // LSTM's cell state, like hN
}

/** The name errors carry: the module a user wrote. */
function opName(mode: RnnMode): string {
  return mode === "lstm" ? "LSTM" : mode === "gru" ? "GRU" : "RNN";
}

/** Sizes of one call, after every check. */
interface Config {
  op: string;
  mode: RnnMode;
  steps: number;
  batch: number;
  inputSize: number;
  hidden: number;
  layers: number;
  directions: number;
  bias: boolean;
  dropout: number;
  training: boolean;
}

// ---- checks -------------------------------------------------------------------------

function checkWeights(op: string, mode: RnnMode, weights: readonly Tensor[], c: Config): boolean {
  const perDirection = weights.length / (c.layers * c.directions);
  if (perDirection !== 2 && perDirection !== 4) {
    const message =
      `expected 2 or 4 weights per layer and direction (${c.layers * c.directions} ` +
      `of them), got ${weights.length} weights`;
    throw new ValueError(op, message, "weights");
  }
  const gh = rnnGateCount(mode) * c.hidden;
  weights.forEach((w, i) => {
    const layer = Math.floor(i / (perDirection * c.directions));
    const inputSize = layer === 0 ? c.inputSize : c.directions * c.hidden;
    const role = i % perDirection;
    const expected = [[gh, inputSize], [gh, c.hidden], [gh], [gh]][role]!;
    if (w.shape.length !== expected.length || w.shape.some((d, k) => d !== expected[k])) {
      const name = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"][role]!;
      const message =
        `${name} of layer ${layer} has shape ${formatShape(w.shape)}, expected ` +
        `${formatShape(expected)}`;
      throw new ShapeError(op, message, [w.shape, expected]);
    }
  });
  return perDirection === 4;
}

function checkSame(op: string, tensors: readonly Tensor[]): void {
  const first = tensors[0]!;
  checkFloatingInput(op, first);
  for (const t of tensors) {
    if (t.device !== first.device)
      throw new DeviceError(op, `expected one device, got ${first.device} and ${t.device}`, [
        first.device,
        t.device,
      ]);
    if (t.dtype !== first.dtype)
      throw new DTypeError(op, `expected one dtype, got ${first.dtype} and ${t.dtype}`, [
        first.dtype,
        t.dtype,
      ]);
  }
}

function checkState(op: string, role: string, state: Tensor | null, expected: number[]): void {
  if (state === null) return;
  if (state.shape.length !== expected.length || state.shape.some((d, i) => d !== expected[i])) {
    const message =
      `${role} must be [numLayers * numDirections, N, hiddenSize] = ` +
      `${formatShape(expected)}, got ${formatShape(state.shape)}`;
    throw new ShapeError(op, message, [state.shape, expected]);
  }
}

function lengthValues(op: string, lengths: Lengths, c: Config): number[] {
  if (lengths instanceof Tensor && lengths.dtype !== "int32")
    throw new DTypeError(op, `lengths must be int32, got ${lengths.dtype}`, [lengths.dtype]);
  const values =
    lengths instanceof Tensor
      ? Array.from(lengths.dataSync() as Int32Array)
      : Array.from(lengths as ArrayLike<number>);
  const shape = lengths instanceof Tensor ? lengths.shape : [values.length];
  if (shape.length !== 1 || values.length !== c.batch) {
    const message =
      `lengths must hold one length per sequence, [${c.batch}], got ` + `${formatShape(shape)}`;
    throw new ShapeError(op, message, [shape]);
  }
  for (const length of values) {
    if (!Number.isInteger(length) || length < 1 || length > c.steps) {
      const message =
        `every length must be an integer in [1, ${c.steps}] (the sequence length), ` +
        `got ${length}`;
      throw new ValueError(op, message, "lengths");
    }
  }
  return values;
}

function checkConfig(
  mode: RnnMode,
  input: Tensor,
  options: RecurrentOptions,
  hidden: number,
): Config {
  const op = opName(mode);
  checkFloatingInput(op, input);
  const batchFirst = options.batchFirst ?? false;
  if (input.ndim !== 3) {
    const layout = batchFirst ? "[N, T, inputSize]" : "[T, N, inputSize]";
    const message =
      `input must be ${layout} or [T, inputSize] (unbatched), got ` + `${formatShape(input.shape)}`;
    throw new ShapeError(op, message, [input.shape]);
  }
  const [steps, batch] = batchFirst
    ? [input.shape[1]!, input.shape[0]!]
    : [input.shape[0]!, input.shape[1]!];
  if (steps < 1 || batch < 1) {
    const message = `input ${formatShape(input.shape)} has no steps or no sequences`;
    throw new ShapeError(op, message, [input.shape]);
  }
  const dropout = options.dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout <= 1))
    throw new ValueError(op, `dropout must be in [0, 1], got ${formatValue(dropout)}`, "dropout");
  return {
    op,
    mode,
    steps,
    batch,
    inputSize: input.shape[2]!,
    hidden,
    layers: checkPositiveInt(op, "numLayers", options.numLayers ?? 1),
    directions: options.bidirectional === true ? 2 : 1,
    bias: true, // checkCall sets it from the number of weights
    dropout,
    training: options.training ?? true,
  };
}

// ---- forward and backward of the stack ----------------------------------------------

function view(x: RawTensor, shape: number[]): RawTensor {
  return { storage: x.storage, shape, dtype: x.dtype };
}

/** The weights of one layer and direction, in PyTorch's order. */
interface DirectionWeights {
  wIh: Tensor; // [G * H, inputSize of the layer]
  wHh: Tensor; // [G * H, H]
  bIh: Tensor | null;
  bHh: Tensor | null;
}

function weightsOf(weights: readonly Tensor[], c: Config, index: number): DirectionWeights {
  const per = c.bias ? 4 : 2;
  const w = weights.slice(index * per, index * per + per);
  return { wIh: w[0]!, wHh: w[1]!, bIh: w[2] ?? null, bHh: w[3] ?? null };
}

/** x [T, N, I] W_ih^T + b_ih for every step: one matmul over T * N rows. */
function projectInput(backend: Backend, x: Tensor, w: DirectionWeights, c: Config): Tensor {
  const rows = c.steps * c.batch;
  const gh = w.wIh.shape[0]!;
  const xProj = empty([c.steps, c.batch, gh], x.dtype, x.device);
  if (w.bIh !== null) backend.expand(xProj, w.bIh);
  const options = { transA: false, transB: true, alpha: 1, beta: w.bIh === null ? 0 : 1 };
  backend.matmul(view(xProj, [rows, gh]), view(x, [rows, x.shape[2]!]), w.wIh, options);
  return xProj;
}

/** What backward needs: each layer's input, each direction's workspace, dropout masks. */
interface Saved {
  inputs: Tensor[];
  workspaces: Tensor[];
  masks: (Tensor | null)[]; // masks[l] scaled the output of layer l into layer l + 1
}

interface States {
  h0: Tensor;
  c0: Tensor | null;
  lengths: Tensor | null;
  lengthValues: readonly number[] | null; // lengths' values, as checked on the host
}

function paramsOf(c: Config, s: States, layer: number, direction: number): RnnParams {
  return {
    mode: c.mode,
    reverse: direction === 1,
    column: direction * c.hidden,
    slot: layer * c.directions + direction,
    ...(s.lengthValues === null ? {} : { lengthValues: s.lengthValues }),
  };
}

function runLayer(
  backend: Backend,
  c: Config,
  layer: number,
  input: Tensor,
  weights: readonly Tensor[],
  s: States & { hN: Tensor; cN: Tensor | null; saved: Saved },
): Tensor {
  const output = empty([c.steps, c.batch, c.directions * c.hidden], input.dtype, input.device);
  for (let d = 0; d < c.directions; d++) {
    const w = weightsOf(weights, c, layer * c.directions + d);
    const xProj = projectInput(backend, input, w, c);
    const width = rnnWorkspaceWidth(c.mode) * c.hidden;
    const workspace = empty([c.steps, c.batch, width], input.dtype, input.device);
    backend.rnnForward(
      {
        output,
        hN: s.hN,
        cN: s.cN,
        workspace,
        xProj,
        wHh: w.wHh,
        bHh: w.bHh,
        h0: s.h0,
        c0: s.c0,
        lengths: s.lengths,
      },
      paramsOf(c, s, layer, d),
    );
    xProj.dispose();
    s.saved.workspaces.push(workspace);
  }
  return output;
}

function forwardStack(
  backend: Backend,
  c: Config,
  x: Tensor,
  weights: readonly Tensor[],
  states: States,
): { result: RecurrentResult; saved: Saved } {
  const slots = [c.layers * c.directions, c.batch, c.hidden];
  const hN = empty(slots, x.dtype, x.device);
  const cN = c.mode === "lstm" ? empty(slots, x.dtype, x.device) : null;
  const saved: Saved = { inputs: [], workspaces: [], masks: [] };
  let input = x;
  for (let layer = 0; layer < c.layers; layer++) {
    saved.inputs.push(input);
    const output = runLayer(backend, c, layer, input, weights, { ...states, hN, cN, saved });
    const drop = layer < c.layers - 1 && c.training && c.dropout > 0;
    if (!drop) {
      saved.masks.push(null);
      input = output;
      continue;
    }
    const dropped = empty(output.shape, output.dtype, output.device);
    const mask = empty(output.shape, output.dtype, output.device);
    backend.dropout(dropped, mask, output, c.dropout, defaultGenerator.next(output.numel));
    output.dispose();
    saved.masks.push(mask);
    input = dropped;
  }
  return { result: { output: input, hN, cN }, saved };
}

interface StackGrads {
  gradX: Tensor | null;
  gradWeights: Tensor[];
  gradH0: Tensor;
  gradC0: Tensor | null;
}

/** Gradients of the input projection's weight, bias and input for one direction. */
function projectBackward(
  backend: Backend,
  c: Config,
  gradXProj: Tensor,
  input: Tensor,
  w: DirectionWeights,
  gradInput: Tensor | null,
  accumulate: boolean,
  gradBHh: Tensor | null,
): [Tensor, Tensor | null] {
  const rows = c.steps * c.batch;
  const gh = w.wIh.shape[0]!;
  const inputSize = input.shape[2]!;
  const g2 = view(gradXProj, [rows, gh]);
  const gradWIh = empty(w.wIh.shape, input.dtype, input.device);
  const plain = { transA: false, transB: false, alpha: 1, beta: 0 };
  backend.matmul(gradWIh, g2, view(input, [rows, inputSize]), { ...plain, transA: true });
  // Both biases add to the same pre-activation, so their gradients agree, except in
  // GRU's n gate where b_hn sits inside r * (...).
  let gradBIh = c.mode === "gru" ? null : gradBHh;
  if (w.bIh !== null && gradBIh === null) {
    gradBIh = empty([gh], input.dtype, input.device);
    backend.reduce("sum", view(gradBIh, [1, gh]), g2, [0]);
  }
  if (gradInput !== null) {
    const beta = accumulate ? 1 : 0;
    backend.matmul(view(gradInput, [rows, inputSize]), g2, w.wIh, { ...plain, beta });
  }
  return [gradWIh, gradBIh];
}

function backwardLayer(
  backend: Backend,
  c: Config,
  layer: number,
  args: {
    gradOutput: Tensor | null;
    gradHN: Tensor | null;
    gradCN: Tensor | null;
    grads: StackGrads;
    needInput: boolean;
  },
  weights: readonly Tensor[],
  states: States,
  saved: Saved,
): Tensor | null {
  const input = saved.inputs[layer]!;
  const { dtype, device } = input;
  const gradInput = args.needInput ? empty(input.shape, dtype, device) : null;
  for (let d = 0; d < c.directions; d++) {
    const index = layer * c.directions + d;
    const w = weightsOf(weights, c, index);
    const gradXProj = empty([c.steps, c.batch, w.wHh.shape[0]!], dtype, device);
    const gradWHh = empty(w.wHh.shape, dtype, device);
    const gradBHh = w.bHh === null ? null : empty(w.bHh.shape, dtype, device);
    backend.rnnBackward(
      {
        gradXProj,
        gradWHh,
        gradBHh,
        gradH0: args.grads.gradH0,
        gradC0: args.grads.gradC0,
        gradOutput: args.gradOutput,
        gradHN: args.gradHN,
        gradCN: args.gradCN,
        workspace: saved.workspaces[index]!,
        wHh: w.wHh,
        h0: states.h0,
        c0: states.c0,
        lengths: states.lengths,
      },
      paramsOf(c, states, layer, d),
    );
    const [gradWIh, gradBIh] = projectBackward(
      backend,
      c,
      gradXProj,
      input,
      w,
      gradInput,
      d > 0,
      gradBHh,
    );
    gradXProj.dispose();
    const per = c.bias ? 4 : 2;
    const own = [gradWIh, gradWHh, gradBIh, gradBHh].slice(0, per) as Tensor[];
    args.grads.gradWeights.splice(index * per, per, ...own);
  }
  return gradInput;
}

function backwardStack(
  backend: Backend,
  c: Config,
  outputGrads: readonly (Tensor | null)[],
  weights: readonly Tensor[],
  states: States,
  saved: Saved,
  xNeedsGrad: boolean,
): StackGrads {
  const [gradOutput, gradHN, gradCN] = [0, 1, 2].map((k) => outputGrads[k] ?? null) as [
    Tensor | null,
    Tensor | null,
    Tensor | null,
  ];
  const { dtype, device } = states.h0;
  const grads: StackGrads = {
    gradX: null,
    gradWeights: weights.map(() => null as unknown as Tensor),
    gradH0: empty(states.h0.shape, dtype, device),
    gradC0: states.c0 === null ? null : empty(states.c0.shape, dtype, device),
  };
  let gradLayerOutput: Tensor | null = gradOutput;
  for (let layer = c.layers - 1; layer >= 0; layer--) {
    const needInput = layer > 0 || xNeedsGrad;
    const args = { gradOutput: gradLayerOutput, gradHN, gradCN, grads, needInput };
    const gradInput = backwardLayer(backend, c, layer, args, weights, states, saved);
    if (gradLayerOutput !== null && gradLayerOutput !== gradOutput) gradLayerOutput.dispose();
    const mask = layer > 0 ? saved.masks[layer - 1]! : null;
    if (gradInput !== null && mask !== null) {
      gradLayerOutput = empty(gradInput.shape, dtype, device);
      backend.binary("mul", gradLayerOutput, gradInput, mask);
      gradInput.dispose();
    } else {
      gradLayerOutput = gradInput;
    }
  }
  grads.gradX = gradLayerOutput;
  return grads;
}

// ---- the functional entry ---------------------------------------------------------

/** The lengths as a tensor on `device`, and their values (null and null when absent). */
function lengthsOn(
  op: string,
  lengths: Lengths | null | undefined,
  c: Config,
  device: string,
): Pick<States, "lengths" | "lengthValues"> {
  if (lengths === undefined || lengths === null) return { lengths: null, lengthValues: null };
  const values = lengthValues(op, lengths, c);
  return {
    lengths: fromTypedArray(Int32Array.from(values), [c.batch], { device }),
    lengthValues: values,
  };
}

function zeroState(c: Config, input: Tensor): Tensor {
  return zeroFilled([c.layers * c.directions, c.batch, c.hidden], input.dtype, input.device);
}

/**
 * A multi-layer RNN, LSTM or GRU over input [T, N, inputSize] ([N, T, inputSize] with
 * batchFirst), or one unbatched sequence [T, inputSize] (with states [numLayers * D, H]).
 * weights lists, per layer and direction (forward, then reverse), weight_ih, weight_hh and
 * optionally bias_ih and bias_hh, as PyTorch's _flat_weights. h0 and c0
 * ([numLayers * D, N, hiddenSize]) default to zeros; c0 is LSTM's only.
 */
export function recurrent(
  mode: RnnMode,
  input: Tensor,
  weights: readonly Tensor[],
  h0: Tensor | null = null,
  c0: Tensor | null = null,
  options: RecurrentOptions = {},
): RecurrentResult {
  if (!RNN_MODES.includes(mode)) {
    const message = `mode must be one of ${RNN_MODES.join(", ")}, got ${JSON.stringify(mode)}`;
    throw new ValueError("recurrent", message, "mode");
  }
  if (input.ndim === 2) return recurrentUnbatched(mode, input, weights, h0, c0, options);
  return recurrentBatched(mode, input, weights, h0, c0, options);
}

/** As PyTorch: a batch of one, batchFirst ignored, no lengths. */
function recurrentUnbatched(
  mode: RnnMode,
  input: Tensor,
  weights: readonly Tensor[],
  h0: Tensor | null,
  c0: Tensor | null,
  options: RecurrentOptions,
): RecurrentResult {
  const op = opName(mode);
  for (const [role, state] of [["h0", h0] as const, ["c0", c0] as const]) {
    if (state !== null && state.ndim !== 2) {
      const message =
        `${role} must be [numLayers * numDirections, hiddenSize] for an unbatched ` +
        `input ${formatShape(input.shape)}, got ${formatShape(state.shape)}`;
      throw new ShapeError(op, message, [input.shape, state.shape]);
    }
  }
  if (options.lengths !== undefined && options.lengths !== null)
    throw new ValueError(op, "lengths need a batch of sequences, got one unbatched", "lengths");
  const batched = (t: Tensor | null) => (t === null ? null : t.unsqueeze(1));
  const r = recurrentBatched(mode, input.unsqueeze(1), weights, batched(h0), batched(c0), {
    ...options,
    batchFirst: false,
  });
  return {
    output: r.output.squeeze(1),
    hN: r.hN.squeeze(1),
    cN: r.cN === null ? null : r.cN.squeeze(1),
  };
}

/** Every check of a batched call; returns its sizes. */
function checkCall(
  mode: RnnMode,
  input: Tensor,
  weights: readonly Tensor[],
  initial: { h0: Tensor | null; c0: Tensor | null },
  options: RecurrentOptions,
): Config {
  const op = opName(mode);
  const c = checkConfig(mode, input, options, weights[1]?.shape[1] ?? 0);
  const expected = weights[0]?.shape[1];
  if (expected !== undefined && c.inputSize !== expected) {
    const message =
      `input ${formatShape(input.shape)} has ${c.inputSize} features, expected ` +
      `inputSize ${expected}`;
    throw new ShapeError(op, message, [input.shape, weights[0]!.shape], 2);
  }
  c.bias = checkWeights(op, mode, weights, c);
  const states = [initial.h0, initial.c0].filter((t): t is Tensor => t !== null);
  checkSame(op, [input, ...weights, ...states]);
  const slots = [c.layers * c.directions, c.batch, c.hidden];
  checkState(op, "h0", initial.h0, slots);
  if (mode !== "lstm" && initial.c0 !== null)
    throw new ValueError(op, "a cell state c0 is only taken by LSTM", "c0");
  checkState(op, "c0", initial.c0, slots);
  return c;
}

function recurrentBatched(
  mode: RnnMode,
  input: Tensor,
  weights: readonly Tensor[],
  h0: Tensor | null,
  c0: Tensor | null,
  options: RecurrentOptions,
): RecurrentResult {
  const c = checkCall(mode, input, weights, { h0, c0 }, options);
  const initial = [h0, c0].filter((t): t is Tensor => t !== null);
  const backend = backendFor(input.device);
  const x = options.batchFirst === true ? input.transpose(0, 1) : input;
  const states: States = {
    h0: h0 ?? zeroState(c, input),
    c0: mode === "lstm" ? (c0 ?? zeroState(c, input)) : null,
    ...lengthsOn(c.op, options.lengths, c, input.device),
  };
  const { result, saved } = forwardStack(backend, c, x, weights, states);
  const outputs =
    result.cN === null ? [result.output, result.hN] : [result.output, result.hN, result.cN];
  const inputs = [x, ...weights, ...initial];
  recordOutputs(outputs, c.op, inputs, (grads) => {
    const g = backwardStack(backend, c, grads, weights, states, saved, x.requiresGrad);
    const gradStates = [...(h0 === null ? [] : [g.gradH0]), ...(c0 === null ? [] : [g.gradC0])];
    return [g.gradX, ...g.gradWeights, ...gradStates];
  });
  if (!outputs[0]!.requiresGrad) {
    releaseSaved(saved, input);
    for (const t of [states.h0, states.c0, states.lengths]) if (t !== h0 && t !== c0) t?.dispose();
  }
  const output = options.batchFirst === true ? result.output.transpose(0, 1) : result.output;
  if (output !== result.output && !output.requiresGrad) result.output.dispose();
  return { output, hN: result.hN, cN: result.cN };
}

/** Without a recorded backward, the workspaces and intermediate activations are garbage. */
function releaseSaved(saved: Saved, input: Tensor): void {
  for (const t of saved.workspaces) t.dispose();
  for (const t of saved.masks) t?.dispose();
  for (const t of saved.inputs) if (t !== input) t.dispose();
}

// ---- modules ------------------------------------------------------------------------

export interface RNNBaseOptions {
  numLayers?: number;
  bias?: boolean;
  batchFirst?: boolean;
  dropout?: number;
  bidirectional?: boolean;
  device?: string;
  dtype?: DType;
}

export interface RNNOptions extends RNNBaseOptions {
  nonlinearity?: "tanh" | "relu";
}

/** Per-call options of a recurrent module's forward. */
export interface RecurrentForwardOptions {
  lengths?: Lengths | null;
}

function newParameter(op: string, shape: number[], options: RNNBaseOptions): Parameter {
  const dtype = options.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float64")
    throw new DTypeError(op, `parameters must be float32 or float64, got ${dtype}`, [dtype]);
  const device = options.device === undefined ? getDefaultDevice() : parseDevice(options.device);
  return new Parameter(empty(shape, dtype, device));
}

/**
 * What RNN, LSTM and GRU share: configuration, parameters named as PyTorch names them
 * (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_ih_l0_reverse, ...) and
 * PyTorch's init, U(-1/sqrt(hiddenSize), 1/sqrt(hiddenSize)) for every one.
 */
export abstract class RNNBase extends Module {
  readonly mode: RnnMode;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bidirectional: boolean;
  private readonly weightNames: string[] = [];

  constructor(mode: RnnMode, inputSize: number, hiddenSize: number, options: RNNBaseOptions) {
    super();
    const op = opName(mode);
    this.mode = mode;
    this.inputSize = checkPositiveInt(op, "inputSize", inputSize);
    this.hiddenSize = checkPositiveInt(op, "hiddenSize", hiddenSize);
    this.numLayers = checkPositiveInt(op, "numLayers", options.numLayers ?? 1);
    this.bias = options.bias ?? true;
    this.batchFirst = options.batchFirst ?? false;
    const dropout = options.dropout ?? 0;
    if (typeof dropout !== "number" || !(dropout >= 0 && dropout <= 1))
      throw new ValueError(op, `dropout must be in [0, 1], got ${formatValue(dropout)}`, "dropout");
    this.dropout = dropout;
    this.bidirectional = options.bidirectional ?? false;
    this.createParameters(options);
    this.resetParameters();
  }

  private createParameters(options: RNNBaseOptions): void {
    const gh = rnnGateCount(this.mode) * this.hiddenSize;
    const directions = this.bidirectional ? 2 : 1;
    for (let layer = 0; layer < this.numLayers; layer++) {
      const inputSize = layer === 0 ? this.inputSize : directions * this.hiddenSize;
      for (let d = 0; d < directions; d++) {
        const suffix = `_l${layer}${d === 1 ? "_reverse" : ""}`;
        const shapes: [string, number[]][] = [
          [`weight_ih${suffix}`, [gh, inputSize]],
          [`weight_hh${suffix}`, [gh, this.hiddenSize]],
        ];
        if (this.bias) shapes.push([`bias_ih${suffix}`, [gh]], [`bias_hh${suffix}`, [gh]]);
        for (const [name, shape] of shapes) {
          (this as unknown as Record<string, Parameter>)[name] = newParameter(
            opName(this.mode),
            shape,
            options,
          );
          this.weightNames.push(name);
        }
      }
    }
  }

  /** The parameters in PyTorch's _flat_weights order. */
  get flatWeights(): Parameter[] {
    return this.weightNames.map((name) => (this as unknown as Record<string, Parameter>)[name]!);
  }

  override resetParameters(): void {
    const bound = 1 / Math.sqrt(this.hiddenSize);
    for (const p of this.flatWeights) uniform_(p, -bound, bound);
  }

  protected run(
    input: Tensor,
    h0: Tensor | null,
    c0: Tensor | null,
    options: RecurrentForwardOptions,
  ): RecurrentResult {
    return recurrent(this.mode, input, this.flatWeights, h0, c0, {
      numLayers: this.numLayers,
      bidirectional: this.bidirectional,
      batchFirst: this.batchFirst,
      dropout: this.dropout,
      training: this.training,
      lengths: options.lengths ?? null,
    });
  }

  override extraRepr(): string {
    let text = `${this.inputSize}, ${this.hiddenSize}`;
    if (this.numLayers !== 1) text += `, num_layers=${this.numLayers}`;
    if (!this.bias) text += ", bias=False";
    if (this.batchFirst) text += ", batch_first=True";
    if (this.dropout !== 0) text += `, dropout=${this.dropout}`;
    if (this.bidirectional) text += ", bidirectional=True";
    return text;
  }
}

/**
 * Elman RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh (default) or relu.
 * forward(input, h0?) gives [output, h_n].
 */
export class RNN extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, options: RNNOptions = {}) {
    const nonlinearity = options.nonlinearity ?? "tanh";
    if (nonlinearity !== "tanh" && nonlinearity !== "relu") {
      const message = `nonlinearity must be "tanh" or "relu", got ${JSON.stringify(nonlinearity)}`;
      throw new ValueError("RNN", message, "nonlinearity");
    }
    super(nonlinearity === "tanh" ? "rnn_tanh" : "rnn_relu", inputSize, hiddenSize, options);
  }

  forward(input: Tensor, h0: Tensor | null = null, options: RecurrentForwardOptions = {}) {
    const r = this.run(input, h0, null, options);
    return [r.output, r.hN] as [Tensor, Tensor];
  }
}

/**
 * LSTM with PyTorch's gates i, f, g, o (c' = f c + i g, h' = o tanh(c')).
 * forward(input, [h0, c0]?) gives [output, [h_n, c_n]].
 */
export class LSTM extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, options: RNNBaseOptions = {}) {
    super("lstm", inputSize, hiddenSize, options);
  }

  forward(
    input: Tensor,
    hx: readonly [Tensor, Tensor] | null = null,
    options: RecurrentForwardOptions = {},
  ): [Tensor, [Tensor, Tensor]] {
    const r = this.run(input, hx?.[0] ?? null, hx?.[1] ?? null, options);
    return [r.output, [r.hN, r.cN!]];
  }
}

/**
 * GRU with PyTorch's gates r, z, n: n = tanh(x_n + r (W_hn h + b_hn)), h' = (1 - z) n + z h.
 * forward(input, h0?) gives [output, h_n].
 */
export class GRU extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, options: RNNBaseOptions = {}) {
    super("gru", inputSize, hiddenSize, options);
  }

  forward(input: Tensor, h0: Tensor | null = null, options: RecurrentForwardOptions = {}) {
    const r = this.run(input, h0, null, options);
    return [r.output, r.hN] as [Tensor, Tensor];
  }
}
