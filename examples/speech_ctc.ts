// A speech model trained with CTC: per-frame linear, relu, dropout 0.2 (twice), a 2-layer
// bidirectional LSTM, a linear layer to the vocabulary (blank = 0) and log-softmax; greedy
// decoding turns its output into label sequences.
// Run: node dist/examples/speech_ctc.js (trains a few steps on synthetic frames).

import { pathToFileURL } from "node:url";
import { F, Tensor, manualSeed, nn } from "../lib/index.js";
import { inputs, randomLabels, report, trainSteps } from "./synthetic.js";

export class SpeechCTC extends nn.Module {
  frame1: nn.Linear;
  frame2: nn.Linear;
  dropout = new nn.Dropout(0.2);
  lstm: nn.LSTM;
  fc: nn.Linear;

  constructor(features: number, hidden: number, vocabulary: number) {
    super();
    this.frame1 = new nn.Linear(features, hidden);
    this.frame2 = new nn.Linear(hidden, hidden);
    this.lstm = new nn.LSTM(hidden, hidden, { numLayers: 2, bidirectional: true });
    this.fc = new nn.Linear(2 * hidden, vocabulary);
  }

  /** frames [T, N, features] -> log-probabilities [T, N, vocabulary]. */
  forward(frames: Tensor): Tensor {
    let x = this.dropout.forward(F.relu(this.frame1.forward(frames)));
    x = this.dropout.forward(F.relu(this.frame2.forward(x)));
    const [output] = this.lstm.forward(x);
    return F.logSoftmax(this.fc.forward(output), 2);
  }

  /** Greedy decoding of frames [T, N, features]: one label sequence per sample. */
  decode(frames: Tensor, inputLengths?: readonly number[]): number[][] {
    return F.ctcGreedyDecode(this.forward(frames), inputLengths);
  }
}

export interface SpeechRun {
  losses: number[];
  decoded: number[][];
  targets: number[][];
}

export function trainSpeechCTC(steps = 12, seed = 0): SpeechRun {
  manualSeed(seed);
  const [time, batch, features, vocabulary, targetLength] = [16, 4, 10, 6, 3];
  const model = new SpeechCTC(features, 24, vocabulary);
  const frames = inputs([time, batch, features], seed + 1);
  const labels = randomLabels(batch * targetLength, vocabulary, seed + 2, 1);
  const targets = Array.from({ length: batch }, (_, n) =>
    labels.slice(n * targetLength, (n + 1) * targetLength),
  );
  const inputLengths = new Array<number>(batch).fill(time);
  const targetLengths = new Array<number>(batch).fill(targetLength);
  const losses = trainSteps(
    model,
    steps,
    () => F.ctcLoss(model.forward(frames), targets, inputLengths, targetLengths),
    1e-2,
  );
  model.eval();
  return { losses, decoded: model.decode(frames, inputLengths), targets };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const run = trainSpeechCTC(150);
  report("speech CTC", run.losses);
  console.log("targets", JSON.stringify(run.targets), "decoded", JSON.stringify(run.decoded));
}
