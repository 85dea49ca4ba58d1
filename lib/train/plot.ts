// Figures drawn with Vega-Lite (compiled to Vega, rendered to SVG without a browser) and
// rasterised to PNG by resvg: training curves from a run's history, and line charts of
// any series (the activation functions example). Files are written atomically. Both
// libraries are loaded on the first plot, so importing deepnode does not load them.

import { dirname } from "node:path";
import type { TopLevelSpec } from "vega-lite";

import { ValueError } from "../errors.js";
import { makeFoldersSync, writeFileAtomic } from "../io/safetensors.js";
import type { EpochRecord } from "./options.js";

const FONT = "DejaVu Sans, Arial, Helvetica, sans-serif";

const CONFIG = {
  font: FONT,
  background: "white",
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 400 },
  header: { labelFontSize: 13, titleFontSize: 13 },
};

export interface PlotOptions {
  /** Pixels per SVG unit; default 2. */
  scale?: number;
}

async function writePng(path: string, spec: TopLevelSpec, options: PlotOptions): Promise<void> {
  const png = await renderPng(spec, options);
  makeFoldersSync(dirname(path));
  await writeFileAtomic(path, [png]);
}

/** Renders a Vega-Lite spec to PNG bytes. */
export async function renderPng(
  spec: TopLevelSpec,
  options: PlotOptions = {},
): Promise<Uint8Array> {
  const [vega, { compile }, { Resvg }] = await Promise.all([
    import("vega"),
    import("vega-lite"),
    import("@resvg/resvg-js"),
  ]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: options.scale ?? 2 },
    background: "white",
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" },
  });
  return resvg.render().asPng();
}

interface CurvePoint {
  epoch: number;
  metric: string;
  split: string;
  value: number;
}

/** One point per epoch, metric and split (train, validation) of a run's history. */
export function curvePoints(history: readonly EpochRecord[]): CurvePoint[] {
  const points: CurvePoint[] = [];
  for (const record of history) {
    const splits: [string, Record<string, number> | undefined][] = [
      ["train", record.train],
      ["validation", record.eval],
    ];
    for (const [split, values] of splits) {
      for (const [metric, value] of Object.entries(values ?? {})) {
        if (Number.isFinite(value)) points.push({ epoch: record.epoch, metric, split, value });
      }
    }
  }
  return points;
}

/** "loss" first, then the metrics in the order the records give them. */
function metricOrder(history: readonly EpochRecord[]): string[] {
  const names = new Set<string>(["loss"]);
  for (const r of history)
    for (const name of Object.keys({ ...r.train, ...r.eval })) names.add(name);
  return [...names];
}

/** Loss and every metric by epoch, train and validation, one panel per metric, as PNG. */
export async function plotHistory(
  history: readonly EpochRecord[],
  path: string,
  options: PlotOptions & { title?: string } = {},
): Promise<void> {
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    ...(options.title === undefined ? {} : { title: options.title }),
    data: { values: curvePoints(history) },
    facet: {
      column: { field: "metric", type: "nominal", title: null, sort: metricOrder(history) },
    },
    spec: {
      width: 320,
      height: 220,
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "epoch", type: "quantitative", axis: { tickMinStep: 1 } },
        y: { field: "value", type: "quantitative", scale: { zero: false }, title: null },
        color: { field: "split", type: "nominal", title: null },
      },
    },
    resolve: { scale: { y: "independent" } },
    config: CONFIG,
  };
  await writePng(path, spec, options);
}

export interface LineSeries {
  x: ArrayLike<number>;
  y: ArrayLike<number>;
}

export interface LinePlotOptions extends PlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
}

/** Named series of (x, y) values drawn as lines on one chart, as PNG. */
export async function plotLines(
  series: Record<string, LineSeries>,
  path: string,
  options: LinePlotOptions = {},
): Promise<void> {
  const values: { x: number; y: number; series: string }[] = [];
  for (const [name, { x, y }] of Object.entries(series)) {
    if (x.length !== y.length) {
      const message = `series ${name} has ${x.length} x and ${y.length} y values`;
      throw new ValueError("plotLines", message, "series");
    }
    for (let i = 0; i < x.length; i++) values.push({ x: x[i]!, y: y[i]!, series: name });
  }
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    ...(options.title === undefined ? {} : { title: options.title }),
    width: options.width ?? 420,
    height: options.height ?? 300,
    data: { values },
    mark: { type: "line", strokeWidth: 2 },
    encoding: {
      x: { field: "x", type: "quantitative", title: options.xLabel ?? "x" },
      y: { field: "y", type: "quantitative", title: options.yLabel ?? "y" },
      color: { field: "series", type: "nominal", title: null, sort: null },
    },
    config: CONFIG,
  };
  await writePng(path, spec, options);
}
