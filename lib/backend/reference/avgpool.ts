// 2-D average pooling (PyTorch's avg_pool2d: padding, ceil mode, countIncludePad and
// divisorOverride) and adaptive average pooling, forward and backward, summed in double.

import type { AvgPool2dParams, RawTensor } from "../backend.js";
import { ShapeError, ValueError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";
import { poolOutputSize } from "./pool.js";

function checkParams(op: string, params: AvgPool2dParams): void {
  const { kernelSize, stride, padding, divisorOverride } = params;
  const positive = [...kernelSize, ...stride];
  const halfKernel = padding.every((pad, axis) => pad >= 0 && pad <= kernelSize[axis]! / 2);
  const divisorOk =
    divisorOverride === null || (Number.isInteger(divisorOverride) && divisorOverride > 0);
  if (positive.some((v) => !Number.isInteger(v) || v < 1) || !halfKernel || !divisorOk) {
    const message =
      `kernelSize and stride must be positive, padding at most half the kernel and ` +
      `divisorOverride null or positive, got kernelSize ${formatShape(kernelSize)}, stride ` +
      `${formatShape(stride)}, padding ${formatShape(padding)}, divisorOverride ${divisorOverride}`;
    throw new ValueError(op, message, "params");
  }
}

function rank4(op: string, role: string, shape: readonly number[]): void {
  if (shape.length !== 4)
    throw new ShapeError(op, `${role} must be [n, c, h, w], got ${formatShape(shape)}`, [shape]);
}

/** The output shape of avgPool2d for x's shape. */
export function avgPoolOutShape(xShape: readonly number[], params: AvgPool2dParams): number[] {
  const { kernelSize, stride, padding, ceilMode } = params;
  return [
    xShape[0]!,
    xShape[1]!,
    poolOutputSize(xShape[2]!, kernelSize[0], stride[0], padding[0], 1, ceilMode),
    poolOutputSize(xShape[3]!, kernelSize[1], stride[1], padding[1], 1, ceilMode),
  ];
}

/** One window: its clipped row and column ranges and the divisor PyTorch uses. */
interface AvgWindow {
  h0: number;
  h1: number;
  w0: number;
  w1: number;
  divisor: number;
}

function avgWindow(
  oh: number,
  ow: number,
  size: readonly [number, number],
  p: AvgPool2dParams,
): AvgWindow {
  const [height, width] = size;
  let h0 = oh * p.stride[0] - p.padding[0];
  let w0 = ow * p.stride[1] - p.padding[1];
  let h1 = Math.min(h0 + p.kernelSize[0], height + p.padding[0]);
  let w1 = Math.min(w0 + p.kernelSize[1], width + p.padding[1]);
  const padded = (h1 - h0) * (w1 - w0);
  h0 = Math.max(h0, 0);
  w0 = Math.max(w0, 0);
  h1 = Math.min(h1, height);
  w1 = Math.min(w1, width);
  const inside = (h1 - h0) * (w1 - w0);
  const divisor = p.divisorOverride ?? (p.countIncludePad ? padded : inside);
  return { h0, h1, w0, w1, divisor };
}

/** Calls visit(o, window) for every output position of every plane. */
function forEachWindow(
  shape: readonly number[],
  outShape: readonly number[],
  windowAt: (oh: number, ow: number) => AvgWindow,
  visit: (plane: number, o: number, window: AvgWindow) => void,
): void {
  const planes = shape[0]! * shape[1]!;
  const [outHeight, outWidth] = [outShape[2]!, outShape[3]!];
  for (let oh = 0; oh < outHeight; oh++) {
    for (let ow = 0; ow < outWidth; ow++) {
      const window = windowAt(oh, ow);
      for (let p = 0; p < planes; p++) visit(p, (p * outHeight + oh) * outWidth + ow, window);
    }
  }
}

function poolForward(
  op: string,
  out: RawTensor,
  x: RawTensor,
  windowAt: (oh: number, ow: number) => AvgWindow,
): void {
  const [height, width] = [x.shape[2]!, x.shape[3]!];
  const [xValues, outValues] = [elements(op, x), elements(op, out)];
  forEachWindow(x.shape, out.shape, windowAt, (p, o, win) => {
    let sum = 0;
    for (let ih = win.h0; ih < win.h1; ih++)
      for (let iw = win.w0; iw < win.w1; iw++) sum += xValues[(p * height + ih) * width + iw]!;
    outValues[o] = sum / win.divisor;
  });
}

function poolBackward(
  op: string,
  gradX: RawTensor,
  gradOut: RawTensor,
  windowAt: (oh: number, ow: number) => AvgWindow,
): void {
  const [height, width] = [gradX.shape[2]!, gradX.shape[3]!];
  const [gradXValues, gradOutValues] = [elements(op, gradX), elements(op, gradOut)];
  const sums = Float64Array.from(gradXValues);
  forEachWindow(gradX.shape, gradOut.shape, windowAt, (p, o, win) => {
    const share = gradOutValues[o]! / win.divisor;
    for (let ih = win.h0; ih < win.h1; ih++)
      for (let iw = win.w0; iw < win.w1; iw++) sums[(p * height + ih) * width + iw]! += share;
  });
  gradXValues.set(sums);
}

function checkPair(op: string, large: RawTensor, small: RawTensor, expected: number[]): void {
  requireDType(op, large.dtype, FLOAT_DTYPES);
  requireSameDType(op, [large, small]);
  rank4(op, "x", large.shape);
  expectShape(op, "out", small.shape, expected);
}

/** out = the average of each window of x [n, c, h, w]. */
export function avgPool2d(out: RawTensor, x: RawTensor, params: AvgPool2dParams): void {
  const op = "avgPool2d";
  rank4(op, "x", x.shape);
  checkParams(op, params);
  checkPair(op, x, out, avgPoolOutShape(x.shape, params));
  const size = [x.shape[2]!, x.shape[3]!] as const;
  poolForward(op, out, x, (oh, ow) => avgWindow(oh, ow, size, params));
}

/** gradX += each gradOut element spread evenly over its window (divided by its divisor). */
export function avgPool2dBackward(
  gradX: RawTensor,
  gradOut: RawTensor,
  params: AvgPool2dParams,
): void {
  const op = "avgPool2dBackward";
  rank4(op, "gradX", gradX.shape);
  checkParams(op, params);
  checkPair(op, gradX, gradOut, avgPoolOutShape(gradX.shape, params));
  const size = [gradX.shape[2]!, gradX.shape[3]!] as const;
  poolBackward(op, gradX, gradOut, (oh, ow) => avgWindow(oh, ow, size, params));
}

/** PyTorch's adaptive window: [floor(o * in / out), ceil((o + 1) * in / out)). */
function adaptiveWindow(oh: number, ow: number, inSize: number[], outSize: number[]): AvgWindow {
  const h0 = Math.floor((oh * inSize[0]!) / outSize[0]!);
  const h1 = Math.ceil(((oh + 1) * inSize[0]!) / outSize[0]!);
  const w0 = Math.floor((ow * inSize[1]!) / outSize[1]!);
  const w1 = Math.ceil(((ow + 1) * inSize[1]!) / outSize[1]!);
  return { h0, h1, w0, w1, divisor: (h1 - h0) * (w1 - w0) };
}

function checkAdaptive(op: string, large: RawTensor, small: RawTensor): [number[], number[]] {
  rank4(op, "x", large.shape);
  rank4(op, "out", small.shape);
  const [inSize, outSize] = [large.shape.slice(2), small.shape.slice(2)];
  if (inSize.some((v) => v < 1) || outSize.some((v) => v < 1))
    throw new ShapeError(
      op,
      `input ${formatShape(large.shape)} and output ${formatShape(small.shape)} need h, w >= 1`,
      [large.shape, small.shape],
    );
  checkPair(op, large, small, [large.shape[0]!, large.shape[1]!, ...outSize]);
  return [inSize, outSize];
}

/** out [n, c, oH, oW] = the average of x [n, c, h, w] over PyTorch's adaptive windows. */
export function adaptiveAvgPool2d(out: RawTensor, x: RawTensor): void {
  const [inSize, outSize] = checkAdaptive("adaptiveAvgPool2d", x, out);
  poolForward("adaptiveAvgPool2d", out, x, (oh, ow) => adaptiveWindow(oh, ow, inSize, outSize));
}

/** gradX += each gradOut element spread evenly over its adaptive window. */
export function adaptiveAvgPool2dBackward(gradX: RawTensor, gradOut: RawTensor): void {
  const op = "adaptiveAvgPool2dBackward";
  const [inSize, outSize] = checkAdaptive(op, gradX, gradOut);
  poolBackward(op, gradX, gradOut, (oh, ow) => adaptiveWindow(oh, ow, inSize, outSize));
}
