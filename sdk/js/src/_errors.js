// The SDK's error classes (no host import here, so the build command and
// the unit tests can load it anywhere).

/**
 * Thrown from `init` or `run`: fails the instance start or the whole
 * mini-batch (`USER_ERROR`) with exactly this message, no stack.
 */
export class UserError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'UserError';
  }
}

/**
 * One input item that could not be scored: it counts against
 * `error_threshold` but does not fail the mini-batch. In an array returned
 * by `run` (one element per item) put `new ItemError("why")` where the
 * item's row would be; elsewhere (`BatchResult.fromColumns`) give the
 * item's index: `new ItemError("why", 3)`.
 */
export class ItemError {
  constructor(message, item) {
    this.message = String(message);
    this.item = item === undefined || item === null ? undefined : Number(item);
  }

  toString() {
    return `ItemError(${JSON.stringify(this.message)}${this.item === undefined ? '' : `, item ${this.item}`})`;
  }
}

/** A host import used before `init` (at build time, from the module's top level). */
export class HostCallAtImportTime extends Error {
  constructor(message) {
    super(message);
    this.name = 'HostCallAtImportTime';
  }
}

/**
 * A failed model load or run, or an unknown column in a `batch` call:
 * `code` as the WIT spells it (`unknown-model`, `unknown-name`,
 * `shape-mismatch`, `type-mismatch`, `too-large`, `invalid-input`,
 * `runtime-failure`) and the host's message.
 */
export class OnnxError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'OnnxError';
    this.code = code;
    this.hostMessage = message;
  }

  /** From what a binding threw (componentize-js's ComponentError with a `payload`). */
  static _fromThrown(e) {
    const p = e && typeof e === 'object' && 'payload' in e ? e.payload : null;
    if (p && typeof p === 'object' && 'code' in p) return new OnnxError(String(p.code), String(p.message));
    return e;
  }
}
