// Type declarations of sluice-sdk, the JavaScript SDK for sluice scorers
// (WIT package sluice:scorer@0.1.3). See sdk/js/README.md.

export const VERSION: string;
/** The WIT package this SDK is built against. */
export const WIT_PACKAGE: 'sluice:scorer@0.1.3';

/** A column's element type, as the WIT `column-data` cases name them. */
export type ColumnType = 'f32' | 'f64' | 's64' | 'string' | 'bool';
export const COLUMN_TYPES: readonly ColumnType[];

/** What a column holds, by type: typed arrays for numbers (BigInt for s64). */
export type ColumnValues = Float32Array | Float64Array | BigInt64Array | string[] | boolean[];

/** A plain JavaScript cell value; `null`/`undefined` is a null. */
export type Cell = boolean | number | bigint | string | null | undefined;

/** Anything `Column.of` takes: an array of cells or a typed array. */
export type ColumnInput = ArrayLike<Cell> | Float32Array | Float64Array | BigInt64Array | BigUint64Array | Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array;

/** Row or item indexes: numbers (or bigints) >= 0. */
export type Indexes = ArrayLike<number | bigint> | Uint32Array;

// --- errors -------------------------------------------------------------------

/** Thrown from `init` or `run`: fails the instance start or the whole mini-batch (`USER_ERROR`) with exactly this message. */
export class UserError extends Error {
  constructor(message?: string, options?: { cause?: unknown });
}

/** One input item that could not be scored (counts against `error_threshold`; the mini-batch goes on). */
export class ItemError {
  constructor(message: string, item?: number);
  readonly message: string;
  /** The item's index; needed everywhere but in an array returned by `run`. */
  readonly item: number | undefined;
}

/** A host import used before `init` (at build time, from the module's top level). */
export class HostCallAtImportTime extends Error {}

export type OnnxErrorCode =
  | 'unknown-model'
  | 'unknown-name'
  | 'shape-mismatch'
  | 'type-mismatch'
  | 'too-large'
  | 'invalid-input'
  | 'runtime-failure';

/** A failed model load or run, or an unknown column in a `hostBatch` call. `message` is `code: hostMessage`. */
export class OnnxError extends Error {
  constructor(code: OnnxErrorCode | string, message: string);
  readonly code: OnnxErrorCode | string;
  readonly hostMessage: string;
}

// --- BigInt and typed-array helpers ---------------------------------------------

/** A bigint, or an integral number as a bigint (a TypeError otherwise). */
export function toBigInt(v: number | bigint | boolean): bigint;
/** A number; a RangeError for a bigint beyond 2^53. */
export function toNumber(v: number | bigint | boolean): number;
export function toBigInt64Array(values: ArrayLike<number | bigint> | BigUint64Array): BigInt64Array;
export function toFloat64Array(values: ArrayLike<number | bigint>): Float64Array;
export function toUint32Array(values: Indexes): Uint32Array;

// --- configuration ---------------------------------------------------------------

/** What `init` gets: `task.config`, `task.program_arguments` and `environment_variables`. */
export class Config {
  constructor(
    settings?: Map<string, string> | [string, string][] | Record<string, string>,
    args?: string[],
    environment?: Map<string, string> | [string, string][] | Record<string, string>,
  );
  /** `task.config`, in spec order. */
  settings: Map<string, string>;
  /** `task.program_arguments`, split like a shell would. */
  arguments: string[];
  /** `environment_variables`. */
  environment: Map<string, string>;
  get(key: string): string | undefined;
  get<T>(key: string, fallback: T): string | T;
  /** A value that must be present (`UserError` if not). */
  require(key: string): string;
  /** A value converted to the type of `fallback` (an integral number asks for an integer); `UserError` if it does not convert. */
  parseOr<T extends boolean | number | bigint | string>(key: string, fallback: T): T extends boolean ? boolean : T extends number ? number : T extends bigint ? bigint : string;
  env(key: string): string | undefined;
  env<T>(key: string, fallback: T): string | T;
}

// --- columns and the mini-batch ---------------------------------------------------

/** One named column of typed values with nulls. */
export class Column {
  /** From cells (`null` = null) or a typed array; the type is inferred (number -> f64, bigint -> s64) unless given. */
  static of(name: string, values: ColumnInput, type?: ColumnType): Column;
  readonly name: string;
  readonly type: ColumnType;
  /** As delivered (a null position holds a placeholder). */
  readonly values: ColumnValues;
  /** One flag per row, false for null; undefined when no value is null. */
  readonly valid: boolean[] | undefined;
  readonly length: number;
  isNull(row: number): boolean;
  /** The value at `row`, `null` for a null. */
  at(row: number): number | bigint | string | boolean | null;
  /** A plain array, `null` for nulls (bigints for s64). */
  toArray(): (number | bigint | string | boolean | null)[];
  /** Numbers (s64 converted; a RangeError beyond 2^53), `null` for nulls. */
  toNumbers(): (number | null)[];
  /** The values at `rows`, in that order. */
  take(rows: Indexes): Column;
  renamed(name: string): Column;
}

export class FileItem {
  constructor(name: string, data: Uint8Array);
  /** The path relative to the input folder. */
  readonly name: string;
  readonly data: Uint8Array;
  /** The contents decoded (UTF-8 by default); an Error naming the file when they are not. */
  text(encoding?: string): string;
}

/** The rows of a tabular mini-batch. Row `i` is input item `i`. */
export class Rows {
  readonly numRows: number;
  readonly length: number;
  /** The delivered columns (see `hostBatch.deliverColumns`), in input order. */
  readonly columns: Column[];
  readonly names: string[];
  column(name: string): Column | undefined;
  /** The delivered column `name`; a RangeError naming the delivered ones when there is none. */
  get(name: string): Column;
  has(name: string): boolean;
  readonly sources: string[];
  readonly rowSources: Uint32Array;
  /** Each row's number in its source file (0-based, header excluded). */
  readonly rowNumbers: BigUint64Array;
  sourceOf(row: number): string;
  rowNumber(row: number): number;
  /** A string column with the source file of each of `rows` (default: every row). */
  sourceColumn(name: string, rows?: Indexes | null): Column;
  /** One object per row of the delivered columns: a loop over every cell. */
  toObjects(): Record<string, number | bigint | string | boolean | null>[];
}

export class MiniBatch {
  /** Stable id of the mini-batch within its job. */
  readonly id: string;
  /** The files of a file mini-batch (empty for tabular input). */
  readonly files: FileItem[];
  /** The rows of a tabular mini-batch (`null` for file input). */
  readonly rows: Rows | null;
  readonly length: number;
  /** The rows, or a `UserError` saying the scorer needs tabular input. */
  requireRows(): Rows;
  [Symbol.iterator](): Iterator<FileItem | Record<string, Cell>>;
}

// --- results ---------------------------------------------------------------------

/** A column table: name -> Column or values, one per output row. */
export type ColumnTable = Record<string, Column | ColumnInput> | Map<string, Column | ColumnInput>;

/** One output row per input item, or an error in its place. */
export type RowsResult = (Record<string, Cell> | ItemError | Error)[];

export class BatchResult {
  constructor(rowItems: Indexes, columns: Column[], errors: ItemError[]);
  readonly rowItems: Uint32Array;
  readonly columns: Column[];
  readonly errors: ItemError[];
  /** Output rows column by column: `rowItems[i]` is the input item of row `i`. */
  static fromColumns(rowItems: Indexes | Iterable<number>, columns: Column[] | ColumnTable, errors?: Iterable<ItemError | [number, string]>): BatchResult;
}

export class RowWriter {
  /** A cell, its type inferred (boolean, number -> f64, bigint -> s64, string). */
  set(name: string, value: boolean | number | bigint | string): RowWriter;
  f32(name: string, value: number): RowWriter;
  f64(name: string, value: number): RowWriter;
  s64(name: string, value: number | bigint): RowWriter;
  bool(name: string, value: boolean): RowWriter;
  string(name: string, value: string): RowWriter;
}

/** Output rows, each for an input item, and item errors, row by row. */
export class ResultBuilder {
  row(item: number, values?: Record<string, Cell> | Map<string, Cell>): RowWriter;
  error(item: number, message: string | Error): ResultBuilder;
  finish(): BatchResult;
}

/** What `run` may return. */
export type RunOutput = RowsResult | ColumnTable | BatchResult | ResultBuilder;

export function toResult(out: RunOutput | null | undefined, nItems: number, what?: string): BatchResult;

// --- the scorer ---------------------------------------------------------------------

/** Base class: one object per sandboxed instance, `init` once, then `run` per mini-batch. */
export class Scorer {
  init(config: Config): void | Promise<void>;
  run(miniBatch: MiniBatch): RunOutput | Promise<RunOutput>;
}

/** Makes `cls` the component's scorer (or `export default` the class). */
export function exportScorer<T extends new () => Scorer>(cls: T): T;

/** The job's configuration, once `init` has been called. */
export function config(): Config;

// --- ONNX ---------------------------------------------------------------------------

export type ElementType = 'f32' | 'f64' | 's64' | 's32' | 'u8' | 'bool' | 'string' | 'other';
export type TensorType = 'f32' | 'f64' | 's64' | 's32' | 'u8';
/** How an output `[rows]` / `[rows, k]` becomes a column: as it is, row max, row argmax (s64), or element k. */
export type Select = 'whole' | 'max' | 'argmax' | number;

export class TensorInfo {
  readonly name: string;
  readonly elementType: ElementType;
  /** -1 for a dimension fixed at run time. */
  readonly shape: number[];
  /** The fixed size of the last dimension of a `[-1, k]` input, if any. */
  width(): number | undefined;
}

export class ModelInfo {
  readonly name: string;
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  input(name: string): TensorInfo | undefined;
  output(name: string): TensorInfo | undefined;
}

export class Tensor {
  constructor(shape: ArrayLike<number | bigint>, elementType: TensorType, data: ArrayLike<number | bigint>);
  readonly shape: number[];
  readonly elementType: TensorType;
  readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
  static f32(shape: ArrayLike<number>, data: ArrayLike<number>): Tensor;
  static f64(shape: ArrayLike<number>, data: ArrayLike<number>): Tensor;
  static s64(shape: ArrayLike<number>, data: ArrayLike<number | bigint>): Tensor;
  static s32(shape: ArrayLike<number>, data: ArrayLike<number>): Tensor;
  static u8(shape: ArrayLike<number>, data: ArrayLike<number>): Tensor;
}

export class RunResult {
  /** One per `toColumn`, in that order. */
  readonly columns: Column[];
  /** The fetched outputs, in `fetch` order. */
  readonly tensors: Map<string, Tensor>;
  column(name: string): Column;
  tensor(name: string): Tensor;
}

export class Request {
  /** Input `input` from mini-batch columns, stacked by the host into `[rows, columns]` (the fast path). */
  columns(input: string, columns: string | string[], rows?: Indexes | null): Request;
  /** Input `input` from a tensor the scorer computed. */
  tensor(input: string, tensor: Tensor): Request;
  fetch(output: string): Request;
  /** Output `output` as result column `column`, made by the host. */
  toColumn(output: string, column: string, select?: Select): Request;
  run(): RunResult;
  /** Runs with the `toColumn` outputs added to the result by the host (never crossing); returns their rows. (sluice 0.1.3) */
  runIntoResult(): number;
}

/** A model the job grants (`mlflow_model` / `custom_model` input), by its input name. */
export class Model {
  static load(name: string): Model;
  static granted(): string[];
  info(): ModelInfo;
  request(): Request;
}

/** Stacks delivered numeric columns into a `[rows, columns]` f32 tensor in the guest (slower than `Request.columns`). */
export function f32Tensor(rows: Rows, columns: string | string[], rowIndexes?: Indexes): Tensor;

// --- the current mini-batch in the host -------------------------------------------------

export namespace hostBatch {
  /** Call in `init`: `run` then receives only these columns. */
  function deliverColumns(columns: string | string[]): void;
  /** Call in `init` with `false`: rows arrive without their source file and row number. (sluice 0.1.3) */
  function deliverRowOrigins(deliver: boolean): void;
  /** `[name, type]` of every column of the current mini-batch, delivered or not. */
  function columns(): [string, ColumnType][];
  /** The rows where any of `columns` is null, ascending. */
  function nullRows(columns: string | string[]): Uint32Array;
  /**
   * Has the host add a column to this `run`'s result (after the returned
   * columns, in call order) from the mini-batch it holds: each row's
   * `'source_file'`, its `'row_number'`, or a mini-batch `{ column }`;
   * `rows` picks mini-batch rows, one result row each. (sluice 0.1.2)
   */
  function addResultColumn(
    name: string,
    source: 'source_file' | 'row_number' | { column: string },
    rows?: ArrayLike<number>,
  ): void;
}

// --- logging ------------------------------------------------------------------------

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export const Level: { readonly TRACE: 'trace'; readonly DEBUG: 'debug'; readonly INFO: 'info'; readonly WARN: 'warn'; readonly ERROR: 'error' };
/** One line to the job's log: the parts joined by spaces. */
export function log(level: LogLevel, ...parts: unknown[]): void;
export function trace(...parts: unknown[]): void;
export function debug(...parts: unknown[]): void;
export function info(...parts: unknown[]): void;
export function warn(...parts: unknown[]): void;
export function error(...parts: unknown[]): void;
