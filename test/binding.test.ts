// The manifest check: binding.d.ts is the one door into native code, so the loaded addon
// must export exactly the entry points of `NativeBinding` and run exactly the kernels of
// `NativeKernels`. binding.d.ts has no runtime values, so it is read as text. Also the
// addon's info() and its process-wide settings.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { native } from "../lib/backend/native.js";
import { expectThrows } from "./helpers.js";
import { buildInfo, getNumThreads, setFlushDenormal, setNumThreads } from "../lib/index.js";

const declarations = readFileSync(
  fileURLToPath(new URL("../binding.d.ts", import.meta.url)),
  "utf8",
);
const packageJson = JSON.parse(
  readFileSync(fileURLToPath(new URL("../package.json", import.meta.url)), "utf8"),
) as { version: string };

/** The text between the braces of `export interface <name> {`, comments removed. */
function interfaceBody(source: string, name: string): string {
  const withoutComments = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const match = new RegExp(`export interface ${name}\\s*\\{`).exec(withoutComments);
  if (match === null) throw new Error(`binding.d.ts has no interface ${name}`);
  let depth = 1;
  let i = match.index + match[0].length;
  const start = i;
  for (; i < withoutComments.length && depth > 0; i++) {
    const c = withoutComments[i];
    if (c === "{") depth++;
    else if (c === "}") depth--;
  }
  return withoutComments.slice(start, i - 1);
}

/** Names of the members at the top level of an interface body (depth 0 of all brackets). */
function memberNames(body: string): string[] {
  const names: string[] = [];
  let depth = 0;
  let atMemberStart = true;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if ("([{<".includes(c)) depth++;
    else if (")]}>".includes(c) && body[i - 1] !== "=") depth--;
    else if (depth === 0 && (c === ";" || c === "\n")) atMemberStart = true;
    else if (depth === 0 && atMemberStart && /[A-Za-z_$]/.test(c)) {
      const name = /^[A-Za-z_$][\w$]*/.exec(body.slice(i))![0];
      const after = body.slice(i + name.length).trimStart();
      if (/^[?]?[:(<]/.test(after)) names.push(name);
      atMemberStart = false;
      i += name.length - 1;
    }
  }
  return names;
}

describe("the binding manifest", () => {
  it("parses the interfaces it checks", () => {
    expect(memberNames("  a: number;\n  b(x: number): void;\n  c<K>(k: K): { d: 1 };\n")).toEqual([
      "a",
      "b",
      "c",
    ]);
    expect(memberNames("  e: [[x: A], { f: number; g: string }];\n  h?: () => void;\n")).toEqual([
      "e",
      "h",
    ]);
  });

  it("the addon exports exactly the entry points of NativeBinding", () => {
    const declared = memberNames(interfaceBody(declarations, "NativeBinding")).sort();
    expect(declared.length).toBeGreaterThanOrEqual(7);
    const exported = Object.keys(native()).sort();
    expect(exported).toEqual(declared);
    for (const name of exported) {
      expect(typeof (native() as unknown as Record<string, unknown>)[name], name).toBe("function");
    }
  });

  it("kernels() lists exactly the kernels of NativeKernels", () => {
    const declared = memberNames(interfaceBody(declarations, "NativeKernels")).sort();
    expect(declared).toContain("matmul");
    expect(declared).toContain("nll_loss_backward");
    expect([...native().kernels()].sort()).toEqual(declared);
  });
});

describe("info and settings", () => {
  it("info() describes the build", () => {
    const info = native().info();
    expect(Object.keys(info).sort()).toEqual(
      ["compiler", "cpuFeatures", "gemmKernel", "simd", "version"].sort(),
    );
    expect(info.version).toBe(packageJson.version);
    expect(info.compiler).toMatch(/\S+ \d+\.\d+/);
    expect(info.simd).toContain("generic");
    expect(Array.isArray(info.cpuFeatures)).toBe(true);
    for (const feature of info.cpuFeatures) expect(typeof feature).toBe("string");
    expect(info.gemmKernel.length).toBeGreaterThan(0);
    // The chosen GEMM kernel is one of the instruction sets compiled in.
    expect(info.simd.some((isa) => info.gemmKernel.startsWith(isa))).toBe(true);
  });

  it("buildInfo() reports the native info and the devices", () => {
    const info = buildInfo();
    expect(info.native).toEqual(native().info());
    expect(info.devices).toEqual(["cpu", "reference"]);
    // No version has cuda kernels yet, so CUDA is unavailable everywhere, with a reason.
    expect(info.cuda.available).toBe(false);
    expect(info.cuda.reason).toMatch(/CUDA/);
  });

  it("sets and reads the thread count and the denormal mode", () => {
    const threads = getNumThreads();
    const flush = native().getFlushDenormal();
    try {
      setNumThreads(3);
      expect(getNumThreads()).toBe(3);
      setFlushDenormal(false);
      expect(native().getFlushDenormal()).toBe(false);
      setFlushDenormal(true);
      expect(native().getFlushDenormal()).toBe(true);
    } finally {
      setNumThreads(threads);
      setFlushDenormal(flush);
    }
    expect(getNumThreads()).toBe(threads);
  });

  // In a child process, since the pool is made once per process from the variable.
  it.each(["0", "abc", "1.5", "-2", "4x", "1025", "99999"])(
    "refuses DEEPNODE_NUM_THREADS=%s with a ValueError naming it, for every call",
    (value) => {
      // A kernel first (the addon loads then), then getNumThreads; then setNumThreads overrides.
      const script = [
        'import { getNumThreads, setNumThreads, tensor } from "./dist/lib/index.js";',
        "const add = () => tensor([1]).add(tensor([2])).item();",
        "for (const call of [add, () => getNumThreads()]) {",
        "  try { call(); console.log('no error'); }",
        "  catch (e) { console.log(`${e.constructor.name}: ${e.message}`); }",
        "}",
        "setNumThreads(2);",
        "console.log(getNumThreads(), add());",
      ].join("\n");
      const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        cwd: join(import.meta.dirname, ".."),
        // With the log on, the addon's load line asks for the thread count too.
        env: { ...process.env, DEEPNODE_NUM_THREADS: value, DEEPNODE_LOG: "info" },
        encoding: "utf8",
      });
      const expected = `must be an integer from 1 to 1024, got '${value}'`;
      expect(run.status).toBe(0);
      expect(run.stdout.trim().split("\n")).toEqual([
        `ValueError: binary: DEEPNODE_NUM_THREADS ${expected}`,
        `ValueError: getNumThreads: DEEPNODE_NUM_THREADS ${expected}`,
        "2 3",
      ]);
    },
  );

  it("takes DEEPNODE_NUM_THREADS=3 as the thread count", () => {
    const script =
      'import { getNumThreads } from "./dist/lib/index.js"; console.log(getNumThreads());';
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: join(import.meta.dirname, ".."),
      env: { ...process.env, DEEPNODE_NUM_THREADS: "3" },
      encoding: "utf8",
    });
    expect(run.stdout.trim()).toBe("3");
  });
});

describe("run's arguments, read into storage reused from call to call", () => {
  type Attrs = Record<string, unknown>;
  const run = native().run as unknown as (op: string, buffers: unknown[], attrs: Attrs) => void;
  const sizes = { batch: 1, batchA: 1, batchB: 1, m: 1, n: 1, k: 1, transA: false, transB: false };

  /** out = alpha * 3 * 2 (+ beta * out) through the matmul kernel, on a 1x1 product. */
  function product(attrs: Attrs, out = new Float32Array(1)): number {
    run("matmul", [out, Float32Array.of(3), Float32Array.of(2)], { ...sizes, ...attrs });
    return out[0]!;
  }

  it("gives each call its own attributes: one left out takes its default", () => {
    expect(product({ alpha: 2, beta: 0 })).toBe(12);
    expect(product({})).toBe(6);
    expect(product({ beta: 1 }, Float32Array.of(10))).toBe(16);
    expect(product({ alpha: 0.5 }, Float32Array.of(10))).toBe(3);
  });

  it("runs matmul from m, n and k alone: every other attribute has a default", () => {
    const out = Float32Array.of(10);
    run("matmul", [out, Float32Array.of(1, 2), Float32Array.of(3, 4)], { m: 1, n: 1, k: 2 });
    expect(out[0]).toBe(11);
  });

  it("keeps a call whose getter runs the same op inside it apart from that inner call", () => {
    let inner = Number.NaN;
    const attrs = { ...sizes, beta: 0 } as Attrs;
    Object.defineProperty(attrs, "alpha", {
      enumerable: true,
      get: () => {
        inner = product({ alpha: 5, beta: 0 });
        return 2;
      },
    });
    const out = new Float32Array(1);
    run("matmul", [out, Float32Array.of(3), Float32Array.of(2)], attrs);
    expect([inner, out[0]]).toEqual([30, 12]);
    expect(product({})).toBe(6);
  });

  it("passes on the error a getter throws, and the next call of the op still works", () => {
    const attrs = { ...sizes } as Attrs;
    Object.defineProperty(attrs, "alpha", {
      enumerable: true,
      get: () => {
        throw new RangeError("alpha getter failed");
      },
    });
    expectThrows(() => product(attrs), RangeError, "alpha getter failed");
    expect(product({ alpha: 3 })).toBe(18);
  });

  it("reads names and strings longer than its inline buffer whole", () => {
    const op = "x".repeat(300);
    const unary = () =>
      run("unary", [new Float32Array(1), new Float32Array(1)], { op, alpha: 0, beta: 0 });
    const error = expectThrows(unary, Error, `unary: unknown unary op '${op}'`);
    expect((error as Error & { code?: string }).code).toBe("ERR_VALUE");
    const name = `long${"é".repeat(200)}`;
    expectThrows(
      () => product({ [name]: null }),
      Error,
      `attribute '${name}' has an unsupported type`,
    );
  });

  it("refuses buffers and attributes the kernels cannot take, with their codes", () => {
    const attempts: [() => void, string, string][] = [
      [
        () => run("fill", [new Uint16Array(2)], { value: 1 }),
        "ERR_DTYPE",
        "buffer 0 has an unsupported typed array type",
      ],
      [() => product({ alpha: [1, "2"] }), "ERR_ARGUMENT", "attribute 'alpha' must hold numbers"],
      [() => product({ alpha: {} }), "ERR_ARGUMENT", "attribute 'alpha' has an unsupported type"],
      [() => product({ alpha: 1n }), "ERR_ARGUMENT", "attribute 'alpha' has an unsupported type"],
      [
        () => product({ alpha: [1, 2] }),
        "ERR_ARGUMENT",
        "matmul: attribute 'alpha' must be a number",
      ],
    ];
    for (const [attempt, code, message] of attempts) {
      const error = expectThrows(attempt, Error, message);
      expect((error as Error & { code?: string }).code).toBe(code);
    }
    expect(product({ alpha: true })).toBe(6);
  });
});
