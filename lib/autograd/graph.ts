// The recorded graph and the backward pass. Each differentiable op attaches a GradNode
// to its outputs: the inputs that need gradients and a closure that maps the outputs'
// gradients to theirs (computed with Tensor ops under noGrad). backward() runs the nodes
// in reverse topological order, sums gradients that meet, and accumulates into the
// leaves' .grad. The closures hold the saved tensors; they are dropped after backward
// unless retainGraph is set, and a closure that saves none is kept (RecordOptions).
//
// A node may have several outputs (recordOutputs: split's pieces, a recurrent layer's output
// and final states), whose gradients its closure gets together. That is one gradient slot
// per output where the pass waits for the node, rather than a node per output joined at a
// placeholder tensor: the placeholder's node cost a fill per output and adds of the
// placeholders' gradients on every backward, and the per-output nodes had to keep views of
// their gradients to stop a leaf taking one before the joined node had read it.

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

/**
 * BackwardFn of an op with several outputs: their gradients in order, null for an output that
 * got none (at least one got one). The same rule holds for keeping any of them.
 */
export type OutputsBackwardFn = (
  gradOuts: readonly (Tensor | null)[],
) => readonly (Tensor | null | undefined)[];

export class GradNode {
  readonly name: string;
  readonly inputs: readonly (Tensor | null)[];
  /** How many outputs the op has; each output tensor knows its place (outputIndex). */
  readonly outputs: number;
  /**
   * Whether the closure holds saved tensors, which backward frees. A node without (add's,
   * reshape's, split's: only shapes, offsets and numbers) survives backward, so a second
   * backward through it works, as in PyTorch, whose error is about saved tensors freed.
   */
  readonly savesTensors: boolean;
  private backwardFn: OutputsBackwardFn | null;

  constructor(
    name: string,
    inputs: readonly (Tensor | null)[],
    backwardFn: OutputsBackwardFn,
    outputs = 1,
    savesTensors = true,
  ) {
    this.name = name;
    this.inputs = inputs;
    this.backwardFn = backwardFn;
    this.outputs = outputs;
    this.savesTensors = savesTensors;
  }

  get released(): boolean {
    return this.backwardFn === null;
  }

  apply(gradOuts: readonly (Tensor | null)[]): readonly (Tensor | null | undefined)[] {
    if (this.backwardFn === null) {
      throw new StateError(
        "backward",
        `the graph through ${this.name} was already freed by an earlier backward(); ` +
          "pass { retainGraph: true } to the first backward() to run it twice",
      );
    }
    return this.backwardFn(gradOuts);
  }

  release(): void {
    if (this.savesTensors) this.backwardFn = null;
  }
}

export interface RecordOptions {
  /**
   * False when the closure reads no tensor's values, only shapes, dtypes, devices and
   * numbers (add, reshape, sum, slice): its node then survives backward (GradNode.savesTensors).
   * Default true: the node is freed after a backward without retainGraph.
   */
  savesTensors?: boolean;
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
  options: RecordOptions = {},
): Tensor {
  recordOutputs([out], name, inputs, (gradOuts) => backward(gradOuts[0]!), options);
  return out;
}

/**
 * record for an op with several outputs: one GradNode for all of them, whose `backward` gets
 * all their gradients at once (see the top of this file). Returns `outputs`.
 */
export function recordOutputs<T extends readonly Tensor[]>(
  outputs: T,
  name: string,
  inputs: readonly Tensor[],
  backward: OutputsBackwardFn,
  options: RecordOptions = {},
): T {
  if (isRecording(inputs)) {
    const needed = inputs.map((t) => (t.requiresGrad ? t : null));
    const node = new GradNode(name, needed, backward, outputs.length, options.savesTensors);
    outputs.forEach((out, k) => out.setGradFn(node, k));
  }
  return outputs;
}

/** Whether an op on `inputs` is recorded now: grad mode is on and one of them needs a gradient. */
export function isRecording(inputs: readonly Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
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
  /** Per node, its outputs' gradients so far (null for an output that has none yet). */
  private readonly waiting = new Map<GradNode, (Tensor | null)[]>();
  /** How many waiting gradients use each storage. */
  private readonly waitingStorages = new Map<Storage, number>();
  /** Tensors made from here on were made by this pass (the caller's seed was not). */
  private readonly firstSerial = nextTensorSerial();

  set(node: GradNode, output: number, grad: Tensor): void {
    let grads = this.waiting.get(node);
    if (grads === undefined) {
      grads = new Array<Tensor | null>(node.outputs).fill(null);
      this.waiting.set(node, grads);
    }
    const previous = grads[output];
    if (previous !== null && previous !== undefined) this.count(previous, -1);
    grads[output] = grad;
    this.count(grad, 1);
  }

  take(node: GradNode): (Tensor | null)[] | undefined {
    const grads = this.waiting.get(node);
    if (grads === undefined) return undefined;
    this.waiting.delete(node);
    for (const grad of grads) if (grad !== null) this.count(grad, -1);
    return grads;
  }

  get(node: GradNode, output: number): Tensor | null {
    return this.waiting.get(node)?.[output] ?? null;
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
    propagate(rootNode, root.outputIndex, seed, options.retainGraph ?? false);
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

function propagate(
  rootNode: GradNode,
  rootOutput: number,
  seed: Tensor,
  retainGraph: boolean,
): void {
  const pass = new BackwardPass();
  pass.set(rootNode, rootOutput, seed);
  for (const node of topologicalOrder(rootNode)) {
    const gradOuts = pass.take(node);
    if (gradOuts === undefined) continue;
    const inputGrads = node.apply(gradOuts);
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
      const existing = pass.get(next, input.outputIndex);
      pass.set(next, input.outputIndex, existing === null ? grad : existing.add(grad));
    });
  }
}
