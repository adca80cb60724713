// What crosses the scorer boundary, in JavaScript form: the configuration,
// the mini-batch (files or rows), columns, and the result.
//
// The wrappers hold the WIT values the host sent and copy nothing until
// asked: a column's values are the typed array the host delivered
// (Float32Array, Float64Array, BigInt64Array; strings and bools are
// arrays), and a column returned unchanged (or from an ONNX run) goes back
// to the host as it came, one bulk copy.
import { ItemError, UserError } from './_errors.js';

/** The WIT `column-data` cases. */
export const COLUMN_TYPES = Object.freeze(['f32', 'f64', 's64', 'string', 'bool']);

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

// --- BigInt and typed-array helpers -----------------------------------------

/** `v` (a bigint, or an integral number) as a bigint. */
export function toBigInt(v) {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'boolean') return v ? 1n : 0n;
  throw new TypeError(`${describeValue(v)} is not an integer (an s64 value is a bigint or an integral number)`);
}

/** `v` (a bigint or a number) as a number; a RangeError when a bigint is beyond 2^53. */
export function toNumber(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') {
    if (v > MAX_SAFE || v < -MAX_SAFE) throw new RangeError(`${v} does not fit a JavaScript number exactly`);
    return Number(v);
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new TypeError(`${describeValue(v)} is not a number`);
}

/** A BigInt64Array of `values` (bigints, integral numbers or any typed array). */
export function toBigInt64Array(values) {
  if (values instanceof BigInt64Array) return values;
  const out = new BigInt64Array(values.length);
  if (values instanceof BigUint64Array) {
    for (let i = 0; i < values.length; i++) {
      if (values[i] > 0x7fffffffffffffffn) throw new RangeError(`value ${values[i]} at ${i} does not fit s64`);
      out[i] = values[i];
    }
    return out;
  }
  for (let i = 0; i < values.length; i++) out[i] = toBigInt(values[i]);
  return out;
}

/** A Float64Array of `values` (numbers, bigints within 2^53, any typed array). */
export function toFloat64Array(values) {
  if (values instanceof Float64Array) return values;
  if (ArrayBuffer.isView(values) && !(values instanceof BigInt64Array || values instanceof BigUint64Array)) {
    return Float64Array.from(values);
  }
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toNumber(values[i]);
  return out;
}

/** A Uint32Array of row or item indexes (numbers or bigints, each >= 0). */
export function toUint32Array(values) {
  if (values instanceof Uint32Array) return values;
  const out = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = typeof values[i] === 'bigint' ? Number(values[i]) : values[i];
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new RangeError(`index ${describeValue(values[i])} at position ${i} is not a valid row/item index`);
    }
    out[i] = v;
  }
  return out;
}

function describeValue(v) {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null) return 'null';
  if (typeof v === 'object') return `a ${v.constructor ? v.constructor.name : 'object'}`;
  return String(v);
}

function isArrayLike(v) {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

// --- config -----------------------------------------------------------------

/**
 * What `init` gets: `task.config` (`get`, `require`, `parseOr`),
 * `task.program_arguments` (`arguments`) and `environment_variables`
 * (`env`). The host's own environment is never visible.
 */
export class Config {
  constructor(settings = [], args = [], environment = []) {
    /** `task.config`, in spec order. */
    this.settings = toMap(settings);
    /** `task.program_arguments`, split like a shell would. */
    this.arguments = Array.from(args);
    /** `environment_variables`. */
    this.environment = toMap(environment);
  }

  static _fromWit(w) {
    const c = new Config();
    c.settings = new Map(w.settings);
    c.arguments = Array.from(w.arguments);
    c.environment = new Map(w.environment);
    return c;
  }

  /** A `task.config` value, or `fallback` (default undefined) when absent. */
  get(key, fallback = undefined) {
    return this.settings.has(key) ? this.settings.get(key) : fallback;
  }

  /** A `task.config` value that must be present (`UserError` if not). */
  require(key) {
    if (!this.settings.has(key)) throw new UserError(`task.config.${key} is required`);
    return this.settings.get(key);
  }

  /**
   * A `task.config` value converted to the type of `fallback` (boolean,
   * number (an integral `fallback` asks for an integer), bigint, string), or
   * `fallback` when absent. A value that does not convert is a `UserError`
   * naming the key.
   */
  parseOr(key, fallback) {
    if (!this.settings.has(key)) return fallback;
    const raw = this.settings.get(key);
    const bad = (what) => new UserError(`task.config.${key} = \`${raw}\`: not a valid ${what}`);
    switch (typeof fallback) {
      case 'boolean': {
        const low = raw.trim().toLowerCase();
        if (['true', '1', 'yes', 'on'].includes(low)) return true;
        if (['false', '0', 'no', 'off'].includes(low)) return false;
        throw bad('boolean (true or false)');
      }
      case 'number': {
        const t = raw.trim();
        const n = t === '' ? NaN : Number(t);
        if (Number.isNaN(n) && t.toLowerCase() !== 'nan') throw bad('number');
        if (Number.isInteger(fallback) && !Number.isInteger(n)) throw bad('integer');
        return n;
      }
      case 'bigint':
        try {
          return BigInt(raw.trim());
        } catch {
          throw bad('integer');
        }
      case 'string':
        return raw;
      default:
        throw new TypeError(`parseOr(${JSON.stringify(key)}, ...): the fallback must be a boolean, number, bigint or string`);
    }
  }

  /** An `environment_variables` value, or `fallback`. */
  env(key, fallback = undefined) {
    return this.environment.has(key) ? this.environment.get(key) : fallback;
  }
}

function toMap(v) {
  if (v instanceof Map || Array.isArray(v)) return new Map(v);
  return new Map(Object.entries(v || {}));
}

// --- columns ----------------------------------------------------------------

const PLACEHOLDER = { f32: 0, f64: 0, s64: 0n, string: '', bool: false };

function inferType(name, values) {
  if (values instanceof Float32Array) return 'f32';
  if (values instanceof Float64Array) return 'f64';
  if (ArrayBuffer.isView(values)) return 's64'; // BigInt64Array and the integer arrays
  let kind = null;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    let k;
    switch (typeof v) {
      case 'boolean':
        k = 'bool';
        break;
      case 'number':
        k = 'f64';
        break;
      case 'bigint':
        k = 's64';
        break;
      case 'string':
        k = 'string';
        break;
      default:
        throw new TypeError(
          `column \`${name}\`, row ${i}: ${describeValue(v)}; a column holds booleans, numbers (f64), bigints (s64), strings or null`,
        );
    }
    if (kind === null || kind === k) kind = k;
    else if ((kind === 's64' && k === 'f64') || (kind === 'f64' && k === 's64')) kind = 'f64';
    else throw new TypeError(`column \`${name}\` mixes ${kind} and ${k} values (row ${i}: ${describeValue(v)})`);
  }
  return kind || 'string';
}

/** Typed storage for `values` (no nulls left) of column type `kind`. */
function storage(name, kind, values) {
  switch (kind) {
    case 'f32':
      return values instanceof Float32Array ? values : Float32Array.from(values, (v) => toNumber(v));
    case 'f64':
      return values instanceof Float64Array ? values : toFloat64Array(values);
    case 's64':
      return toBigInt64Array(values);
    case 'string': {
      const out = Array.from(values);
      for (let i = 0; i < out.length; i++) {
        if (typeof out[i] !== 'string') throw new TypeError(`column \`${name}\` (string), row ${i}: ${describeValue(out[i])}`);
      }
      return out;
    }
    case 'bool': {
      const out = Array.from(values);
      for (let i = 0; i < out.length; i++) {
        if (typeof out[i] !== 'boolean') throw new TypeError(`column \`${name}\` (bool), row ${i}: ${describeValue(out[i])}`);
      }
      return out;
    }
    default:
      throw new TypeError(`column \`${name}\`: unknown type ${JSON.stringify(kind)}: one of ${COLUMN_TYPES.join(', ')}`);
  }
}

function emptyOf(kind, n) {
  switch (kind) {
    case 'f32':
      return new Float32Array(n);
    case 'f64':
      return new Float64Array(n);
    case 's64':
      return new BigInt64Array(n);
    default:
      return new Array(n);
  }
}

/**
 * One named column of typed values (`f32`, `f64`, `s64`, `string`,
 * `bool`), with nulls. `values` is what the host delivered (a
 * Float32Array, Float64Array or BigInt64Array; an array of strings or
 * booleans), where a null position holds a placeholder; `toArray()` gives
 * `null` there. Columns from the mini-batch or an ONNX run go back to the
 * host unchanged.
 */
export class Column {
  constructor(wit) {
    this._wit = wit;
  }

  /**
   * A column from JavaScript values (`null`/`undefined` = null) or a typed
   * array. The type is inferred (boolean -> bool, number -> f64, bigint ->
   * s64, string; Float32Array -> f32, integer typed arrays -> s64) unless
   * given; an explicit `s64` accepts integral numbers.
   */
  static of(name, values, type = undefined) {
    if (!isArrayLike(values)) {
      throw new TypeError(`column \`${name}\`: ${describeValue(values)}; give an array or a typed array of values`);
    }
    const kind = type || inferType(name, values);
    if (!COLUMN_TYPES.includes(kind)) {
      throw new TypeError(`column \`${name}\`: unknown type ${JSON.stringify(kind)}: one of ${COLUMN_TYPES.join(', ')}`);
    }
    let valid;
    let data = values;
    if (!ArrayBuffer.isView(values)) {
      let nulls = false;
      for (let i = 0; i < values.length; i++) {
        if (values[i] === null || values[i] === undefined) {
          nulls = true;
          break;
        }
      }
      if (nulls) {
        valid = new Array(values.length);
        data = new Array(values.length);
        const fill = PLACEHOLDER[kind];
        for (let i = 0; i < values.length; i++) {
          const missing = values[i] === null || values[i] === undefined;
          valid[i] = !missing;
          data[i] = missing ? fill : values[i];
        }
      }
    }
    return new Column({ name: String(name), data: { tag: kind, val: storage(name, kind, data) }, valid });
  }

  get name() {
    return this._wit.name;
  }

  /** `f32`, `f64`, `s64`, `string` or `bool`. */
  get type() {
    return this._wit.data.tag;
  }

  /** The values as delivered; a null position holds a placeholder. */
  get values() {
    return this._wit.data.val;
  }

  /** One flag per row, `false` for null; `undefined` when no value is null. */
  get valid() {
    return this._wit.valid;
  }

  get length() {
    return this._wit.data.val.length;
  }

  isNull(row) {
    const v = this._wit.valid;
    return v !== undefined && v !== null && !v[row];
  }

  /** The value at `row` (`null` for a null; a bigint for s64). */
  at(row) {
    return this.isNull(row) ? null : this._wit.data.val[row];
  }

  /** The values as a plain array with `null` for nulls (bigints for s64). */
  toArray() {
    const values = this._wit.data.val;
    const valid = this._wit.valid;
    const out = Array.from(values);
    if (valid) for (let i = 0; i < out.length; i++) if (!valid[i]) out[i] = null;
    return out;
  }

  /** The values as numbers (s64 converted, a RangeError beyond 2^53), `null` for nulls. */
  toNumbers() {
    const t = this.type;
    if (t === 'string') throw new TypeError(`column \`${this.name}\` holds strings, not numbers`);
    const values = this._wit.data.val;
    const valid = this._wit.valid;
    const out = new Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = valid && !valid[i] ? null : toNumber(values[i]);
    return out;
  }

  /** The values at `rows` (indexes), in that order, as a new column. */
  take(rows) {
    const src = this._wit.data.val;
    const n = rows.length;
    const out = emptyOf(this.type, n);
    for (let i = 0; i < n; i++) out[i] = src[rows[i]];
    let valid;
    if (this._wit.valid) {
      const v = this._wit.valid;
      valid = new Array(n);
      for (let i = 0; i < n; i++) valid[i] = v[rows[i]];
    }
    return new Column({ name: this._wit.name, data: { tag: this.type, val: out }, valid });
  }

  /** The same values under another name. */
  renamed(name) {
    return new Column({ name: String(name), data: this._wit.data, valid: this._wit.valid });
  }

  toString() {
    return `Column(${this.name}, ${this.type}, ${this.length} values)`;
  }
}

// --- the mini-batch ---------------------------------------------------------

/** One input file of a file mini-batch: its path relative to the input folder and its contents. */
export class FileItem {
  constructor(name, data) {
    this.name = name;
    /** @type {Uint8Array} */
    this.data = data;
  }

  /** The contents decoded (UTF-8 by default), or an Error naming the file. */
  text(encoding = 'utf-8') {
    try {
      return new TextDecoder(encoding, { fatal: true }).decode(this.data);
    } catch (e) {
      throw new TypeError(`${this.name} is not ${encoding} text (${e.message})`);
    }
  }
}

/**
 * The rows of a tabular mini-batch: the delivered columns (see
 * `hostBatch.deliverColumns`) and, per row, its source file and row
 * number. Row `i` is input item `i`.
 */
export class Rows {
  constructor(wit) {
    this._wit = wit;
    this._byName = null;
  }

  get numRows() {
    return this._wit.rows.numRows;
  }

  get length() {
    return this._wit.rows.numRows;
  }

  _names() {
    if (this._byName === null) {
      this._byName = new Map();
      for (const c of this._wit.rows.columns) this._byName.set(c.name, new Column(c));
    }
    return this._byName;
  }

  /** The delivered columns, in input order. */
  get columns() {
    return Array.from(this._names().values());
  }

  get names() {
    return Array.from(this._names().keys());
  }

  /** The delivered column `name`, or `undefined`. */
  column(name) {
    return this._names().get(name);
  }

  /** The delivered column `name`; an Error naming the delivered ones when there is none. */
  get(name) {
    const c = this._names().get(name);
    if (c === undefined) {
      const have = this.names.join(', ') || 'none';
      throw new RangeError(`no delivered column \`${name}\` (delivered: ${have})`);
    }
    return c;
  }

  has(name) {
    return this._names().has(name);
  }

  /** The source files of this mini-batch's rows. */
  get sources() {
    return this._wit.sources;
  }

  _origins(what) {
    if (this._wit.rows.numRows > 0 && this._wit.rowSource.length === 0) {
      throw new Error(
        `Rows.${what}: this scorer called hostBatch.deliverRowOrigins(false), so rows arrive without their source ` +
          "file and row number; add them to the result with hostBatch.addResultColumn(NAME, 'source_file' or 'row_number')",
      );
    }
    return this._wit;
  }

  /** Each row's index into `sources` (a Uint32Array). */
  get rowSources() {
    return this._origins('rowSources').rowSource;
  }

  /** Each row's number in its source file, 0-based, header excluded (a BigUint64Array). */
  get rowNumbers() {
    return this._origins('rowNumbers').rowNumber;
  }

  /** The source file of row `row`. */
  sourceOf(row) {
    const w = this._origins('sourceOf()');
    return w.sources[w.rowSource[row]];
  }

  /** The number of row `row` in its source file, as a number. */
  rowNumber(row) {
    return Number(this._origins('rowNumber()').rowNumber[row]);
  }

  /** A string column holding the source file of each of `rows` (default: every row). */
  sourceColumn(name, rows = undefined) {
    const sources = this._wit.sources;
    const which = this._origins('sourceColumn()').rowSource;
    let values;
    if (rows === undefined || rows === null) {
      values = new Array(which.length);
      for (let i = 0; i < which.length; i++) values[i] = sources[which[i]];
    } else {
      values = new Array(rows.length);
      for (let i = 0; i < rows.length; i++) values[i] = sources[which[rows[i]]];
    }
    return new Column({ name: String(name), data: { tag: 'string', val: values }, valid: undefined });
  }

  /**
   * One object per row of the delivered columns (`null` for nulls, bigints
   * for s64). A loop over every cell: for features, prefer ONNX column
   * sources, which never copy them into the guest.
   */
  toObjects() {
    const cols = this.columns.map((c) => [c.name, c.toArray()]);
    const out = new Array(this.numRows);
    for (let i = 0; i < out.length; i++) {
      const o = {};
      for (const [name, values] of cols) o[name] = values[i];
      out[i] = o;
    }
    return out;
  }
}

/** One mini-batch: `files` (file input) or `rows` (tabular input). Item `i` is `files[i]` or row `i`. */
export class MiniBatch {
  constructor(id, files = [], rows = null) {
    /** Stable id of the mini-batch within its job (for logs and replay). */
    this.id = id;
    /** The files of a file mini-batch (empty for tabular input). */
    this.files = files;
    /** The rows of a tabular mini-batch (`null` for file input). */
    this.rows = rows;
  }

  static _fromWit(w) {
    if (w.items.tag === 'rows') return new MiniBatch(w.id, [], new Rows(w.items.val));
    return new MiniBatch(
      w.id,
      w.items.val.map((f) => new FileItem(f.name, f.data)),
      null,
    );
  }

  /** The rows, or a `UserError` saying the scorer needs tabular input. */
  requireRows() {
    if (this.rows === null) throw new UserError('this scorer needs tabular input (an input of type: mltable)');
    return this.rows;
  }

  get length() {
    return this.rows !== null ? this.rows.numRows : this.files.length;
  }

  /** The files, or for tabular input one object per row (`Rows.toObjects`). */
  [Symbol.iterator]() {
    return (this.rows !== null ? this.rows.toObjects() : this.files)[Symbol.iterator]();
  }
}

// --- the result -------------------------------------------------------------

function asColumn(name, col) {
  if (col instanceof Column) return col.name === name ? col : col.renamed(name);
  if (!isArrayLike(col)) {
    throw new TypeError(`column \`${name}\`: ${describeValue(col)}; give an array of values or a sluice Column`);
  }
  return Column.of(name, col);
}

function tableEntries(table) {
  return table instanceof Map ? Array.from(table.entries()) : Object.entries(table);
}

/**
 * What `run` returns: output rows, each tied to its input item
 * (`rowItems`), and item errors. Every item needs rows or one error.
 */
export class BatchResult {
  constructor(rowItems, columns, errors) {
    this.rowItems = toUint32Array(rowItems);
    this.columns = columns;
    this.errors = errors;
  }

  /**
   * A result built column by column: `columns` (Column objects, or an
   * object / Map of name -> Column or array) hold one value per entry of
   * `rowItems`, the input item of each output row. `errors` are
   * `new ItemError(message, item)` or `[item, message]` pairs.
   */
  static fromColumns(rowItems, columns, errors = []) {
    const items = toUint32Array(Array.isArray(rowItems) || ArrayBuffer.isView(rowItems) ? rowItems : Array.from(rowItems));
    let cols;
    if (Array.isArray(columns)) {
      cols = columns.map((c, i) => {
        if (!(c instanceof Column)) {
          throw new TypeError(`columns[${i}]: ${describeValue(c)}; give sluice Column objects, or an object of name -> values`);
        }
        return c;
      });
    } else {
      cols = tableEntries(columns).map(([k, v]) => asColumn(String(k), v));
    }
    for (const c of cols) {
      if (c.length !== items.length) {
        throw new RangeError(`column \`${c.name}\` has ${c.length} values for ${items.length} output rows`);
      }
    }
    const errs = Array.from(errors, (e) => {
      if (e instanceof ItemError) {
        if (e.item === undefined) throw new TypeError(`new ItemError(${JSON.stringify(e.message)}) needs an item index here`);
        return e;
      }
      if (Array.isArray(e) && e.length === 2) return new ItemError(e[1], e[0]);
      throw new TypeError(`errors: ${describeValue(e)}; give new ItemError(message, item) or [item, message]`);
    });
    return new BatchResult(items, cols, errs);
  }

  _toWit() {
    return {
      rows: { numRows: this.rowItems.length, columns: this.columns.map((c) => c._wit) },
      rowItems: this.rowItems,
      errors: this.errors.map((e) => ({ item: e.item, message: e.message })),
    };
  }
}

class Buf {
  constructor(kind) {
    this.kind = kind;
    this.values = [];
    this.valid = [];
    this.hasNull = false;
  }

  pad(rows) {
    while (this.valid.length < rows) {
      this.hasNull = true;
      this.valid.push(false);
      this.values.push(PLACEHOLDER[this.kind]);
    }
  }
}

/**
 * Collects output rows, each for an input item, and item errors, row by
 * row; a column is created on first use with the type of its first value,
 * and a row that does not set a column gets a null there.
 *
 *     const out = new ResultBuilder();
 *     out.row(0).string('name', 'a.txt').s64('bytes', 12);
 *     out.row(1, { name: 'b.txt', bytes: 7n });   // types inferred
 *     out.error(2, 'not UTF-8');
 *     return out.finish();
 */
export class ResultBuilder {
  constructor() {
    this._columns = new Map();
    this._rowItems = [];
    this._errors = [];
  }

  /** Starts an output row for input item `item`, optionally setting cells from `values` (types inferred). */
  row(item, values = undefined) {
    this._rowItems.push(Number(item));
    const w = new RowWriter(this);
    if (values) {
      for (const [name, v] of tableEntries(values)) if (v !== null && v !== undefined) w.set(name, v);
    }
    return w;
  }

  /** Marks input item `item` failed (an item error). */
  error(item, message) {
    this._errors.push(new ItemError(message instanceof Error ? message.message : String(message), Number(item)));
    return this;
  }

  finish() {
    const rows = this._rowItems.length;
    const cols = [];
    for (const [name, b] of this._columns) {
      b.pad(rows);
      cols.push(
        new Column({ name, data: { tag: b.kind, val: storage(name, b.kind, b.values) }, valid: b.hasNull ? b.valid : undefined }),
      );
    }
    return new BatchResult(this._rowItems, cols, this._errors);
  }

  _cell(name, kind, value) {
    const row = this._rowItems.length - 1;
    if (row < 0) throw new TypeError('ResultBuilder: call row(item) before setting a cell');
    let b = this._columns.get(name);
    if (b === undefined) {
      b = new Buf(kind);
      this._columns.set(name, b);
    } else if (b.kind !== kind) {
      if (b.kind === 'f64' && kind === 's64') value = toNumber(value);
      else throw new TypeError(`column \`${name}\` already holds ${b.kind} values, not ${kind}`);
    }
    b.pad(row);
    if (b.valid.length !== row) throw new TypeError(`column \`${name}\` set twice in one row`);
    b.values.push(value);
    b.valid.push(true);
  }
}

/** Sets the cells of one output row; each setter returns the writer. */
export class RowWriter {
  constructor(b) {
    this._b = b;
  }

  /** A cell with its type inferred (boolean, number -> f64, bigint -> s64, string). */
  set(name, value) {
    this._b._cell(name, inferType(name, [value]), value);
    return this;
  }

  f32(name, value) {
    this._b._cell(name, 'f32', toNumber(value));
    return this;
  }

  f64(name, value) {
    this._b._cell(name, 'f64', toNumber(value));
    return this;
  }

  /** An s64 cell from a bigint or an integral number. */
  s64(name, value) {
    this._b._cell(name, 's64', toBigInt(value));
    return this;
  }

  bool(name, value) {
    this._b._cell(name, 'bool', Boolean(value));
    return this;
  }

  string(name, value) {
    this._b._cell(name, 'string', String(value));
    return this;
  }
}

function isPlainTable(out) {
  if (out instanceof Map) return true;
  if (typeof out !== 'object' || out === null) return false;
  const proto = Object.getPrototypeOf(out);
  return proto === Object.prototype || proto === null;
}

/**
 * Turns what `run` returned into a `BatchResult`:
 * - a `BatchResult` or a `ResultBuilder`;
 * - an array with one element per input item, in order: an object (that
 *   item's output row), or an `ItemError` / Error (that item failed);
 * - a column table: an object or Map of column name -> `Column` or array,
 *   one value per input item.
 */
export function toResult(out, nItems, what = 'run()') {
  if (out instanceof BatchResult) return out;
  if (out instanceof ResultBuilder) return out.finish();
  if (Array.isArray(out)) {
    if (out.length !== nItems) {
      throw new RangeError(
        `${what} returned ${out.length} rows for ${nItems} items; return one object per item, in order ` +
          '(an ItemError where an item failed), or use ResultBuilder / BatchResult.fromColumns',
      );
    }
    const rowItems = [];
    const errors = [];
    const names = new Map();
    const rows = [];
    for (let i = 0; i < out.length; i++) {
      const r = out[i];
      if (r instanceof ItemError) errors.push(new ItemError(r.message, i));
      else if (r instanceof Error) errors.push(new ItemError(r.message ? `${r.name}: ${r.message}` : r.name, i));
      else if (isPlainTable(r)) {
        rowItems.push(i);
        rows.push(r);
        for (const [k] of tableEntries(r)) names.set(k, null);
      } else {
        throw new TypeError(
          `${what} returned an array whose element ${i} is ${describeValue(r)}: each element must be an object ` +
            "(the item's output row) or an ItemError / Error (the item failed)",
        );
      }
    }
    const cols = Array.from(names.keys(), (n) =>
      Column.of(
        n,
        rows.map((r) => (r instanceof Map ? r.get(n) : r[n])),
      ),
    );
    return new BatchResult(rowItems, cols, errors);
  }
  if (isPlainTable(out)) {
    const cols = tableEntries(out).map(([k, v]) => asColumn(String(k), v));
    for (const c of cols) {
      if (c.length !== nItems) {
        throw new RangeError(
          `${what} returned a column table whose column \`${c.name}\` has ${c.length} values for ${nItems} ` +
            'items; a table has one row per item (use BatchResult.fromColumns to map rows to items)',
        );
      }
    }
    const all = new Uint32Array(nItems);
    for (let i = 0; i < nItems; i++) all[i] = i;
    return new BatchResult(all, cols, []);
  }
  const want =
    'return rows (an array of objects, one per item), a column table (an object of name -> column), ' +
    'or a ResultBuilder / BatchResult';
  if (out === undefined || out === null) {
    if (nItems === 0) return new BatchResult([], [], []);
    throw new TypeError(`${what} returned ${out} for ${nItems} items: ${want}`);
  }
  throw new TypeError(`${what} returned ${describeValue(out)}: ${want}`);
}
