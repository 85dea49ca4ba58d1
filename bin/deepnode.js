#!/usr/bin/env node
// The `deepnode` command: runs the compiled CLI (npm install compiles it into dist/).
import { main } from "../dist/lib/cli/index.js";

process.exitCode = await main(process.argv.slice(2));
