// The reference backend: every primitive of the Backend contract as plain TypeScript loops
// over typed arrays. It is the specification the cpu and cuda kernels are tested against,
// so it is written to be read: no fast paths, values computed in double, rounded once.

import type {
  AdamStepItem,
  AdamStepOptions,
  Backend,
  BatchNormRunning,
  BinaryOp,
  Conv2dParams,
  MatmulOptions,
  Pool2dParams,
  RandomKey,
  RawTensor,
  ReduceOp,
  Reduction,
  SgdStepItem,
  SgdStepOptions,
  UnaryOp,
} from "../backend.js";
import type { RnnBackwardArgs, RnnForwardArgs, RnnParams } from "../rnn.js";
import type { DType, TypedArray } from "../../dtype.js";
import type { AllocInit } from "../uninit.js";
import * as conv from "./conv.js";
import * as creation from "./creation.js";
import * as embeddings from "./embedding.js";
import * as elementwise from "./elementwise.js";
import * as foreach from "./foreach.js";
import * as indexing from "./indexing.js";
import * as linalg from "./linalg.js";
import * as loss from "./loss.js";
import * as norm from "./norm.js";
import * as optim from "./optim.js";
import * as pool from "./pool.js";
import * as reduction from "./reduce.js";
import * as recurrent from "./rnn.js";
import * as slicing from "./slice.js";
import * as softmaxes from "./softmax.js";
import * as attention from "./attention.js";
import type {
  AdagradStepItem,
  AdagradStepOptions,
  RmspropStepItem,
  RmspropStepOptions,
} from "../backend.js";
import type { AvgPool2dParams, CtcInputs } from "../backend.js";
import * as avgpool from "./avgpool.js";
import * as ctc from "./ctc.js";
import type { AttentionParams } from "../backend.js";
import * as fused from "./fused_attention.js";

export class ReferenceBackend implements Backend {
  readonly name = "reference" as const;

  /** Zero-filled whatever `init` asks: the oracle never depends on stale memory. */
  alloc(dtype: DType, size: number, _init?: AllocInit): TypedArray {
    return creation.alloc(dtype, size);
  }

  fromArray(dtype: DType, values: ArrayLike<number>): TypedArray {
    return creation.fromArray(dtype, values);
  }

  read(x: RawTensor): TypedArray {
    return creation.read(x);
  }

  fill(out: RawTensor, value: number): void {
    creation.fill(out, value);
  }

  cast(out: RawTensor, x: RawTensor): void {
    creation.cast(out, x);
  }

  randUniform(out: RawTensor, key: RandomKey, low: number, high: number): void {
    creation.randUniform(out, key, low, high);
  }

  randNormal(out: RawTensor, key: RandomKey, mean: number, std: number): void {
    creation.randNormal(out, key, mean, std);
  }

  dropout(out: RawTensor, mask: RawTensor, x: RawTensor, p: number, key: RandomKey): void {
    creation.dropout(out, mask, x, p, key);
  }

  unary(op: UnaryOp, out: RawTensor, x: RawTensor, alpha?: number, beta?: number): void {
    elementwise.unary(op, out, x, alpha, beta);
  }

  binary(op: BinaryOp, out: RawTensor, a: RawTensor, b: RawTensor): void {
    elementwise.binary(op, out, a, b);
  }

  where(out: RawTensor, cond: RawTensor, a: RawTensor, b: RawTensor): void {
    elementwise.where(out, cond, a, b);
  }

  expand(out: RawTensor, x: RawTensor): void {
    elementwise.expand(out, x);
  }

  permute(out: RawTensor, x: RawTensor, perm: readonly number[]): void {
    elementwise.permute(out, x, perm);
  }

  scaleInPlace(xs: readonly RawTensor[], factor: RawTensor, maxNorm?: number): void {
    foreach.scaleInPlace(xs, factor, maxNorm);
  }

  reduce(op: ReduceOp, out: RawTensor, x: RawTensor, axes: readonly number[]): void {
    reduction.reduce(op, out, x, axes);
  }

  argReduce(op: "argmax" | "argmin", out: RawTensor, x: RawTensor, axis: number): void {
    reduction.argReduce(op, out, x, axis);
  }

  norms(out: RawTensor, xs: readonly RawTensor[], normType: number): void {
    foreach.norms(out, xs, normType);
  }

  matmul(out: RawTensor, a: RawTensor, b: RawTensor, options: MatmulOptions): void {
    linalg.matmul(out, a, b, options);
  }

  conv2d(
    out: RawTensor,
    x: RawTensor,
    weight: RawTensor,
    bias: RawTensor | null,
    params: Conv2dParams,
  ): void {
    conv.conv2d(out, x, weight, bias, params);
  }

  conv2dBackwardData(
    gradX: RawTensor,
    gradOut: RawTensor,
    weight: RawTensor,
    params: Conv2dParams,
  ): void {
    conv.conv2dBackwardData(gradX, gradOut, weight, params);
  }

  conv2dBackwardWeight(
    gradWeight: RawTensor,
    gradOut: RawTensor,
    x: RawTensor,
    params: Conv2dParams,
  ): void {
    conv.conv2dBackwardWeight(gradWeight, gradOut, x, params);
  }

  maxPool2d(out: RawTensor, indices: RawTensor, x: RawTensor, params: Pool2dParams): void {
    pool.maxPool2d(out, indices, x, params);
  }

  maxPool2dBackward(gradX: RawTensor, gradOut: RawTensor, indices: RawTensor): void {
    pool.maxPool2dBackward(gradX, gradOut, indices);
  }

  softmax(out: RawTensor, x: RawTensor, axis: number, log: boolean): void {
    softmaxes.softmax(out, x, axis, log);
  }

  softmaxBackward(
    gradX: RawTensor,
    gradOut: RawTensor,
    y: RawTensor,
    axis: number,
    log: boolean,
  ): void {
    softmaxes.softmaxBackward(gradX, gradOut, y, axis, log);
  }

  gather(out: RawTensor, x: RawTensor, axis: number, index: RawTensor): void {
    indexing.gather(out, x, axis, index);
  }

  scatterAdd(out: RawTensor, axis: number, index: RawTensor, src: RawTensor): void {
    indexing.scatterAdd(out, axis, index, src);
  }

  nllLoss(
    out: RawTensor,
    logProbs: RawTensor,
    targets: RawTensor,
    weight: RawTensor | null,
    reduction: Reduction,
    ignoreIndex: number,
  ): void {
    loss.nllLoss(out, logProbs, targets, weight, reduction, ignoreIndex);
  }

  checkRange(x: RawTensor, low: number, high: number, op: string, name: string): void {
    loss.checkRange(x, low, high, op, name);
  }

  nllLossBackward(
    gradLogProbs: RawTensor,
    gradOut: RawTensor,
    targets: RawTensor,
    weight: RawTensor | null,
    reduction: Reduction,
    ignoreIndex: number,
  ): void {
    loss.nllLossBackward(gradLogProbs, gradOut, targets, weight, reduction, ignoreIndex);
  }

  sgdStep(
    param: RawTensor,
    grad: RawTensor,
    momentumBuffer: RawTensor | null,
    options: SgdStepOptions,
  ): void {
    optim.sgdStep({ param, grad, momentumBuffer }, options);
  }

  sgdSteps(items: readonly SgdStepItem[], options: SgdStepOptions): void {
    optim.eachItem("sgdSteps", items, options, optim.checkSgdItem, optim.sgdStep);
  }

  adamStep(
    param: RawTensor,
    grad: RawTensor,
    expAvg: RawTensor,
    expAvgSq: RawTensor,
    maxExpAvgSq: RawTensor | null,
    options: AdamStepOptions,
  ): void {
    optim.adamStep({ param, grad, expAvg, expAvgSq, maxExpAvgSq }, options);
  }

  adamSteps(items: readonly AdamStepItem[], options: AdamStepOptions): void {
    optim.eachItem("adamSteps", items, options, optim.checkAdamItem, optim.adamStep);
  }

  rmspropStep(
    param: RawTensor,
    grad: RawTensor,
    squareAvg: RawTensor,
    gradAvg: RawTensor | null,
    momentumBuffer: RawTensor | null,
    options: RmspropStepOptions,
  ): void {
    optim.rmspropStep({ param, grad, squareAvg, gradAvg, momentumBuffer }, options);
  }

  rmspropSteps(items: readonly RmspropStepItem[], options: RmspropStepOptions): void {
    optim.eachItem("rmspropSteps", items, options, optim.checkRmspropItem, optim.rmspropStep);
  }

  adagradStep(
    param: RawTensor,
    grad: RawTensor,
    stateSum: RawTensor,
    options: AdagradStepOptions,
  ): void {
    optim.adagradStep({ param, grad, stateSum }, options);
  }

  adagradSteps(items: readonly AdagradStepItem[], options: AdagradStepOptions): void {
    optim.eachItem("adagradSteps", items, options, optim.checkAdagradItem, optim.adagradStep);
  }

  rnnForward(args: RnnForwardArgs<RawTensor>, params: RnnParams): void {
    recurrent.rnnForward(args, params);
  }

  rnnBackward(args: RnnBackwardArgs<RawTensor>, params: RnnParams): void {
    recurrent.rnnBackward(args, params);
  }

  slice(out: RawTensor, x: RawTensor, axis: number, start: number, step: number): void {
    slicing.slice(out, x, axis, start, step);
  }

  sliceAssign(out: RawTensor, x: RawTensor, axis: number, start: number, step: number): void {
    slicing.sliceAssign(out, x, axis, start, step);
  }

  batchNorm(
    out: RawTensor,
    mean: RawTensor,
    variance: RawTensor,
    x: RawTensor,
    weight: RawTensor | null,
    bias: RawTensor | null,
    training: boolean,
    eps: number,
    running: BatchNormRunning | null = null,
  ): void {
    norm.batchNorm(out, mean, variance, x, weight, bias, training, eps, running);
  }

  batchNormBackward(
    gradX: RawTensor,
    gradWeight: RawTensor | null,
    gradBias: RawTensor | null,
    gradOut: RawTensor,
    x: RawTensor,
    mean: RawTensor,
    variance: RawTensor,
    weight: RawTensor | null,
    training: boolean,
    eps: number,
  ): void {
    const grads = [gradX, gradWeight, gradBias] as const;
    norm.batchNormBackward(...grads, gradOut, x, mean, variance, weight, training, eps);
  }

  layerNorm(
    out: RawTensor,
    mean: RawTensor,
    rstd: RawTensor,
    x: RawTensor,
    weight: RawTensor | null,
    bias: RawTensor | null,
    eps: number,
  ): void {
    norm.layerNorm(out, mean, rstd, x, weight, bias, eps);
  }

  layerNormBackward(
    gradX: RawTensor,
    gradWeight: RawTensor | null,
    gradBias: RawTensor | null,
    gradOut: RawTensor,
    x: RawTensor,
    mean: RawTensor,
    rstd: RawTensor,
    weight: RawTensor | null,
  ): void {
    norm.layerNormBackward(gradX, gradWeight, gradBias, gradOut, x, mean, rstd, weight);
  }

  embedding(out: RawTensor, weight: RawTensor, indices: RawTensor): void {
    embeddings.embedding(out, weight, indices);
  }

  embeddingBackward(
    gradWeight: RawTensor,
    gradOut: RawTensor,
    indices: RawTensor,
    paddingIdx: number,
  ): void {
    embeddings.embeddingBackward(gradWeight, gradOut, indices, paddingIdx);
  }

  maskedSoftmax(out: RawTensor, scores: RawTensor, mask: RawTensor | null, scale: number): void {
    attention.maskedSoftmax(out, scores, mask, scale);
  }

  avgPool2d(out: RawTensor, x: RawTensor, params: AvgPool2dParams): void {
    avgpool.avgPool2d(out, x, params);
  }

  avgPool2dBackward(gradX: RawTensor, gradOut: RawTensor, params: AvgPool2dParams): void {
    avgpool.avgPool2dBackward(gradX, gradOut, params);
  }

  adaptiveAvgPool2d(out: RawTensor, x: RawTensor): void {
    avgpool.adaptiveAvgPool2d(out, x);
  }

  adaptiveAvgPool2dBackward(gradX: RawTensor, gradOut: RawTensor): void {
    avgpool.adaptiveAvgPool2dBackward(gradX, gradOut);
  }

  ctcLoss(loss: RawTensor, logAlpha: RawTensor, inputs: CtcInputs): void {
    ctc.ctcLoss(loss, logAlpha, inputs);
  }

  ctcLossBackward(
    gradLogProbs: RawTensor,
    gradLoss: RawTensor,
    inputs: CtcInputs,
    logAlpha: RawTensor,
    loss: RawTensor,
    zeroInfinity: boolean,
  ): void {
    ctc.ctcLossBackward(gradLogProbs, gradLoss, inputs, logAlpha, loss, zeroInfinity);
  }

  fusedAttention(
    out: RawTensor,
    query: RawTensor,
    key: RawTensor,
    value: RawTensor,
    keyPadding: RawTensor | null,
    params: AttentionParams,
  ): void {
    fused.fusedAttention(out, query, key, value, keyPadding, params);
  }

  fusedAttentionBackward(
    grads: [RawTensor, RawTensor, RawTensor],
    gradOut: RawTensor,
    inputs: [RawTensor, RawTensor, RawTensor],
    keyPadding: RawTensor | null,
    params: AttentionParams,
  ): void {
    fused.fusedAttentionBackward(grads, gradOut, inputs, keyPadding, params);
  }
}

export const referenceBackend = new ReferenceBackend();
