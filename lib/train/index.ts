// The train namespace: the Trainer, its checkpoints, metrics, monitoring and plots.
export { Trainer, fit } from "./trainer.js";
export type {
  AnyScheduler,
  BatchSource,
  Callbacks,
  DataSource,
  EarlyStoppingOptions,
  EpochRecord,
  FitResult,
  LossFn,
  Model,
  OptimizerFactory,
  ScheduleContext,
  SchedulerFactory,
  StepInfo,
  TrainerOptions,
} from "./options.js";
export { accuracy } from "./metrics.js";
export type { MetricFn } from "./metrics.js";
export {
  CheckpointError,
  listCheckpoints,
  loadCheckpoint,
  resolveCheckpoint,
  saveCheckpoint,
} from "./checkpoint.js";
export type { CheckpointData, CheckpointJson, SaveHooks } from "./checkpoint.js";
export {
  BEST_FILE,
  MODEL_FILE,
  OPTIMIZER_FILE,
  isFinished,
  readCheckpointProgress,
} from "./resume.js";
export type { CheckpointProgress } from "./resume.js";
export { EpochProgress, JsonLines } from "./monitor.js";
export { plotHistory, plotLines, renderPng } from "./plot.js";
export type { LinePlotOptions, LineSeries, PlotOptions } from "./plot.js";
