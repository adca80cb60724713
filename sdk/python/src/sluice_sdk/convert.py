"""`python -m sluice_sdk convert-model MODEL_DIR` (or `sluice-py convert-model ...`):
an MLflow model folder with an `sklearn` (or `xgboost` / `lightgbm`) flavor
gets an `onnx` flavor that sluice can grant to a job. Runs on the host only,
with the tools of sdk/python/requirements-convert.txt.

1. reads `MLmodel` and loads the original model the way MLflow saved it
   (`model.pkl`, pickle or cloudpickle; xgboost's `load_model`; lightgbm's
   pickle or Booster file);
2. takes the ONNX input from the MLmodel `signature`: one numeric tensor
   `[-1, n]`, or n numeric columns (stacked in signature order into one
   `[-1, n]` tensor, as sluice's host does from the mini-batch's columns);
   anything else is refused, in words;
3. converts with skl2onnx (onnxmltools' converters for XGBoost and LightGBM),
   ZipMap off: a classifier gets a `label` output (int64 `[N]`) and a
   `probabilities` output (float `[N, classes]`), a regressor a `prediction`
   output (float `[N, 1]`): the tensors sluice's host reads;
4. checks the converted model against the original on a sample (`--sample
   FILE.csv`, else the MLmodel's input example and rows synthesised from the
   signature and the training range the model knows): the same labels, and
   probabilities / predictions within `--tolerance`; on any difference it
   writes nothing and lists the rows that differ;
5. writes `model.onnx` into the folder and adds the `onnx` flavor to MLmodel
   as `mlflow.onnx` writes it (`onnx_version`, `data`, `providers`, `code`,
   `onnx_session_options`), keeping the other flavors.

This module imports the heavy tools only inside functions, so `build` works
without them.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any

EXIT_REFUSED = 1

#: Signature column types stacked into the model's float input.
NUMERIC_COLUMNS = {"double", "float", "long", "integer", "boolean"}
#: Tensor dtypes of a tensor signature that the converted model accepts (as float).
NUMERIC_TENSORS = {
    "float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool",
}  # fmt: skip
#: The flavors this command converts, in the order it prefers them.
FLAVORS = ("sklearn", "xgboost", "lightgbm")
#: The opsets written (ONNX Runtime 1.32, the host's, runs them; so do much older ones).
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}

INSTALL_HINT = (
    "the model conversion tools are not installed: run scripts/install-python-sdk.sh "
    "(it installs sdk/python/requirements-convert.txt into .sluice/py-sdk/venv) or "
    "`pip install -r sdk/python/requirements-convert.txt`"
)


class ConvertError(Exception):
    """Why the model was not converted (or not written), for the user."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _tools() -> None:
    missing = []
    for module in ("numpy", "yaml", "onnx", "onnxruntime", "skl2onnx", "sklearn", "cloudpickle"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConvertError(f"cannot import {', '.join(missing)}: {INSTALL_HINT}")


# --------------------------------------------------------------------------- MLmodel


def read_mlmodel(folder: str) -> dict[str, Any]:
    import yaml

    path = os.path.join(folder, "MLmodel")
    if not os.path.isdir(folder):
        raise ConvertError(f"{folder} is not a folder (give the MLflow model folder, the one holding MLmodel)")
    if not os.path.isfile(path):
        raise ConvertError(f"{folder} is not an MLflow model folder: it has no MLmodel file")
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConvertError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise ConvertError(f"{path} has no `flavors` mapping")
    return doc


def _inside(folder: str, relative: Any, what: str) -> str:
    if not isinstance(relative, str) or not relative:
        raise ConvertError(f"MLmodel's {what} names no file")
    if os.path.isabs(relative) or ".." in relative.replace("\\", "/").split("/"):
        raise ConvertError(f"MLmodel's {what} `{relative}` must be a path inside the model folder")
    path = os.path.join(folder, relative)
    if not os.path.isfile(path):
        raise ConvertError(f"MLmodel's {what} names `{relative}`, which is not in the folder")
    return path


def _unpickle(path: str) -> Any:
    import cloudpickle  # noqa: F401  (cloudpickle-written models may need it imported)
    import pickle

    with open(path, "rb") as f:
        try:
            return pickle.load(f)
        except ModuleNotFoundError as e:
            raise ConvertError(
                f"cannot load {os.path.basename(path)}: the model needs the module `{e.name}`, which is not "
                "installed here (install the package the model was trained with)"
            ) from None
        except Exception as e:
            raise ConvertError(f"cannot load {os.path.basename(path)}: {type(e).__name__}: {e}") from None


def _import_class(qualified: str) -> Any:
    module, _, name = qualified.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConvertError(f"cannot import the model class `{qualified}`: {e}") from None


def load_original(folder: str, mlmodel: dict[str, Any]) -> tuple[str, Any]:
    """(flavor, model) of the first flavor this command converts."""
    flavors = mlmodel["flavors"]
    flavor = next((f for f in FLAVORS if f in flavors), None)
    if flavor is None:
        raise ConvertError(
            f"MLmodel has no flavor this command converts (flavors: {', '.join(map(str, flavors)) or 'none'}; "
            f"converted: {', '.join(FLAVORS)})"
        )
    conf = flavors[flavor] or {}
    if conf.get("code"):
        sys.path.insert(0, os.path.join(folder, str(conf["code"])))
    if flavor == "sklearn":
        fmt = conf.get("serialization_format", "cloudpickle")
        if fmt not in ("pickle", "cloudpickle"):
            raise ConvertError(
                f"the sklearn flavor's serialization_format is `{fmt}`; this command reads `pickle` and `cloudpickle` "
                "(log the model with serialization_format='cloudpickle')"
            )
        return flavor, _unpickle(_inside(folder, conf.get("pickled_model"), "sklearn `pickled_model`"))
    if flavor == "xgboost":
        path = _inside(folder, conf.get("data"), "xgboost `data`")
        qualified = str(conf.get("model_class", "xgboost.core.Booster"))
        cls = _import_class(qualified)
        if qualified == "xgboost.core.Booster":
            raise ConvertError(
                "the xgboost flavor holds a bare Booster (xgboost.train): its classes and objective are not known "
                "here; log the scikit-learn API model (XGBClassifier / XGBRegressor) instead"
            )
        model = cls()
        model.load_model(path)
        return flavor, model
    path = _inside(folder, conf.get("data"), "lightgbm `data`")
    qualified = str(conf.get("model_class", "lightgbm.basic.Booster"))
    if qualified == "lightgbm.basic.Booster":
        raise ConvertError(
            "the lightgbm flavor holds a bare Booster (lightgbm.train): its classes are not known here; log the "
            "scikit-learn API model (LGBMClassifier / LGBMRegressor) instead"
        )
    return flavor, _unpickle(path)


# --------------------------------------------------------------------------- signature


@dataclass
class InputSpec:
    """The converted model's single input: `[-1, n]` floats."""

    n: int
    #: Feature (column) names in order, if the signature or the model names them.
    names: list[str] | None
    #: Per feature: "float", "int" or "bool" (how samples are synthesised).
    kinds: list[str]
    #: Where the spec came from, for the messages.
    source: str
    notes: list[str] = field(default_factory=list)


def _n_features(model: Any) -> int | None:
    n = getattr(model, "n_features_in_", None)
    if n is None and hasattr(model, "steps"):
        n = getattr(model.steps[0][1], "n_features_in_", None)
    return int(n) if n is not None else None


def input_spec(mlmodel: dict[str, Any], model: Any) -> InputSpec:
    """The ONNX input from the MLmodel signature, or refused with the reason."""
    n_model = _n_features(model)
    names_model = getattr(model, "feature_names_in_", None)
    names_model = [str(x) for x in names_model] if names_model is not None else None
    signature = mlmodel.get("signature") or {}
    raw = signature.get("inputs") if isinstance(signature, dict) else None
    if raw is None:
        if n_model is None:
            raise ConvertError(
                "MLmodel has no signature and the model does not say how many features it takes: log the model "
                "with a signature (mlflow.models.infer_signature(X_train))"
            )
        spec = InputSpec(n_model, names_model, ["float"] * n_model, "the model (no signature in MLmodel)")
        spec.notes.append(f"MLmodel has no signature: took {n_model} float features from the model itself")
        return spec
    try:
        inputs = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as e:
        raise ConvertError(f"MLmodel's signature inputs are not valid JSON: {e}") from None
    if not isinstance(inputs, list) or not inputs:
        raise ConvertError("MLmodel's signature has no inputs")
    types = [str(i.get("type")) for i in inputs]
    if "tensor" in types:
        if len(inputs) != 1:
            raise ConvertError(
                f"refused signature: {len(inputs)} inputs ({_describe(inputs)}); this command converts one tensor "
                "input [-1, n_features] or numeric columns"
            )
        spec = inputs[0].get("tensor-spec") or {}
        dtype, shape = str(spec.get("dtype")), spec.get("shape")
        if dtype not in NUMERIC_TENSORS:
            raise ConvertError(
                f"refused signature: the tensor input is {dtype}; only a numeric tensor (float, int, bool) can be "
                "fed from the mini-batch's columns"
            )
        if not isinstance(shape, list) or len(shape) != 2 or shape[0] != -1 or not isinstance(shape[1], int) or shape[1] < 1:
            raise ConvertError(
                f"refused signature: the tensor input has shape {shape}; this command converts tabular models, "
                "whose input is [-1, n_features] (one row per item)"
            )
        n = shape[1]
        kind = "bool" if dtype == "bool" else ("float" if dtype.startswith("float") else "int")
        result = InputSpec(n, names_model, [kind] * n, f"the signature's tensor input {dtype} [-1, {n}]")
    else:
        bad = [i for i in inputs if str(i.get("type")) not in NUMERIC_COLUMNS]
        if bad:
            raise ConvertError(
                f"refused signature: column(s) {_describe(bad)} are not numeric; this command converts models whose "
                "inputs are all numeric columns (double, float, long, integer, boolean), stacked into one float "
                "tensor. Encode categorical and text columns into numbers before the model, or convert the model "
                "yourself with skl2onnx"
            )
        names = [str(i.get("name", f"f{k}")) for k, i in enumerate(inputs)]
        kinds = [{"double": "float", "float": "float", "boolean": "bool"}.get(str(i["type"]), "int") for i in inputs]
        result = InputSpec(len(names), names, kinds, f"the signature's {len(names)} numeric columns")
        if names_model is not None and names_model != names:
            raise ConvertError(
                f"refused signature: its columns ({', '.join(names)}) are not the features the model was trained "
                f"on, in order ({', '.join(names_model)})"
            )
    if n_model is not None and n_model != result.n:
        raise ConvertError(
            f"refused signature: {result.source} gives {result.n} features but the model takes {n_model}"
        )
    return result


def _describe(inputs: list[dict[str, Any]]) -> str:
    out = []
    for i in inputs:
        name = i.get("name")
        ty = i.get("type")
        if ty == "tensor":
            spec = i.get("tensor-spec") or {}
            ty = f"tensor {spec.get('dtype')} {spec.get('shape')}"
        out.append(f"`{name}` ({ty})" if name else f"({ty})")
    return ", ".join(out)


# --------------------------------------------------------------------------- conversion


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(model))


def _register_boosters() -> None:
    """Lets skl2onnx convert XGBoost and LightGBM models (alone or in a Pipeline)
    with onnxmltools' converters, where those libraries are installed."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    opts = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        pass
    else:
        update_registered_converter(
            XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes, convert_xgboost,
            options=opts,
        )  # fmt: skip
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        pass
    else:
        update_registered_converter(
            LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes, convert_lightgbm,
            options=opts,
        )  # fmt: skip
        update_registered_converter(
            LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert_lightgbm,
            options={"split": None},
        )  # fmt: skip


def _classes(model: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    if classes is None and hasattr(model, "steps"):
        classes = getattr(model.steps[-1][1], "classes_", None)
    return None if classes is None else list(classes)


def to_onnx(model: Any, spec: InputSpec, dtype: str, label: str, probabilities: str, prediction: str) -> Any:
    """The ONNX model (an onnx.ModelProto): input `input` [None, n], outputs renamed."""
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    classifier = _is_classifier(model)
    if classifier:
        classes = _classes(model)
        if classes is not None and not all(isinstance(c, (int, np.integer, bool, np.bool_)) for c in classes):
            if all(isinstance(c, (float, np.floating)) and float(c).is_integer() for c in classes):
                pass  # 0.0 / 1.0 labels: skl2onnx writes them as int64
            else:
                raise ConvertError(
                    f"the model's classes are {[_plain(c) for c in classes[:6]]!r}{'...' if len(classes) > 6 else ''}: sluice reads "
                    "numeric tensors only (no string labels). Train on integer-encoded labels (e.g. "
                    "sklearn.preprocessing.LabelEncoder) and map them back after scoring"
                )
    elif not hasattr(model, "predict"):
        raise ConvertError(f"{type(model).__name__} has no predict(): not a classifier or regressor")
    _register_boosters()
    tensor = FloatTensorType if dtype == "float32" else DoubleTensorType
    options = {"zipmap": False} if classifier else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        def convert(options: Any) -> Any:
            return convert_sklearn(
                model,
                "sluice-converted " + type(model).__name__,
                initial_types=[("input", tensor([None, spec.n]))],
                options=options,
                target_opset=dict(TARGET_OPSET),
            )

        try:
            try:
                onx = convert(options)
            except NameError as e:
                # Classifiers without probabilities (LinearSVC...) have no ZipMap to turn off.
                if "Option 'zipmap'" not in str(e):
                    raise
                onx = convert(None)
        except Exception as e:
            raise ConvertError(f"skl2onnx cannot convert {_model_name(model)}: {type(e).__name__}: {e}") from None
    outputs = [o.name for o in onx.graph.output]
    if classifier:
        if len(outputs) != 2:
            raise ConvertError(f"the converted classifier has outputs {outputs}, not a label and probabilities")
        _rename_outputs(onx, {outputs[0]: label, outputs[1]: probabilities})
    else:
        if len(outputs) != 1:
            raise ConvertError(f"the converted regressor has outputs {outputs}, not one prediction")
        _rename_outputs(onx, {outputs[0]: prediction})
    return onx


def _model_name(model: Any) -> str:
    if hasattr(model, "steps"):
        return "Pipeline(" + ", ".join(type(s).__name__ for _, s in model.steps) + ")"
    return type(model).__name__


def _rename_outputs(onx: Any, names: dict[str, str]) -> None:
    names = {old: new for old, new in names.items() if old != new}
    if not names:
        return
    taken = {v for n in onx.graph.node for v in (*n.input, *n.output)} | {i.name for i in onx.graph.input}
    for old, new in names.items():
        if new in taken and new not in names:
            raise ConvertError(f"cannot name an output `{new}`: the converted graph already uses that name")
    for node in onx.graph.node:
        node.output[:] = [names.get(o, o) for o in node.output]
        node.input[:] = [names.get(i, i) for i in node.input]
    for o in onx.graph.output:
        o.name = names.get(o.name, o.name)


# --------------------------------------------------------------------------- sample


def _float(text: str) -> float | None:
    t = text.strip()
    if t == "":
        return None
    if t.lower() in ("true", "false"):
        return 1.0 if t.lower() == "true" else 0.0
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def read_sample(path: str, spec: InputSpec) -> tuple[Any, list[int]]:
    """(rows [m, n] float64, their line numbers) from a CSV sample. The feature
    columns are the spec's names if the header has them all, else every
    column when there are exactly n. Rows with an empty value are skipped
    (sluice makes them item errors)."""
    import numpy as np

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ConvertError(f"--sample {path} is empty")
    header = rows[0]
    has_header = any(_float(h) is None for h in header if h.strip())
    body = rows[1:] if has_header else rows
    if has_header and spec.names is not None and all(n in header for n in spec.names):
        cols = [header.index(n) for n in spec.names]
    elif len(header) == spec.n:
        cols = list(range(spec.n))
    elif has_header and spec.names is None and "id" in header and len(header) == spec.n + 1:
        cols = [k for k, h in enumerate(header) if h != "id"]
    else:
        want = f"the columns {', '.join(spec.names)}" if spec.names else f"{spec.n} feature columns"
        raise ConvertError(
            f"--sample {path}: cannot find the model's features in its {len(header)} columns (wanted {want}"
            f"{'' if spec.names else ', or those plus an `id` column'})"
        )
    data, lines, skipped = [], [], 0
    for k, row in enumerate(body):
        values = [_float(row[c]) if c < len(row) else None for c in cols]
        if any(v is None for v in values):
            skipped += 1
            continue
        data.append(values)
        lines.append(k + (2 if has_header else 1))
    if skipped:
        spec.notes.append(f"--sample: skipped {skipped} row(s) with an empty, non-numeric or non-finite feature")
    if not data:
        raise ConvertError(f"--sample {path} has no row with every feature filled in")
    return np.asarray(data, dtype=np.float64), lines


def _input_example(folder: str, mlmodel: dict[str, Any], spec: InputSpec) -> Any:
    """The rows of MLflow's saved input example (input_example.json), if readable."""
    import numpy as np

    info = mlmodel.get("saved_input_example_info")
    if not isinstance(info, dict) or not info.get("artifact_path"):
        return None
    path = os.path.join(folder, str(info["artifact_path"]))
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if isinstance(doc, dict) and "data" in doc:  # pandas split orient
            columns = doc.get("columns")
            data = np.asarray(doc["data"], dtype=np.float64)
            if columns is not None and spec.names is not None and all(n in columns for n in spec.names):
                data = data[:, [columns.index(n) for n in spec.names]]
        else:  # ndarray: {"inputs": [...]} or a bare list
            data = np.asarray(doc.get("inputs", doc) if isinstance(doc, dict) else doc, dtype=np.float64)
        data = data.reshape(-1, spec.n)
        return data[np.isfinite(data).all(axis=1)]
    except Exception:  # noqa: BLE001 - an example we cannot read is only left out
        spec.notes.append(f"the saved input example ({info['artifact_path']}) could not be read: not used")
        return None


def _ranges(model: Any, n: int) -> tuple[Any, Any, str] | None:
    """(low, high, where from) of each input feature, from what the fitted
    model remembers of its training data: a scaler's statistics at the start
    of a pipeline, or the split thresholds of a tree ensemble fed directly."""
    import numpy as np

    first = model.steps[0][1] if hasattr(model, "steps") else model
    if hasattr(first, "data_min_") and hasattr(first, "data_max_"):
        return np.asarray(first.data_min_, float), np.asarray(first.data_max_, float), "its MinMaxScaler"
    if getattr(first, "mean_", None) is not None and getattr(first, "scale_", None) is not None:
        mean, scale = np.asarray(first.mean_, float), np.asarray(first.scale_, float)
        return mean - 3 * scale, mean + 3 * scale, "its StandardScaler (mean +- 3 sd)"
    if getattr(first, "center_", None) is not None and getattr(first, "scale_", None) is not None:
        center, scale = np.asarray(first.center_, float), np.asarray(first.scale_, float)
        return center - 3 * scale, center + 3 * scale, "its RobustScaler"
    trees = []
    if hasattr(first, "tree_"):
        trees = [first.tree_]
    elif hasattr(first, "estimators_"):
        for e in np.ravel(np.asarray(first.estimators_, dtype=object)):
            if hasattr(e, "tree_"):
                trees.append(e.tree_)
    if trees:
        low, high = np.full(n, np.inf), np.full(n, -np.inf)
        for t in trees:
            split = t.feature >= 0
            for f, thr in zip(t.feature[split], t.threshold[split]):
                low[f], high[f] = min(low[f], thr), max(high[f], thr)
        if np.isfinite(low).any():
            unused = ~np.isfinite(low)
            low[unused], high[unused] = 0.0, 1.0
            return low, high, "its trees' split thresholds"
    return None


def synthesise(model: Any, spec: InputSpec, example: Any, rows: int, seed: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    known = _ranges(model, spec.n)
    if example is not None and len(example):
        low, high = example.min(axis=0), example.max(axis=0)
        if known is not None:
            low, high = np.minimum(low, known[0]), np.maximum(high, known[1])
        where = "the saved input example" + (f" and {known[2]}" if known else "")
    elif known is not None:
        low, high, where = known
    else:
        low, high, where = np.full(spec.n, -3.0), np.full(spec.n, 3.0), None
        spec.notes.append(
            "the model does not say what range its features have: sampled [-3, 3] per feature; give --sample "
            "FILE.csv with real rows for a meaningful check"
        )
    span = np.where(high > low, high - low, np.maximum(np.abs(low), 1.0))
    low, high = low - 0.1 * span, high + 0.1 * span
    data = rng.uniform(low, high, size=(rows, spec.n))
    for j, kind in enumerate(spec.kinds):
        if kind == "int":
            data[:, j] = np.round(data[:, j])
        elif kind == "bool":
            data[:, j] = rng.integers(0, 2, size=rows)
    if where:
        spec.notes.append(f"sampled {rows} rows uniformly over the feature ranges from {where} (+10%)")
    if example is not None and len(example):
        data = np.vstack([example, data])
    return data


# --------------------------------------------------------------------------- check


@dataclass
class Difference:
    row: int
    what: str


def compare(
    model: Any, onx: Any, x: Any, dtype: str, tolerance: float, label: str, probabilities: str, prediction: str
) -> tuple[list[Difference], str]:
    """Rows where the ONNX model (fed `x` as sluice feeds it, cast to `dtype`)
    disagrees with the original (fed `x` as float64), and a summary."""
    import numpy as np
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ConvertError(f"the converted model does not load in ONNX Runtime {ort.__version__}: {e}") from None
    feed = {"input": x.astype(np.float32 if dtype == "float32" else np.float64)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "X does not have valid feature names"
        try:
            if _is_classifier(model):
                want_label = np.asarray(model.predict(x))
                want_proba = np.asarray(model.predict_proba(x)) if hasattr(model, "predict_proba") else None
            else:
                want_pred = np.asarray(model.predict(x), dtype=np.float64).reshape(len(x), -1)
        except Exception as e:
            raise ConvertError(f"the original model cannot predict the sample: {type(e).__name__}: {e}") from None
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    diffs: list[Difference] = []
    if _is_classifier(model):
        got_label, got_proba = np.asarray(got[label]).ravel(), np.asarray(got[probabilities], dtype=np.float64)
        worst = 0.0
        for r in range(len(x)):
            why = []
            if got_label[r] != want_label[r]:
                why.append(f"label {_plain(want_label[r])!r} (original) vs {_plain(got_label[r])!r} (ONNX)")
            if want_proba is not None:
                d = float(np.max(np.abs(got_proba[r] - want_proba[r])))
                worst = max(worst, d)
                if not d <= tolerance:
                    why.append(
                        f"probabilities {np.round(want_proba[r], 6).tolist()} vs {np.round(got_proba[r], 6).tolist()} "
                        f"(differ by {d:.3g} > {tolerance:g})"
                    )
            if why:
                diffs.append(Difference(r, "; ".join(why)))
        summary = f"labels equal on {len(x) - sum('label' in d.what for d in diffs)} of {len(x)} rows"
        if want_proba is not None:
            summary += f", probabilities within {worst:.2g} (tolerance {tolerance:g})"
        else:
            summary += (
                f"; {_model_name(model)} has no predict_proba, so only labels were checked and the "
                f"`{probabilities}` output holds its decision scores, not probabilities"
            )
    else:
        got_pred = np.asarray(got[prediction], dtype=np.float64).reshape(len(x), -1)
        err = np.max(np.abs(got_pred - want_pred) / np.maximum(1.0, np.abs(want_pred)), axis=1)
        for r in np.nonzero(~(err <= tolerance))[0]:
            diffs.append(
                Difference(int(r), f"prediction {want_pred[r].tolist()} (original) vs {got_pred[r].tolist()} (ONNX)")
            )
        summary = f"predictions within {float(np.max(err)) if len(err) else 0.0:.2g} (relative, tolerance {tolerance:g})"
    return diffs, summary


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


# --------------------------------------------------------------------------- writing


def _atomic_write(path: str, data: bytes) -> None:
    """Writes `path` whole or not at all (a temporary file renamed over it),
    with the mode the file had, else the usual 0666 less the umask."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def mlmodel_with_onnx(mlmodel: dict[str, Any], onnx_file: str, flavor: str, spec: InputSpec, summary: str) -> str:
    """MLmodel's text with the `onnx` flavor added the way mlflow.onnx.save_model
    writes it (keys sorted, as MLflow's Model.to_yaml writes them)."""
    import onnx
    import yaml

    doc = dict(mlmodel)
    flavors = dict(doc["flavors"])
    flavors["onnx"] = {
        "code": None,
        "data": onnx_file,
        "onnx_session_options": None,
        "onnx_version": onnx.__version__,
        "providers": ["CPUExecutionProvider"],
    }
    doc["flavors"] = flavors
    metadata = dict(doc.get("metadata") or {})
    metadata["sluice_convert_model"] = {
        "from_flavor": flavor,
        "input": f"input: float [-1, {spec.n}]",
        **({"features": list(spec.names)} if spec.names else {}),
        "check": summary,
    }
    doc["metadata"] = metadata
    return yaml.safe_dump(doc, default_flow_style=False)


# --------------------------------------------------------------------------- command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="MODEL_DIR", help="the MLflow model folder (holding MLmodel)")
    p.add_argument(
        "--sample",
        metavar="FILE.csv",
        help="rows to check the converted model on (the features by name, or exactly the model's columns); "
        "default: the saved input example plus --rows rows synthesised from the signature",
    )
    p.add_argument("--rows", type=int, default=2000, help="rows to synthesise when there is no --sample (2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthesised rows (0)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="most a probability (absolute) or a regression prediction (relative) may differ (1e-4)",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="the ONNX input's element type (float32; float64 only converts for some models, e.g. linear ones)",
    )
    p.add_argument("--onnx-file", default="model.onnx", help="the file to write in the folder (model.onnx)")
    p.add_argument("--label-output", default="label", help="name of a classifier's label output (label)")
    p.add_argument(
        "--probability-output", default="probabilities", help="name of a classifier's probabilities output"
    )
    p.add_argument("--prediction-output", default="prediction", help="name of a regressor's output (prediction)")
    p.add_argument("--force", action="store_true", help="replace an existing onnx flavor / ONNX file")
    p.add_argument("--check-only", action="store_true", help="convert and check, but write nothing")


def convert_model(a: argparse.Namespace) -> int:
    folder = a.model_dir
    _tools()
    mlmodel = read_mlmodel(folder)
    if "onnx" in mlmodel["flavors"] and not a.force and not a.check_only:
        raise ConvertError(f"{folder} already has an onnx flavor (sluice can grant it as is); --force replaces it")
    target = os.path.join(folder, a.onnx_file)
    if os.path.basename(a.onnx_file) != a.onnx_file or not a.onnx_file.endswith(".onnx"):
        raise ConvertError(f"--onnx-file {a.onnx_file}: a file name ending in .onnx, written inside the folder")
    if os.path.exists(target) and not a.force and not a.check_only:
        raise ConvertError(f"{target} exists already; --force replaces it")
    if a.rows < 1:
        raise ConvertError("--rows must be at least 1")
    flavor, model = load_original(folder, mlmodel)
    spec = input_spec(mlmodel, model)
    _say(f"convert-model: {flavor} flavor, {_model_name(model)}; input from {spec.source}")
    onx = to_onnx(model, spec, a.dtype, a.label_output, a.probability_output, a.prediction_output)

    if a.sample:
        x, lines = read_sample(a.sample, spec)
        where = lambda r: f"{os.path.basename(a.sample)} line {lines[r]}"  # noqa: E731
    else:
        example = _input_example(folder, mlmodel, spec)
        x = synthesise(model, spec, example, a.rows, a.seed)
        n_example = 0 if example is None else len(example)
        where = lambda r: f"input example row {r}" if r < n_example else f"synthesised row {r - n_example}"  # noqa: E731
    for note in spec.notes:
        _say(f"note: {note}")
    diffs, summary = compare(model, onx, x, a.dtype, a.tolerance, a.label_output, a.probability_output,
                             a.prediction_output)  # fmt: skip
    if diffs:
        shown = "\n".join(f"  {where(d.row)}: {d.what}" for d in diffs[:10])
        more = f"\n  ... and {len(diffs) - 10} more" if len(diffs) > 10 else ""
        hint = (
            "\nThe ONNX model takes float32 features (sluice casts the columns to the input's type); if the model is "
            "sensitive to that rounding, try --dtype float64. Synthesised rows can also sit where real data never "
            "does: check on real rows with --sample FILE.csv"
            if a.dtype == "float32"
            else ""
        )
        raise ConvertError(
            f"the converted model disagrees with the original on {len(diffs)} of {len(x)} rows, so nothing was "
            f"written:\n{shown}{more}{hint}"
        )
    outputs = ", ".join(
        f"{o.name} ({_onnx_type(o)})" for o in onx.graph.output
    )
    _say(f"convert-model: checked on {len(x)} rows: {summary}")
    if a.check_only:
        _say(f"convert-model: --check-only: nothing written (outputs would be {outputs})")
        return 0
    text = mlmodel_with_onnx(mlmodel, a.onnx_file, flavor, spec, summary)
    _atomic_write(target, onx.SerializeToString())
    _atomic_write(os.path.join(folder, "MLmodel"), text.encode("utf-8"))
    _say(
        f"convert-model: wrote {target} (input `input` {a.dtype} [-1, {spec.n}], outputs {outputs}) and an onnx "
        f"flavor in {os.path.join(folder, 'MLmodel')}; sluice can grant the folder as an mlflow_model input"
    )
    if spec.names:
        _say(f"convert-model: feature order: {', '.join(spec.names)}")
    return 0


def _onnx_type(o: Any) -> str:
    import onnx

    t = o.type.tensor_type
    dims = ["N" if (d.dim_param or not d.HasField("dim_value")) else str(d.dim_value) for d in t.shape.dim]
    return f"{onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)} [{', '.join(dims)}]"


def main(a: argparse.Namespace) -> int:
    try:
        return convert_model(a)
    except ConvertError as e:
        _say(f"error: {e}")
        return EXIT_REFUSED
