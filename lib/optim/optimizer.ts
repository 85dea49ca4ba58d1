// The Optimizer base: parameter groups with their own options, per-parameter state,
// zeroGrad, and hyperparameter checks that name the option and the value.

import { ValueError } from "../errors.js";
import { keep } from "../memory.js";
import { Tensor } from "../tensor.js";

export interface ParamGroup<O> {
  params: Tensor[];
  options: O;
}

export type ParamsArg<O> = Iterable<Tensor> | { params: Iterable<Tensor>; options?: Partial<O> }[];

export abstract class Optimizer<O extends object> {
  readonly paramGroups: ParamGroup<O>[];
  /** Per-parameter state (momentum buffers, moments, step counts). */
  protected readonly state = new Map<Tensor, Record<string, Tensor | number>>();
  protected readonly name: string;

  constructor(name: string, params: ParamsArg<O>, defaults: O) {
    this.name = name;
    this.paramGroups = toGroups(name, params, defaults);
    for (const group of this.paramGroups) this.validate(group.options);
  }

  /** Throws ValueError for an invalid hyperparameter. */
  protected abstract validate(options: O): void;

  /** Updates every parameter that has a gradient. */
  abstract step(): void;

  /** Clears the gradients of every parameter this optimizer updates. */
  zeroGrad(setToNone = true): void {
    for (const group of this.paramGroups) for (const p of group.params) p.zeroGrad(setToNone);
  }

  /** State tensors outlive the scope of the step that created them. */
  protected stateFor(param: Tensor): Record<string, Tensor | number> {
    let s = this.state.get(param);
    if (s === undefined) {
      s = {};
      this.state.set(param, s);
    }
    return s;
  }

  protected newStateTensor(param: Tensor): Tensor {
    return keep(param.zerosLike());
  }

  protected check(condition: boolean, option: string, value: unknown, expected: string): void {
    if (!condition) {
      throw new ValueError(
        this.name,
        `invalid ${option}: ${String(value)} (expected ${expected})`,
        option,
      );
    }
  }
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
      : (list as { params: Iterable<Tensor>; options?: Partial<O> }[]).map((g) => ({
          params: [...g.params],
          options: { ...defaults, ...g.options },
        }));
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
