// The component's host imports, as componentize-js provides them (built-in
// modules named after the WIT interfaces of `sluice:scorer@0.1.3`). The
// SDK's other modules reach the host only through this one.
//
// Outside a component (the SDK's unit tests) a module loader hook supplies
// these specifiers (test/hooks.mjs).
import * as log from 'sluice:scorer/log@0.1.3';
import * as onnx from 'sluice:scorer/onnx@0.1.3';
import * as batch from 'sluice:scorer/batch@0.1.3';

export { log, onnx, batch };
