// Logging through the host: each line is tagged with job, mini-batch and
// instance and counts against `limits.max_log_kb`. `console.log` and
// `console.error` work too (stdout and stderr become log lines).
import { log as host } from './_bindings.js';
import { requireStarted } from './_state.js';

export const Level = Object.freeze({ TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' });
const LEVELS = new Set(Object.values(Level));

function format(parts) {
  return parts
    .map((p) => {
      if (typeof p === 'string') return p;
      if (p instanceof Error) return `${p.name}: ${p.message}`;
      if (typeof p === 'object' && p !== null) {
        try {
          return JSON.stringify(p, (_k, v) => (typeof v === 'bigint' ? `${v}` : ArrayBuffer.isView(v) ? Array.from(v, String) : v));
        } catch {
          return String(p);
        }
      }
      return String(p);
    })
    .join(' ');
}

/** Sends one line to the job's log: the parts joined by spaces, as console.log does. */
export function log(level, ...parts) {
  requireStarted('sluice.log()');
  if (!LEVELS.has(level)) throw new TypeError(`log level ${JSON.stringify(level)}: one of ${[...LEVELS].join(', ')}`);
  host.log(level, format(parts));
}

export const trace = (...parts) => log('trace', ...parts);
export const debug = (...parts) => log('debug', ...parts);
export const info = (...parts) => log('info', ...parts);
export const warn = (...parts) => log('warn', ...parts);
export const error = (...parts) => log('error', ...parts);

/** Writes to the log without the started check (the SDK's error reports). */
export function _hostLog(level, line) {
  try {
    host.log(level, line);
  } catch {
    // the log must never hide the error itself
  }
}
