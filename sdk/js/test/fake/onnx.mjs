import { host, ComponentError } from './host.mjs';

export class Model {
  constructor(name, spec) {
    this.name = name;
    this.spec = spec;
  }

  info() {
    return { name: this.name, inputs: this.spec.inputs, outputs: this.spec.outputs };
  }

  run(request) {
    host().requests.push(request);
    return this.spec.run(request);
  }

  runIntoResult(request) {
    host().requests.push(request);
    return this.spec.runIntoResult(request);
  }
}

export function load(name) {
  const spec = host().models[name];
  if (!spec) throw new ComponentError({ code: 'unknown-model', message: `the job grants no model \`${name}\`` });
  return new Model(name, spec);
}

export function granted() {
  return Object.keys(host().models);
}
