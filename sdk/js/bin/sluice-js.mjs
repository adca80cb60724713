#!/usr/bin/env node
// `sluice-js build score.js -o scorer.wasm`: builds a JavaScript scorer into
// a sluice component (see sdk/js/README.md).
import { main } from '../lib/build.mjs';

process.exitCode = await main(process.argv.slice(2));
