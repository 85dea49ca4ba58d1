// TensorFlow.js peer: the bench's ops on tfjs-core with its pure-JS cpu backend or its wasm
// backend (whose .wasm files ship inside the npm package, so it loads offline). Convolutions
// and pooling use tfjs's NHWC layout with the same sizes. Started by peers/index.ts:
//
//   node tfjs_peer.js cpu|wasm < specs.json

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import type * as Tf from "@tensorflow/tfjs-core";
import { timeRun } from "../harness.js";
import type { BenchRun } from "../cases/types.js";
import type { PeerOutcome, PeerSpec } from "./index.js";

const require = createRequire(import.meta.url);
const tf = require("@tensorflow/tfjs-core") as typeof Tf;

type Params = Record<string, number>;
type Op = (p: Params) => BenchRun;

function disposeAll(...tensors: Tf.Tensor[]): () => void {
  return () => tensors.forEach((t) => t.dispose());
}

function convInputs(p: Params) {
  const out = Math.floor((p.size! + 2 * p.padding! - p.kernel!) / p.stride!) + 1;
  return {
    x: tf.randomNormal([p.batch!, p.size!, p.size!, p.inChannels!]) as Tf.Tensor4D,
    filter: tf.randomNormal([p.kernel!, p.kernel!, p.inChannels!, p.outChannels!]) as Tf.Tensor4D,
    dy: tf.randomNormal([p.batch!, out, out, p.outChannels!]) as Tf.Tensor4D,
    pad: p.padding === 0 ? ("valid" as const) : p.padding!,
  };
}

function convBackward(p: Params, kernel: string): BenchRun {
  const { x, filter, dy, pad } = convInputs(p);
  const common = { strides: p.stride!, pad, dataFormat: "NHWC" };
  const [inputs, attrs] =
    kernel === tf.Conv2DBackpropInput
      ? [
          { dy, filter },
          { ...common, inputShape: x.shape },
        ]
      : [
          { x, dy },
          { ...common, filterShape: filter.shape },
        ];
  return {
    run: () => (tf.engine().runKernel(kernel, inputs, attrs) as Tf.Tensor).dispose(),
    dispose: disposeAll(x, filter, dy),
  };
}

function maxPoolBackward(p: Params): BenchRun {
  const input = tf.randomNormal([p.batch!, p.size!, p.size!, p.channels!]) as Tf.Tensor4D;
  const pad = p.padding === 0 ? ("valid" as const) : p.padding!;
  const output = tf.maxPool(input, p.kernel!, p.stride!, pad);
  const dy = tf.randomNormal(output.shape);
  const attrs = { filterSize: p.kernel!, strides: p.stride!, pad };
  const inputs = { dy, input, output };
  return {
    run: () => (tf.engine().runKernel(tf.MaxPoolGrad, inputs, attrs) as Tf.Tensor).dispose(),
    dispose: disposeAll(input, output, dy),
  };
}

/**
 * tfjs-core's Node build registers no gradients (tf.grad fails on RealDiv), so the backward
 * is written out: d(mean cross-entropy)/d(logits) = (softmax - onehot) / batch.
 */
function crossEntropy(p: Params): BenchRun {
  const logits = tf.randomNormal([p.batch!, p.classes!]);
  const labels = Int32Array.from({ length: p.batch! }, (_, i) => (i * 7919) % p.classes!);
  const onehot = tf.oneHot(tf.tensor1d(labels, "int32"), p.classes!);
  const step = () => {
    const logProbs = tf.logSoftmax(logits);
    const loss = tf.neg(tf.mean(tf.sum(tf.mul(onehot, logProbs), 1)));
    return [loss, tf.div(tf.sub(tf.exp(logProbs), onehot), p.batch!)];
  };
  return {
    run: () => tf.tidy(step).forEach((t) => t.dispose()),
    dispose: disposeAll(logits, onehot),
  };
}

function adam(p: Params): BenchRun {
  const param = tf.variable(tf.randomNormal([p.elements!]));
  const grad = tf.randomNormal([p.elements!]);
  const optimizer = tf.train.adam(1e-3);
  return {
    run: () => optimizer.applyGradients([{ name: param.name, tensor: grad }]),
    dispose: disposeAll(param, grad),
  };
}

const ops: Record<string, Op> = {
  matmul(p) {
    const a = tf.randomNormal([p.m!, p.k!]) as Tf.Tensor2D;
    const b = tf.randomNormal([p.k!, p.n!]) as Tf.Tensor2D;
    return { run: () => tf.matMul(a, b).dispose(), dispose: disposeAll(a, b) };
  },
  "conv2d forward"(p) {
    const { x, filter, dy, pad } = convInputs(p);
    return {
      run: () => tf.conv2d(x, filter, p.stride!, pad).dispose(),
      dispose: disposeAll(x, filter, dy),
    };
  },
  "conv2d backward data": (p) => convBackward(p, tf.Conv2DBackpropInput),
  "conv2d backward weight": (p) => convBackward(p, tf.Conv2DBackpropFilter),
  maxPool2d(p) {
    const x = tf.randomNormal([p.batch!, p.size!, p.size!, p.channels!]) as Tf.Tensor4D;
    const pad = p.padding === 0 ? ("valid" as const) : p.padding!;
    return {
      run: () => tf.maxPool(x, p.kernel!, p.stride!, pad).dispose(),
      dispose: disposeAll(x),
    };
  },
  "maxPool2d backward": maxPoolBackward,
  "cross entropy": crossEntropy,
  add(p) {
    const a = tf.randomNormal([p.elements!]);
    const b = tf.randomNormal([p.elements!]);
    return { run: () => tf.add(a, b).dispose(), dispose: disposeAll(a, b) };
  },
  adam,
};

function runSpec(spec: PeerSpec): PeerOutcome {
  const op = ops[spec.op];
  if (op === undefined) return { skipped: `the bench has no TensorFlow.js version of ${spec.op}` };
  try {
    const bench = op(spec.params as Params);
    const plan = { warmup: spec.warmup, repeats: spec.repeats, budget: spec.budget, quick: false };
    const seconds = tf.tidy(() => timeRun(bench, plan, spec.inner));
    bench.dispose();
    return { seconds };
  } catch (error) {
    return { skipped: `tfjs failed: ${(error as Error).message.split("\n")[0]}` };
  }
}

async function selectBackend(backend: string, threads: number): Promise<Record<string, unknown>> {
  // Production mode: no debug checks, and no banner urging tfjs-node on every process.
  tf.enableProdMode();
  if (backend === "cpu") {
    require("@tensorflow/tfjs-backend-cpu");
  } else {
    const wasm =
      require("@tensorflow/tfjs-backend-wasm") as typeof import("@tensorflow/tfjs-backend-wasm");
    wasm.setThreadsCount(threads);
  }
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} did not start`);
  await tf.ready();
  const multithread = tf.env().features["WASM_HAS_MULTITHREAD_SUPPORT"] === true;
  return { backend: tf.getBackend(), threads: backend === "wasm" && multithread ? threads : 1 };
}

async function main(): Promise<void> {
  const specs = JSON.parse(readFileSync(0, "utf8")) as PeerSpec[];
  const info = await selectBackend(process.argv[2]!, specs[0]?.threads ?? 1);
  const results: Record<string, PeerOutcome> = {};
  for (const spec of specs) {
    process.stderr.write(`tfjs-${info.backend}: ${spec.id}\n`);
    results[spec.id] = { ...runSpec(spec), extra: info };
  }
  process.stdout.write(`\n${JSON.stringify(results)}\n`);
}

await main();
