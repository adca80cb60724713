# Shows an Azure ML style score.py (module-level init() and run(mini_batch), no class) scoring tabular rows with the granted ONNX model in the host, run() returning a column table.
"""The examples/tabular job as an Azure ML parallel job's entry script
would be written: `init()` loads the model into a global, `run` returns one
output row per input row. Differences from Azure: the mini-batch is a
`sluice_sdk.MiniBatch` (typed columns, not a pandas DataFrame), and the
model runs in the host, fed straight from the mini-batch's columns.

Returned here: a column table (a dict of column name -> column, one value
per input row). `run` may also return a list of dicts, one per row. An
empty feature cell fails the mini-batch (plugins/tabular-classifier-py turns
such rows into item errors instead).
"""

import logging

import sluice_sdk
from sluice_sdk import host_batch

model = None
features = None


def init():
    global model
    model = sluice_sdk.Model.load("model")
    # Only the id column is copied into Python; the features stay in the host.
    host_batch.deliver_columns(["id"])
    logging.info("model %s loaded: inputs %s", model.info().name, [i.name for i in model.info().inputs])


def run(mini_batch):
    global features
    rows = mini_batch.require_rows()
    if features is None:
        features = [name for name, ty in host_batch.columns() if name != "id" and ty in ("f32", "f64", "s64")]
    scored = (
        model.request()
        .columns("input", features)
        .to_column("label", "prediction")
        .to_column("probabilities", "probability", "max")
        .run()
    )
    return {
        "id": rows["id"],
        "prediction": scored.column("prediction"),
        "probability": scored.column("probability"),
        "source_file": rows.source_column("source_file"),
    }
