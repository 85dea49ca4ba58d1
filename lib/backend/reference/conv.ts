// 2-D convolution (cross-correlation, as PyTorch) with stride, padding, dilation and groups.
// All three kernels walk the same taps (forEachTap): forward gathers into out, backward-data
// scatters into gradX, backward-weight into gradWeight. Sums run in double; each output is
// overwritten and rounded once.

import type { Conv2dParams, RawTensor } from "../backend.js";
import { ShapeError, ValueError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

/** Every size of one convolution; weight is [outChannels, inChannels / groups, kH, kW]. */
interface ConvGeometry {
  batch: number;
  inChannels: number;
  height: number;
  width: number;
  outChannels: number;
  kernelHeight: number;
  kernelWidth: number;
  outHeight: number;
  outWidth: number;
  params: Conv2dParams;
}

/** PyTorch's output size: floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1. */
export function convOutputSize(
  inSize: number,
  kernelSize: number,
  stride: number,
  padding: number,
  dilation: number,
): number {
  return Math.floor((inSize + 2 * padding - dilation * (kernelSize - 1) - 1) / stride) + 1;
}

function checkParams(op: string, params: Conv2dParams): void {
  const positive = [...params.stride, ...params.dilation, params.groups];
  if (positive.some((v) => !Number.isInteger(v) || v < 1) || params.padding.some((v) => v < 0)) {
    const message =
      `stride, dilation and groups must be positive and padding non-negative, got ` +
      `stride ${formatShape(params.stride)}, padding ${formatShape(params.padding)}, ` +
      `dilation ${formatShape(params.dilation)}, groups ${params.groups}`;
    throw new ValueError(op, message, "params");
  }
}

function convGeometry(
  op: string,
  xShape: readonly number[],
  weightShape: readonly number[],
  outShape: readonly number[],
  params: Conv2dParams,
): ConvGeometry {
  checkParams(op, params);
  const shapes = [xShape, weightShape, outShape];
  if (xShape.length !== 4 || weightShape.length !== 4 || outShape.length !== 4) {
    throw new ShapeError(op, `x, weight and out must have rank 4`, shapes);
  }
  const [batch, inChannels, height, width] = xShape as [number, number, number, number];
  const [outChannels, groupChannels, kernelHeight, kernelWidth] = weightShape as number[];
  const { stride, padding, dilation, groups } = params;
  if (groupChannels! * groups !== inChannels || outChannels! % groups !== 0) {
    const message =
      `weight ${formatShape(weightShape)} does not fit x ${formatShape(xShape)} ` +
      `with groups ${groups}`;
    throw new ShapeError(op, message, shapes, 1);
  }
  const outHeight = convOutputSize(height, kernelHeight!, stride[0], padding[0], dilation[0]);
  const outWidth = convOutputSize(width, kernelWidth!, stride[1], padding[1], dilation[1]);
  expectShape(op, "out", outShape, [batch, outChannels!, outHeight, outWidth]);
  return {
    batch,
    inChannels,
    height,
    width,
    outChannels: outChannels!,
    kernelHeight: kernelHeight!,
    kernelWidth: kernelWidth!,
    outHeight,
    outWidth,
    params,
  };
}

/** Flat offsets of one multiply-add: x * weight contributes to out. */
type TapVisitor = (xOffset: number, weightOffset: number, outOffset: number) => void;

/**
 * Visits every (output position, kernel tap) pair whose input lies inside x; taps that
 * fall on the zero padding contribute nothing and are skipped.
 */
function forEachTap(geometry: ConvGeometry, visit: TapVisitor): void {
  const { batch, outChannels, outHeight, outWidth } = geometry;
  for (let b = 0; b < batch; b++) {
    for (let co = 0; co < outChannels; co++) {
      for (let oh = 0; oh < outHeight; oh++) {
        for (let ow = 0; ow < outWidth; ow++) {
          const outOffset = ((b * outChannels + co) * outHeight + oh) * outWidth + ow;
          forEachTapAt(geometry, b, co, oh, ow, (xOffset, weightOffset) =>
            visit(xOffset, weightOffset, outOffset),
          );
        }
      }
    }
  }
}

/** The taps of one output position (b, co, oh, ow). */
function forEachTapAt(
  geometry: ConvGeometry,
  b: number,
  co: number,
  oh: number,
  ow: number,
  visit: (xOffset: number, weightOffset: number) => void,
): void {
  const { inChannels, height, width, kernelHeight, kernelWidth, params } = geometry;
  const groupChannels = inChannels / params.groups;
  const group = Math.floor(co / (geometry.outChannels / params.groups));
  for (let ci = 0; ci < groupChannels; ci++) {
    const channel = group * groupChannels + ci;
    for (let kh = 0; kh < kernelHeight; kh++) {
      const ih = oh * params.stride[0] - params.padding[0] + kh * params.dilation[0];
      if (ih < 0 || ih >= height) continue;
      for (let kw = 0; kw < kernelWidth; kw++) {
        const iw = ow * params.stride[1] - params.padding[1] + kw * params.dilation[1];
        if (iw < 0 || iw >= width) continue;
        const xOffset = ((b * inChannels + channel) * height + ih) * width + iw;
        const weightOffset = ((co * groupChannels + ci) * kernelHeight + kh) * kernelWidth + kw;
        visit(xOffset, weightOffset);
      }
    }
  }
}

export function conv2d(
  out: RawTensor,
  x: RawTensor,
  weight: RawTensor,
  bias: RawTensor | null,
  params: Conv2dParams,
): void {
  requireDType("conv2d", x.dtype, FLOAT_DTYPES);
  requireSameDType("conv2d", bias === null ? [out, x, weight] : [out, x, weight, bias]);
  const geometry = convGeometry("conv2d", x.shape, weight.shape, out.shape, params);
  if (bias !== null) expectShape("conv2d", "bias", bias.shape, [geometry.outChannels]);

  const xValues = elements("conv2d", x);
  const weightValues = elements("conv2d", weight);
  const sums = new Float64Array(elements("conv2d", out).length);
  forEachTap(geometry, (xOffset, weightOffset, outOffset) => {
    sums[outOffset] = sums[outOffset]! + xValues[xOffset]! * weightValues[weightOffset]!;
  });
  if (bias !== null) addBias(sums, elements("conv2d", bias), geometry);
  elements("conv2d", out).set(sums);
}

function addBias(sums: Float64Array, biasValues: ArrayLike<number>, geometry: ConvGeometry) {
  const plane = geometry.outHeight * geometry.outWidth;
  for (let i = 0; i < sums.length; i++) {
    sums[i] = sums[i]! + biasValues[Math.floor(i / plane) % geometry.outChannels]!;
  }
}

export function conv2dBackwardData(
  gradX: RawTensor,
  gradOut: RawTensor,
  weight: RawTensor,
  params: Conv2dParams,
): void {
  const op = "conv2dBackwardData";
  requireDType(op, gradOut.dtype, FLOAT_DTYPES);
  requireSameDType(op, [gradX, gradOut, weight]);
  const geometry = convGeometry(op, gradX.shape, weight.shape, gradOut.shape, params);

  const gradOutValues = elements(op, gradOut);
  const weightValues = elements(op, weight);
  const sums = new Float64Array(elements(op, gradX).length);
  forEachTap(geometry, (xOffset, weightOffset, outOffset) => {
    sums[xOffset] = sums[xOffset]! + gradOutValues[outOffset]! * weightValues[weightOffset]!;
  });
  elements(op, gradX).set(sums);
}

export function conv2dBackwardWeight(
  gradWeight: RawTensor,
  gradOut: RawTensor,
  x: RawTensor,
  params: Conv2dParams,
): void {
  const op = "conv2dBackwardWeight";
  requireDType(op, gradOut.dtype, FLOAT_DTYPES);
  requireSameDType(op, [gradWeight, gradOut, x]);
  const geometry = convGeometry(op, x.shape, gradWeight.shape, gradOut.shape, params);

  const gradOutValues = elements(op, gradOut);
  const xValues = elements(op, x);
  const sums = new Float64Array(elements(op, gradWeight).length);
  forEachTap(geometry, (xOffset, weightOffset, outOffset) => {
    sums[weightOffset] = sums[weightOffset]! + gradOutValues[outOffset]! * xValues[xOffset]!;
  });
  elements(op, gradWeight).set(sums);
}
