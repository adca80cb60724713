// Shows tabular-classifier's scoring in JavaScript with no value per row crossing into the interpreter: features go from the host's copy of the mini-batch into the granted ONNX model, and the id, the model's outputs and each row's file go into the result in the host; rows with an empty feature become item errors.
//
// The same job as plugins/tabular-classifier (Rust), with the same output
// bytes. `task.config` keys (all optional):
//
// - `model`: the granted model's name (default: the only one granted);
// - `features`: comma-separated feature columns, in the model's order
//   (default: the model's inputs when it takes one input per feature, else
//   every numeric column except the id column, in input order);
// - `id_column` (default `id`);
// - `label_output`, `probability_output`: the model outputs to use
//   (default: `label` and `probabilities`, else the first integer and the
//   first float output).
import * as sluice from 'sluice-sdk';
import { BatchResult, ItemError, Model, OnnxError, UserError, hostBatch } from 'sluice-sdk';

class Classifier extends sluice.Scorer {
  init(config) {
    let name = config.get('model');
    if (name === undefined) {
      const granted = Model.granted();
      if (granted.length === 0) throw new UserError('no model granted: add an mlflow_model or custom_model input');
      if (granted.length > 1) throw new UserError(`several models granted (${granted.join(', ')}): set task.config.model`);
      name = granted[0];
    }
    this.model = Model.load(name);
    const info = this.model.info();
    const pick = (key, fallback, types) => {
      if (config.get(key) !== undefined) return config.get(key);
      if (info.output(fallback) !== undefined) return fallback;
      const o = info.outputs.find((o) => types.includes(o.elementType));
      if (o === undefined) throw new UserError(`model \`${name}\` has no \`${fallback}\` output: set task.config.${key}`);
      return o.name;
    };
    this.label = pick('label_output', 'label', ['s64', 's32']);
    this.probability = pick('probability_output', 'probabilities', ['f32', 'f64']);
    const features = config.get('features');
    this.features = features === undefined ? null : features.split(',').map((f) => f.trim()).filter((f) => f);
    this.idColumn = config.get('id_column', 'id');
    // Nothing per row crosses into the guest: no column, no row origins.
    // The id, the model's outputs and the source file are put into the
    // result by the host.
    hostBatch.deliverColumns([]);
    hostBatch.deliverRowOrigins(false);
    sluice.info(`tabular-classifier: model ${name}, outputs ${this.label} and ${this.probability}`);
  }

  run(miniBatch) {
    const rows = miniBatch.requireRows();
    const n = rows.length;
    let features;
    try {
      features = this.featureColumns(hostBatch.columns());
    } catch (why) {
      return Array.from({ length: n }, () => new ItemError(why.message));
    }
    if (!hostBatch.columns().some(([name]) => name === this.idColumn)) {
      throw new UserError(`no \`${this.idColumn}\` column (set task.config.id_column)`);
    }

    // Rows with a null feature or id cannot be scored: item errors.
    const check = [...features, this.idColumn];
    let errors = [];
    let good;
    if (hostBatch.nullRows(check).length === 0) {
      good = null; // every row
    } else {
      // Rare: find which columns are empty in which rows.
      const empty = Array.from({ length: n }, () => []);
      for (const c of check) for (const r of hostBatch.nullRows([c])) empty[r].push(c);
      good = [];
      empty.forEach((cols, r) => {
        if (cols.length > 0) errors.push(new ItemError(`empty value in ${cols.join(', ')}: this row cannot be scored`, r));
        else good.push(r);
      });
      if (good.length === 0) return BatchResult.fromColumns([], [], errors);
    }

    // The result's columns, all added by the host in this order: id,
    // prediction, probability, source_file.
    hostBatch.addResultColumn(this.idColumn, { column: this.idColumn }, good ?? undefined);
    const request = this.model.request();
    const inputs = this.model.info().inputs;
    if (inputs.length === 1) request.columns(inputs[0].name, features, good);
    else for (const f of features) request.columns(f, [f], good);
    try {
      request.toColumn(this.label, 'prediction').toColumn(this.probability, 'probability', 'max').runIntoResult();
    } catch (e) {
      // A result without rows drops the id column added above.
      if (!(e instanceof OnnxError)) throw e;
      const all = good ?? Array.from({ length: n }, (_, i) => i);
      errors = errors.concat(all.map((r) => new ItemError(`the model could not score this row: ${e.message}`, r)));
      errors.sort((a, b) => a.item - b.item);
      return BatchResult.fromColumns([], [], errors);
    }
    hostBatch.addResultColumn('source_file', 'source_file', good ?? undefined);
    return BatchResult.fromColumns(good ?? Array.from({ length: n }, (_, i) => i), [], errors);
  }

  /** The feature columns, checked against the mini-batch's columns. */
  featureColumns(columns) {
    const inputs = this.model.info().inputs;
    let features;
    if (this.features !== null) features = this.features;
    else if (inputs.length > 1) features = inputs.map((i) => i.name);
    else {
      features = columns
        .filter(([name, type]) => name !== this.idColumn && ['f32', 'f64', 's64', 'bool'].includes(type))
        .map(([name]) => name);
    }
    const have = new Set(columns.map(([name]) => name));
    const missing = features.filter((f) => !have.has(f));
    if (missing.length > 0) throw new Error(`missing feature columns: ${missing.join(', ')}`);
    const width = inputs.length === 1 ? inputs[0].width() : undefined;
    if (width !== undefined && width !== features.length) {
      throw new Error(
        `the model's input \`${inputs[0].name}\` takes ${width} features but ${features.length} feature columns ` +
          `were found (${features.join(', ')}); set task.config.features`,
      );
    }
    if (this.features === null) {
      sluice.info(`tabular-classifier: ${features.length} feature columns: ${features.join(', ')}`);
      this.features = features;
    }
    return features;
  }
}

sluice.exportScorer(Classifier);
