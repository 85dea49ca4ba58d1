// The optim namespace.
export { Optimizer } from "./optimizer.js";
export type { ParamGroup, ParamsArg } from "./optimizer.js";
export { SGD } from "./sgd.js";
export type { SGDOptions } from "./sgd.js";
export { Adam, AdamW } from "./adam.js";
export type { AdamOptions } from "./adam.js";
