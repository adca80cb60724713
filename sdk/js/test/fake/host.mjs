// The fake host the unit tests drive: what each import returns, and what
// the scorer sent (log lines, requests).
export function host() {
  if (!globalThis.sluiceFakeHost) reset();
  return globalThis.sluiceFakeHost;
}

/** An error as componentize-js's bindings throw it for a WIT `err`. */
export class ComponentError extends Error {
  constructor(payload) {
    super(String(payload));
    Object.defineProperty(this, 'payload', { value: payload, enumerable: true });
  }
}

export function reset() {
  globalThis.sluiceFakeHost = {
    logs: [],
    delivered: null,
    columns: [],
    nullRows: () => new Uint32Array(0),
    models: {},
    requests: [],
  };
  return globalThis.sluiceFakeHost;
}
