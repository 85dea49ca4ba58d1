// ModuleList and ModuleDict: hold submodules so that parameters(), stateDict(), train()
// and printing see them, named "0", "1", ... or by key as in PyTorch. Neither has a
// forward; the model that owns one decides how its modules are called.

import { NotSupportedError, ValueError } from "../errors.js";
import { Module } from "./module.js";

type Slots = Record<string, Module>;

function checkModule(op: string, value: unknown, what: string): Module {
  if (!(value instanceof Module)) throw new ValueError(op, `${what} is not a Module`, what);
  return value;
}

/** A list of modules, indexed like an array (negative indices count from the end). */
export class ModuleList extends Module implements Iterable<Module> {
  constructor(modules: Iterable<Module> = []) {
    super();
    this.extend(modules);
  }

  forward(): never {
    throw new NotSupportedError("ModuleList", "ModuleList has no forward; call its modules");
  }

  private get slots(): Slots {
    return this as unknown as Slots;
  }

  get length(): number {
    return [...this.children()].length;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.children();
  }

  private index(op: string, index: number, length: number): number {
    const i = index < 0 ? index + length : index;
    if (!Number.isInteger(index) || i < 0 || i >= length)
      throw new ValueError(op, `index ${index} is out of range for ${length} modules`, "index");
    return i;
  }

  at(index: number): Module {
    const list = [...this.children()];
    return list[this.index("ModuleList.at", index, list.length)]!;
  }

  /** Replaces the module at index. */
  set(index: number, module: Module): this {
    const i = this.index("ModuleList.set", index, this.length);
    this.slots[String(i)] = checkModule("ModuleList.set", module, "module");
    return this;
  }

  append(module: Module): this {
    this.slots[String(this.length)] = checkModule("ModuleList.append", module, "module");
    return this;
  }

  extend(modules: Iterable<Module>): this {
    let i = 0;
    for (const m of modules) this.append(checkModule("ModuleList", m, `module ${i++}`));
    return this;
  }

  /** Inserts before index (index = length appends), renumbering the modules after it. */
  insert(index: number, module: Module): this {
    const list = [...this.children()];
    const i = index < 0 ? Math.max(0, index + list.length) : Math.min(index, list.length);
    list.splice(i, 0, checkModule("ModuleList.insert", module, "module"));
    list.forEach((m, k) => (this.slots[String(k)] = m));
    return this;
  }
}

/**
 * Modules by name, in insertion order (keys that look like integers come first, in
 * numeric order, as JavaScript orders them). A key may not contain "." or shadow a
 * property of the module.
 */
export class ModuleDict extends Module {
  private readonly names: string[] = [];

  constructor(modules: Record<string, Module> | Iterable<[string, Module]> = {}) {
    super();
    const entries = Symbol.iterator in modules ? [...modules] : Object.entries(modules);
    for (const [key, module] of entries) this.set(key, module);
  }

  forward(): never {
    throw new NotSupportedError("ModuleDict", "ModuleDict has no forward; call its modules");
  }

  private get slots(): Slots {
    return this as unknown as Slots;
  }

  get size(): number {
    return this.names.length;
  }

  has(key: string): boolean {
    return this.names.includes(key);
  }

  get(key: string): Module {
    if (!this.has(key))
      throw new ValueError("ModuleDict.get", `no module named ${JSON.stringify(key)}`, "key");
    return this.slots[key]!;
  }

  set(key: string, module: Module): this {
    if (typeof key !== "string" || key === "" || key.includes("."))
      throw new ValueError(
        "ModuleDict",
        `a key must be a non-empty string without ".", got ${JSON.stringify(key)}`,
        "key",
      );
    if (!this.has(key) && key in this)
      throw new ValueError(
        "ModuleDict",
        `key ${JSON.stringify(key)} is a property of the module`,
        "key",
      );
    this.slots[key] = checkModule("ModuleDict", module, key);
    if (!this.has(key)) this.names.push(key);
    return this;
  }

  /** Removes and returns the module named key. */
  pop(key: string): Module {
    const module = this.get(key);
    delete this.slots[key];
    this.names.splice(this.names.indexOf(key), 1);
    return module;
  }

  keys(): string[] {
    return [...this.namedChildren()].map(([name]) => name);
  }

  values(): Module[] {
    return [...this.children()];
  }

  entries(): [string, Module][] {
    return [...this.namedChildren()];
  }
}
