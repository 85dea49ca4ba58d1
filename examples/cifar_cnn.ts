// A CNN for 32x32 colour images (CIFAR-10's shape), written as its PyTorch twin: three 3x3
// convolutions (3 -> 32 -> 64 -> 128, padding 1), each followed by relu and 2x2 max-pooling,
// then linear 2048 -> 512, relu, dropout 0.5, linear 512 -> classes.
// Run: node dist/examples/cifar_cnn.js (trains a few steps on synthetic images).

import { pathToFileURL } from "node:url";
import { F, Tensor, manualSeed, nn } from "../lib/index.js";
import { inputs, labelTensor, randomLabels, report, trainSteps } from "./synthetic.js";

export class CifarCNN extends nn.Module {
  conv1 = new nn.Conv2d(3, 32, 3, { padding: 1 });
  conv2 = new nn.Conv2d(32, 64, 3, { padding: 1 });
  conv3 = new nn.Conv2d(64, 128, 3, { padding: 1 });
  fc1 = new nn.Linear(128 * 4 * 4, 512);
  dropout = new nn.Dropout(0.5);
  fc2: nn.Linear;

  constructor(classes = 10) {
    super();
    this.fc2 = new nn.Linear(512, classes);
  }

  /** x [N, 3, 32, 32] -> logits [N, classes]. */
  forward(x: Tensor): Tensor {
    for (const conv of [this.conv1, this.conv2, this.conv3]) {
      x = F.maxPool2d(F.relu(conv.forward(x)), 2);
    }
    x = F.relu(this.fc1.forward(x.flatten(1)));
    return this.fc2.forward(this.dropout.forward(x));
  }
}

/** Fits one synthetic batch for `steps` Adam steps; returns the losses. */
export function trainCifarCNN(steps = 6, batch = 8, classes = 10, seed = 0, lr = 3e-4): number[] {
  manualSeed(seed);
  const model = new CifarCNN(classes);
  const x = inputs([batch, 3, 32, 32], seed + 1);
  const y = labelTensor(randomLabels(batch, classes, seed + 2));
  return trainSteps(model, steps, () => F.crossEntropy(model.forward(x), y), lr);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  report("cifar CNN", trainCifarCNN(20));
}
