// A two-branch model: text features and image features each go through linear, relu and
// dropout 0.2; the two are concatenated, then linear, relu, dropout 0.3 and linear.
// Run: node dist/examples/two_branch.js (trains a few steps on synthetic features).

import { pathToFileURL } from "node:url";
import { F, Tensor, cat, manualSeed, nn } from "../lib/index.js";
import { inputs, labelTensor, randomLabels, report, trainSteps } from "./synthetic.js";

export class TwoBranch extends nn.Module {
  text: nn.Linear;
  image: nn.Linear;
  fusion: nn.Linear;
  head: nn.Linear;
  dropoutBranch = new nn.Dropout(0.2);
  dropoutFusion = new nn.Dropout(0.3);

  constructor(textSize: number, imageSize: number, hidden: number, classes: number) {
    super();
    this.text = new nn.Linear(textSize, hidden);
    this.image = new nn.Linear(imageSize, hidden);
    this.fusion = new nn.Linear(2 * hidden, hidden);
    this.head = new nn.Linear(hidden, classes);
  }

  /** text [N, textSize], image [N, imageSize] -> logits [N, classes]. */
  forward(text: Tensor, image: Tensor): Tensor {
    const t = this.dropoutBranch.forward(F.relu(this.text.forward(text)));
    const i = this.dropoutBranch.forward(F.relu(this.image.forward(image)));
    const fused = this.dropoutFusion.forward(F.relu(this.fusion.forward(cat([t, i], 1))));
    return this.head.forward(fused);
  }
}

export function trainTwoBranch(steps = 15, seed = 0): number[] {
  manualSeed(seed);
  const [batch, classes] = [16, 5];
  const model = new TwoBranch(20, 30, 32, classes);
  const text = inputs([batch, 20], seed + 1);
  const image = inputs([batch, 30], seed + 2);
  const y = labelTensor(randomLabels(batch, classes, seed + 3));
  return trainSteps(model, steps, () => F.crossEntropy(model.forward(text, image), y), 1e-2);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  report("two-branch model", trainTwoBranch(50));
}
