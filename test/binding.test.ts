// The manifest check: binding.d.ts is the one door into native code, so the loaded addon
// must export exactly the entry points of `NativeBinding` and run exactly the kernels of
// `NativeKernels`. binding.d.ts has no runtime values, so it is read as text. Also the
// addon's info() and its process-wide settings.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { native } from "../lib/backend/native.js";
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
});
