// Checks run on the scorer's sources before the (slow) componentize-js
// build: syntax, the scorer's form, imports that cannot work in the sandbox
// (Node.js built-ins, bare package names, native packages), and SDK host
// calls at module top level. Runs on the host only (never bundled).
//
// It also collects what the build stages: every module reachable from the
// entry by relative imports, with the places where `'sluice-sdk'` is
// imported (rewritten to the staged SDK; same line, so the line numbers in
// stacks stay the user's).
import { readFileSync, existsSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, resolve, relative, sep, extname } from 'node:path';
import oxc from 'oxc-parser';

export const SDK_SPECIFIER = 'sluice-sdk';
export const RAW_IMPORTS = new Set(['sluice:scorer/log@0.1.3', 'sluice:scorer/onnx@0.1.3', 'sluice:scorer/batch@0.1.3']);

const HOST_ONNX =
  "grant the model to the job as an input (type: mlflow_model or custom_model) and let the host run it, fed by the mini-batch's columns: " +
  "Model.load('model').request().columns('input', features).toColumn('label', 'prediction').run()";

/** Packages that cannot run inside the sandbox, and what to do instead. */
export const NATIVE = {
  'onnxruntime-node': `the host runs ONNX Runtime for the scorer: ${HOST_ONNX}`,
  'onnxruntime-web': `the host runs ONNX Runtime for the scorer: ${HOST_ONNX}`,
  'onnxruntime-common': `the host runs ONNX Runtime for the scorer: ${HOST_ONNX}`,
  '@tensorflow/tfjs': `convert the model to ONNX (tf2onnx, on your machine), then ${HOST_ONNX}`,
  '@tensorflow/tfjs-node': `convert the model to ONNX (tf2onnx, on your machine), then ${HOST_ONNX}`,
  'apache-arrow': "the host reads CSV / Parquet / JSON Lines with Arrow and hands run() typed columns (miniBatch.rows)",
  'parquetjs': "the host reads Parquet itself and hands run() typed columns (miniBatch.rows)",
  'danfojs': "the mini-batch already arrives as typed columns (miniBatch.rows.get('col').values)",
  'danfojs-node': "the mini-batch already arrives as typed columns (miniBatch.rows.get('col').values)",
  'sharp': 'decode images before the job, or use a pure-JavaScript decoder bundled into a local file',
  'canvas': 'use a pure-JavaScript library bundled into a local file',
};

const BUILTINS = new Set(builtinModules);

/** SDK functions that call the host (named imports and namespace members). */
const HOST_FUNCS = new Set(['log', 'trace', 'debug', 'info', 'warn', 'error', 'load', 'granted', 'deliverColumns', 'columns', 'nullRows']);

export const IMPORT_TIME = 'host imports (onnx, batch, log) can only be called from init/run, not at import time';

export function display(path) {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel || path;
}

function lineCol(source, offset) {
  let line = 1;
  let last = -1;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  }
  return { line, col: offset - last };
}

class Problem {
  constructor(file, line, col, message) {
    Object.assign(this, { file, line, col, message });
  }

  toString() {
    return `${this.file}:${this.line}${this.col ? `:${this.col}` : ''}: ${this.message}`;
  }
}

function walkTopLevel(node, visit) {
  // Everything that runs when the module is evaluated: not function bodies
  // or class members (they run later, from init/run).
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const n of node) walkTopLevel(n, visit);
    return;
  }
  switch (node.type) {
    case 'FunctionDeclaration':
    case 'FunctionExpression':
    case 'ArrowFunctionExpression':
    case 'ClassBody':
      return;
    default:
  }
  if (typeof node.type === 'string') visit(node);
  for (const k of Object.keys(node)) {
    if (k === 'type' || k === 'start' || k === 'end' || k === 'range' || k === 'loc') continue;
    const v = node[k];
    if (v && typeof v === 'object') walkTopLevel(v, visit);
  }
}

function dotted(node) {
  if (!node) return null;
  if (node.type === 'Identifier') return node.name;
  if ((node.type === 'MemberExpression' || node.type === 'StaticMemberExpression') && !node.computed) {
    const base = dotted(node.object);
    const prop = node.property && (node.property.name ?? node.property.value);
    return base === null || prop === undefined ? null : `${base}.${prop}`;
  }
  if (node.type === 'ChainExpression') return dotted(node.expression);
  return null;
}

/** Calls of the SDK's host functions that run when the module is evaluated (at build time). */
function topLevelHostCalls(program, sdkImports) {
  const namespaces = new Set(); // import * as sluice from 'sluice-sdk' / a raw import
  const funcs = new Set(); // import { info } from 'sluice-sdk'
  const models = new Set(); // import { Model }
  const batches = new Set(); // import { hostBatch }
  for (const imp of sdkImports) {
    for (const e of imp.entries) {
      const local = e.localName.value;
      const kind = e.importName.kind;
      if (kind === 'NamespaceObject') namespaces.add(local);
      else if (kind === 'Name') {
        const name = e.importName.name;
        if (name === 'Model') models.add(local);
        else if (name === 'hostBatch') batches.add(local);
        else if (HOST_FUNCS.has(name)) funcs.add(local);
      }
    }
  }
  const found = [];
  walkTopLevel(program.body, (node) => {
    if (node.type !== 'CallExpression') return;
    const name = dotted(node.callee);
    if (name === null) return;
    const parts = name.split('.');
    const last = parts[parts.length - 1];
    const host =
      (parts.length === 1 && funcs.has(name)) ||
      (parts.length === 2 && namespaces.has(parts[0]) && HOST_FUNCS.has(last)) ||
      (parts.length === 2 && models.has(parts[0]) && (last === 'load' || last === 'granted')) ||
      (parts.length === 2 && batches.has(parts[0]) && HOST_FUNCS.has(last)) ||
      (parts.length === 3 && namespaces.has(parts[0]) && parts[1] === 'Model' && (last === 'load' || last === 'granted')) ||
      (parts.length === 3 && namespaces.has(parts[0]) && parts[1] === 'hostBatch' && HOST_FUNCS.has(last));
    if (host) found.push({ offset: node.start, name });
  });
  return found;
}

function definesScorer(result) {
  for (const ex of result.module.staticExports) {
    for (const e of ex.entries) {
      const name = e.exportName && e.exportName.name;
      if (name === 'run' || e.exportName.kind === 'Default') return true;
    }
  }
  let found = false;
  const visit = (node) => {
    if (found || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach(visit);
    if (node.type === 'CallExpression') {
      const n = dotted(node.callee);
      if (n && n.split('.').pop() === 'exportScorer') {
        found = true;
        return;
      }
    }
    for (const k of Object.keys(node)) if (node[k] && typeof node[k] === 'object') visit(node[k]);
  };
  visit(result.program.body);
  return found;
}

/**
 * Checks `entry` and the local modules it imports. Returns `{problems,
 * files, root}`: `files` are `{abs, source, sdkImports: [{start, end}]}`
 * (the quoted specifiers to rewrite), `root` the folder holding them all.
 */
export function scan(entry) {
  const problems = [];
  const files = [];
  const seen = new Set();
  const todo = [resolve(entry)];
  let first = true;
  while (todo.length > 0) {
    const abs = todo.shift();
    if (seen.has(abs)) continue;
    seen.add(abs);
    const shown = display(abs);
    let source;
    try {
      source = readFileSync(abs, 'utf8');
    } catch (e) {
      problems.push(new Problem(shown, 0, 0, `cannot read: ${e.message}`));
      continue;
    }
    const ext = extname(abs);
    if (ext !== '.js' && ext !== '.mjs') {
      // Not a module we parse (a .json, say): staged as it is.
      files.push({ abs, source, sdkImports: [] });
      continue;
    }
    const result = oxc.parseSync(abs, source, { sourceType: 'module' });
    if (result.errors.length > 0) {
      for (const err of result.errors.slice(0, 5)) {
        const at = err.labels && err.labels.length > 0 ? err.labels[0].start : 0;
        const { line, col } = lineCol(source, at);
        const text = source.split('\n')[line - 1] ?? '';
        problems.push(new Problem(shown, line, col, `SyntaxError: ${err.message}\n    ${text}\n    ${' '.repeat(Math.max(col - 1, 0))}^`));
      }
      continue;
    }
    if (first && !definesScorer(result)) {
      problems.push(
        new Problem(
          shown,
          1,
          0,
          'defines no scorer: call exportScorer(MyScorer) with a Scorer subclass, export the class as default, ' +
            'or export init() and run(miniBatch) functions as in an Azure ML score.py',
        ),
      );
    }
    first = false;

    const requests = [];
    for (const imp of result.module.staticImports) requests.push({ req: imp.moduleRequest, imp });
    for (const ex of result.module.staticExports) {
      for (const e of ex.entries) if (e.moduleRequest) requests.push({ req: e.moduleRequest, imp: null });
    }
    for (const d of result.module.dynamicImports) {
      const text = source.slice(d.moduleRequest.start, d.moduleRequest.end);
      if (/^(['"]).*\1$/s.test(text)) requests.push({ req: { value: text.slice(1, -1), start: d.moduleRequest.start, end: d.moduleRequest.end }, imp: null });
    }
    const sdkImports = [];
    const hostImports = [];
    for (const { req, imp } of requests) {
      const spec = req.value;
      const { line, col } = lineCol(source, req.start);
      const problem = (msg) => problems.push(new Problem(shown, line, col, msg));
      if (spec === SDK_SPECIFIER) {
        sdkImports.push({ start: req.start, end: req.end });
        if (imp) hostImports.push(imp);
        continue;
      }
      if (spec.startsWith('sluice:')) {
        if (!RAW_IMPORTS.has(spec)) {
          problem(`\`import '${spec}'\`: the host provides ${[...RAW_IMPORTS].join(', ')} (or use the SDK: import ... from 'sluice-sdk')`);
        } else if (imp) hostImports.push(imp);
        continue;
      }
      if (spec.startsWith('./') || spec.startsWith('../') || spec.startsWith('/')) {
        const target = resolve(dirname(abs), spec);
        if (!existsSync(target) || !statSync(target).isFile()) {
          const hint = ['.js', '.mjs', '/index.js'].find((x) => existsSync(target + x));
          problem(
            hint
              ? `\`import '${spec}'\`: no such file; write '${spec}${hint}' (module paths need their extension)`
              : `\`import '${spec}'\`: no such file (${display(target)})`,
          );
          continue;
        }
        todo.push(target);
        continue;
      }
      const bare = spec.startsWith('node:') ? spec.slice(5) : spec;
      const pkg = bare.startsWith('@') ? bare.split('/').slice(0, 2).join('/') : bare.split('/')[0];
      if (spec.startsWith('node:') || BUILTINS.has(bare)) {
        problem(
          `\`import '${spec}'\`: Node.js built-in modules do not exist in the sandbox (a scorer runs in a SpiderMonkey engine ` +
            'with web APIs only: TextDecoder, URL, crypto.getRandomValues, console...). Files come in the mini-batch ' +
            '(miniBatch.files) or read-only mounts; there is no network, process or environment (config is init()\'s argument).',
        );
      } else if (NATIVE[pkg]) {
        problem(`\`import '${spec}'\`: ${pkg} needs native code or Node.js, and a scorer runs as WebAssembly, so it cannot be imported. Instead: ${NATIVE[pkg]}.`);
      } else {
        problem(
          `\`import '${spec}'\`: package imports are not resolved in a scorer (only 'sluice-sdk' and relative paths). ` +
            `A pure-JavaScript package can be bundled into one ES module file (esbuild --bundle --format=esm, rollup) next to ` +
            `your scorer and imported by relative path ('./vendor/${pkg.replace(/^@/, '').replace('/', '-')}.js'); packages that ` +
            'need Node.js APIs or native code cannot run in the sandbox.',
        );
      }
    }
    for (const call of topLevelHostCalls(result.program, hostImports)) {
      const { line, col } = lineCol(source, call.offset);
      problems.push(new Problem(shown, line, col, `\`${call.name}()\` at module top level: ${IMPORT_TIME}; move it into init()`));
    }
    files.push({ abs, source, sdkImports });
  }
  // The folder holding every staged module (normally the scorer's).
  let root = dirname(resolve(entry));
  for (const f of files) {
    while (!(f.abs.startsWith(root + sep) || f.abs === root)) root = dirname(root);
  }
  return { problems, files, root };
}
