// The current tabular mini-batch as the host holds it.
//
// Columns stay in the host unless delivered: call `deliverColumns` in
// `init` with what `run` reads in JavaScript (an id, say), and feed the rest
// to ONNX as column sources (`Request.columns`), which never copies them
// into the guest. Each delivered value costs interpreter time; an
// undelivered one costs nothing.
import { batch as host } from './_bindings.js';
import { OnnxError } from './_errors.js';
import { requireStarted } from './_state.js';
import { names } from './onnx.js';

/**
 * Call in `init`: `run` then receives only these columns of tabular
 * mini-batches (names not in a mini-batch are skipped). Not calling it
 * delivers every column.
 */
export function deliverColumns(columns) {
  requireStarted('hostBatch.deliverColumns()');
  host.deliverColumns(names(columns));
}

/**
 * Call in `init` with `false`: tabular mini-batches then arrive without each
 * row's source file and row number (`addResultColumn(NAME, 'source_file')`
 * or `'row_number'` still puts them in a result; `Rows.sourceOf()` and the
 * like throw). (sluice 0.1.3)
 */
export function deliverRowOrigins(deliver) {
  requireStarted('hostBatch.deliverRowOrigins()');
  host.deliverRowOrigins(Boolean(deliver));
}

/** `[name, type]` of every column of the current mini-batch, delivered or not. */
export function columns() {
  requireStarted('hostBatch.columns()');
  return host.columns().map(([n, t]) => [n, t]);
}

/**
 * Indexes of the rows where any of `columns` is null, ascending (a
 * Uint32Array); `OnnxError` (`unknown-name`) for a column not in the
 * mini-batch.
 */
export function nullRows(columns) {
  requireStarted('hostBatch.nullRows()');
  try {
    return host.nullRows(names(columns));
  } catch (e) {
    throw OnnxError._fromThrown(e);
  }
}

/** The `result-source` of `addResultColumn`, from what a user writes. */
function resultSource(source) {
  if (source === 'source_file' || source === 'source-file') return { tag: 'source-file' };
  if (source === 'row_number' || source === 'row-number') return { tag: 'row-number' };
  if (source !== null && typeof source === 'object' && typeof source.column === 'string') {
    return { tag: 'column', val: source.column };
  }
  throw new TypeError(
    `hostBatch.addResultColumn(): the source must be 'source_file', 'row_number' or { column: NAME }, not ${String(source)}`,
  );
}

/**
 * Has the host add a column `name` to this `run`'s result, after the
 * columns `run` returns (in call order), built from the mini-batch it
 * holds, so its values never cross into JavaScript: `source` is
 * `'source_file'` (each row's file), `'row_number'` (its row in the file)
 * or `{ column: NAME }` (a column of the mini-batch, delivered or not);
 * `rows` picks mini-batch rows, one result row each (omitted: every row).
 * The fast way to return provenance or pass a column through: a string per
 * row built in JavaScript costs microseconds to hand back. `OnnxError` for
 * an unknown column, a row out of range, a name added twice, more than 64
 * added columns. (sluice 0.1.2)
 */
export function addResultColumn(name, source, rows = undefined) {
  requireStarted('hostBatch.addResultColumn()');
  const pick = rows === undefined || rows === null ? undefined : Uint32Array.from(rows);
  try {
    host.addResultColumn(String(name), resultSource(source), pick);
  } catch (e) {
    throw OnnxError._fromThrown(e);
  }
}
