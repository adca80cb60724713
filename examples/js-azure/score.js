// Shows an Azure ML style scorer in JavaScript (a module exporting init() and run(miniBatch), no class) scoring tabular rows with the granted ONNX model in the host, run() returning a column table.
//
// The examples/tabular job as an Azure ML parallel job's entry script would
// be written: `init()` loads the model into a module variable, `run`
// returns one output row per input row. Differences from Azure: the
// mini-batch is a sluice MiniBatch (typed columns, not a DataFrame), and
// the model runs in the host, fed straight from the mini-batch's columns.
//
// Returned here: a column table (an object of column name -> column, one
// value per input row). `run` may also return an array of objects, one per
// row. An empty feature cell fails the mini-batch (plugins/tabular-classifier-js
// turns such rows into item errors instead).
import { Model, hostBatch, info } from 'sluice-sdk';

let model = null;
let features = null;

export function init() {
  model = Model.load('model');
  // Only the id column is copied into JavaScript; the features stay in the host.
  hostBatch.deliverColumns(['id']);
  info(`model ${model.info().name} loaded: inputs ${model.info().inputs.map((i) => i.name).join(', ')}`);
}

export function run(miniBatch) {
  const rows = miniBatch.requireRows();
  if (features === null) {
    features = hostBatch.columns().filter(([name, type]) => name !== 'id' && ['f32', 'f64', 's64'].includes(type)).map(([name]) => name);
  }
  const scored = model
    .request()
    .columns('input', features)
    .toColumn('label', 'prediction')
    .toColumn('probabilities', 'probability', 'max')
    .run();
  return {
    id: rows.get('id'),
    prediction: scored.column('prediction'),
    probability: scored.column('probability'),
    source_file: rows.sourceColumn('source_file'),
  };
}
