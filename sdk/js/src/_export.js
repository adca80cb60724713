// The component's `init` and `run` exports, which the glue module the build
// command generates hands to componentize-js.
//
// - One scorer per instance. The scorer object (class form) or the user's
//   module (Azure form) is held here, in module state, which lives as long
//   as the component instance: what `init` sets is there in every `run`.
// - No trap for an exception. Whatever `init` or `run` throws is caught and
//   returned as the WIT `error` (reason code `USER_ERROR`), its message
//   `Name: text at file.js:LINE:COL in fn()` for the innermost frame of the
//   user's code, then its callers in the user's code (bounded); the whole
//   stack goes to the job's log. A `UserError` gives its message alone.
// - Host calls only from init/run: componentize-js runs the module's top
//   level while building, where there is no host; the SDK's wrappers check
//   `started()` and say so in words.
import { UserError } from './_errors.js';
import { Config, MiniBatch, toResult } from './_data.js';
import { markStarted, setConfig, currentConfig } from './_state.js';
import { _hostLog } from './_log.js';

/** The most user frames named in an error message, and its most characters. */
const MAX_FRAMES = 5;
const MAX_TEXT = 600;
const MAX_MESSAGE = 1500;

let registered = null;
let scorer = null;
let userModule = null;
/** Markers of frames that are not the user's (the SDK, the glue, componentize-js's bindings). */
let sdkMarkers = ['.sluice-sdk/', '.sluice-main.js', 'initializer.js', 'self-hosted'];

/** Set by the glue (and the unit tests) before the user's module runs. */
export function configure(options = {}) {
  if (options.sdkMarkers) sdkMarkers = [...sdkMarkers, ...options.sdkMarkers];
}

/** Makes `cls` (a `Scorer` subclass) the component's scorer. */
export function register(cls) {
  if (typeof cls !== 'function' || !cls.prototype) {
    throw new TypeError(`exportScorer() takes a class (a Scorer subclass), not ${typeof cls}`);
  }
  if (typeof cls.prototype.run !== 'function') {
    throw new TypeError(`exportScorer(${cls.name}): the class has no run(miniBatch) method`);
  }
  if (registered !== null && registered !== cls) {
    throw new TypeError(`exportScorer() called twice (${registered.name}, then ${cls.name}): a component has one scorer`);
  }
  registered = cls;
  return cls;
}

export function config() {
  const c = currentConfig();
  if (c === null) throw new UserError('sluice.config() is available once init() has been called');
  return c;
}

// --- describing an exception ------------------------------------------------

const SPIDERMONKEY = /^(.*?)@(.*):(\d+):(\d+)$/; // fn@file:line:col
const V8 = /^\s*at (?:(.*?) \()?(.*?):(\d+):(\d+)\)?$/; // at fn (file:line:col)

/** The frames of `e.stack`, innermost first: `{fn, file, line, col}`. */
export function frames(e) {
  const stack = e && typeof e.stack === 'string' ? e.stack : '';
  const out = [];
  for (const raw of stack.split('\n')) {
    const line = raw.trimEnd();
    const m = SPIDERMONKEY.exec(line) || V8.exec(line);
    if (!m) continue;
    let file = m[2];
    if (file.startsWith('file://')) file = file.slice('file://'.length);
    // SpiderMonkey names nested functions `outer/inner<`; keep the inner name.
    let fn = (m[1] || '').replace(/^async\*/, '');
    fn = fn.split('/').pop().replace(/<+$/, '');
    if (fn.startsWith('Object.') || fn.startsWith('async ')) fn = fn.replace(/^(Object\.|async )/, '');
    out.push({ fn, file, line: Number(m[3]), col: Number(m[4]) });
  }
  return out;
}

export function isUserFrame(f) {
  return !sdkMarkers.some((m) => f.file.includes(m)) && !f.file.startsWith('node:');
}

function place(f) {
  return `${f.file}:${f.line}:${f.col}${f.fn ? ` in ${f.fn}()` : ''}`;
}

function bounded(text, max) {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** An Error, or one from another realm (SpiderMonkey's self-hosted code throws those). */
function isErrorLike(e) {
  return (
    e instanceof Error ||
    (e !== null && typeof e === 'object' && typeof e.message === 'string' && typeof e.stack === 'string') ||
    Object.prototype.toString.call(e) === '[object Error]'
  );
}

function headline(e) {
  if (isErrorLike(e)) {
    const name = e.name || (e.constructor && e.constructor.name) || 'Error';
    const msg = e.message === undefined || e.message === '' ? '' : String(e.message);
    return bounded(msg ? `${name}: ${msg}` : name, MAX_TEXT);
  }
  let shown;
  try {
    shown = typeof e === 'string' ? JSON.stringify(e) : typeof e === 'bigint' ? `${e}n` : JSON.stringify(e) ?? String(e);
  } catch {
    shown = String(e);
  }
  const kind = e === null ? 'null' : typeof e === 'object' ? 'an object' : `a ${typeof e}`;
  return bounded(`${kind} was thrown, not an Error: ${shown} (throw an Error to see where)`, MAX_TEXT);
}

/** The one-line message of an exception escaping `init` or `run`. */
export function describe(e) {
  if (e instanceof UserError) return bounded(String(e.message) || 'UserError', MAX_MESSAGE);
  let text = headline(e);
  // No frame of the user's: thrown by the SDK about what run() returned
  // (its message says what), so no place to name.
  const user = frames(e).filter(isUserFrame).slice(0, MAX_FRAMES);
  if (user.length > 0) {
    text += ` at ${place(user[0])}`;
    if (user.length > 1) text += `, called from ${user.slice(1).map(place).join(', ')}`;
  }
  return bounded(text, MAX_MESSAGE);
}

function logStack(e, phase) {
  if (e instanceof UserError) return;
  // One log line each (the host escapes newlines): the exception, then the
  // frames outside the SDK, innermost first.
  _hostLog('error', isErrorLike(e) ? `${phase}() threw ${headline(e)}` : `${phase}(): ${headline(e)}`);
  for (const f of frames(e).filter(isUserFrame).slice(0, 50)) _hostLog('error', `  at ${place(f)}`);
}

function fail(e, phase) {
  logStack(e, phase);
  return { tag: 'err', val: { message: describe(e) } };
}

// `return new UserError(...)` (or any Error) from init/run is a bug that
// would otherwise pass silently: treat it as thrown.
function thrownIfError(value) {
  if (isErrorLike(value)) throw value;
  return value;
}

// --- the exports --------------------------------------------------------------

function isScorerClass(v) {
  return typeof v === 'function' && v.prototype && typeof v.prototype.run === 'function';
}

export async function init(witConfig) {
  markStarted();
  try {
    const cfg = Config._fromWit(witConfig);
    setConfig(cfg);
    const cls = registered ?? (userModule && isScorerClass(userModule.default) ? userModule.default : null);
    if (cls !== null) {
      const s = new cls();
      if (typeof s.init === 'function') thrownIfError(await s.init(cfg));
      scorer = s;
    } else if (userModule !== null && typeof userModule.run === 'function') {
      if (typeof userModule.init === 'function') thrownIfError(await userModule.init(cfg));
      scorer = userModule;
    } else {
      throw new UserError('the component was built without a scorer (no exportScorer(), default class or run())');
    }
    return { tag: 'ok', val: undefined };
  } catch (e) {
    return fail(e, 'init');
  }
}

export async function run(witBatch) {
  try {
    if (scorer === null) throw new UserError('run() called before a successful init()');
    const batch = MiniBatch._fromWit(witBatch);
    const out = thrownIfError(await scorer.run(batch));
    return { tag: 'ok', val: toResult(out, batch.length)._toWit() };
  } catch (e) {
    return fail(e, 'run');
  }
}

/**
 * Called by the glue once the user's module is imported: checks it defines
 * a scorer (an `exportScorer(Class)`, a default-exported class with `run`,
 * or module-level `run`) and keeps it.
 */
export function world(module, displayName = 'the scorer module') {
  if (registered === null && !isScorerClass(module.default) && typeof module.run !== 'function') {
    throw new TypeError(
      `${displayName} defines no scorer: call exportScorer(MyScorer) with a Scorer subclass, export it as the ` +
        'default export, or export init() and run(miniBatch) functions (the Azure ML score.py shape)',
    );
  }
  if (registered !== null && isScorerClass(module.default) && module.default !== registered) {
    throw new TypeError(
      `${displayName} exports ${module.default.name} as default and registers ${registered.name} with exportScorer(): a component has one scorer`,
    );
  }
  userModule = module;
  return { init, run };
}
