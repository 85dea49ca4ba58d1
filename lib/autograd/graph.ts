// The recorded graph and the backward pass. Each differentiable op attaches a GradNode
// to its output: the inputs that need gradients and a closure that maps the output's
// gradient to theirs (computed with Tensor ops under noGrad). backward() runs the nodes
// in reverse topological order, sums gradients that meet, and accumulates into the
// leaves' .grad. The closures hold the saved tensors; they are dropped after backward
// unless retainGraph is set.

import { StateError, formatShape } from "../errors.js";
import { sameShape } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { keep } from "../memory.js";
import { isGradEnabled, noGrad } from "./grad-mode.js";

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

function accumulateLeaf(leaf: Tensor, grad: Tensor): void {
  // The first gradient is copied (a backward closure may hand the same tensor to several
  // inputs) and kept, so a scope around the training step does not dispose it.
  if (leaf.grad === null) leaf.setGrad(keep(grad.clone()));
  else leaf.grad.addInPlace(grad);
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
      accumulateLeaf(root, seed);
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
  const grads = new Map<GradNode, Tensor>([[rootNode, seed]]);
  for (const node of topologicalOrder(rootNode)) {
    const gradOut = grads.get(node);
    grads.delete(node);
    if (gradOut === undefined) continue;
    const inputGrads = node.apply(gradOut);
    if (!retainGraph) node.release();
    node.inputs.forEach((input, i) => {
      const grad = inputGrads[i];
      if (input === null || grad === null || grad === undefined) return;
      checkGradShape(node, input, grad);
      const next = input.gradFn;
      if (next === null) {
        accumulateLeaf(input, grad);
        return;
      }
      const existing = grads.get(next);
      grads.set(next, existing === undefined ? grad : existing.add(grad));
    });
  }
}
