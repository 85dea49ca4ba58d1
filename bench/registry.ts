// Every case of bench/cases/: each file there (but types) exports `cases`, so adding a
// case never edits a shared list. Kernels come first, then jobs, each in file-name order.

import { readdirSync } from "node:fs";
import type { BenchCase } from "./cases/types.js";

const casesDir = new URL("./cases/", import.meta.url);

export async function loadCases(): Promise<BenchCase[]> {
  const files = readdirSync(casesDir)
    .filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith(".d.ts") && !f.startsWith("types."))
    .sort();
  const loaded: BenchCase[] = [];
  for (const file of files) {
    const module = (await import(new URL(file, casesDir).href)) as { cases?: BenchCase[] };
    if (module.cases === undefined) throw new Error(`bench/cases/${file} exports no cases`);
    loaded.push(...module.cases);
  }
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
