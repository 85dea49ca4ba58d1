// The recorded graph and the backward pass. Each differentiable op attaches a GradNode
// to its output: the inputs that need gradients and a closure that maps the output's
// gradient to theirs (computed with Tensor ops under noGrad). backward() runs the nodes
// in reverse topological order, sums gradients that meet, and accumulates into the
// leaves' .grad. The closures hold the saved tensors; they are dropped after backward
// unless retainGraph is set.

import { StateError, formatShape } from "../errors.js";
import { sameShape } from "../shape.js";
import type { Storage } from "../backend/backend.js";
import { keep } from "../memory.js";
import { nextTensorSerial, sharesStorage, type Tensor } from "../tensor.js";
import { isGradEnabled, noGrad } from "./grad-mode.js";

/**
 * Maps an output's gradient to its inputs' (null for an input that gets none). It may
 * return gradOut itself, or tensors it makes; one that keeps gradOut after it returns must
 * keep a view of it (gradOut.detach()), so that the pass does not hand gradOut to a leaf
 * as its .grad and add into it meanwhile (BackwardPass.ownable).
 */
export type BackwardFn = (gradOut: Tensor) => readonly (Tensor | null | undefined)[];

export class GradNode {
  readonly name: string;
  readonly inputs: readonly (Tensor | null)[];
  private backwardFn: BackwardFn | null;

  constructor(name: string, inputs: readonly (Tensor | null)[], backwardFn: BackwardFn) {
    this.name = name;
    this.inputs = inputs;
    this.backwardFn = backwardFn;
  }

  get released(): boolean {
    return this.backwardFn === null;
  }

  apply(gradOut: Tensor): readonly (Tensor | null | undefined)[] {
    if (this.backwardFn === null) {
      throw new StateError(
        "backward",
        `the graph through ${this.name} was already freed by an earlier backward(); ` +
          "pass { retainGraph: true } to the first backward() to run it twice",
      );
    }
    return this.backwardFn(gradOut);
  }

  release(): void {
    this.backwardFn = null;
  }
}

/**
 * Attaches a GradNode to `out` when recording is on and any input needs a gradient.
 * Returns `out`, so an op can end with `return record(out, ...)`.
 */
export function record(
  out: Tensor,
  name: string,
  inputs: readonly Tensor[],
  backward: BackwardFn,
): Tensor {
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return out;
  out.setGradFn(
    new GradNode(
      name,
      inputs.map((t) => (t.requiresGrad ? t : null)),
      backward,
    ),
  );
  return out;
}

/** Nodes reachable from `root`, each after every node that consumes it (reverse topological). */
function topologicalOrder(root: GradNode): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  const stack: { node: GradNode; next: number }[] = [{ node: root, next: 0 }];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const input = top.node.inputs[top.next++];
    if (top.next > top.node.inputs.length) {
      order.push(top.node);
      stack.pop();
      continue;
    }
    const child = input?.gradFn ?? null;
    if (child !== null && !visited.has(child)) {
      visited.add(child);
      stack.push({ node: child, next: 0 });
    }
  }
  return order.reverse();
}

function checkGradShape(node: GradNode, input: Tensor, grad: Tensor): void {
  if (!sameShape(grad.shape, input.shape)) {
    throw new StateError(
      "backward",
      `${node.name} returned a gradient of shape ${formatShape(grad.shape)} ` +
        `for an input of shape ${formatShape(input.shape)}`,
    );
  }
}

/**
 * Into leaf.grad: the first gradient becomes it, kept so that a scope around the training
 * step does not dispose it, and copied unless `ownable` (see BackwardPass.ownable); later
 * ones are added in place.
 */
function accumulateLeaf(leaf: Tensor, grad: Tensor, ownable: boolean): void {
  if (leaf.grad === null) leaf.setGrad(keep(ownable ? grad : grad.clone()));
  else leaf.grad.addInPlace(grad);
}

/**
 * The gradients waiting for their nodes during one backward pass, and which gradient a
 * leaf may take as its .grad without a copy, as PyTorch's AccumulateGrad takes one that
 * nothing else refers to. That saves a kernel and an allocation per parameter per step.
 */
class BackwardPass {
  private readonly waiting = new Map<GradNode, Tensor>();
  /** How many waiting gradients use each storage. */
  private readonly waitingStorages = new Map<Storage, number>();
  /** Tensors made from here on were made by this pass (the caller's seed was not). */
  private readonly firstSerial = nextTensorSerial();

  set(node: GradNode, grad: Tensor): void {
    const previous = this.waiting.get(node);
    if (previous !== undefined) this.count(previous, -1);
    this.waiting.set(node, grad);
    this.count(grad, 1);
  }

  take(node: GradNode): Tensor | undefined {
    const grad = this.waiting.get(node);
    if (grad === undefined) return undefined;
    this.waiting.delete(node);
    this.count(grad, -1);
    return grad;
  }

  get(node: GradNode): Tensor | undefined {
    return this.waiting.get(node);
  }

  /**
   * Whether returned[index], a gradient `node` returned, may become a leaf's .grad as it is:
   * this pass made it, no view shares its storage (a closure that keeps a gradient for later
   * keeps a view of it), no node waits for it, and every other input of the node that needs
   * it (add returns one gradient for both of its own) is a leaf that came before, and so
   * took a copy already. A later gradient of that leaf is then added into it in place, which
   * must change nothing else.
   */
  ownable(
    node: GradNode,
    returned: readonly (Tensor | null | undefined)[],
    index: number,
  ): boolean {
    const grad = returned[index]!;
    if (grad.serial < this.firstSerial || sharesStorage(grad)) return false;
    if (this.waitingStorages.has(grad.storage)) return false;
    // A gradient for an input that needs none is dropped, so it does not count.
    return returned.every((other, i) => {
      const input = node.inputs[i];
      if (i === index || input === null || other?.storage !== grad.storage) return true;
      return i < index && input!.gradFn === null;
    });
  }

  private count(grad: Tensor, change: number): void {
    const users = (this.waitingStorages.get(grad.storage) ?? 0) + change;
    if (users > 0) this.waitingStorages.set(grad.storage, users);
    else this.waitingStorages.delete(grad.storage);
  }
}

export interface BackwardOptions {
  gradient?: Tensor;
  retainGraph?: boolean;
}

/** Computes the gradients of `root` with respect to every leaf that requires them. */
export function runBackward(root: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new StateError("backward", "the tensor does not require grad and has no grad_fn");
  }
  noGrad(() => {
    const seed = options.gradient ?? implicitGradient(root);
    if (!sameShape(seed.shape, root.shape)) {
      throw new StateError(
        "backward",
        `gradient has shape ${formatShape(seed.shape)} but the tensor has shape ` +
          `${formatShape(root.shape)}`,
      );
    }
    const rootNode = root.gradFn;
    if (rootNode === null) {
      accumulateLeaf(root, seed, false);
      return;
    }
    propagate(rootNode, seed, options.retainGraph ?? false);
  });
}

function implicitGradient(root: Tensor): Tensor {
  if (root.numel !== 1) {
    throw new StateError(
      "backward",
      `grad can be implicitly created only for a single-element tensor, got shape ` +
        `${formatShape(root.shape)}`,
    );
  }
  return root.onesLike();
}

function propagate(rootNode: GradNode, seed: Tensor, retainGraph: boolean): void {
  const pass = new BackwardPass();
  pass.set(rootNode, seed);
  for (const node of topologicalOrder(rootNode)) {
    const gradOut = pass.take(node);
    if (gradOut === undefined) continue;
    const inputGrads = node.apply(gradOut);
    if (!retainGraph) node.release();
    node.inputs.forEach((input, i) => {
      const grad = inputGrads[i];
      if (input === null || grad === null || grad === undefined) return;
      checkGradShape(node, input, grad);
      const next = input.gradFn;
      if (next === null) {
        accumulateLeaf(input, grad, pass.ownable(node, inputGrads, i));
        return;
      }
      const existing = pass.get(next);
      pass.set(next, existing === undefined ? grad : existing.add(grad));
    });
  }
}
