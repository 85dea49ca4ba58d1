// The nn namespace: modules, parameters, the functional layer (F) and init.
export { Module } from "./module.js";
export { Parameter } from "./parameter.js";
export { Linear, Conv2d, MaxPool2d, Dropout, Flatten, ReLU, Sequential } from "./layers.js";
export type { FactoryOptions, Conv2dModuleOptions } from "./layers.js";
export * as functional from "./functional.js";
export * as init from "./init.js";
export * as utils from "./utils.js";
export { RNN, LSTM, GRU, RNNBase } from "./rnn.js";
export type { RNNOptions, RNNBaseOptions, RecurrentForwardOptions, Lengths } from "./rnn.js";
export { LeakyReLU, GELU, SiLU, Sigmoid, Tanh, Softmax, LogSoftmax } from "./activation.js";
export { BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm } from "./normalization.js";
export type {
  BatchNormModuleOptions,
  LayerNormOptions,
  GroupNormOptions,
} from "./normalization.js";
export { Embedding } from "./embedding.js";
export type { EmbeddingModuleOptions } from "./embedding.js";
export { ModuleList, ModuleDict } from "./containers.js";
export {
  MSELoss,
  L1Loss,
  SmoothL1Loss,
  KLDivLoss,
  BCELoss,
  BCEWithLogitsLoss,
  NLLLoss,
  CrossEntropyLoss,
} from "./loss.js";
export { MultiheadAttention, NonDynamicallyQuantizableLinear } from "./multihead.js";
export type { MultiheadAttentionOptions, MultiheadAttentionForwardOptions } from "./multihead.js";
export {
  TransformerEncoderLayer,
  TransformerEncoder,
  TransformerDecoderLayer,
} from "./transformer.js";
export type {
  TransformerLayerOptions,
  TransformerActivation,
  TransformerEncoderOptions,
  TransformerEncoderForwardOptions,
  TransformerDecoderForwardOptions,
} from "./transformer.js";
export { Conv1d, ConvTranspose2d, AvgPool2d, AdaptiveAvgPool2d } from "./conv.js";
export type { Conv1dModuleOptions, ConvTranspose2dModuleOptions } from "./conv.js";
export { CTCLoss } from "./ctc.js";
