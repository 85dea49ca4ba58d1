// Fused optimizer steps, in place, exactly as PyTorch's non-fused SGD, Adam/AdamW, RMSprop
// and Adagrad (torch.optim, foreach=False). Each element's update runs in double; param and every
// state buffer are rounded once when stored.

import type {
  AdagradStepOptions,
  AdamStepItem,
  AdamStepOptions,
  RawTensor,
  RmspropStepOptions,
  SgdStepItem,
  SgdStepOptions,
} from "../backend.js";
import { ValueError } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

function checkStateTensors(op: string, param: RawTensor, tensors: (RawTensor | null)[]): void {
  requireDType(op, param.dtype, FLOAT_DTYPES);
  const present = tensors.filter((t): t is RawTensor => t !== null);
  requireSameDType(op, [param, ...present]);
  for (const t of present) expectShape(op, "state", t.shape, param.shape);
}

/** The checks sgdStep makes of one parameter's tensors, before it writes anything. */
export function checkSgdItem(op: string, item: SgdStepItem, options: SgdStepOptions): void {
  const { param, grad, momentumBuffer } = item;
  checkStateTensors(op, param, [grad, momentumBuffer]);
  if (options.momentum !== 0 && momentumBuffer === null) {
    throw new ValueError(op, `momentum ${options.momentum} needs a momentum buffer`, "momentum");
  }
}

/**
 * d = grad + weightDecay * param
 * with momentum: buf = firstStep ? d : momentum * buf + (1 - dampening) * d
 *                d = nesterov ? d + momentum * buf : buf
 * param -= lr * d
 */
export function sgdStep(
  param: RawTensor,
  grad: RawTensor,
  momentumBuffer: RawTensor | null,
  options: SgdStepOptions,
): void {
  checkSgdItem("sgdStep", { param, grad, momentumBuffer }, options);
  const { lr, momentum, dampening, weightDecay, nesterov, firstStep } = options;
  const paramValues = elements("sgdStep", param);
  const gradValues = elements("sgdStep", grad);
  const bufferValues = momentumBuffer === null ? null : elements("sgdStep", momentumBuffer);
  for (let i = 0; i < paramValues.length; i++) {
    let d = gradValues[i]! + weightDecay * paramValues[i]!;
    if (momentum !== 0 && bufferValues !== null) {
      const buf = firstStep ? d : momentum * bufferValues[i]! + (1 - dampening) * d;
      bufferValues[i] = buf;
      d = nesterov ? d + momentum * buf : buf;
    }
    paramValues[i] = paramValues[i]! - lr * d;
  }
}

/** The bias corrections of Adam at `step` (1 on the first step). */
function biasCorrections(options: AdamStepOptions): { stepSize: number; sqrtBc2: number } {
  const { lr, beta1, beta2, step } = options;
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  return { stepSize: lr / bc1, sqrtBc2: Math.sqrt(bc2) };
}

/** The checks adamStep makes of one parameter's tensors, before it writes anything. */
export function checkAdamItem(op: string, item: AdamStepItem, options: AdamStepOptions): void {
  const { param, grad, expAvg, expAvgSq, maxExpAvgSq } = item;
  checkStateTensors(op, param, [grad, expAvg, expAvgSq, maxExpAvgSq]);
  if (options.amsgrad && maxExpAvgSq === null) {
    throw new ValueError(op, "amsgrad needs the maxExpAvgSq buffer", "maxExpAvgSq");
  }
}

/**
 * AdamW (decoupled): param *= 1 - lr * weightDecay; Adam: g = grad + weightDecay * param.
 * m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  amsgrad: vMax = max(vMax, v)
 * param -= (lr / bc1) * m / (sqrt(v or vMax) / sqrt(bc2) + eps)
 */
export function adamStep(
  param: RawTensor,
  grad: RawTensor,
  expAvg: RawTensor,
  expAvgSq: RawTensor,
  maxExpAvgSq: RawTensor | null,
  options: AdamStepOptions,
): void {
  checkAdamItem("adamStep", { param, grad, expAvg, expAvgSq, maxExpAvgSq }, options);
  const { lr, beta1, beta2, eps, weightDecay, decoupledWeightDecay } = options;
  const amsgrad = options.amsgrad;
  const { stepSize, sqrtBc2 } = biasCorrections(options);
  const p = elements("adamStep", param);
  const g = elements("adamStep", grad);
  const m = elements("adamStep", expAvg);
  const v = elements("adamStep", expAvgSq);
  const vMax = maxExpAvgSq === null ? null : elements("adamStep", maxExpAvgSq);
  for (let i = 0; i < p.length; i++) {
    let value = p[i]!;
    let gradient = g[i]!;
    if (decoupledWeightDecay) value *= 1 - lr * weightDecay;
    else gradient += weightDecay * value;
    const mean = beta1 * m[i]! + (1 - beta1) * gradient;
    const variance = beta2 * v[i]! + (1 - beta2) * gradient * gradient;
    m[i] = mean;
    v[i] = variance;
    let second = variance;
    if (amsgrad && vMax !== null) {
      second = Math.max(vMax[i]!, variance);
      vMax[i] = second;
    }
    p[i] = value - (stepSize * mean) / (Math.sqrt(second) / sqrtBc2 + eps);
  }
}

/**
 * g = grad + weightDecay * param;  sq = alpha sq + (1 - alpha) g^2
 * centered: ga = alpha ga + (1 - alpha) g;  avg = sqrt(sq - ga^2) + eps, else sqrt(sq) + eps
 * momentum: buf = momentum buf + g / avg; param -= lr buf, else param -= lr g / avg
 */
export function rmspropStep(
  param: RawTensor,
  grad: RawTensor,
  squareAvg: RawTensor,
  gradAvg: RawTensor | null,
  momentumBuffer: RawTensor | null,
  options: RmspropStepOptions,
): void {
  checkStateTensors("rmspropStep", param, [grad, squareAvg, gradAvg, momentumBuffer]);
  const { lr, alpha, eps, weightDecay, momentum, centered } = options;
  if (centered && gradAvg === null) {
    throw new ValueError("rmspropStep", "centered needs the gradAvg buffer", "gradAvg");
  }
  if (momentum > 0 && momentumBuffer === null) {
    throw new ValueError("rmspropStep", `momentum ${momentum} needs a momentum buffer`, "momentum");
  }
  const p = elements("rmspropStep", param);
  const g = elements("rmspropStep", grad);
  const sq = elements("rmspropStep", squareAvg);
  const ga = gradAvg === null ? null : elements("rmspropStep", gradAvg);
  const buf = momentumBuffer === null ? null : elements("rmspropStep", momentumBuffer);
  for (let i = 0; i < p.length; i++) {
    const gradient = g[i]! + weightDecay * p[i]!;
    sq[i] = alpha * sq[i]! + (1 - alpha) * gradient * gradient;
    let variance = sq[i]!;
    if (centered && ga !== null) {
      ga[i] = alpha * ga[i]! + (1 - alpha) * gradient;
      variance -= ga[i]! * ga[i]!;
    }
    const avg = Math.sqrt(variance) + eps;
    if (momentum > 0 && buf !== null) {
      buf[i] = momentum * buf[i]! + gradient / avg;
      p[i] = p[i]! - lr * buf[i]!;
    } else {
      p[i] = p[i]! - (lr * gradient) / avg;
    }
  }
}

/**
 * g = grad + weightDecay * param;  sum += g^2
 * param -= lr / (1 + (step - 1) lrDecay) * g / (sqrt(sum) + eps)
 */
export function adagradStep(
  param: RawTensor,
  grad: RawTensor,
  stateSum: RawTensor,
  options: AdagradStepOptions,
): void {
  checkStateTensors("adagradStep", param, [grad, stateSum]);
  const { lr, lrDecay, eps, weightDecay, step } = options;
  const clr = lr / (1 + (step - 1) * lrDecay);
  const p = elements("adagradStep", param);
  const g = elements("adagradStep", grad);
  const sum = elements("adagradStep", stateSum);
  for (let i = 0; i < p.length; i++) {
    const gradient = g[i]! + weightDecay * p[i]!;
    sum[i] = sum[i]! + gradient * gradient;
    p[i] = p[i]! - (clr * gradient) / (Math.sqrt(sum[i]!) + eps);
  }
}
