// prebuildify calls its --node-gyp program with node-gyp's arguments; this shim turns
// that into a cmake-js build so `npm run prebuild` can make prebuilds/ from our CMake
// project. Only the `rebuild` and `build` commands are understood; the addon uses
// Node-API, so one binary serves every Node version and the target is ignored.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [command, ...rest] = process.argv.slice(2);
if (command !== "rebuild" && command !== "build") {
  console.error(`prebuild-shim: unsupported node-gyp command '${command}'`);
  process.exit(2);
}
const arch = rest.find((a) => a.startsWith("--arch="))?.slice("--arch=".length);
const args = [require.resolve("cmake-js/bin/cmake-js"), command === "rebuild" ? "rebuild" : "compile", "--out", "build"];
if (arch !== undefined) args.push("--arch", arch);
const result = spawnSync(process.execPath, args, { stdio: "inherit" });
process.exit(result.status ?? 1);
