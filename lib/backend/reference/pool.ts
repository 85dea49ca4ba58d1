// 2-D max pooling with padding (read as -inf), dilation and ceil mode. indices hold the
// flat h * w position of each window's maximum inside its plane; the first maximum wins,
// and a NaN counts as the maximum (the first NaN wins).

import type { Pool2dParams, RawTensor } from "../backend.js";
import { IndexError, ShapeError, ValueError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

/**
 * PyTorch's pooling output size. With ceilMode the last window may hang over the end, but
 * it must start inside the input or its left padding, else it is dropped.
 */
export function poolOutputSize(
  inSize: number,
  kernelSize: number,
  stride: number,
  padding: number,
  dilation: number,
  ceilMode: boolean,
): number {
  const span = inSize + 2 * padding - dilation * (kernelSize - 1) - 1;
  let outSize = Math.floor((span + (ceilMode ? stride - 1 : 0)) / stride) + 1;
  if (ceilMode && (outSize - 1) * stride >= inSize + padding) outSize -= 1;
  return outSize;
}

/** PyTorch's rule: padding at most half the kernel, so no window lies wholly in padding. */
function checkParams(params: Pool2dParams): void {
  const { kernelSize, stride, padding, dilation } = params;
  const positive = [...kernelSize, ...stride, ...dilation];
  const halfKernel = padding.every((pad, axis) => pad >= 0 && pad <= kernelSize[axis]! / 2);
  if (positive.some((v) => !Number.isInteger(v) || v < 1) || !halfKernel) {
    const message =
      `kernelSize, stride and dilation must be positive and padding at most half the ` +
      `kernel, got kernelSize ${formatShape(kernelSize)}, stride ${formatShape(stride)}, ` +
      `padding ${formatShape(padding)}, dilation ${formatShape(dilation)}`;
    throw new ValueError("maxPool2d", message, "params");
  }
}

function expectedOutShape(xShape: readonly number[], params: Pool2dParams): number[] {
  if (xShape.length !== 4) {
    throw new ShapeError("maxPool2d", `x must be [n, c, h, w], got ${formatShape(xShape)}`, [
      xShape,
    ]);
  }
  const [batch, channels, height, width] = xShape as [number, number, number, number];
  const { kernelSize, stride, padding, dilation, ceilMode } = params;
  return [
    batch,
    channels,
    poolOutputSize(height, kernelSize[0], stride[0], padding[0], dilation[0], ceilMode),
    poolOutputSize(width, kernelSize[1], stride[1], padding[1], dilation[1], ceilMode),
  ];
}

/** One pooling window: its top-left corner (may be in the padding) and the plane's size. */
interface Window {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** Flat h * w position of the window's first maximum, or -1 if no tap lies inside. */
function argmaxInWindow(plane: ArrayLike<number>, window: Window, params: Pool2dParams): number {
  let best = -Infinity;
  let bestPosition = -1;
  for (let kh = 0; kh < params.kernelSize[0]; kh++) {
    const ih = window.top + kh * params.dilation[0];
    if (ih < 0 || ih >= window.height) continue;
    for (let kw = 0; kw < params.kernelSize[1]; kw++) {
      const iw = window.left + kw * params.dilation[1];
      if (iw < 0 || iw >= window.width) continue;
      const value = plane[ih * window.width + iw]!;
      const firstNaN = Number.isNaN(value) && !Number.isNaN(best);
      if (bestPosition < 0 || value > best || firstNaN) {
        best = value;
        bestPosition = ih * window.width + iw;
      }
    }
  }
  return bestPosition;
}

export function maxPool2d(
  out: RawTensor,
  indices: RawTensor,
  x: RawTensor,
  params: Pool2dParams,
): void {
  requireDType("maxPool2d", x.dtype, FLOAT_DTYPES);
  requireDType("maxPool2d", indices.dtype, ["int32"]);
  requireSameDType("maxPool2d", [out, x]);
  checkParams(params);
  expectShape("maxPool2d", "out", out.shape, expectedOutShape(x.shape, params));
  expectShape("maxPool2d", "indices", indices.shape, out.shape);

  const [, , height, width] = x.shape as [number, number, number, number];
  const [, , outHeight, outWidth] = out.shape as [number, number, number, number];
  const xValues = elements("maxPool2d", x);
  const outValues = elements("maxPool2d", out);
  const indexValues = elements("maxPool2d", indices);
  const planes = outValues.length / Math.max(1, outHeight * outWidth);
  for (let p = 0; p < planes; p++) {
    const plane = xValues.subarray(p * height * width, (p + 1) * height * width);
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const top = oh * params.stride[0] - params.padding[0];
        const left = ow * params.stride[1] - params.padding[1];
        const position = argmaxInWindow(plane, { top, left, height, width }, params);
        const o = (p * outHeight + oh) * outWidth + ow;
        outValues[o] = position < 0 ? -Infinity : plane[position]!;
        indexValues[o] = position;
      }
    }
  }
}

/** gradX[plane, indices[o]] += gradOut[o]; each gradX element is rounded once. */
export function maxPool2dBackward(gradX: RawTensor, gradOut: RawTensor, indices: RawTensor): void {
  const op = "maxPool2dBackward";
  requireDType(op, gradOut.dtype, FLOAT_DTYPES);
  requireDType(op, indices.dtype, ["int32"]);
  requireSameDType(op, [gradX, gradOut]);
  expectShape(op, "indices", indices.shape, gradOut.shape);
  if (gradX.shape.length !== 4 || gradOut.shape.length !== 4) {
    throw new ShapeError(op, "gradX and gradOut must have rank 4", [gradX.shape, gradOut.shape]);
  }
  expectShape(op, "gradOut", gradOut.shape.slice(0, 2), gradX.shape.slice(0, 2));

  const planeSize = gradX.shape[2]! * gradX.shape[3]!;
  const outPlaneSize = gradOut.shape[2]! * gradOut.shape[3]!;
  const gradXValues = elements(op, gradX);
  const gradOutValues = elements(op, gradOut);
  const indexValues = elements(op, indices);
  const sums = Float64Array.from(gradXValues);
  for (let o = 0; o < gradOutValues.length; o++) {
    const position = indexValues[o]!;
    if (position < 0 || position >= planeSize) {
      const message = `index ${position} is out of bounds for a plane of ${planeSize} elements`;
      throw new IndexError(op, message);
    }
    const target = Math.floor(o / outPlaneSize) * planeSize + position;
    sums[target] = sums[target]! + gradOutValues[o]!;
  }
  gradXValues.set(sums);
}
