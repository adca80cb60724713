# Shows tabular-classifier's scoring in Python with no value per row crossing into Python: features go from the host's copy of the mini-batch into the granted ONNX model, and the id, the model's outputs and each row's file go into the result in the host; rows with an empty feature become item errors.
"""The same job as plugins/tabular-classifier (Rust), with the same output
bytes. `task.config` keys (all optional):

- `model`: the granted model's name (default: the only one granted);
- `features`: comma-separated feature columns, in the model's order
  (default: the model's inputs when it takes one input per feature, else
  every numeric column except the id column, in input order);
- `id_column` (default `id`);
- `label_output`, `probability_output`: the model outputs to use (default:
  `label` and `probabilities`, else the first integer and the first float
  output).
"""

import sluice_sdk as sluice
from sluice_sdk import ItemError, UserError, host_batch


class Classifier(sluice.Scorer):
    def init(self, config):
        name = config.get("model")
        if name is None:
            granted = sluice.Model.granted()
            if not granted:
                raise UserError("no model granted: add an mlflow_model or custom_model input")
            if len(granted) > 1:
                raise UserError(f"several models granted ({', '.join(granted)}): set task.config.model")
            name = granted[0]
        self.model = sluice.Model.load(name)
        info = self.model.info()

        def pick(key, default, types):
            if config.get(key) is not None:
                return config.get(key)
            if info.output(default) is not None:
                return default
            for o in info.outputs:
                if o.element_type in types:
                    return o.name
            raise UserError(f"model `{name}` has no `{default}` output: set task.config.{key}")

        self.label = pick("label_output", "label", ("s64", "s32"))
        self.probability = pick("probability_output", "probabilities", ("f32", "f64"))
        features = config.get("features")
        self.features = None if features is None else [f.strip() for f in features.split(",") if f.strip()]
        self.id_column = config.get("id_column", "id")
        # Nothing per row crosses into Python: no column, no row origins.
        # The id, the model's outputs and the source file are put into the
        # result by the host (a value per row costs Python ~0.1-0.3 us).
        host_batch.deliver_columns([])
        host_batch.deliver_row_origins(False)
        sluice.info(f"tabular-classifier: model {name}, outputs {self.label} and {self.probability}")

    def run(self, mini_batch):
        n = len(mini_batch.require_rows())
        columns = host_batch.columns()
        try:
            features = self.feature_columns(columns)
        except ValueError as why:
            return [ItemError(str(why))] * n
        if self.id_column not in {name for name, _ in columns}:
            raise UserError(f"no `{self.id_column}` column (set task.config.id_column)")

        # Rows with a null feature or id cannot be scored: item errors.
        check = [*features, self.id_column]
        errors = []
        if not host_batch.null_rows(check):
            good = range(n)
        else:
            # Rare: find which columns are empty in which rows.
            empty = [[] for _ in range(n)]
            for c in check:
                for r in host_batch.null_rows([c]):
                    empty[r].append(c)
            good = []
            for r, cols in enumerate(empty):
                if cols:
                    errors.append(ItemError(f"empty value in {', '.join(cols)}: this row cannot be scored", item=r))
                else:
                    good.append(r)
        if not good:
            return sluice.BatchResult.from_columns([], [], errors)

        selection = None if len(good) == n else good
        # The result's columns, all added by the host in this order: id,
        # prediction, probability, source_file.
        host_batch.add_result_column(self.id_column, {"column": self.id_column}, selection)
        request = self.model.request()
        inputs = self.model.info().inputs
        if len(inputs) == 1:
            request.columns(inputs[0].name, features, rows=selection)
        else:
            for f in features:
                request.columns(f, [f], rows=selection)
        try:
            (
                request.to_column(self.label, "prediction")
                .to_column(self.probability, "probability", "max")
                .run_into_result()
            )
        except sluice.OnnxError as e:
            # A result without rows drops the id column added above.
            errors += [ItemError(f"the model could not score this row: {e}", item=r) for r in good]
            errors.sort(key=lambda e: e.item)
            return sluice.BatchResult.from_columns([], [], errors)
        host_batch.add_result_column("source_file", "source_file", selection)
        return sluice.BatchResult.from_columns(good, [], errors)

    def feature_columns(self, columns):
        """The feature columns, checked against the mini-batch's columns."""
        inputs = self.model.info().inputs
        if self.features is not None:
            features = self.features
        elif len(inputs) > 1:
            features = [i.name for i in inputs]
        else:
            features = [
                name for name, ty in columns if name != self.id_column and ty in ("f32", "f64", "s64", "bool")
            ]
        have = {name for name, _ in columns}
        missing = [f for f in features if f not in have]
        if missing:
            raise ValueError(f"missing feature columns: {', '.join(missing)}")
        width = inputs[0].width() if len(inputs) == 1 else None
        if width is not None and width != len(features):
            raise ValueError(
                f"the model's input `{inputs[0].name}` takes {width} features but {len(features)} feature columns "
                f"were found ({', '.join(features)}); set task.config.features"
            )
        if self.features is None:
            sluice.info(f"tabular-classifier: {len(features)} feature columns: {', '.join(features)}")
            self.features = features
        return features


sluice.export(Classifier)
