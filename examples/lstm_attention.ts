// An LSTM (2 layers, dropout 0.3) whose outputs are pooled by attention: a linear score per
// time step, softmax over time, the weighted sum of the outputs; then a linear layer.
// Run: node dist/examples/lstm_attention.js (trains a few steps on synthetic sequences).

import { pathToFileURL } from "node:url";
import { F, Tensor, manualSeed, nn } from "../lib/index.js";
import { inputs, labelTensor, randomLabels, report, trainSteps } from "./synthetic.js";

export class LSTMAttention extends nn.Module {
  lstm: nn.LSTM;
  score: nn.Linear;
  fc: nn.Linear;

  constructor(inputSize: number, hiddenSize: number, classes: number) {
    super();
    this.lstm = new nn.LSTM(inputSize, hiddenSize, {
      numLayers: 2,
      batchFirst: true,
      dropout: 0.3,
    });
    this.score = new nn.Linear(hiddenSize, 1);
    this.fc = new nn.Linear(hiddenSize, classes);
  }

  /** The attention weights [N, T] over x's steps. */
  attention(output: Tensor): Tensor {
    return F.softmax(this.score.forward(output).squeeze(2), 1);
  }

  /** x [N, T, inputSize] -> logits [N, classes]. */
  forward(x: Tensor): Tensor {
    const [output] = this.lstm.forward(x);
    const weights = this.attention(output).unsqueeze(2); // [N, T, 1]
    return this.fc.forward(output.mul(weights).sum(1));
  }
}

export function trainLSTMAttention(steps = 15, seed = 0): number[] {
  manualSeed(seed);
  const [batch, time, features, classes] = [16, 10, 6, 3];
  const model = new LSTMAttention(features, 24, classes);
  const x = inputs([batch, time, features], seed + 1);
  const y = labelTensor(randomLabels(batch, classes, seed + 2));
  return trainSteps(model, steps, () => F.crossEntropy(model.forward(x), y), 1e-2);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  report("LSTM with attention pooling", trainLSTMAttention(50));
}
