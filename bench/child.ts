// Runs one job case and prints its Measured as the last line of stdout, with the process's
// peak RSS; started by harness.ts's measureJob.

import { loadCases } from "./registry.js";
import { peakRssMiB } from "./harness.js";
import type { Plan } from "./cases/types.js";

async function main(): Promise<void> {
  const [name, device, planText] = process.argv.slice(2);
  const found = (await loadCases()).find((c) => c.name === name);
  if (found?.measure === undefined) throw new Error(`no job case named '${name}'`);
  const measured = found.measure(device!, JSON.parse(planText!) as Plan);
  const extra = { ...measured.extra, peakRssMiB: peakRssMiB() };
  process.stdout.write(`\n${JSON.stringify({ ...measured, extra })}\n`);
}

await main();
