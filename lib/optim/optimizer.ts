// The Optimizer base: parameter groups with their own options, per-parameter state,
// zeroGrad, a step that can refuse non-finite gradients, hyperparameter checks that name
// the option and the value, and a state dict shaped like PyTorch's.

import { noGrad } from "../autograd/grad-mode.js";
import type { Device } from "../backend/registry.js";
import {
  DeviceError,
  DTypeError,
  formatShape,
  formatValue,
  ShapeError,
  StateDictError,
  ValueError,
  type Shape,
} from "../errors.js";
import { keep, scope } from "../memory.js";
import { sameShape } from "../shape.js";
import { Tensor } from "../tensor.js";
import { byDeviceAndDType, groupBy, normsOf } from "./foreach.js";

/** Throws a ValueError naming the option, its value and what was expected, unless condition. */
export function checkOption(
  name: string,
  condition: boolean,
  option: string,
  value: unknown,
  expected: string,
): void {
  if (!condition) {
    throw new ValueError(
      name,
      `invalid ${option}: ${formatValue(value)} (expected ${expected})`,
      option,
    );
  }
}

export interface ParamGroup<O> {
  params: Tensor[];
  options: O;
}

/**
 * A group's parameters and its own options, either PyTorch's way (`{ params, lr: 0.1 }`)
 * or nested (`{ params, options: { lr: 0.1 } }`); the rest come from the defaults.
 */
export type GroupSpec<O> = { params: Iterable<Tensor>; options?: Partial<O> } & Partial<O>;

export type ParamsArg<O> = Iterable<Tensor> | GroupSpec<O>[];

export type ParamState = Record<string, Tensor | number>;

/** PyTorch's layout: state by parameter index (counted across groups in order), and groups. */
export interface OptimizerStateDict<O> {
  state: Record<number, ParamState>;
  paramGroups: { params: number[]; options: O }[];
}

/** The state a parameter holds between steps, by kind. */
export interface StateKeys {
  tensors: string[];
  numbers: string[];
}

export abstract class Optimizer<O extends object> {
  readonly paramGroups: ParamGroup<O>[];
  /**
   * When true, step() first checks every gradient and, if one holds a NaN or an infinity,
   * updates nothing (the step is counted in skippedSteps). This costs one norms call and one
   * device sync per device and dtype of the gradients.
   */
  skipNonFinite = false;
  /** Calls of step(), skipped ones included (schedulers check it was called). */
  stepCount = 0;
  skippedSteps = 0;
  /** Per-parameter state (momentum buffers, moments, step counts). */
  protected readonly state = new Map<Tensor, ParamState>();
  protected readonly name: string;

  constructor(name: string, params: ParamsArg<O>, defaults: O) {
    this.name = name;
    this.paramGroups = toGroups(name, params, defaults);
    for (const group of this.paramGroups) this.validate(group.options);
  }

  /** Throws ValueError for an invalid hyperparameter. */
  protected abstract validate(options: O): void;

  /** Updates one parameter in place (under noGrad). */
  protected abstract update(param: Tensor, grad: Tensor, options: O): void;

  /** The state `update` keeps for a parameter of a group with these options. */
  protected abstract stateKeys(options: O): StateKeys;

  /** Updates every parameter that has a gradient; false when skipNonFinite refused the step. */
  step(): boolean {
    this.stepCount++;
    return noGrad(() => {
      if (this.skipNonFinite && !this.gradientsFinite()) {
        this.skippedSteps++;
        return false;
      }
      for (const group of this.paramGroups) this.updateGroup(group);
      return true;
    });
  }

  /**
   * Updates the group's parameters that have a gradient (under noGrad): by default one
   * update() each; an optimizer with a kernel over many parameters overrides it.
   */
  protected updateGroup(group: ParamGroup<O>): void {
    this.updateEach(group);
  }

  private updateEach(group: ParamGroup<O>): void {
    for (const p of group.params) if (p.grad !== null) this.update(p, p.grad, group.options);
  }

  /**
   * updateGroup for an optimizer whose backends step many parameters in one call, where
   * `batched` is the update() that the batching replaces: a subclass that overrides update()
   * keeps its per-parameter calls. Every gradient is checked against its parameter first, so
   * a bad one changes no state. Then prepare(p, grad) makes each parameter's state and returns
   * the kernel's item and the key of what the call's options depend on beyond the group's (a
   * step count, a first step); run(device, items, key) is called once per device and key, with
   * the items in order.
   */
  protected updateInBatches<Item, Key extends number | boolean>(
    group: ParamGroup<O>,
    batched: Optimizer<O>["update"],
    prepare: (p: Tensor, grad: Tensor) => { item: Item; key: Key },
    run: (device: Device, items: Item[], key: Key) => void,
  ): void {
    if (this.update !== batched) return this.updateEach(group);
    group.params.forEach((p, index) => {
      if (p.grad !== null) this.checkGradient(p, p.grad, index, group);
    });
    const prepared = group.params
      .filter((p) => p.grad !== null)
      .map((p) => ({ device: p.device, ...prepare(p, p.grad!) }));
    for (const batch of groupBy(prepared, (b) => `${b.device} ${String(b.key)}`)) {
      const { device, key } = batch[0]!;
      run(
        device,
        batch.map((b) => b.item),
        key,
      );
    }
  }

  /** A gradient of another shape, dtype or device than its parameter's, named by its place. */
  private checkGradient(p: Tensor, grad: Tensor, index: number, group: ParamGroup<O>): void {
    if (sameShape(grad.shape, p.shape) && grad.dtype === p.dtype && grad.device === p.device)
      return;
    // Only a bad gradient gets here: the message is built for it alone.
    const where = `parameter ${index} of group ${this.paramGroups.indexOf(group)}`;
    if (!sameShape(grad.shape, p.shape)) {
      const shapes = `${formatShape(p.shape)} but its gradient ${formatShape(grad.shape)}`;
      throw new ShapeError(this.name, `${where} has shape ${shapes}`, [p.shape, grad.shape]);
    }
    if (grad.dtype !== p.dtype) {
      const message = `${where} is ${p.dtype} but its gradient ${grad.dtype}`;
      throw new DTypeError(this.name, message, [p.dtype, grad.dtype]);
    }
    const message = `${where} is on ${p.device} but its gradient on ${grad.device}`;
    throw new DeviceError(this.name, message, [p.device, grad.device]);
  }

  /** Clears the gradients of every parameter this optimizer updates. */
  zeroGrad(setToNone = true): void {
    for (const group of this.paramGroups) for (const p of group.params) p.zeroGrad(setToNone);
  }

  /**
   * Whether every gradient is finite: a gradient's largest |g| (its norm of order Infinity)
   * is NaN or infinite exactly when one of its elements is, in any float dtype (a 2-norm in
   * double overflows for finite float64 elements past about 1e154). One norms call and one
   * read back per device and dtype, however many parameters.
   */
  gradientsFinite(): boolean {
    const grads = this.paramGroups.flatMap((group) =>
      group.params.flatMap((p) => (p.grad === null ? [] : [p.grad])),
    );
    return scope(() =>
      byDeviceAndDType(grads).every((group) => {
        const largest = normsOf(group, Infinity).dataSync() as ArrayLike<number>;
        return Array.from(largest).every(Number.isFinite);
      }),
    );
  }

  /** The state by parameter index and the groups' options; tensors are shared, not copied. */
  stateDict(): OptimizerStateDict<O> {
    const state: Record<number, ParamState> = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((group) => {
      const params = group.params.map((p) => {
        const s = this.state.get(p);
        if (s !== undefined) state[index] = { ...s };
        return index++;
      });
      return { params, options: copyOptions(group.options) };
    });
    return { state, paramGroups };
  }

  /**
   * Restores a stateDict() of an optimizer of the same kind over parameters of the same
   * shapes, grouped the same way: the groups' options and copies of the state, on each
   * parameter's device. Throws StateDictError naming every key that is missing, unexpected
   * or of the wrong shape, and ValueError for an invalid option; changes nothing then.
   * The state it replaces is disposed (so are the tensors of an earlier stateDict()).
   */
  loadStateDict(dict: OptimizerStateDict<O>): void {
    const params = this.paramGroups.flatMap((g) => g.params);
    this.checkGroups(dict);
    const options = dict.paramGroups.map((g, i) => this.loadedOptions(g.options, i));
    this.checkState(dict.state, params, options);
    // Copies first: the dict may hold this optimizer's own tensors, disposed next.
    const loaded = Object.entries(dict.state).map(
      ([key, saved]) => [params[Number(key)]!, copyState(saved, params[Number(key)]!)] as const,
    );
    this.disposeState();
    for (const [param, state] of loaded) this.state.set(param, state);
    this.paramGroups.forEach((g, i) => (g.options = options[i]!));
  }

  /** Disposes every state tensor; the state is empty after. */
  protected disposeState(): void {
    for (const s of this.state.values()) {
      for (const value of Object.values(s)) if (value instanceof Tensor) value.dispose();
    }
    this.state.clear();
  }

  /** State tensors outlive the scope of the step that created them. */
  protected stateFor(param: Tensor): ParamState {
    let s = this.state.get(param);
    if (s === undefined) {
      s = {};
      this.state.set(param, s);
    }
    return s;
  }

  protected newStateTensor(param: Tensor, value = 0): Tensor {
    const t = param.zerosLike();
    if (value !== 0) t.fill_(value);
    return keep(t);
  }

  protected check(condition: boolean, option: string, value: unknown, expected: string): void {
    checkOption(this.name, condition, option, value, expected);
  }

  /**
   * A hyperparameter that must be a finite number >= 0 (lr, eps, decays, momentum): a string
   * or an infinity is refused here by name, not at the first step by a native kernel.
   */
  protected checkNonNegative(option: string, value: unknown): void {
    const valid = typeof value === "number" && Number.isFinite(value) && value >= 0;
    this.check(valid, option, value, "a finite number >= 0");
  }

  private checkGroups(dict: OptimizerStateDict<O>): void {
    if (typeof dict !== "object" || dict === null || !Array.isArray(dict.paramGroups)) {
      throw new ValueError(this.name, "a state dict needs state and paramGroups", "stateDict");
    }
    const missing: string[] = [];
    const unexpected: string[] = [];
    const mismatched: { key: string; expected: Shape; got: Shape }[] = [];
    const groups = this.paramGroups.length;
    for (let i = dict.paramGroups.length; i < groups; i++) missing.push(`paramGroups.${i}`);
    for (let i = groups; i < dict.paramGroups.length; i++) unexpected.push(`paramGroups.${i}`);
    for (let i = 0; i < Math.min(groups, dict.paramGroups.length); i++) {
      const expected = this.paramGroups[i]!.params.length;
      const got = dict.paramGroups[i]!.params.length;
      if (got !== expected)
        mismatched.push({ key: `paramGroups.${i}.params`, expected: [expected], got: [got] });
    }
    if (missing.length + unexpected.length + mismatched.length > 0) {
      throw new StateDictError(missing, unexpected, mismatched);
    }
  }

  private loadedOptions(saved: O, group: number): O {
    const own = this.paramGroups[group]!.options;
    const keys = Object.keys(own);
    const unknown = Object.keys(saved).filter((k) => !keys.includes(k));
    const absent = keys.filter((k) => !(k in saved));
    if (unknown.length + absent.length > 0) {
      throw new StateDictError(
        absent.map((k) => `paramGroups.${group}.options.${k}`),
        unknown.map((k) => `paramGroups.${group}.options.${k}`),
        [],
      );
    }
    const options = copyOptions(saved);
    this.validate(options);
    return options;
  }

  private checkState(state: Record<number, ParamState>, params: Tensor[], options: O[]): void {
    const groupOf = this.paramGroups.flatMap((g, i) => g.params.map(() => i));
    const missing: string[] = [];
    const unexpected: string[] = [];
    const mismatched: { key: string; expected: Shape; got: Shape }[] = [];
    for (const [key, entry] of Object.entries(state)) {
      const index = Number(key);
      const param = params[index];
      if (!Number.isInteger(index) || param === undefined) {
        unexpected.push(`state.${key}`);
        continue;
      }
      const { tensors, numbers } = this.stateKeys(options[groupOf[index]!]!);
      for (const name of [...tensors, ...numbers]) {
        if (!(name in entry)) missing.push(`state.${key}.${name}`);
      }
      for (const [name, value] of Object.entries(entry)) {
        const isTensor = value instanceof Tensor;
        if (!(isTensor ? tensors : numbers).includes(name)) unexpected.push(`state.${key}.${name}`);
        else if (isTensor && !sameShape(value.shape, param.shape)) {
          mismatched.push({ key: `state.${key}.${name}`, expected: param.shape, got: value.shape });
        }
      }
    }
    if (missing.length + unexpected.length + mismatched.length > 0) {
      throw new StateDictError(missing, unexpected, mismatched);
    }
  }
}

function copyOptions<O extends object>(options: O): O {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) out[k] = Array.isArray(v) ? [...v] : v;
  return out as O;
}

/** A saved state's copy, with each tensor on the parameter's device and of its dtype. */
function copyState(saved: ParamState, param: Tensor): ParamState {
  const out: ParamState = {};
  for (const [name, value] of Object.entries(saved)) {
    if (!(value instanceof Tensor)) {
      out[name] = value;
      continue;
    }
    const copy = param.zerosLike();
    noGrad(() => scope(() => copy.copy_(value.to(param.device).to(param.dtype))));
    out[name] = keep(copy);
  }
  return out;
}

function toGroups<O extends object>(
  name: string,
  params: ParamsArg<O>,
  defaults: O,
): ParamGroup<O>[] {
  const list = [...(params as Iterable<unknown>)];
  if (list.length === 0) throw new ValueError(name, "got an empty parameter list", "params");
  const groups =
    list[0] instanceof Tensor
      ? [{ params: list as Tensor[], options: { ...defaults } }]
      : (list as GroupSpec<O>[]).map((g, i) => toGroup(name, g, i, defaults));
  const seen = new Set<Tensor>();
  for (const group of groups) {
    for (const p of group.params) {
      if (!(p instanceof Tensor)) throw new ValueError(name, "params must be tensors", "params");
      if (seen.has(p))
        throw new ValueError(name, "some parameters appear in more than one group", "params");
      seen.add(p);
    }
  }
  return groups;
}

function toGroup<O extends object>(
  name: string,
  spec: GroupSpec<O>,
  index: number,
  defaults: O,
): ParamGroup<O> {
  const { params, options, ...own } = spec;
  const unknown = Object.keys({ ...own, ...options }).filter((k) => !(k in defaults));
  if (unknown.length > 0) {
    throw new ValueError(
      name,
      `parameter group ${index} has unknown options: ${unknown.join(", ")}`,
      unknown[0],
    );
  }
  return { params: [...params], options: { ...defaults, ...own, ...options } as O };
}
