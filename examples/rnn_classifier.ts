// A sequence classifier: a multi-layer nn.RNN (batchFirst, dropout 0.2 between layers) and a
// linear layer on its output at the last time step.
// Run: node dist/examples/rnn_classifier.js (trains a few steps on synthetic sequences).

import { pathToFileURL } from "node:url";
import { F, Tensor, manualSeed, nn } from "../lib/index.js";
import { inputs, labelTensor, randomLabels, report, trainSteps } from "./synthetic.js";

export class RNNClassifier extends nn.Module {
  rnn: nn.RNN;
  fc: nn.Linear;

  constructor(inputSize: number, hiddenSize: number, classes: number, numLayers = 3) {
    super();
    this.rnn = new nn.RNN(inputSize, hiddenSize, { numLayers, batchFirst: true, dropout: 0.2 });
    this.fc = new nn.Linear(hiddenSize, classes);
  }

  /** x [N, T, inputSize] -> logits [N, classes]. */
  forward(x: Tensor): Tensor {
    const [output] = this.rnn.forward(x);
    return this.fc.forward(output.select(1, x.shape[1]! - 1));
  }
}

export function trainRNNClassifier(steps = 15, seed = 0): number[] {
  manualSeed(seed);
  const [batch, steps_, features, classes] = [16, 12, 8, 4];
  const model = new RNNClassifier(features, 32, classes);
  const x = inputs([batch, steps_, features], seed + 1);
  const y = labelTensor(randomLabels(batch, classes, seed + 2));
  return trainSteps(model, steps, () => F.crossEntropy(model.forward(x), y), 1e-2);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  report("RNN classifier", trainRNNClassifier(50));
}
