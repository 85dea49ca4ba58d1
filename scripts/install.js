// npm's install step: use a prebuilt binary when one loads on this machine, else build
// the addon from source with cmake-js. (node-gyp-build's own fallback would call
// node-gyp, which cannot build our CMake project.)
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** True when prebuilds/ holds a binary for this platform and it loads. */
function prebuiltLoads() {
  if (process.env.DEEPNODE_BUILD_FROM_SOURCE === "1") return false;
  try {
    const nodeGypBuild = require("node-gyp-build");
    const path = nodeGypBuild.path(root);
    if (!path.includes(`${join(root, "prebuilds")}`)) return false;
    require(path);
    return true;
  } catch {
    return false;
  }
}

if (prebuiltLoads()) {
  console.log("deepnode: using the prebuilt native addon");
} else {
  console.log("deepnode: building the native addon with cmake-js");
  const cmakeJs = require.resolve("cmake-js/bin/cmake-js");
  const result = spawnSync(process.execPath, [cmakeJs, "compile", "--out", "build"], {
    cwd: root,
    stdio: "inherit",
  });
  if (result.status !== 0) {
    console.error(
      "deepnode: the native build failed. It needs CMake >= 3.18 and a C++17 compiler " +
        "(g++ or clang++); install them and run `npm rebuild deepnode`.",
    );
    process.exit(result.status ?? 1);
  }
}
