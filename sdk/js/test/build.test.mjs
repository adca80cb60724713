// The host half: the source check before a build, and how a failed
// componentize-js run is told to the user. No component is built here
// (tests/all/js.rs builds the examples).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { scan } from '../lib/scan.mjs';
import { explainFailure } from '../lib/build.mjs';

const CLI = fileURLToPath(new URL('../bin/sluice-js.mjs', import.meta.url));

function project(files) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-js-test-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const RUN = 'export function run(miniBatch) { return []; }\n';

function problems(files, entry = 'score.js') {
  const dir = project(files);
  return scan(join(dir, entry)).problems.map((p) => `${p.file.split('/').pop()}:${p.line}: ${p.message}`);
}

test('a scorer with local modules and the SDK passes, with its imports found', () => {
  const dir = project({
    'score.js': "import * as sluice from 'sluice-sdk';\nimport { h } from './lib/h.js';\n" + RUN,
    'lib/h.js': "import { info } from \"sluice-sdk\";\nexport const h = () => info('x');\n",
  });
  const found = scan(join(dir, 'score.js'));
  assert.deepEqual(found.problems, []);
  assert.equal(found.root, dir);
  assert.deepEqual(found.files.map((f) => [f.abs.slice(dir.length), f.sdkImports.length]), [['/score.js', 1], ['/lib/h.js', 1]]);
  const [s] = found.files[0].sdkImports;
  assert.equal(found.files[0].source.slice(s.start, s.end), "'sluice-sdk'");
});

test('imports that cannot work are named with what to do instead', () => {
  const p = problems({
    'score.js':
      "import fs from 'fs';\nimport { x } from 'node:path';\nimport ort from 'onnxruntime-node';\nimport _ from 'lodash';\nimport { h } from './h';\nimport * as raw from 'sluice:scorer/http@0.1.3';\n" +
      RUN,
    'h.js': 'export const h = 1;\n',
  });
  assert.equal(p.length, 6, p.join('\n'));
  assert.match(p[0], /^score.js:1: `import 'fs'`: Node.js built-in modules do not exist in the sandbox/);
  assert.match(p[1], /^score.js:2: `import 'node:path'`: Node.js built-in/);
  assert.match(p[2], /^score.js:3: .*onnxruntime-node needs native code or Node.js.*Model.load\('model'\)/);
  assert.match(p[3], /^score.js:4: `import 'lodash'`: package imports are not resolved.*esbuild/);
  assert.match(p[4], /^score.js:5: `import '.\/h'`: no such file; write '.\/h.js'/);
  assert.match(p[5], /^score.js:6: `import 'sluice:scorer\/http@0.1.3'`: the host provides/);
});

test('host calls at module top level are refused before a build', () => {
  const p = problems({
    'score.js':
      "import * as s from 'sluice-sdk';\nimport { Model, info, hostBatch } from 'sluice-sdk';\nconst m = s.Model.load('model');\ninfo('x');\nhostBatch.deliverColumns(['id']);\nconst fine = () => Model.load('m');\nexport function init() { Model.load('m'); }\nclass A { run() { s.info('later'); } }\n" +
      RUN,
  });
  assert.deepEqual(
    p.map((x) => x.split(': ')[0] + ': ' + x.split(': ')[1]),
    ['score.js:3: `s.Model.load()` at module top level', 'score.js:4: `info()` at module top level', 'score.js:5: `hostBatch.deliverColumns()` at module top level'],
  );
});

test('syntax errors and a module defining no scorer', () => {
  const p = problems({ 'score.js': 'export function run(miniBatch) {\n  let = = 3;\n}\n' });
  assert.equal(p.length, 1);
  assert.match(p[0], /^score.js:2: SyntaxError: .*\n {4} {2}let = = 3;\n {4} +\^/);
  assert.match(problems({ 'score.js': 'const x = 1;\n' })[0], /score.js:1: defines no scorer/);
  assert.deepEqual(problems({ 'score.js': "import { exportScorer, Scorer } from 'sluice-sdk';\nexportScorer(class extends Scorer {});\n" }), []);
  assert.deepEqual(problems({ 'score.js': 'export default class S { run() {} }\n' }), []);
});

test("componentize-js's failures become the user's error and frames", () => {
  const top = [
    'Failed to initialize component (wizer (/x/wizer)):',
    'Exception while evaluating top-level script',
    'score.js:1:16 TypeError: can\'t access property "x" of null',
    'Stack:',
    '  f@score.js:1:16',
    '  @score.js:2:1',
    '  world@.sluice-sdk/_export.js:10:3',
  ].join('\n');
  const root = process.cwd();
  assert.equal(
    explainFailure(top, join(root, 'score.js'), root),
    'score.js: the module failed while building (componentize-js runs its top level):\n  score.js:1:16 in f()\n  score.js:2:1\nTypeError: can\'t access property "x" of null',
  );
  const host = 'Exception while evaluating top-level script\nHostCallAtImportTime: Model.load(): host imports (onnx, batch, log) can only be called from init/run\nStack:\n  load@.sluice-sdk/onnx.js:3:3\n  @lib/m.js:4:1\n';
  assert.match(explainFailure(host, join(root, 'score.js'), root), /^score.js: Model.load\(\) called at import time:\n {2}lib\/m.js:4:1\nhost imports .* Move the call into init\(\)\.$/);
  const stub = "Error: wizer failed\n  0: 0x23d4b2 - <unknown>!<wasm function 5185>\n    1: Error: attempted to call an unknown imported function: 'sluice:scorer/onnx@0.1.3' 'load'";
  assert.match(explainFailure(stub, join(root, 'score.js'), root), /^score.js: `sluice:scorer\/onnx@0.1.3#load` was called at import time/);
});

test('the command refuses a broken scorer in words, before building', () => {
  const dir = project({ 'score.js': "import np from 'numjs';\n" + RUN });
  const started = Date.now();
  const r = spawnSync(process.execPath, [CLI, 'build', join(dir, 'score.js'), '-o', join(dir, 'out.wasm')], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^error: .*score.js:1:\d+: `import 'numjs'`: package imports are not resolved/);
  assert.ok(Date.now() - started < 5000);
  const usage = spawnSync(process.execPath, [CLI, 'build'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /no scorer given/);
});
