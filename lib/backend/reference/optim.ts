// Fused optimizer steps, in place, exactly as PyTorch's non-fused SGD, Adam/AdamW, RMSprop
// and Adagrad (torch.optim, foreach=False). Each element's update runs in double; param and every
// state buffer are rounded once when stored.

import type {
  AdagradStepItem,
  AdagradStepOptions,
  AdamStepItem,
  AdamStepOptions,
  RawTensor,
  RmspropStepItem,
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

/**
 * A step over many parameters (sgdSteps ...): every item checked, by check(op naming the item,
 * item, options), before any is updated, as the native kernels do; then step(item, options)
 * on each.
 */
export function eachItem<Item, Options>(
  op: string,
  items: readonly Item[],
  options: Options,
  check: (op: string, item: Item, options: Options) => void,
  step: (item: Item, options: Options) => void,
): void {
  items.forEach((item, k) => check(`${op}: item ${k}`, item, options));
  items.forEach((item) => step(item, options));
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
export function sgdStep(item: SgdStepItem, options: SgdStepOptions): void {
  checkSgdItem("sgdStep", item, options);
  const { param, grad, momentumBuffer } = item;
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
export function adamStep(item: AdamStepItem, options: AdamStepOptions): void {
  checkAdamItem("adamStep", item, options);
  const { param, grad, expAvg, expAvgSq, maxExpAvgSq } = item;
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

/** The checks rmspropStep makes of one parameter's tensors, before it writes anything. */
export function checkRmspropItem(
  op: string,
  item: RmspropStepItem,
  options: RmspropStepOptions,
): void {
  const { param, grad, squareAvg, gradAvg, momentumBuffer } = item;
  checkStateTensors(op, param, [grad, squareAvg, gradAvg, momentumBuffer]);
  if (options.centered && gradAvg === null) {
    throw new ValueError(op, "centered needs the gradAvg buffer", "gradAvg");
  }
  if (options.momentum > 0 && momentumBuffer === null) {
    throw new ValueError(op, `momentum ${options.momentum} needs a momentum buffer`, "momentum");
  }
}

/**
 * g = grad + weightDecay * param;  sq = alpha sq + (1 - alpha) g^2
 * centered: ga = alpha ga + (1 - alpha) g;  avg = sqrt(sq - ga^2) + eps, else sqrt(sq) + eps
 * momentum: buf = momentum buf + g / avg; param -= lr buf, else param -= lr g / avg
 */
export function rmspropStep(item: RmspropStepItem, options: RmspropStepOptions): void {
  checkRmspropItem("rmspropStep", item, options);
  const { param, grad, squareAvg, gradAvg, momentumBuffer } = item;
  const { lr, alpha, eps, weightDecay, momentum, centered } = options;
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

/** The checks adagradStep makes of one parameter's tensors, before it writes anything. */
export function checkAdagradItem(op: string, item: AdagradStepItem): void {
  checkStateTensors(op, item.param, [item.grad, item.stateSum]);
}

/**
 * g = grad + weightDecay * param;  sum += g^2
 * param -= lr / (1 + (step - 1) lrDecay) * g / (sqrt(sum) + eps)
 */
export function adagradStep(item: AdagradStepItem, options: AdagradStepOptions): void {
  checkAdagradItem("adagradStep", item);
  const { param, grad, stateSum } = item;
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
