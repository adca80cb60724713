// The guest half of the SDK, run in Node against a fake host
// (test/fake): what crosses the boundary, in the shapes componentize-js's
// bindings use (typed arrays, BigInt, `{tag, val}` variants).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

import { reset, host, ComponentError } from './fake/host.mjs';
import * as sluice from '../src/index.js';
import * as exp from '../src/_export.js';

const { BatchResult, Column, Config, ItemError, ResultBuilder, UserError, toResult } = sluice;

// Frames in ../src are the SDK's, as `.sluice-sdk/` is in a component.
exp.configure({ sdkMarkers: [join(dirname(fileURLToPath(import.meta.url)), '..', 'src') + '/'] });

const witConfig = { settings: [['a', '1'], ['flag', 'yes'], ['x', 'nope']], arguments: ['--fast'], environment: [['REGION', 'eu']] };

function rowsBatch(id = 'mb-0') {
  return {
    id,
    items: {
      tag: 'rows',
      val: {
        rows: {
          numRows: 3,
          columns: [
            { name: 'id', data: { tag: 's64', val: new BigInt64Array([10n, 11n, 12n]) }, valid: undefined },
            { name: 'x', data: { tag: 'f64', val: new Float64Array([0.5, 0, 2]) }, valid: [true, false, true] },
          ],
        },
        sources: ['a.csv', 'b.csv'],
        rowSource: new Uint32Array([0, 0, 1]),
        rowNumber: new BigUint64Array([0n, 1n, 0n]),
      },
    },
  };
}

test('host calls before init say where they work', () => {
  reset();
  assert.throws(() => sluice.Model.load('model'), (e) => e.name === 'HostCallAtImportTime' && /only be called from init\/run/.test(e.message));
  assert.throws(() => sluice.info('x'), /sluice.log\(\): host imports/);
  assert.throws(() => sluice.hostBatch.columns(), /hostBatch.columns\(\)/);
});

test('config: get, require, parseOr, env', () => {
  const c = Config._fromWit(witConfig);
  assert.equal(c.get('a'), '1');
  assert.equal(c.get('missing'), undefined);
  assert.equal(c.get('missing', 'd'), 'd');
  assert.equal(c.require('a'), '1');
  assert.throws(() => c.require('b'), (e) => e instanceof UserError && e.message === 'task.config.b is required');
  assert.equal(c.parseOr('a', 5), 1);
  assert.equal(c.parseOr('a', 5n), 1n);
  assert.equal(c.parseOr('flag', false), true);
  assert.equal(c.parseOr('none', 2.5), 2.5);
  assert.throws(() => c.parseOr('x', 3), /task.config.x = `nope`: not a valid number/);
  assert.throws(() => c.parseOr('x', true), /not a valid boolean/);
  assert.deepEqual(c.arguments, ['--fast']);
  assert.equal(c.env('REGION'), 'eu');
  assert.deepEqual([...c.settings.keys()], ['a', 'flag', 'x']);
});

test('columns: inference, nulls, typed arrays, take, bigint helpers', () => {
  assert.equal(Column.of('a', [1, 2.5]).type, 'f64');
  assert.equal(Column.of('a', [1n, 2n]).type, 's64');
  assert.equal(Column.of('a', [1n, 2.5]).type, 'f64');
  assert.equal(Column.of('a', ['x', null]).type, 'string');
  assert.equal(Column.of('a', [true]).type, 'bool');
  assert.equal(Column.of('a', new Float32Array(2)).type, 'f32');
  assert.equal(Column.of('a', new Int32Array([1, 2])).type, 's64');
  assert.ok(Column.of('a', new Int32Array([1, 2])).values instanceof BigInt64Array);
  assert.throws(() => Column.of('a', ['x', 1]), /mixes string and f64/);
  assert.throws(() => Column.of('a', [{}]), /column `a`, row 0/);
  const c = Column.of('n', [3, null, 5], 's64');
  assert.ok(c.values instanceof BigInt64Array);
  assert.deepEqual(c.valid, [true, false, true]);
  assert.deepEqual(c.toArray(), [3n, null, 5n]);
  assert.deepEqual(c.toNumbers(), [3, null, 5]);
  assert.deepEqual(c.take([2, 0]).toArray(), [5n, 3n]);
  assert.ok(c.take([2, 0]).values instanceof BigInt64Array);
  assert.throws(() => Column.of('n', [1.5], 's64'), /not an integer/);
  assert.equal(sluice.toNumber(2n ** 52n), 2 ** 52);
  assert.throws(() => sluice.toNumber(2n ** 60n), RangeError);
  assert.deepEqual(Array.from(sluice.toUint32Array([1, 2n])), [1, 2]);
  assert.throws(() => sluice.toUint32Array([-1]), RangeError);
});

test('rows: delivered columns, sources, row numbers', () => {
  const b = sluice.MiniBatch._fromWit(rowsBatch());
  const rows = b.requireRows();
  assert.equal(b.length, 3);
  assert.deepEqual(rows.names, ['id', 'x']);
  assert.equal(rows.get('x').at(1), null);
  assert.throws(() => rows.get('nope'), /no delivered column `nope` \(delivered: id, x\)/);
  assert.equal(rows.sourceOf(2), 'b.csv');
  assert.equal(rows.rowNumber(2), 0);
  assert.deepEqual(rows.sourceColumn('s').values, ['a.csv', 'a.csv', 'b.csv']);
  assert.deepEqual(rows.sourceColumn('s', [2]).values, ['b.csv']);
  assert.deepEqual(rows.toObjects()[1], { id: 11n, x: null });
  const files = sluice.MiniBatch._fromWit({ id: 'f', items: { tag: 'files', val: [{ name: 'a.txt', data: new TextEncoder().encode('hé') }] } });
  assert.equal(files.files[0].text(), 'hé');
  assert.throws(() => files.requireRows(), (e) => e instanceof UserError && /needs tabular input/.test(e.message));
  const bad = new sluice.FileItem('b.bin', new Uint8Array([0xff]));
  assert.throws(() => bad.text(), /b.bin is not utf-8 text/);
});

test('results: rows, item errors, column tables, builders', () => {
  const r = toResult([{ a: 1, b: 'x' }, new ItemError('bad'), { a: 2 }, new TypeError('worse')], 4)._toWit();
  assert.deepEqual(Array.from(r.rowItems), [0, 2]);
  assert.deepEqual(r.errors, [{ item: 1, message: 'bad' }, { item: 3, message: 'TypeError: worse' }]);
  assert.deepEqual(r.rows.columns.map((c) => [c.name, c.data.tag, c.valid]), [['a', 'f64', undefined], ['b', 'string', [true, false]]]);
  assert.throws(() => toResult([{}], 2), /returned 1 rows for 2 items/);
  assert.throws(() => toResult({ a: [1] }, 2), /column `a` has 1 values for 2 items/);
  assert.throws(() => toResult(undefined, 2), /returned undefined for 2 items/);
  assert.throws(() => toResult(3, 1), /returned 3/);
  assert.equal(toResult(undefined, 0).rowItems.length, 0);
  const t = toResult({ id: new BigInt64Array([1n, 2n]), p: [0.5, 0.25] }, 2)._toWit();
  assert.deepEqual(Array.from(t.rowItems), [0, 1]);
  assert.ok(t.rows.columns[0].data.val instanceof BigInt64Array);
  assert.ok(t.rows.columns[1].data.val instanceof Float64Array);

  const out = new ResultBuilder();
  out.row(0).string('name', 'a').s64('n', 3);
  out.row(1, { name: 'b' });
  out.error(2, 'why');
  const w = out.finish()._toWit();
  assert.deepEqual(Array.from(w.rowItems), [0, 1]);
  assert.deepEqual(Array.from(w.rows.columns[1].data.val), [3n, 0n]);
  assert.deepEqual(w.rows.columns[1].valid, [true, false]);
  assert.deepEqual(w.errors, [{ item: 2, message: 'why' }]);
  assert.throws(() => new ResultBuilder().row(0).s64('n', 1).s64('n', 2), /set twice in one row/);

  const fc = BatchResult.fromColumns([1], { v: ['x'] }, [[0, 'nope']]);
  assert.deepEqual(fc._toWit().errors, [{ item: 0, message: 'nope' }]);
  assert.throws(() => BatchResult.fromColumns([0], { v: [] }), /has 0 values for 1 output rows/);
  assert.throws(() => BatchResult.fromColumns([], [], [new ItemError('x')]), /needs an item index/);
});

test('onnx: the request as the host receives it, results and typed errors', async () => {
  const h = reset();
  h.columns = [['id', 's64'], ['f1', 'f64'], ['f2', 'f64']];
  h.models.model = {
    inputs: [{ name: 'input', elementType: 'f32', shape: new BigInt64Array([-1n, 2n]) }],
    outputs: [{ name: 'label', elementType: 's64', shape: new BigInt64Array([-1n]) }],
    run: () => ({
      tensors: [{ name: 'label', tensor: { shape: new BigUint64Array([2n]), data: { tag: 's64', val: new BigInt64Array([1n, 0n]) } } }],
      columns: [{ name: 'prediction', data: { tag: 's64', val: new BigInt64Array([1n, 0n]) }, valid: undefined }],
    }),
    runIntoResult: (req) => {
      if (req.toColumns[0].column === 'taken') throw new ComponentError({ code: 'invalid-input', message: 'already added' });
      return 2;
    },
  };
  await exp.init({ settings: [], arguments: [], environment: [] }).catch(() => {});
  const m = sluice.Model.load('model');
  assert.deepEqual(m.info().inputs[0].shape, [-1, 2]);
  assert.equal(m.info().inputs[0].width(), 2);
  const r = m
    .request()
    .columns('input', ['f1', 'f2'], [0, 2])
    .tensor('extra', sluice.Tensor.f32([1, 2], [1, 2]))
    .fetch('label')
    .toColumn('label', 'prediction')
    .toColumn('probabilities', 'p', 'max')
    .toColumn('probabilities', 'p1', 1)
    .run();
  const req = h.requests[0];
  assert.deepEqual(req.inputs[0].source.val.columns, ['f1', 'f2']);
  assert.ok(req.inputs[0].source.val.rows instanceof Uint32Array);
  assert.ok(req.inputs[1].source.val.data.val instanceof Float32Array);
  assert.ok(req.inputs[1].source.val.shape instanceof BigUint64Array);
  assert.deepEqual(req.toColumns.map((c) => c.select), [{ tag: 'whole' }, { tag: 'max' }, { tag: 'index', val: 1 }]);
  assert.deepEqual(req.fetch, ['label']);
  assert.deepEqual(r.column('prediction').toArray(), [1n, 0n]);
  assert.deepEqual(r.tensor('label').shape, [2]);
  assert.throws(() => sluice.Model.load('other'), (e) => e instanceof sluice.OnnxError && e.code === 'unknown-model' && e.message.startsWith('unknown-model: '));
  assert.throws(() => sluice.hostBatch.nullRows(['nope']), (e) => e instanceof sluice.OnnxError && e.code === 'unknown-name');
  assert.throws(() => m.request().toColumn('a', 'b', 'best'), /select "best"/);
  assert.throws(() => sluice.Tensor.f32([2, 2], [1]), /needs 4 values/);
  const t = sluice.f32Tensor(sluice.MiniBatch._fromWit(rowsBatch()).rows, ['id'], [2, 0]);
  assert.deepEqual(Array.from(t.data), [12, 10]);
  assert.throws(() => sluice.f32Tensor(sluice.MiniBatch._fromWit(rowsBatch()).rows, ['x']), /column `x` is null at row 1/);
  sluice.hostBatch.deliverColumns('id');
  assert.deepEqual(h.delivered, ['id']);
  sluice.hostBatch.deliverRowOrigins(false);
  assert.equal(h.rowOrigins, false);
  assert.equal(m.request().columns('input', ['f1', 'f2']).toColumn('label', 'prediction').runIntoResult(), 2);
  assert.deepEqual(h.requests.at(-1).fetch, []);
  assert.throws(() => m.request().toColumn('label', 'taken').runIntoResult(), (e) => e instanceof sluice.OnnxError && e.code === 'invalid-input');
  const bare = rowsBatch();
  bare.items.val.rowSource = new Uint32Array(0);
  bare.items.val.rowNumber = new BigUint64Array(0);
  assert.throws(() => sluice.MiniBatch._fromWit(bare).rows.sourceOf(0), /deliverRowOrigins\(false\)/);
  sluice.info('n =', 3, { a: 1n });
  assert.deepEqual(h.logs.at(-1), ['info', 'n = 3 {"a":"1"}']);
});

test('error messages name the innermost user frame, then its callers, bounded', () => {
  function inner() {
    null.x;
  }
  function outer() {
    inner();
  }
  let err;
  try {
    outer();
  } catch (e) {
    err = e;
  }
  const msg = exp.describe(err);
  assert.match(msg, /^TypeError: Cannot read properties of null \(reading 'x'\) at .*sdk\.test\.mjs:\d+:\d+ in inner\(\), called from .*sdk\.test\.mjs:\d+:\d+ in outer\(\)/);
  // SpiderMonkey's stack format, as a component's errors carry it.
  const sm = new TypeError('x is null');
  sm.stack = 'helper@lib/h.js:2:3\nrun@score.js:11:38\nrun@.sluice-sdk/_export.js:190:20\nexport_run@/tmp/x/sources/initializer.js:1525:29\n';
  assert.equal(exp.describe(sm), 'TypeError: x is null at lib/h.js:2:3 in helper(), called from score.js:11:38 in run()');
  const deep = new Error('y'.repeat(5000));
  deep.stack = Array.from({ length: 40 }, (_, i) => `f${i}@score.js:${i + 1}:1`).join('\n');
  const d = exp.describe(deep);
  assert.ok(d.length <= 1500, d.length);
  assert.ok(d.endsWith('in f0()') || d.includes('...'), d);
  assert.equal(exp.describe(new UserError('just this')), 'just this');
  assert.equal(exp.describe('text'), 'a string was thrown, not an Error: "text" (throw an Error to see where)');
});

test('init and run: one scorer per instance, errors as values, never a throw', async () => {
  const h = reset();
  h.columns = [['id', 's64']];
  class Counter extends sluice.Scorer {
    init(config) {
      this.step = config.parseOr('a', 0);
      this.seen = 0;
    }
    run(miniBatch) {
      this.seen += this.step;
      if (miniBatch.id === 'boom') throw new RangeError('boom');
      if (miniBatch.id === 'user') throw new UserError('plain words');
      if (miniBatch.id === 'returned') return new UserError('returned, not thrown');
      return { id: miniBatch.rows.get('id'), seen: Array(miniBatch.length).fill(this.seen) };
    }
  }
  assert.throws(() => exp.world({}, 'score.js'), /score.js defines no scorer/);
  sluice.exportScorer(Counter);
  assert.throws(() => sluice.exportScorer(class Other extends sluice.Scorer {}), /called twice/);
  const w = exp.world({}, 'score.js');
  assert.deepEqual(await w.init(witConfig), { tag: 'ok', val: undefined });
  const one = await w.run(rowsBatch());
  assert.equal(one.tag, 'ok');
  assert.deepEqual(Array.from(one.val.rows.columns[1].data.val), [1, 1, 1]);
  const two = await w.run(rowsBatch());
  assert.deepEqual(Array.from(two.val.rows.columns[1].data.val), [2, 2, 2]);
  const boom = await w.run(rowsBatch('boom'));
  assert.equal(boom.tag, 'err');
  assert.match(boom.val.message, /^RangeError: boom at .*sdk\.test\.mjs:\d+:\d+ in (Counter\.)?run\(\)/);
  assert.ok(h.logs.some(([l, m]) => l === 'error' && m === 'run() threw RangeError: boom'), JSON.stringify(h.logs));
  assert.deepEqual(await w.run(rowsBatch('user')), { tag: 'err', val: { message: 'plain words' } });
  assert.deepEqual(await w.run(rowsBatch('returned')), { tag: 'err', val: { message: 'returned, not thrown' } });
  // Still the same object after the failures.
  const three = await w.run(rowsBatch());
  assert.deepEqual(Array.from(three.val.rows.columns[1].data.val), [6, 6, 6]);
  assert.equal(sluice.config().get('a'), '1');
});
