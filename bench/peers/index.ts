// The peers deepnode is measured beside: PyTorch (a python3 with torch) and TensorFlow.js
// (its pure-JS cpu and its wasm backends). Each runs in a process of its own, reads a list
// of specs as JSON on stdin and prints one JSON object of outcomes keyed by spec id.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { PeerParams } from "../cases/types.js";

export interface PeerSpec {
  id: string;
  op: string;
  params: PeerParams;
  warmup: number;
  repeats: number;
  budget: number;
  inner: number;
  threads: number;
  /** Where the peer runs the spec; "cpu" unless it is a GPU peer. */
  device?: "cpu" | "cuda";
}

export interface PeerOutcome {
  seconds?: number[];
  skipped?: string;
  extra?: Record<string, unknown>;
}

export interface Peer {
  name: string;
  /** Why this peer cannot run here, or null when it can. */
  unavailable: string | null;
  version: string | null;
  run(specs: PeerSpec[]): Record<string, PeerOutcome>;
}

function lastLine(text: string): string {
  return text.trim().split("\n").pop() ?? "";
}

/**
 * Runs a peer process on `specs` (its progress on our stderr); a failure skips every spec.
 * With `timeoutSeconds` the process is stopped then, and its specs skipped as too slow.
 */
function runProcess(command: string, args: string[], specs: PeerSpec[], timeoutSeconds = 0) {
  const child = spawnSync(command, args, {
    input: JSON.stringify(specs),
    encoding: "utf8",
    maxBuffer: 1 << 26,
    stdio: ["pipe", "pipe", "inherit"],
    ...(timeoutSeconds > 0 ? { timeout: timeoutSeconds * 1000 } : {}),
  });
  if (child.status === 0) return JSON.parse(lastLine(child.stdout)) as Record<string, PeerOutcome>;
  const timedOut = (child.error as NodeJS.ErrnoException | undefined)?.code === "ETIMEDOUT";
  const why = timedOut
    ? `stopped after ${timeoutSeconds} s: slower than the bench waits for`
    : `peer process failed (${child.status ?? child.signal}; its stderr is above)`;
  return Object.fromEntries(specs.map((s) => [s.id, { skipped: why }]));
}

/** The pythons tried for torch, in order. */
export function pythonCandidates(): (string | undefined)[] {
  return [process.env.DEEPNODE_BENCH_PYTHON, "/usr/bin/python3", "python3"];
}

function findPython(pythons: (string | undefined)[]): { python: string; version: string } | null {
  for (const candidate of pythons) {
    if (candidate === undefined || candidate === "") continue;
    const probe = spawnSync(candidate, ["-c", "import torch; print(torch.__version__)"], {
      encoding: "utf8",
    });
    if (probe.status === 0) return { python: candidate, version: probe.stdout.trim() };
  }
  return null;
}

const peersDir = fileURLToPath(new URL(".", import.meta.url));
// Beside this file when run from source; from dist/bench/peers/, back in bench/peers/.
const torchScript = ["./torch_peer.py", "../../../bench/peers/torch_peer.py"]
  .map((p) => fileURLToPath(new URL(p, import.meta.url)))
  .find((p) => existsSync(p));

/** Why this python's torch cannot run on a GPU, or null when it can. */
function torchCudaMissing(python: string): string | null {
  const code =
    "import torch; print(torch.cuda.is_available(), hasattr(torch, 'set_default_device'))";
  const probe = spawnSync(python, ["-c", code], { encoding: "utf8" });
  const answer = probe.stdout.trim();
  if (answer === "True True") return null;
  if (answer.startsWith("True")) return "this torch has no torch.set_default_device (needs 2.0)";
  return "this python's torch sees no CUDA GPU";
}

/**
 * PyTorch on the cpu, or on the GPU ("torch-cuda": the specs run on cuda, synchronised),
 * through the first of `pythons` that imports torch; absent, with why, if none.
 */
export function torchPeer(device: "cpu" | "cuda" = "cpu", pythons = pythonCandidates()): Peer {
  const found = torchScript === undefined ? null : findPython(pythons);
  let unavailable: string | null = null;
  if (torchScript === undefined) unavailable = "bench/peers/torch_peer.py is missing";
  else if (found === null) unavailable = "no python3 with torch (DEEPNODE_BENCH_PYTHON names one)";
  else if (device === "cuda") unavailable = torchCudaMissing(found.python);
  return {
    name: device === "cpu" ? "torch" : "torch-cuda",
    unavailable,
    version: found?.version ?? null,
    run: (specs) =>
      runProcess(
        found!.python,
        [torchScript!, "-"],
        specs.map((spec) => ({ ...spec, device })),
      ),
  };
}

function tfjsVersion(): string | null {
  try {
    const require = createRequire(import.meta.url);
    return (require("@tensorflow/tfjs-core/package.json") as { version: string }).version;
  } catch {
    return null;
  }
}

/** Seconds a TensorFlow.js case may take in all: its pure-JS kernels can take minutes. */
function tfjsTimeout(spec: PeerSpec): number {
  return Math.max(30, 2 * spec.budget);
}

/** One process per case, so that a case too slow to wait for is stopped alone. */
function runEach(command: string, args: string[], specs: PeerSpec[]) {
  const results: Record<string, PeerOutcome> = {};
  for (const spec of specs)
    Object.assign(results, runProcess(command, args, [spec], tfjsTimeout(spec)));
  return results;
}

export function tfjsPeer(backend: "cpu" | "wasm"): Peer {
  const version = tfjsVersion();
  const script = `${peersDir}tfjs_peer.js`;
  return {
    name: `tfjs-${backend}`,
    unavailable: version === null ? "@tensorflow/tfjs-core is not installed" : null,
    version,
    run: (specs) => runEach(process.execPath, [script, backend], specs),
  };
}

/** tfjs-node is left out: its install downloads libtensorflow, and nothing may download. */
export function tfjsNodePeer(): Peer {
  return {
    name: "tfjs-node",
    unavailable: "not installed: @tensorflow/tfjs-node downloads libtensorflow when installed",
    version: null,
    run: () => ({}),
  };
}

export const PEER_NAMES = ["torch", "tfjs-cpu", "tfjs-wasm", "tfjs-node", "torch-cuda"];

export function makePeer(name: string): Peer {
  if (name === "torch") return torchPeer();
  if (name === "torch-cuda") return torchPeer("cuda");
  if (name === "tfjs-cpu") return tfjsPeer("cpu");
  if (name === "tfjs-wasm") return tfjsPeer("wasm");
  return tfjsNodePeer();
}
