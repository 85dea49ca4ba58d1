// Tensor lifetimes: a live-tensor counter tests can read, scope(fn) which disposes every
// tensor created inside that is not returned, keep(t) to let a tensor outlive its scope,
// and a FinalizationRegistry backstop that counts tensors the GC collected undisposed.
// CPU storage is a typed array owned by JavaScript, so V8 already accounts its bytes as
// external memory and frees them once no tensor (or view) refers to them.

import { ValueError } from "./errors.js";

/** What memory.ts needs of a tensor; Tensor implements it. */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

let created = 0;
let disposed = 0;
let collected = 0;

const finalizer = new FinalizationRegistry<undefined>(() => {
  collected++;
});

const scopes: Set<Disposable>[] = [];

/**
 * Called by every new tensor. One made inside a scope is held by the scope, so the GC cannot
 * collect it there: it is registered with the finalizer only when it leaves every scope
 * undisposed (escape). Most tensors of a training step never do, and registering and
 * unregistering each was a tenth of a small step's time.
 */
export function trackTensor(t: Disposable): void {
  created++;
  const current = scopes[scopes.length - 1];
  if (current === undefined) finalizer.register(t, undefined, t);
  else current.add(t);
}

/** Called once by Tensor.dispose(). */
export function untrackTensor(t: Disposable): void {
  disposed++;
  if (!leaveScopes(t)) finalizer.unregister(t);
}

/** Takes t out of every scope; whether one held it (then it is not registered yet). */
function leaveScopes(t: Disposable): boolean {
  let held = false;
  for (const s of scopes) held = s.delete(t) || held;
  return held;
}

/** A tensor no scope holds any more, not disposed: the GC may collect it from now on. */
function escape(t: Disposable): void {
  finalizer.register(t, undefined, t);
}

export interface MemoryInfo {
  liveTensors: number; // created, not disposed and not yet collected by the GC
  created: number;
  disposed: number;
  collected: number; // collected by the GC without dispose()
}

export function memoryInfo(): MemoryInfo {
  return { liveTensors: created - disposed - collected, created, disposed, collected };
}

/** Number of tensors alive now (created, not disposed, not collected). */
export function liveTensors(): number {
  return created - disposed - collected;
}

/** Lets tensors outlive the scope they were created in; returns its argument. */
export function keep<T>(value: T): T {
  forEachDisposable(value, (t) => {
    if (leaveScopes(t)) escape(t);
  });
  return value;
}

function forEachDisposable(
  value: unknown,
  visit: (t: Disposable) => void,
  seen = new Set<unknown>(),
): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if (isDisposable(value)) {
    visit(value);
    return;
  }
  if (value instanceof Map) {
    for (const v of value.values()) forEachDisposable(v, visit, seen);
    return;
  }
  if (ArrayBuffer.isView(value)) return;
  for (const v of Array.isArray(value) ? value : Object.values(value))
    forEachDisposable(v, visit, seen);
}

function isDisposable(value: object): value is Disposable {
  return typeof (value as Disposable).dispose === "function" && "isDisposed" in value;
}

/**
 * Runs fn and disposes every tensor created inside it, except those reachable from
 * its result (a tensor, or arrays, maps and plain objects holding tensors) and those
 * passed to keep(). Scopes nest; fn must be synchronous.
 */
export function scope<T>(fn: () => T): T {
  const tracked = new Set<Disposable>();
  scopes.push(tracked);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    // Disposed while their scope is still on the stack, so each just leaves it (see escape).
    for (const t of tracked) t.dispose();
    scopes.pop();
    throw error;
  }
  if (result instanceof Promise) {
    scopes.pop();
    for (const t of tracked) escape(t);
    throw new ValueError("scope", "fn must be synchronous; it returned a promise", "fn");
  }
  const keepers = new Set<Disposable>();
  forEachDisposable(result, (t) => keepers.add(t));
  for (const t of tracked) if (!keepers.has(t)) t.dispose();
  scopes.pop();
  // What is left are the keepers: the enclosing scope takes them, or they escape.
  const outer = scopes[scopes.length - 1];
  for (const t of tracked) {
    if (outer === undefined) escape(t);
    else outer.add(t);
  }
  return result;
}
