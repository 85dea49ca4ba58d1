// Buffers and attributes of the native recurrent kernels (native/cpu/rnn.cc), from the
// backend's arguments (lib/backend/rnn.ts).

import type { NativeKernels, RnnAttrs } from "../../../binding.js";
import type { RawTensor } from "../backend.js";
import type { RnnBackwardArgs, RnnForwardArgs, RnnParams } from "../rnn.js";

function f32(x: RawTensor): Float32Array;
function f32(x: RawTensor | null): Float32Array | null;
function f32(x: RawTensor | null): Float32Array | null {
  return x === null ? null : (x.storage as Float32Array);
}

function i32(x: RawTensor | null): Int32Array | null {
  return x === null ? null : (x.storage as Int32Array);
}

function attrsOf(xProj: RawTensor, wHh: RawTensor, h0: RawTensor, outWidth: number, p: RnnParams) {
  const attrs: RnnAttrs = {
    mode: p.mode,
    reverse: p.reverse,
    column: p.column,
    slot: p.slot,
    steps: xProj.shape[0] ?? 0,
    batch: xProj.shape[1] ?? 0,
    hidden: wHh.shape[1] ?? 0,
    outWidth,
    slots: h0.shape[0] ?? 0,
    ...(p.lengthValues === undefined ? {} : { lengthValues: p.lengthValues }),
  };
  return attrs;
}

export function rnnForwardCall(
  a: RnnForwardArgs<RawTensor>,
  p: RnnParams,
): NativeKernels["rnn_forward"] {
  const buffers: NativeKernels["rnn_forward"][0] = [
    f32(a.output),
    f32(a.hN),
    f32(a.cN),
    f32(a.workspace),
    f32(a.xProj),
    f32(a.wHh),
    f32(a.bHh),
    f32(a.h0),
    f32(a.c0),
    i32(a.lengths),
  ];
  return [buffers, attrsOf(a.xProj, a.wHh, a.h0, a.output.shape[2] ?? 0, p)];
}

export function rnnBackwardCall(
  a: RnnBackwardArgs<RawTensor>,
  p: RnnParams,
): NativeKernels["rnn_backward"] {
  const buffers: NativeKernels["rnn_backward"][0] = [
    f32(a.gradXProj),
    f32(a.gradWHh),
    f32(a.gradBHh),
    f32(a.gradH0),
    f32(a.gradC0),
    f32(a.gradOutput),
    f32(a.gradHN),
    f32(a.gradCN),
    f32(a.workspace),
    f32(a.wHh),
    f32(a.h0),
    f32(a.c0),
    i32(a.lengths),
  ];
  const outWidth =
    a.gradOutput === null ? p.column + (a.wHh.shape[1] ?? 0) : a.gradOutput.shape[2]!;
  return [buffers, attrsOf(a.gradXProj, a.wHh, a.h0, outWidth, p)];
}
