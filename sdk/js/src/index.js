// sluice-sdk: write a sluice batch scorer in JavaScript.
//
// Two forms; either builds with `sluice-js build score.js -o scorer.wasm`.
//
// A class, one object per sandboxed instance:
//
//     import { Scorer, exportScorer } from 'sluice-sdk';
//
//     class Sizes extends Scorer {
//       init(config) { this.unit = config.get('unit', 'bytes'); }   // kept for every run()
//       run(miniBatch) { return miniBatch.files.map((f) => ({ name: f.name, size: f.data.length })); }
//     }
//     exportScorer(Sizes);            // or: export default class Sizes extends Scorer {...}
//
// or an Azure ML style module exporting `init()` and `run(miniBatch)`.
// `run` returns rows (an array of objects, one per input item, an
// `ItemError` where an item failed), a column table (an object of column
// name -> `Column` or array), or a `ResultBuilder` / `BatchResult`.
//
// Whatever `init` or `run` throws fails the instance start or the
// mini-batch as `USER_ERROR` with its text and the file:line of your code;
// `UserError` gives just its message. The host does the heavy work: ONNX
// models (`Model`) fed from the mini-batch's columns in the host
// (`hostBatch`), so features never pass through JavaScript.
import * as _export from './_export.js';
import * as hostBatch from './hostBatch.js';

export { UserError, ItemError, OnnxError, HostCallAtImportTime } from './_errors.js';
export {
  BatchResult,
  COLUMN_TYPES,
  Column,
  Config,
  FileItem,
  MiniBatch,
  ResultBuilder,
  RowWriter,
  Rows,
  toBigInt,
  toBigInt64Array,
  toFloat64Array,
  toNumber,
  toResult,
  toUint32Array,
} from './_data.js';
export { Model, ModelInfo, Request, RunResult, Tensor, TensorInfo, f32Tensor } from './onnx.js';
export { Level, log, trace, debug, info, warn, error } from './_log.js';
export { hostBatch };

export const VERSION = '0.1.3';
/** The WIT package this SDK is built against (bundled in sluice-sdk/wit). */
export const WIT_PACKAGE = 'sluice:scorer@0.1.3';

/**
 * Base class of a scorer. One object lives per sandboxed instance: `init`
 * runs once on it, then `run` once per mini-batch, so whatever `init` sets
 * on `this` is there in every `run`.
 */
export class Scorer {
  /** Reads the job's configuration; throw to fail the instance start. */
  // eslint-disable-next-line no-unused-vars
  init(config) {}

  /**
   * Scores one mini-batch: rows (an array of objects, one per item), a
   * column table (object of name -> Column or array), a `ResultBuilder` or
   * a `BatchResult`. Throw only when the whole mini-batch cannot be scored;
   * report a bad item with an `ItemError`.
   */
  // eslint-disable-next-line no-unused-vars
  run(miniBatch) {
    throw new Error(`${this.constructor.name}.run(miniBatch) is not defined`);
  }
}

/** Makes `cls` (a `Scorer` subclass) the component's scorer; returns it. */
export function exportScorer(cls) {
  return _export.register(cls);
}

/** The job's configuration, once `init` has been called (handy in the Azure form). */
export function config() {
  return _export.config();
}
