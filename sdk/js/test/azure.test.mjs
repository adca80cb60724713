// The Azure ML shape: a module exporting init() and run(miniBatch), state in
// module variables (its own process: the SDK's state is per instance).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { reset } from './fake/host.mjs';
import * as sluice from '../src/index.js';
import * as exp from '../src/_export.js';

test('an Azure-style module: init() without arguments, run returning rows', async () => {
  reset();
  let calls = 0;
  const user = {
    init() {
      calls += 1;
    },
    run(miniBatch) {
      return miniBatch.files.map((f) => (f.data.length > 0 ? { name: f.name, bytes: BigInt(f.data.length), cfg: sluice.config().get('k') } : new sluice.ItemError('empty')));
    },
  };
  const w = exp.world(user, 'score.js');
  assert.deepEqual(await w.init({ settings: [['k', 'v']], arguments: [], environment: [] }), { tag: 'ok', val: undefined });
  const r = await w.run({ id: 'f', items: { tag: 'files', val: [{ name: 'a', data: new Uint8Array(3) }, { name: 'b', data: new Uint8Array(0) }] } });
  assert.equal(r.tag, 'ok');
  assert.deepEqual(Array.from(r.val.rowItems), [0]);
  assert.deepEqual(r.val.rows.columns.map((c) => [c.name, c.data.tag, Array.from(c.data.val)]), [['name', 'string', ['a']], ['bytes', 's64', [3n]], ['cfg', 'string', ['v']]]);
  assert.deepEqual(r.val.errors, [{ item: 1, message: 'empty' }]);
  assert.equal(calls, 1);
});

test('a default-exported class is the scorer too; async run is awaited', async () => {
  // world() keeps the last module; the previous one registered no class.
  class S extends sluice.Scorer {
    async run(miniBatch) {
      return miniBatch.files.map(() => ({ ok: true }));
    }
  }
  const w = exp.world({ default: S }, 'score.js');
  await w.init({ settings: [], arguments: [], environment: [] });
  const r = await w.run({ id: 'f', items: { tag: 'files', val: [{ name: 'a', data: new Uint8Array(1) }] } });
  assert.deepEqual(r.val.rows.columns[0].data, { tag: 'bool', val: [true] });
});
