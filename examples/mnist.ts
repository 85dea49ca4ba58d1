// The MNIST CNN, written as its PyTorch twin, and the loop that trains it. The CLI's
// `deepnode train mnist` runs this file's trainMnist; run it directly with
// `node dist/examples/mnist.js` after `npm install`. Outside this repository, import
// from "deepnode" instead of "../lib/index.js".

import { pathToFileURL } from "node:url";
import {
  DataLoader,
  TensorDataset,
  loadMnist,
  normalizeMnist,
  type MnistSplit,
} from "../lib/data/index.js";
import {
  F,
  Tensor,
  getDefaultDevice,
  keep,
  manualSeed,
  nn,
  noGrad,
  optim,
  scope,
  setDefaultDevice,
  stack,
  train as trainer,
} from "../lib/index.js";

export class MNISTNet extends nn.Module {
  conv1 = new nn.Conv2d(1, 32, 3, { stride: 1 });
  conv2 = new nn.Conv2d(32, 64, 3, { stride: 1 });
  dropout1 = new nn.Dropout(0.25);
  dropout2 = new nn.Dropout(0.5);
  fc1 = new nn.Linear(9216, 128);
  fc2 = new nn.Linear(128, 10);

  /** x: [N, 1, 28, 28] normalised pixels -> [N, 10] log-probabilities. */
  forward(x: Tensor): Tensor {
    x = F.relu(this.conv1.forward(x));
    x = F.relu(this.conv2.forward(x));
    x = F.maxPool2d(x, 2);
    x = this.dropout1.forward(x);
    x = x.flatten(1);
    x = F.relu(this.fc1.forward(x));
    x = this.dropout2.forward(x);
    x = this.fc2.forward(x);
    return F.logSoftmax(x, 1);
  }
}

export interface MnistTrainOptions {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  device?: string;
  dataDir?: string; // standard IDX files; default: the digits of the `mnist` npm package
  limit?: number; // train on `limit` training images spread over the split (for quick runs)
  onBatch?: (batch: number, batches: number, loss: number) => void;
  onEpoch?: (stats: EpochStats) => void;
}

export interface EpochStats {
  epoch: number;
  trainLoss: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
  imagesPerSecond: number;
}

/** A DataLoader over an MNIST split, normalised, as [N, 1, 28, 28] images. */
export function mnistLoader(
  split: MnistSplit,
  batchSize: number,
  shuffle: boolean,
  device?: string,
): DataLoader {
  const images = normalizeMnist(split.images.slice());
  const dataset = new TensorDataset(
    { data: images, shape: [split.count, 1, 28, 28] },
    split.labels,
  );
  return new DataLoader(dataset, {
    batchSize,
    shuffle,
    ...(device === undefined ? {} : { device }),
  });
}

/**
 * `limit` images spread evenly over the split. The split is grouped by digit, so taking
 * the first ones would train on zeros only.
 */
export function limitSplit(split: MnistSplit, limit: number | undefined): MnistSplit {
  if (limit === undefined || limit >= split.count) return split;
  const images = new Float32Array(limit * 784);
  const labels = new Int32Array(limit);
  for (let i = 0; i < limit; i++) {
    const source = Math.floor((i * split.count) / limit);
    images.set(split.images.subarray(source * 784, (source + 1) * 784), i * 784);
    labels[i] = split.labels[source]!;
  }
  return { images, labels, count: limit };
}

/**
 * Mean loss and accuracy of the model on a loader, in eval mode. The sums are kept on the
 * device and read once at the end, so on a GPU the batches are queued without waiting.
 */
export function evaluate(
  model: nn.Module & { forward(x: Tensor): Tensor },
  loader: DataLoader,
): { loss: number; accuracy: number } {
  model.eval();
  let sums: Tensor | undefined; // [loss sum, correct count]
  let count = 0;
  try {
    noGrad(() => {
      for (const { inputs, targets } of loader) {
        scope(() => {
          const output = model.forward(inputs);
          const lossSum = F.nllLoss(output, targets, { reduction: "sum" });
          const correct = output.argmax(1).eq(targets).sum().to(lossSum.dtype);
          const batch = stack([lossSum, correct]);
          const previous = sums;
          sums = keep(previous === undefined ? batch : previous.add(batch));
          previous?.dispose();
          count += targets.numel;
        });
        inputs.dispose();
        targets.dispose();
      }
    });
    const [lossSum, correct] = sums === undefined ? [0, 0] : Array.from(sums.dataSync());
    return { loss: lossSum! / count, accuracy: correct! / count };
  } finally {
    sums?.dispose();
  }
}

/**
 * One epoch of the training loop; returns the mean training loss. The losses are added up
 * on the device and read once at the end (on a GPU a read waits for every queued kernel),
 * unless onBatch wants each one.
 */
function trainEpoch(
  model: MNISTNet,
  optimizer: optim.Optimizer<object>,
  loader: DataLoader,
  onBatch?: MnistTrainOptions["onBatch"],
): number {
  model.train();
  let lossSum: Tensor | undefined;
  let batches = 0;
  try {
    for (const { inputs, targets } of loader) {
      scope(() => {
        optimizer.zeroGrad();
        const output = model.forward(inputs);
        const loss = F.nllLoss(output, targets);
        loss.backward();
        optimizer.step();
        const previous = lossSum;
        lossSum = keep(previous === undefined ? loss.detach() : previous.add(loss.detach()));
        previous?.dispose();
        if (onBatch !== undefined) onBatch(batches + 1, loader.length, loss.item());
      });
      inputs.dispose();
      targets.dispose();
      batches++;
    }
    const total = lossSum?.item() ?? 0;
    return total / Math.max(batches, 1);
  } finally {
    lossSum?.dispose();
  }
}

/** Trains MNISTNet with Adam and returns the model and the per-epoch statistics. */
export function trainMnist(options: MnistTrainOptions): { model: MNISTNet; history: EpochStats[] } {
  manualSeed(options.seed);
  const data = loadMnist(options.dataDir === undefined ? {} : { dir: options.dataDir });
  const train = mnistLoader(
    limitSplit(data.train, options.limit),
    options.batchSize,
    true,
    options.device,
  );
  const test = mnistLoader(data.test, 250, false, options.device);
  const previousDevice = getDefaultDevice();
  if (options.device !== undefined) setDefaultDevice(options.device);
  try {
    return fit(options, train, test);
  } finally {
    setDefaultDevice(previousDevice);
  }
}

function fit(
  options: MnistTrainOptions,
  train: DataLoader,
  test: DataLoader,
): { model: MNISTNet; history: EpochStats[] } {
  const model = new MNISTNet();
  const optimizer = new optim.Adam(model.parameters(), { lr: options.lr });
  const history: EpochStats[] = [];
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    const start = performance.now();
    const trainLoss = trainEpoch(model, optimizer, train, options.onBatch);
    const seconds = (performance.now() - start) / 1000;
    const { loss, accuracy } = evaluate(model, test);
    const imagesSeen = Math.min(train.dataset.length, train.length * options.batchSize);
    const stats = {
      epoch,
      trainLoss,
      testLoss: loss,
      testAccuracy: accuracy,
      seconds,
      imagesPerSecond: imagesSeen / seconds,
    };
    history.push(stats);
    options.onEpoch?.(stats);
  }
  return { model, history };
}

export interface MnistFitOptions extends Omit<MnistTrainOptions, "onBatch"> {
  /** Write a checkpoint here after every epoch. */
  checkpointDir?: string;
  /** Also write one every saveSteps steps inside an epoch. */
  saveSteps?: number;
  /** Continue from this checkpoint (or the newest in this folder). */
  resume?: string;
  /** A progress bar on stderr (terminals only); default false. */
  progress?: boolean;
  metricsFile?: string;
  plotFile?: string;
  onSave?: (path: string) => void;
  /** Called once the data is loaded, before training: what each epoch trains and scores on. */
  onLoaded?: (counts: { train: number; test: number }) => void;
}

/** EpochStats of a Trainer record (evaluated on the test split every epoch). */
function epochStats(record: trainer.EpochRecord): EpochStats {
  return {
    epoch: record.epoch,
    trainLoss: record.train.loss!,
    testLoss: record.eval!.loss!,
    testAccuracy: record.eval!.accuracy!,
    seconds: record.seconds,
    imagesPerSecond: record.samplesPerSecond,
  };
}

/**
 * Trains MNISTNet with Adam through train.Trainer: checkpoints, resume, progress bar,
 * metrics file and curves. The CLI's `deepnode train mnist` runs this.
 */
export async function fitMnist(
  options: MnistFitOptions,
): Promise<{ model: MNISTNet; history: EpochStats[]; result: trainer.FitResult }> {
  const data = loadMnist(options.dataDir === undefined ? {} : { dir: options.dataDir });
  const device = options.device ?? getDefaultDevice();
  const train = limitSplit(data.train, options.limit);
  options.onLoaded?.({ train: train.count, test: data.test.count });
  const run = new trainer.Trainer({
    model: () => new MNISTNet(),
    trainData: mnistLoader(train, options.batchSize, true, device),
    evalData: mnistLoader(data.test, 250, false, device),
    epochs: options.epochs,
    optimizer: (params) => new optim.Adam(params, { lr: options.lr }),
    lossFn: (logProbs, targets) => F.nllLoss(logProbs, targets),
    metrics: { accuracy: trainer.accuracy },
    seed: options.seed,
    device,
    progress: options.progress ?? false,
    ...(options.checkpointDir === undefined ? {} : { saveDir: options.checkpointDir }),
    ...(options.saveSteps === undefined ? {} : { saveSteps: options.saveSteps }),
    ...(options.resume === undefined ? {} : { resume: options.resume }),
    ...(options.metricsFile === undefined ? {} : { metricsFile: options.metricsFile }),
    ...(options.plotFile === undefined ? {} : { plotFile: options.plotFile }),
    callbacks: {
      onEpochEnd: (record) => options.onEpoch?.(epochStats(record)),
      onSave: (path) => options.onSave?.(path),
    },
  });
  const result = await run.fit();
  return { model: run.model as MNISTNet, history: result.history.map(epochStats), result };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  trainMnist({
    epochs: 3,
    batchSize: 64,
    lr: 1e-3,
    seed: 0,
    onEpoch: (s) =>
      console.log(
        `epoch ${s.epoch}: train loss ${s.trainLoss.toFixed(4)}, test accuracy ` +
          `${(100 * s.testAccuracy).toFixed(2)}%`,
      ),
  });
}
