// The IMDB classifiers trained through train.Trainer: reviews batched by length as a batch
// source whose batches carry the lengths, a forward option that passes them to the model,
// and fitImdb, which the CLI's `deepnode train imdb` runs (checkpoints, resume, progress bar,
// metrics file, curves). Under one seed it takes the steps trainImdb's plain loop takes.

import type { Batch } from "../lib/data/dataloader.js";
import { F, Tensor, optim, setFlushDenormal, train as trainer } from "../lib/index.js";
import {
  buildSentimentModel,
  collateReviews,
  prepareImdb,
  reviewBatches,
  sentimentConfig,
  type EncodedReviews,
  type ImdbEpochStats,
  type ImdbTrainOptions,
  type ImdbTrainResult,
  type SentimentModel,
} from "./imdb.js";

/** ids int32 [N, longest] padded at the end, targets [N], and each review's real length. */
export interface ReviewBatch extends Batch {
  readonly inputs: Tensor;
  readonly targets: Tensor;
  readonly lengths: Int32Array;
}

/**
 * An epoch of review batches, longest first in each, as reviewBatches draws them (the
 * shuffle is drawn when iteration starts, so a resumed epoch redraws the same one).
 */
export class ReviewLoader implements trainer.BatchSource<ReviewBatch> {
  constructor(
    readonly data: EncodedReviews,
    readonly batchSize: number,
    readonly shuffle: boolean,
  ) {}

  get length(): number {
    return Math.ceil(this.data.ids.length / this.batchSize);
  }

  *[Symbol.iterator](): Iterator<ReviewBatch> {
    for (const indices of reviewBatches(this.data, this.batchSize, this.shuffle)) {
      const { ids, targets, lengths } = collateReviews(this.data, indices);
      yield { inputs: ids, targets, lengths };
    }
  }
}

export interface ImdbFitOptions extends Omit<ImdbTrainOptions, "onBatch"> {
  device?: string;
  /** Write a checkpoint here after every epoch (and every saveSteps steps, if set). */
  checkpointDir?: string;
  saveSteps?: number;
  /** Continue from this checkpoint (or the newest in this folder). */
  resume?: string;
  /** A progress bar on stderr (terminals only); default false. */
  progress?: boolean;
  metricsFile?: string;
  plotFile?: string;
  /** Read the loss back every n steps for the progress bar and onStepEnd; default 10. */
  logEvery?: number;
  onSave?: (path: string) => void;
  onStepEnd?: (step: trainer.StepInfo) => void;
}

/** ImdbEpochStats of a Trainer record (the test split is evaluated every epoch). */
function epochStats(record: trainer.EpochRecord): ImdbEpochStats {
  return {
    epoch: record.epoch,
    trainLoss: record.train.loss!,
    testLoss: record.eval!.loss!,
    testAccuracy: record.eval!.accuracy!,
    seconds: record.seconds,
    reviewsPerSecond: record.samplesPerSecond,
  };
}

/** The optional folder and file options, as the Trainer's. */
function trainerFiles(options: ImdbFitOptions) {
  const { checkpointDir, saveSteps, resume, metricsFile, plotFile, logEvery } = options;
  return {
    ...(checkpointDir === undefined ? {} : { saveDir: checkpointDir }),
    ...(saveSteps === undefined ? {} : { saveSteps }),
    ...(resume === undefined ? {} : { resume }),
    ...(metricsFile === undefined ? {} : { metricsFile }),
    ...(plotFile === undefined ? {} : { plotFile }),
    ...(logEvery === undefined ? {} : { logEvery }),
  };
}

/**
 * The Trainer for the classifier options.model names: Adam, cross-entropy, accuracy, the
 * gradients' norm clipped to clipNorm (default 5; 0: off), evaluation on the test reviews.
 */
export function imdbTrainer(
  options: ImdbFitOptions,
  data: Pick<ImdbTrainResult, "vocab"> & { train: EncodedReviews; test: EncodedReviews },
): trainer.Trainer<ReviewBatch, SentimentModel> {
  const clipNorm = options.clipNorm ?? 5;
  return new trainer.Trainer<ReviewBatch, SentimentModel>({
    model: () =>
      options.fineTune?.model ??
      buildSentimentModel(sentimentConfig({ ...options, vocabSize: data.vocab.size })),
    trainData: new ReviewLoader(data.train, options.batchSize, true),
    evalData: new ReviewLoader(data.test, 256, false),
    epochs: options.epochs,
    optimizer: (params) => new optim.Adam(params, { lr: options.lr }),
    forward: (model, batch) => model.forward(batch.inputs, batch.lengths),
    lossFn: (logits, targets) => F.crossEntropy(logits, targets),
    metrics: { accuracy: trainer.accuracy },
    ...(clipNorm > 0 ? { clipGradNorm: clipNorm } : {}),
    seed: options.seed,
    ...(options.device === undefined ? {} : { device: options.device }),
    progress: options.progress ?? false,
    ...trainerFiles(options),
    callbacks: {
      onEpochEnd: (record) => options.onEpoch?.(epochStats(record)),
      onSave: (path) => options.onSave?.(path),
      onStepEnd: (step) => options.onStepEnd?.(step),
    },
  });
}

/**
 * Trains the classifier through train.Trainer, with flush-to-zero on as trainImdb has it;
 * returns the model, the vocabulary, the epochs run by this call and the Trainer's result.
 */
export async function fitImdb(
  options: ImdbFitOptions,
): Promise<ImdbTrainResult & { result: trainer.FitResult }> {
  const prepared = prepareImdb(options);
  const run = imdbTrainer(options, prepared);
  setFlushDenormal(true);
  try {
    const result = await run.fit();
    return {
      model: run.model,
      vocab: prepared.vocab,
      history: result.history.map(epochStats),
      result,
    };
  } finally {
    setFlushDenormal(false);
  }
}
