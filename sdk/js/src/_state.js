// Per-instance state shared by the SDK's modules. A component's module
// state lives as long as its instance, so whatever is set here in `init`
// is there in every `run`.
import { HostCallAtImportTime } from './_errors.js';

export const IMPORT_TIME =
  'host imports (onnx, batch, log) can only be called from init/run, not at import time ' +
  "(the module's top level runs while the scorer is built, where there is no host); move this call into init()";

const state = { started: false, config: null };

/** Whether `init` has begun in this instance (host imports work). */
export function started() {
  return state.started;
}

export function markStarted() {
  state.started = true;
}

export function requireStarted(what) {
  if (!state.started) throw new HostCallAtImportTime(`${what}: ${IMPORT_TIME}`);
}

export function setConfig(config) {
  state.config = config;
}

export function currentConfig() {
  return state.config;
}
