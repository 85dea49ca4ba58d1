// `npm run bench`: deepnode's benchmarks beside PyTorch and TensorFlow.js, the same command
// as `deepnode bench` (its options, --help and errors come from the CLI). See main.ts.
//
//   npm run bench -- [--quick] [--full] [--filter TEXT] [--json FILE] [--markdown FILE]
//                    [--backends cpu,cuda,reference] [--peers torch,tfjs-cpu,tfjs-wasm,tfjs-node]

import { main } from "../lib/cli/index.js";

process.exitCode = await main(["bench", ...process.argv.slice(2)]);
