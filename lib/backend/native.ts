// Loads the native addon once: a prebuilt binary from prebuilds/ when one fits this
// platform, else the one `npm install` built into build/. When neither loads, the error
// lists every place tried with its reason and the commands that fix it.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NativeBinding } from "../../binding.js";
import { DeviceError } from "../errors.js";
import * as log from "../log.js";

const require = createRequire(import.meta.url);

/** The package root: the folder holding package.json above this file (lib/ or dist/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) {
      const message =
        `no package.json above ${fileURLToPath(import.meta.url)}: is deepnode ` +
        `installed whole?`;
      throw new DeviceError("loadNative", message, ["cpu"]);
    }
    dir = parent;
  }
  return dir;
}

let cached: NativeBinding | undefined;
let loadError: DeviceError | undefined;

function tryLoad(): NativeBinding {
  const root = packageRoot();
  const attempts: string[] = [];
  try {
    const load = require("node-gyp-build") as (dir: string) => unknown;
    return load(root) as NativeBinding;
  } catch (error) {
    attempts.push(`node-gyp-build(${root}): ${(error as Error).message.split("\n")[0]}`);
  }
  for (const candidate of ["build/Release/deepnode.node", "build/Debug/deepnode.node"]) {
    const path = join(root, candidate);
    try {
      return require(path) as NativeBinding;
    } catch (error) {
      attempts.push(`${path}: ${(error as Error).message.split("\n")[0]}`);
    }
  }
  throw new DeviceError(
    "loadNative",
    `the deepnode native addon could not be loaded on ${process.platform}-${process.arch} ` +
      `(Node ${process.version}). Tried:\n  ${attempts.join("\n  ")}\n` +
      `Build it with 'npm run build:native' (needs CMake >= 3.18 and a C++17 compiler), ` +
      `or reinstall with 'npm install deepnode'.`,
    ["cpu"],
  );
}

/**
 * The log line of a loaded addon. Asking for the thread count starts the pool, which a bad
 * DEEPNODE_NUM_THREADS refuses: that is said here and left to the first cpu call to throw, so
 * that the addon still loads (and `setNumThreads` can still override the variable).
 */
function logLoaded(binding: NativeBinding): void {
  const info = binding.info();
  let threads: string;
  try {
    threads = `${binding.getNumThreads()} threads`;
  } catch (error) {
    threads = `no threads yet (${(error as Error).message})`;
  }
  log.info(
    `native addon ${info.version} (${info.compiler}): gemm ${info.gemmKernel}, ${threads}, ` +
      `cpu features ${info.cpuFeatures.join(" ") || "none"}`,
  );
}

/** The addon; throws a DeviceError describing every attempt when it cannot be loaded. */
export function native(): NativeBinding {
  if (cached !== undefined) return cached;
  if (loadError !== undefined) throw loadError;
  try {
    cached = tryLoad();
    if (log.infoEnabled()) logLoaded(cached);
    return cached;
  } catch (error) {
    loadError = error as DeviceError;
    throw loadError;
  }
}

/** True when the addon loads; never throws. */
export function nativeAvailable(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}
