// The activation functions sigmoid, tanh, relu and leaky relu, computed with deepnode
// tensors on [-5, 5] and drawn to a PNG with train.plotLines (Vega-Lite, rendered by resvg).
// Run with `node dist/examples/activations_plot.js [out.png]` after `npm run build`.
// Outside this repository, import from "deepnode" instead of "../lib/index.js".

import { pathToFileURL } from "node:url";
import { F, arange, noGrad, scope, train } from "../lib/index.js";

/** x and each activation of x, as host arrays: x runs over [from, to] in `points` steps. */
export function activationCurves(
  from = -5,
  to = 5,
  points = 201,
): { x: Float32Array; curves: Record<string, Float32Array> } {
  return noGrad(() =>
    scope(() => {
      const step = (to - from) / (points - 1);
      const x = arange(0, points).float().mul(step).add(from);
      const curves: Record<string, Float32Array> = {
        sigmoid: x.sigmoid().dataSync() as Float32Array,
        tanh: x.tanh().dataSync() as Float32Array,
        relu: F.relu(x).dataSync() as Float32Array,
        "leaky relu, slope 0.1": F.leakyRelu(x, 0.1).dataSync() as Float32Array,
      };
      return { x: x.dataSync() as Float32Array, curves };
    }),
  );
}

/** Draws the four activations to `path` (PNG). */
export async function plotActivations(path: string): Promise<void> {
  const { x, curves } = activationCurves();
  const series = Object.fromEntries(Object.entries(curves).map(([name, y]) => [name, { x, y }]));
  await train.plotLines(series, path, {
    title: "Activation functions",
    xLabel: "x",
    yLabel: "f(x)",
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = process.argv[2] ?? "activations.png";
  await plotActivations(out);
  console.log(`wrote ${out}`);
}
