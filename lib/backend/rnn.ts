// The recurrent primitives' contract: one layer-direction of an RNN, LSTM or GRU cell run
// over a whole sequence. The input projection x W_ih^T + b_ih is computed beforehand for
// every step at once (one large matmul); the primitive runs the recurrence, and saves in
// a workspace what its backward needs.

/** rnn_tanh and rnn_relu: h' = act(xp + W_hh h + b_hh). Gate orders are PyTorch's. */
export type RnnMode = "rnn_tanh" | "rnn_relu" | "lstm" | "gru";

export const RNN_MODES: readonly RnnMode[] = ["rnn_tanh", "rnn_relu", "lstm", "gru"];

/** Gates per hidden unit: LSTM i, f, g, o; GRU r, z, n; plain RNN one. */
export function rnnGateCount(mode: RnnMode): number {
  return mode === "lstm" ? 4 : mode === "gru" ? 3 : 1;
}

/**
 * Values saved per step and sequence, in units of hiddenSize, laid out [T, N, width * H]:
 * LSTM [i, f, g, o, c, h] (activated gates, then the states after the step); GRU
 * [r, z, n, hn, h] with hn = W_hn h + b_hn; RNN [h]. A step past a sequence's length
 * holds zero gates and the state carried through it.
 */
export function rnnWorkspaceWidth(mode: RnnMode): number {
  return mode === "lstm" ? 6 : mode === "gru" ? 5 : 1;
}

/**
 * Which layer-direction a call runs. Outputs of both directions share one tensor
 * [T, N, outWidth], this direction owning columns [column, column + H); states are
 * [slots, N, H] (numLayers * numDirections slots, PyTorch's h_n layout) and the call
 * reads and writes slot `slot`.
 */
export interface RnnParams {
  mode: RnnMode;
  reverse: boolean; // run from the last step (each sequence from its own last real step)
  column: number;
  slot: number;
  /**
   * The values of the lengths tensor, where the caller has them on the host: a backend
   * whose kernels need them on the host (cuda) then reads no device memory for them.
   */
  lengthValues?: readonly number[];
}

/**
 * Tensors of rnnForward. Shapes: output [T, N, outWidth]; hN, cN, h0, c0 [slots, N, H];
 * workspace [T, N, rnnWorkspaceWidth(mode) * H]; xProj [T, N, G * H]; wHh [G * H, H];
 * bHh [G * H]; lengths int32 [N] with 0 <= length <= T, or null for all T. cN and c0 are
 * LSTM's only (null otherwise). Steps at or past a sequence's length leave its state
 * unchanged and write zero output.
 */
export interface RnnForwardArgs<T> {
  output: T;
  hN: T;
  cN: T | null;
  workspace: T;
  xProj: T;
  wHh: T;
  bHh: T | null;
  h0: T;
  c0: T | null;
  lengths: T | null;
}

/**
 * Tensors of rnnBackward (backpropagation through time). gradXProj [T, N, G * H],
 * gradWHh [G * H, H] and gradBHh [G * H] are overwritten; gradH0 and gradC0 [slots, N, H]
 * get slot `slot` written. gradOutput (shape of output), gradHN and gradCN may be null for
 * a zero gradient. workspace, wHh, h0, c0 and lengths are those of the forward call.
 */
export interface RnnBackwardArgs<T> {
  gradXProj: T;
  gradWHh: T;
  gradBHh: T | null;
  gradH0: T;
  gradC0: T | null;
  gradOutput: T | null;
  gradHN: T | null;
  gradCN: T | null;
  workspace: T;
  wHh: T;
  h0: T;
  c0: T | null;
  lengths: T | null;
}
