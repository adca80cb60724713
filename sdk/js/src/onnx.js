// Native ONNX inference from a scorer, run by the host.
//
// Load a granted model by name, feed its inputs from columns of the current
// mini-batch (the host stacks them into the tensor: the features never pass
// through JavaScript) and turn its outputs into result columns in the host:
//
//     const model = Model.load('model');
//     const scored = model.request()
//       .columns('input', features, good)          // host column source
//       .toColumn('label', 'prediction')           // output -> column
//       .toColumn('probabilities', 'probability', 'max')
//       .run();
//     scored.columns;  // [Column prediction, Column probability]
//
// This is the fast path: building a tensor in JavaScript instead
// (`Tensor.f32(shape, values)`, `f32Tensor(rows, names)`) loops over every
// value in the interpreter.
import { onnx as host } from './_bindings.js';
import { OnnxError } from './_errors.js';
import { requireStarted } from './_state.js';
import { Column, toBigInt64Array, toNumber, toUint32Array } from './_data.js';

export function names(n) {
  return typeof n === 'string' ? [n] : Array.from(n, String);
}

/** A model input or output: name, element type and shape (-1: fixed at run time). */
export class TensorInfo {
  constructor(name, elementType, shape) {
    this.name = name;
    /** `f32`, `f64`, `s64`, `s32`, `u8`, `bool`, `string` or `other`. */
    this.elementType = elementType;
    /** @type {number[]} */
    this.shape = shape;
  }

  /** The fixed size of the last dimension (features per row of a `[-1, k]` input), if it has one. */
  width() {
    if (this.shape.length === 2 && this.shape[1] > 0) return this.shape[1];
    if (this.shape.length === 1) return 1;
    return undefined;
  }
}

export class ModelInfo {
  constructor(name, inputs, outputs) {
    this.name = name;
    this.inputs = inputs;
    this.outputs = outputs;
  }

  static _fromWit(w) {
    const conv = (t) => new TensorInfo(t.name, t.elementType, Array.from(t.shape, (d) => Number(d)));
    return new ModelInfo(w.name, w.inputs.map(conv), w.outputs.map(conv));
  }

  input(name) {
    return this.inputs.find((t) => t.name === name);
  }

  output(name) {
    return this.outputs.find((t) => t.name === name);
  }
}

const TENSOR_TYPES = {
  f32: (d) => (d instanceof Float32Array ? d : Float32Array.from(d, toNumber)),
  f64: (d) => (d instanceof Float64Array ? d : Float64Array.from(d, toNumber)),
  s64: (d) => toBigInt64Array(d),
  s32: (d) => (d instanceof Int32Array ? d : Int32Array.from(d, toNumber)),
  u8: (d) => (d instanceof Uint8Array ? d : Uint8Array.from(d, toNumber)),
};

/** A tensor the scorer computed or fetched: shape and row-major values (a typed array). */
export class Tensor {
  constructor(shape, elementType, data) {
    if (!(elementType in TENSOR_TYPES)) {
      throw new TypeError(`a tensor of ${elementType} cannot cross to the host (f32, f64, s64, s32, u8)`);
    }
    this.shape = Array.from(shape, (d) => Number(d));
    this.elementType = elementType;
    this.data = TENSOR_TYPES[elementType](data);
    const n = this.shape.reduce((a, b) => a * b, 1);
    if (n !== this.data.length) {
      throw new RangeError(`tensor of shape [${this.shape.join(', ')}] needs ${n} values, got ${this.data.length}`);
    }
  }

  static f32(shape, data) {
    return new Tensor(shape, 'f32', data);
  }

  static f64(shape, data) {
    return new Tensor(shape, 'f64', data);
  }

  static s64(shape, data) {
    return new Tensor(shape, 's64', data);
  }

  static s32(shape, data) {
    return new Tensor(shape, 's32', data);
  }

  static u8(shape, data) {
    return new Tensor(shape, 'u8', data);
  }

  static _fromWit(t) {
    return new Tensor(t.shape, t.data.tag, t.data.val);
  }

  _toWit() {
    return {
      shape: BigUint64Array.from(this.shape, (d) => BigInt(d)),
      data: { tag: this.elementType, val: this.data },
    };
  }
}

/** `columns`: one per `toColumn`, in that order; `tensors`: the fetched outputs by name, in `fetch` order. */
export class RunResult {
  constructor(columns, tensors) {
    /** @type {Column[]} */
    this.columns = columns;
    /** @type {Map<string, Tensor>} */
    this.tensors = tensors;
  }

  column(name) {
    const c = this.columns.find((c) => c.name === name);
    if (c === undefined) {
      throw new RangeError(`no result column \`${name}\` (have ${this.columns.map((c) => c.name).join(', ') || 'none'})`);
    }
    return c;
  }

  tensor(name) {
    const t = this.tensors.get(name);
    if (t === undefined) throw new RangeError(`no fetched tensor \`${name}\``);
    return t;
  }
}

function select(s) {
  if (typeof s === 'number' || typeof s === 'bigint') {
    const k = Number(s);
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`select index ${s}: must be an integer >= 0`);
    return { tag: 'index', val: k };
  }
  if (s === 'whole' || s === 'max' || s === 'argmax') return { tag: s };
  throw new TypeError(`select ${JSON.stringify(s)}: give 'whole', 'max', 'argmax' or an index`);
}

/** A model run being put together; every method returns the request. */
export class Request {
  constructor(model) {
    this._model = model;
    this._inputs = [];
    this._fetch = [];
    this._toColumns = [];
  }

  /**
   * Feeds input `input` from columns of the current mini-batch, stacked by
   * the host into `[rows, columns]` (every row when `rows` is omitted).
   * The columns need not be delivered to the guest.
   */
  columns(input, columns, rows = undefined) {
    const src = { columns: names(columns), rows: rows === undefined || rows === null ? undefined : toUint32Array(rows) };
    this._inputs.push({ name: input, source: { tag: 'columns', val: src } });
    return this;
  }

  /** Feeds input `input` with a tensor the scorer computed. */
  tensor(input, tensor) {
    if (!(tensor instanceof Tensor)) throw new TypeError(`tensor(${JSON.stringify(input)}, ...): give a sluice Tensor`);
    this._inputs.push({ name: input, source: { tag: 'data', val: tensor._toWit() } });
    return this;
  }

  /** Returns output `output` as a tensor (`RunResult.tensors`). */
  fetch(output) {
    this._fetch.push(String(output));
    return this;
  }

  /** Turns output `output` into result column `column` in the host: `whole`, `max`, `argmax` or an index. */
  toColumn(output, column, how = 'whole') {
    this._toColumns.push({ output: String(output), column: String(column), select: select(how) });
    return this;
  }

  /** Runs the model; an `OnnxError` on failure. */
  run() {
    requireStarted('Model.run()');
    let r;
    try {
      r = this._model._wit.run({ inputs: this._inputs, fetch: this._fetch, toColumns: this._toColumns });
    } catch (e) {
      throw OnnxError._fromThrown(e);
    }
    return new RunResult(
      r.columns.map((c) => new Column(c)),
      new Map(r.tensors.map((t) => [t.name, Tensor._fromWit(t.tensor)])),
    );
  }

  /**
   * Runs the model with the `toColumn` outputs added by the host to this
   * `run`'s result (after the returned columns, in call order with
   * `hostBatch.addResultColumn`) instead of coming back into JavaScript;
   * returns their number of rows. Takes no `fetch`. An `OnnxError` on
   * failure, and then nothing is added. (sluice 0.1.3)
   */
  runIntoResult() {
    requireStarted('Model.runIntoResult()');
    try {
      return this._model._wit.runIntoResult({ inputs: this._inputs, fetch: this._fetch, toColumns: this._toColumns });
    } catch (e) {
      throw OnnxError._fromThrown(e);
    }
  }
}

/**
 * Stacks delivered numeric columns of `rows` into a row-major `[rows,
 * columns]` f32 tensor in the guest, for features the scorer transforms
 * first (prefer `Request.columns` when they go in as they are). A null cell
 * is an Error naming the column and row.
 */
export function f32Tensor(rows, columns, rowIndexes = undefined) {
  const cols = names(columns).map((n) => rows.get(n));
  const idx = rowIndexes === undefined ? null : toUint32Array(rowIndexes);
  const n = idx === null ? rows.length : idx.length;
  const k = cols.length;
  const out = new Float32Array(n * k);
  cols.forEach((c, j) => {
    if (c.type === 'string') throw new TypeError(`column \`${c.name}\` holds text, not numbers`);
    const v = c.values;
    const valid = c.valid;
    const big = c.type === 's64';
    for (let i = 0; i < n; i++) {
      const r = idx === null ? i : idx[i];
      if (valid && !valid[r]) throw new RangeError(`column \`${c.name}\` is null at row ${r}`);
      out[i * k + j] = big ? Number(v[r]) : +v[r];
    }
  });
  return Tensor.f32([n, k], out);
}

/**
 * A model the job grants (an input of type `mlflow_model` or
 * `custom_model`), opened by its input name. Sessions live in the host.
 */
export class Model {
  constructor(wit, info) {
    this._wit = wit;
    this._info = info;
  }

  /** Opens the model granted as `inputs.NAME`; `OnnxError` (`unknown-model`) when none is. */
  static load(name) {
    requireStarted('Model.load()');
    let wit;
    try {
      wit = host.load(String(name));
    } catch (e) {
      throw OnnxError._fromThrown(e);
    }
    return new Model(wit, ModelInfo._fromWit(wit.info()));
  }

  /** The names of every model the job grants. */
  static granted() {
    requireStarted('Model.granted()');
    return Array.from(host.granted());
  }

  info() {
    return this._info;
  }

  request() {
    return new Request(this);
  }
}
