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
