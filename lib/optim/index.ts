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
