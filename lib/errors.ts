// Every error deepnode throws: typed, with fields that name the operation and the
// offending shapes, dtypes or devices, so callers can branch on them and users can read them.

export type Shape = readonly number[];

export function formatShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/**
 * A bad argument as a message shows it: a string quoted (so "5" is not taken for 5), a number
 * as JavaScript writes it (NaN, Infinity, which JSON cannot; -0 as -0), a bigint with its n
 * (inside an object too, as a string "1n"), an object as JSON, or by its kind where JSON
 * cannot write it (a cycle: "[object Object]").
 */
export function formatValue(value: unknown): string {
  if (typeof value === "function") return "a function";
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value);
  if (typeof value === "bigint") return `${value}n`;
  try {
    const json = JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? `${v}n` : v));
    return json ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** Base class of every deepnode error; `code` is stable across versions. */
export class DeepnodeError extends Error {
  readonly code: string;
  readonly op: string | undefined;

  constructor(code: string, message: string, op?: string) {
    super(op === undefined ? message : `${op}: ${message}`);
    this.name = new.target.name;
    this.code = code;
    this.op = op;
  }
}

/** Shapes that do not fit the operation; `shapes` holds every shape involved. */
export class ShapeError extends DeepnodeError {
  readonly shapes: Shape[];
  readonly dim: number | undefined;

  constructor(op: string, message: string, shapes: Shape[] = [], dim?: number) {
    super("ERR_SHAPE", message, op);
    this.shapes = shapes;
    this.dim = dim;
  }
}

/** A dtype the operation does not accept. */
export class DTypeError extends DeepnodeError {
  readonly dtypes: string[];

  constructor(op: string, message: string, dtypes: string[] = []) {
    super("ERR_DTYPE", message, op);
    this.dtypes = dtypes;
  }
}

/** Tensors on different devices, or a device that cannot be used. */
export class DeviceError extends DeepnodeError {
  readonly devices: string[];

  constructor(op: string, message: string, devices: string[] = []) {
    super("ERR_DEVICE", message, op);
    this.devices = devices;
  }
}

/** A primitive a backend does not implement, or a feature not built yet. */
export class NotSupportedError extends DeepnodeError {
  constructor(op: string, message: string) {
    super("ERR_NOT_SUPPORTED", message, op);
  }
}

/** An argument with a bad value: names the parameter, what was expected and what came. */
export class ValueError extends DeepnodeError {
  readonly param: string | undefined;

  constructor(op: string, message: string, param?: string) {
    super("ERR_VALUE", message, op);
    this.param = param;
  }
}

/** An index outside its range (a class label, a gather index). */
export class IndexError extends DeepnodeError {
  constructor(op: string, message: string) {
    super("ERR_INDEX", message, op);
  }
}

/** Misuse of a tensor's lifetime or of the autograd graph. */
export class StateError extends DeepnodeError {
  constructor(op: string, message: string) {
    super("ERR_STATE", message, op);
  }
}

/** A failure reported by native code: `nativeCode` is the code the addon gave. */
export class NativeError extends DeepnodeError {
  readonly nativeCode: string;

  constructor(op: string, message: string, nativeCode: string) {
    super("ERR_NATIVE", message, op);
    this.nativeCode = nativeCode;
  }
}

/**
 * A device allocation that failed after the caching allocator emptied its cache and tried
 * again; the message gives the request and the allocator's figures. Later allocations work.
 */
export class OutOfMemoryError extends DeepnodeError {
  constructor(op: string, message: string) {
    super("ERR_OUT_OF_MEMORY", message, op);
  }
}

/** A file that cannot be read as what it claims to be (safetensors, IDX, checkpoint). */
export class FormatError extends DeepnodeError {
  readonly path: string | undefined;

  constructor(op: string, message: string, path?: string) {
    super("ERR_FORMAT", message, op);
    this.path = path;
  }
}

/** Names shown per list in a StateDictError's message; the fields keep every one. */
const SHOWN_KEYS = 8;
const SHOWN_MISMATCHES = 4;

/** The first `shown` items and how many more: a resume into another architecture has hundreds. */
function firstFew(items: string[], shown: number, separator: string, noun: string): string {
  const head = items.slice(0, shown).join(separator);
  const rest = items.length - shown;
  return rest > 0 ? `${head}${separator}and ${rest} more ${noun}` : head;
}

/**
 * Wrong state-dict keys or shapes. The message names the first few of each kind and counts
 * the rest; `missing`, `unexpected` and `mismatched` hold all of them.
 */
export class StateDictError extends DeepnodeError {
  readonly missing: string[];
  readonly unexpected: string[];
  readonly mismatched: { key: string; expected: Shape; got: Shape }[];

  constructor(
    missing: string[],
    unexpected: string[],
    mismatched: { key: string; expected: Shape; got: Shape }[],
  ) {
    const parts: string[] = [];
    if (missing.length > 0) {
      parts.push(`missing keys: ${firstFew(missing, SHOWN_KEYS, ", ", "keys")}`);
    }
    if (unexpected.length > 0) {
      parts.push(`unexpected keys: ${firstFew(unexpected, SHOWN_KEYS, ", ", "keys")}`);
    }
    const sizes = mismatched.map(({ key, expected, got }) => {
      return `size mismatch for ${key}: expected ${formatShape(expected)}, got ${formatShape(got)}`;
    });
    if (sizes.length > 0) parts.push(firstFew(sizes, SHOWN_MISMATCHES, "; ", "size mismatches"));
    super("ERR_STATE_DICT", parts.join("; "), "loadStateDict");
    this.missing = missing;
    this.unexpected = unexpected;
    this.mismatched = mismatched;
  }
}
