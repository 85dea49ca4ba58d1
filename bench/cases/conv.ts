// conv2d forward, backward to the data and backward to the weight, at the MNIST net's two
// convolutions and at ResNet-like shapes (a 3x3 64->64 block layer and a stride-2 one).
// The backward cases time only the backward kernel: the forward runs untimed before it.

import { F, randn, scope, type Tensor } from "../../lib/index.js";
import type { BenchCase, BenchRun } from "./types.js";

interface ConvShape {
  label: string;
  batch: number;
  inChannels: number;
  size: number; // square input H = W
  outChannels: number;
  kernel: number;
  stride: number;
  padding: number;
}

type Pass = "forward" | "backward data" | "backward weight";
const passLabel: Record<Pass, string> = {
  forward: "fwd",
  "backward data": "bwd data",
  "backward weight": "bwd weight",
};

function outSize(s: ConvShape): number {
  return Math.floor((s.size + 2 * s.padding - s.kernel) / s.stride) + 1;
}

function flops(s: ConvShape): number {
  const out = outSize(s);
  return 2 * s.batch * s.outChannels * out * out * s.inChannels * s.kernel * s.kernel;
}

function inputs(s: ConvShape, device: string, pass: Pass): { x: Tensor; weight: Tensor } {
  const x = randn([s.batch, s.inChannels, s.size, s.size], { device });
  const weight = randn([s.outChannels, s.inChannels, s.kernel, s.kernel], { device });
  x.requiresGrad_(pass === "backward data");
  weight.requiresGrad_(pass === "backward weight");
  return { x, weight };
}

function setupConv(s: ConvShape, device: string, pass: Pass): BenchRun {
  const { x, weight } = inputs(s, device, pass);
  const options = { stride: s.stride, padding: s.padding };
  const dispose = () => [x, weight].forEach((t) => t.dispose());
  if (pass === "forward") {
    return { run: () => scope(() => void F.conv2d(x, weight, null, options)), dispose };
  }
  const grad = randn([s.batch, s.outChannels, outSize(s), outSize(s)], { device });
  let out: Tensor | null = null;
  const leaf = pass === "backward data" ? x : weight;
  return {
    before: () => (out = F.conv2d(x, weight, null, options)),
    run: () => out!.backward(grad),
    after: () => {
      out!.dispose();
      leaf.grad?.dispose();
      leaf.setGrad(null);
    },
    dispose: () => [x, weight, grad].forEach((t) => t.dispose()),
  };
}

function convCase(s: ConvShape, pass: Pass, extra: Partial<BenchCase> = {}): BenchCase {
  const { label, ...params } = s;
  const shape = `[${s.batch},${s.inChannels},${s.size},${s.size}]`;
  const filter = `${s.kernel}x${s.kernel} ${s.inChannels}->${s.outChannels} s${s.stride}`;
  return {
    name: `conv2d ${passLabel[pass]} ${label} ${shape} ${filter}`,
    group: "kernel",
    unit: "GFLOP/s",
    work: flops(s),
    peer: { op: `conv2d ${pass}`, params },
    setup: (device) => setupConv(s, device, pass),
    ...extra,
  };
}

const mnist1: ConvShape = {
  label: "MNIST conv1",
  batch: 64,
  inChannels: 1,
  size: 28,
  outChannels: 32,
  kernel: 3,
  stride: 1,
  padding: 0,
};
const mnist2: ConvShape = {
  ...mnist1,
  label: "MNIST conv2",
  inChannels: 32,
  size: 26,
  outChannels: 64,
};
const resnet: ConvShape = {
  label: "ResNet",
  batch: 32,
  inChannels: 64,
  size: 56,
  outChannels: 64,
  kernel: 3,
  stride: 1,
  padding: 1,
};
const resnetDown: ConvShape = { ...resnet, outChannels: 128, stride: 2 };
const passes: Pass[] = ["forward", "backward data", "backward weight"];

/** Where these rows come in the table (see bench/registry.ts). */
export const order = 20;

export const cases: BenchCase[] = [
  ...passes.map((p) => convCase(mnist1, p, { small: true })),
  ...passes.map((p) => convCase(mnist2, p)),
  ...passes.map((p) => convCase(resnet, p, { slow: true, repeats: 5 })),
  ...passes.map((p) => convCase(resnetDown, p, { slow: true, repeats: 5 })),
];
