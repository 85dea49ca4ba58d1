// `npm run bench`: deepnode's benchmarks beside PyTorch and TensorFlow.js. See main.ts.
//
//   npm run bench -- [--quick] [--filter TEXT] [--json FILE] [--markdown FILE]
//                    [--backends cpu,cuda,reference] [--peers torch,tfjs-cpu,tfjs-wasm,tfjs-node]

import { parseArgs } from "node:util";
import { BACKENDS, DEFAULT_PEERS, benchCommand, parseList } from "./main.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    filter: { type: "string" },
    json: { type: "string" },
    markdown: { type: "string" },
    backends: { type: "string", default: BACKENDS.join(",") },
    peers: { type: "string", default: DEFAULT_PEERS.join(",") },
  },
});

await benchCommand({
  quick: values.quick,
  backends: parseList("--backends", values.backends, BACKENDS),
  peers: parseList("--peers", values.peers, DEFAULT_PEERS),
  ...(values.filter === undefined ? {} : { filter: values.filter }),
  ...(values.json === undefined ? {} : { json: values.json }),
  ...(values.markdown === undefined ? {} : { markdown: values.markdown }),
});
