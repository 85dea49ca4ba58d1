// Module: the base of every layer and model. Parameters and submodules are found by
// walking the instance's own fields in declaration order (as PyTorch's __setattr__
// registers them), so `this.fc1 = new Linear(...)` is all a model needs. Buffers (state
// that is saved but not trained) are registered by name.

import { noGrad } from "../autograd/grad-mode.js";
import { backendFor, parseDevice } from "../backend/registry.js";
import { StateDictError, StateError, ValueError, type Shape, formatValue } from "../errors.js";
import { sameShape } from "../shape.js";
import { Tensor } from "../tensor.js";
import { Parameter } from "./parameter.js";

export abstract class Module {
  /** True in training mode (dropout active), false after eval(). */
  training = true;
  private readonly bufferNames = new Set<string>();

  abstract forward(...inputs: never[]): unknown;

  /** Re-initialises this module's own parameters; layers override it. */
  resetParameters(): void {}

  /** The configuration printed beside the class name, e.g. "1, 32, kernel_size=(3, 3)". */
  extraRepr(): string {
    return "";
  }

  // ---- registration -------------------------------------------------------------

  /** Stores a tensor that stateDict saves but optimizers do not train. */
  registerBuffer(name: string, value: Tensor): void {
    this.bufferNames.add(name);
    (this as unknown as Record<string, unknown>)[name] = value;
  }

  private ownEntries(): [string, unknown][] {
    return Object.entries(this).filter(([name]) => name !== "training" && name !== "bufferNames");
  }

  // ---- traversal ----------------------------------------------------------------

  *namedChildren(): Generator<[string, Module]> {
    for (const [name, value] of this.ownEntries()) {
      if (value instanceof Module) yield [name, value];
    }
  }

  *children(): Generator<Module> {
    for (const [, child] of this.namedChildren()) yield child;
  }

  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.namedChildren()) {
      yield* child.namedModules(prefix === "" ? name : `${prefix}.${name}`);
    }
  }

  *modules(): Generator<Module> {
    for (const [, m] of this.namedModules()) yield m;
  }

  *namedParameters(prefix = ""): Generator<[string, Parameter]> {
    const seen = new Set<Tensor>();
    for (const [path, module] of this.namedModules(prefix)) {
      for (const [name, value] of module.ownEntries()) {
        if (value instanceof Parameter && !seen.has(value)) {
          seen.add(value);
          yield [path === "" ? name : `${path}.${name}`, value];
        }
      }
    }
  }

  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  *namedBuffers(prefix = ""): Generator<[string, Tensor]> {
    for (const [path, module] of this.namedModules(prefix)) {
      for (const name of module.bufferNames) {
        const value = (module as unknown as Record<string, unknown>)[name];
        if (value instanceof Tensor) yield [path === "" ? name : `${path}.${name}`, value];
      }
    }
  }

  /** Number of parameter elements (all, or only those that require grad). */
  numParameters(trainableOnly = false): number {
    return this.parameters()
      .filter((p) => !trainableOnly || p.requiresGrad)
      .reduce((n, p) => n + p.numel, 0);
  }

  // ---- modes and gradients --------------------------------------------------------

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Clears every parameter's gradient (to null by default, as PyTorch 2 does). */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) p.zeroGrad(setToNone);
  }

  // ---- devices --------------------------------------------------------------------

  /**
   * Moves every parameter and buffer, with their gradients, to `device` ("cpu", "cuda",
   * "cuda:1", "reference") in place, as PyTorch's module.to(device): each stays the same
   * object, so references to them (tied weights, a model's own fields) keep working. Returns
   * this. An optimizer made before keeps its state where it was made: make it after moving.
   * Every copy is made before any tensor changes, so a failure (an unavailable device, out
   * of memory) leaves the module as it was.
   */
  to(device: string): this {
    const target = parseDevice(device);
    backendFor(target); // an unavailable device fails here, naming what is missing
    const moving = this.tensorsToMove(target);
    const moves: [Tensor, Tensor][] = [];
    try {
      noGrad(() => {
        for (const t of moving) moves.push([t, t.to(target)]); // no graph under noGrad
      });
    } catch (error) {
      for (const [, copy] of moves) copy.dispose();
      throw error;
    }
    for (const [t, copy] of moves) t.adoptStorage(copy);
    return this;
  }

  /**
   * The parameters, buffers and gradients not yet on `target`, each once (tied weights, a
   * gradient set by hand that is already there). A tensor that is the output of a recorded op
   * cannot take new storage in place (its graph refers to the old one), so it is refused here,
   * before anything is copied.
   */
  private tensorsToMove(target: string): Set<Tensor> {
    const named: [string, Tensor][] = [...this.namedParameters(), ...this.namedBuffers()];
    const candidates = named.flatMap(([name, t]): [string, Tensor | null][] => [
      [`'${name}'`, t],
      [`the gradient of '${name}'`, t.grad],
    ]);
    const moving = new Set<Tensor>();
    for (const [what, t] of candidates) {
      if (t === null || t.device === target) continue;
      if (t.gradFn !== null) {
        const message =
          `${what} is the output of a recorded op (${t.gradFn.name}), so it cannot be moved ` +
          "in place; detach() it first";
        throw new StateError("to", message);
      }
      moving.add(t);
    }
    return moving;
  }

  // ---- state ----------------------------------------------------------------------

  /** Parameters and buffers by dotted name, in registration order. */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [name, p] of this.namedParameters()) out[name] = p;
    for (const [name, b] of this.namedBuffers()) out[name] = b;
    return out;
  }

  /**
   * Copies values from `state` into this module's parameters and buffers. With strict
   * (the default) every key must match; the error lists all missing, unexpected and
   * mis-shaped keys at once, and nothing is copied unless everything fits.
   */
  loadStateDict(
    state: Record<string, Tensor>,
    strict = true,
  ): { missing: string[]; unexpected: string[] } {
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in state));
    const unexpected = Object.keys(state).filter((k) => !(k in own));
    const mismatched: { key: string; expected: Shape; got: Shape }[] = [];
    for (const [key, target] of Object.entries(own)) {
      const source = state[key];
      if (source !== undefined && !sameShape(source.shape, target.shape)) {
        mismatched.push({ key, expected: target.shape, got: source.shape });
      }
    }
    if (mismatched.length > 0 || (strict && (missing.length > 0 || unexpected.length > 0))) {
      // As PyTorch: without strict, only the shape mismatches are errors worth listing.
      throw new StateDictError(strict ? missing : [], strict ? unexpected : [], mismatched);
    }
    noGrad(() => {
      for (const [key, target] of Object.entries(own)) {
        const source = state[key];
        if (source !== undefined)
          target.copy_(source.device === target.device ? source : source.to(target.device));
      }
    });
    return { missing, unexpected };
  }

  // ---- printing -------------------------------------------------------------------

  /** PyTorch's layout: the class, its configuration, then each child indented. */
  toString(): string {
    const children = [...this.namedChildren()];
    const extra = this.extraRepr();
    const name = this.constructor.name;
    if (children.length === 0) return `${name}(${extra})`;
    const lines = children.map(
      ([childName, child]) => `  (${childName}): ${indent(child.toString())}`,
    );
    if (extra !== "") lines.unshift(`  ${extra}`);
    return `${name}(\n${lines.join("\n")}\n)`;
  }

  /** toString() followed by the parameter counts. */
  summary(): string {
    const total = this.numParameters();
    const trainable = this.numParameters(true);
    return (
      `${this.toString()}\nparameters: ${total.toLocaleString("en-US")} (trainable: ` +
      `${trainable.toLocaleString("en-US")})`
    );
  }
}

function indent(text: string): string {
  return text.split("\n").join("\n  ");
}

export function checkPositiveInt(op: string, name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new ValueError(op, `${name} must be a positive integer, got ${formatValue(value)}`, name);
  }
  return value;
}
