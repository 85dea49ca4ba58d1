// Every case of bench/cases/: each file there (but types) exports `cases`, so adding a
// case never edits a shared list. Kernels come first, then jobs; files in the order they
// export (default 100), then by name.

import { readdirSync } from "node:fs";
import type { BenchCase } from "./cases/types.js";

const casesDir = new URL("./cases/", import.meta.url);

interface CaseModule {
  cases?: BenchCase[];
  order?: number;
}

export async function loadCases(): Promise<BenchCase[]> {
  const files = readdirSync(casesDir)
    .filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith(".d.ts") && !f.startsWith("types."))
    .sort();
  const modules: { order: number; cases: BenchCase[] }[] = [];
  for (const file of files) {
    const module = (await import(new URL(file, casesDir).href)) as CaseModule;
    if (module.cases === undefined) throw new Error(`bench/cases/${file} exports no cases`);
    modules.push({ order: module.order ?? 100, cases: module.cases });
  }
  const loaded = modules.sort((a, b) => a.order - b.order).flatMap((m) => m.cases);
  const names = new Set<string>();
  for (const c of loaded) {
    if (names.has(c.name)) throw new Error(`two bench cases are named '${c.name}'`);
    names.add(c.name);
  }
  return [
    ...loaded.filter((c) => c.group === "kernel"),
    ...loaded.filter((c) => c.group === "job"),
  ];
}
