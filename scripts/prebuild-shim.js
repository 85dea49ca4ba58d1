#!/usr/bin/env node
// prebuildify calls its --node-gyp program with node-gyp's arguments; this shim turns
// that into a cmake-js build so `npm run build:prebuilds` can make prebuilds/ from our CMake
// project. Only the `rebuild` and `build` commands are understood; the addon uses
// Node-API, so one binary serves every Node version and the target is ignored.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const [command, ...rest] = process.argv.slice(2);
if (command !== "rebuild" && command !== "build") {
  console.error(`prebuild-shim: unsupported node-gyp command '${command}'`);
  process.exit(2);
}
const arch = rest.find((a) => a.startsWith("--arch="))?.slice("--arch=".length);
const cmakeJs = require.resolve("cmake-js/bin/cmake-js");
const args = [cmakeJs, command === "rebuild" ? "rebuild" : "compile", "--out", "build"];
if (arch !== undefined) args.push("--arch", arch);
const result = spawnSync(process.execPath, args, { stdio: "inherit" });

// prebuildify copies only the .node file; the CUDA plugin, where nvcc built one, goes
// into the same prebuilds/ folder, where lib/backend/cuda/plugin.ts looks for it.
const plugin = join("build", "Release", "deepnode_cuda.so");
if (result.status === 0 && existsSync(plugin)) {
  const folder = join("prebuilds", `${process.platform}-${arch ?? process.arch}`);
  mkdirSync(folder, { recursive: true });
  copyFileSync(plugin, join(folder, "deepnode_cuda.so"));
}
process.exit(result.status ?? 1);
