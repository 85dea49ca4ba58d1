// The optim namespace.
export { Optimizer } from "./optimizer.js";
export type {
  GroupSpec,
  OptimizerStateDict,
  ParamGroup,
  ParamState,
  ParamsArg,
} from "./optimizer.js";
export { SGD } from "./sgd.js";
export type { SGDOptions } from "./sgd.js";
export { Adam, AdamW } from "./adam.js";
export type { AdamOptions } from "./adam.js";
export { Adagrad, RMSprop } from "./rmsprop.js";
export type { AdagradOptions, RMSpropOptions } from "./rmsprop.js";
export {
  CosineAnnealingLR,
  ExponentialLR,
  LRScheduler,
  LambdaLR,
  LinearLR,
  MultiStepLR,
  StepLR,
  warmupLinear,
} from "./lr_scheduler.js";
export type {
  AnyOptimizer,
  LinearLROptions,
  LrLambda,
  ScheduleConfig,
  SchedulerStateDict,
} from "./lr_scheduler.js";
export { OneCycleLR } from "./one_cycle.js";
export type { OneCycleLROptions } from "./one_cycle.js";
export { ReduceLROnPlateau } from "./plateau.js";
export type { PlateauStateDict, ReduceLROnPlateauOptions } from "./plateau.js";
export { clipGradNorm, clipGradNormTensor, clipGradValue, totalGradNorm } from "./clip.js";
export type { ClipGradNormOptions } from "./clip.js";
export { l1Penalty, l2Penalty, paramGroupsWithDecay } from "./regularization.js";
export type { DecayGroup, DecayGroupsOptions } from "./regularization.js";
