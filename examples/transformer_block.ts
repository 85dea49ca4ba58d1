// A post-norm transformer block, written out from its parts: multi-head self-attention and
// a relu feed-forward, each followed by dropout 0.1, a residual connection and LayerNorm.
// A small classifier (block, mean over the sequence, linear) learns a synthetic task.
// Run with `node dist/examples/transformer_block.js` after `npm run build`.
// Outside this repository, import from "deepnode" instead of "../lib/index.js".

import { pathToFileURL } from "node:url";
import { F, Tensor, manualSeed, nn, optim, randn, scope } from "../lib/index.js";

export interface TransformerBlockOptions {
  dModel: number;
  numHeads: number;
  dimFeedforward: number;
  dropout?: number;
}

/** x [N, L, dModel] to [N, L, dModel]: x = norm1(x + attn(x)); x = norm2(x + ff(x)). */
export class TransformerBlock extends nn.Module {
  attention: nn.MultiheadAttention;
  dropout1: nn.Dropout;
  norm1: nn.LayerNorm;
  linear1: nn.Linear;
  linear2: nn.Linear;
  dropout2: nn.Dropout;
  norm2: nn.LayerNorm;

  constructor(options: TransformerBlockOptions) {
    super();
    const { dModel, numHeads, dimFeedforward } = options;
    const p = options.dropout ?? 0.1;
    this.attention = new nn.MultiheadAttention(dModel, numHeads, { batchFirst: true });
    this.dropout1 = new nn.Dropout(p);
    this.norm1 = new nn.LayerNorm(dModel);
    this.linear1 = new nn.Linear(dModel, dimFeedforward);
    this.linear2 = new nn.Linear(dimFeedforward, dModel);
    this.dropout2 = new nn.Dropout(p);
    this.norm2 = new nn.LayerNorm(dModel);
  }

  forward(x: Tensor, keyPaddingMask: Tensor | null = null): Tensor {
    const [attended] = this.attention.forward(x, x, x, { keyPaddingMask, needWeights: false });
    const h = this.norm1.forward(x.add(this.dropout1.forward(attended)));
    const ff = this.linear2.forward(F.relu(this.linear1.forward(h)));
    return this.norm2.forward(h.add(this.dropout2.forward(ff)));
  }
}

/** The block, a mean over the sequence, then a linear layer to class scores. */
export class SequenceClassifier extends nn.Module {
  block: TransformerBlock;
  head: nn.Linear;

  constructor(options: TransformerBlockOptions, numClasses: number) {
    super();
    this.block = new TransformerBlock(options);
    this.head = new nn.Linear(options.dModel, numClasses);
  }

  forward(x: Tensor): Tensor {
    return this.head.forward(this.block.forward(x).mean(1));
  }
}

/**
 * Synthetic data: x [n, length, dModel] standard normal; the class says whether the first
 * feature, summed over the sequence, is positive. Needs the whole sequence to answer.
 */
export function syntheticBatch(n: number, length: number, dModel: number): [Tensor, Tensor] {
  const x = randn([n, length, dModel]);
  const targets = x.select(2, 0).sum(1).gt(0).int();
  return [x, targets];
}

/** Trains a small classifier for `steps` Adam steps; returns the loss of each step. */
export function trainTransformerBlock(steps = 30, seed = 0): number[] {
  manualSeed(seed);
  const options = { dModel: 16, numHeads: 4, dimFeedforward: 32 };
  const model = new SequenceClassifier(options, 2);
  const optimizer = new optim.Adam(model.parameters(), { lr: 3e-3 });
  const [x, targets] = syntheticBatch(64, 8, options.dModel);
  const losses: number[] = [];
  model.train();
  for (let step = 0; step < steps; step++) {
    losses.push(
      scope(() => {
        optimizer.zeroGrad();
        const loss = F.crossEntropy(model.forward(x), targets);
        loss.backward();
        optimizer.step();
        return loss.item();
      }),
    );
  }
  return losses;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  trainTransformerBlock(40).forEach((loss, step) =>
    console.log(`step ${String(step).padStart(3)} loss ${loss.toFixed(4)}`),
  );
}
