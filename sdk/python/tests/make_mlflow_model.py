"""Writes MLflow model folders the way mlflow.sklearn / mlflow.xgboost /
mlflow.lightgbm save them (MLmodel YAML, model.pkl or the booster's file,
conda.yaml, python_env.yaml, requirements.txt), without needing mlflow, for
the tests of `python -m sluice_sdk convert-model`.

As a script (used by tests/all/python.rs):

    python make_mlflow_model.py OUT_DIR [--columns] [--predict A.csv B.csv ... --expected OUT.csv]

trains a small GradientBoostingClassifier on scikit-learn's bundled breast
cancer data (the 30 features of examples/tabular, underscored names), writes
it to OUT_DIR as an MLflow sklearn model (a tensor signature float64
[-1, 30], or with --columns one double column per feature), and with
--predict writes sklearn's own labels for those CSVs' rows (`id,prediction`)
to --expected.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
from typing import Any

import cloudpickle
import yaml


def tensor_signature(n: int, dtype: str = "float64") -> str:
    return json.dumps([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": [-1, n]}}])


def column_signature(columns: list[tuple[str, str]]) -> str:
    return json.dumps([{"type": ty, "name": name, "required": True} for name, ty in columns])


def _write_env(folder: str, requirements: list[str]) -> None:
    with open(os.path.join(folder, "requirements.txt"), "w") as f:
        f.write("mlflow==2.22.0\n" + "".join(r + "\n" for r in requirements))
    with open(os.path.join(folder, "python_env.yaml"), "w") as f:
        yaml.safe_dump(
            {
                "python": platform.python_version(),
                "build_dependencies": ["pip"],
                "dependencies": ["-r requirements.txt"],
            },
            f,
            default_flow_style=False,
        )
    with open(os.path.join(folder, "conda.yaml"), "w") as f:
        yaml.safe_dump(
            {
                "channels": ["conda-forge"],
                "dependencies": [f"python={platform.python_version()}", "pip", {"pip": ["mlflow==2.22.0", *requirements]}],
                "name": "mlflow-env",
            },
            f,
            default_flow_style=False,
        )


def _mlmodel(folder: str, flavors: dict[str, Any], signature_inputs: str | None, example: Any) -> None:
    doc: dict[str, Any] = {
        "artifact_path": "model",
        "flavors": flavors,
        "mlflow_version": "2.22.0",
        "model_uuid": "0f6f1c1e4b5a4e0d9c7f3b2a1d0e9f8c",
        "utc_time_created": "2026-12-01 10:00:00.000000",
    }
    if signature_inputs is not None:
        doc["signature"] = {
            "inputs": signature_inputs,
            "outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]),
            "params": None,
        }
    if example is not None:
        columns, rows = example
        with open(os.path.join(folder, "input_example.json"), "w") as f:
            json.dump({"columns": columns, "data": rows}, f)
        doc["saved_input_example_info"] = {"artifact_path": "input_example.json", "pandas_orient": "split", "type": "dataframe"}
    with open(os.path.join(folder, "MLmodel"), "w") as f:
        yaml.safe_dump(doc, f, default_flow_style=False)


def _pyfunc(loader: str, **keys: Any) -> dict[str, Any]:
    return {
        "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
        "loader_module": loader,
        "python_version": platform.python_version(),
        **keys,
    }


def write_sklearn(
    folder: str,
    model: Any,
    signature_inputs: str | None,
    serialization_format: str = "cloudpickle",
    example: tuple[list[str], list[list[float]]] | None = None,
) -> None:
    """`mlflow.sklearn.save_model(model, folder, signature=..., serialization_format=...)`."""
    import pickle

    import sklearn

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.pkl"), "wb") as f:
        (cloudpickle if serialization_format == "cloudpickle" else pickle).dump(model, f)
    flavors = {
        "python_function": _pyfunc("mlflow.sklearn", model_path="model.pkl", predict_fn="predict"),
        "sklearn": {
            "code": None,
            "pickled_model": "model.pkl",
            "serialization_format": serialization_format,
            "sklearn_version": sklearn.__version__,
        },
    }
    _mlmodel(folder, flavors, signature_inputs, example)
    _write_env(folder, [f"scikit-learn=={sklearn.__version__}", f"cloudpickle=={cloudpickle.__version__}"])


def write_xgboost(folder: str, model: Any, signature_inputs: str | None) -> None:
    """`mlflow.xgboost.save_model(model, folder, model_format="ubj")` of an XGBClassifier / XGBRegressor."""
    import xgboost

    os.makedirs(folder, exist_ok=True)
    model.save_model(os.path.join(folder, "model.ubj"))
    cls = f"{type(model).__module__}.{type(model).__name__}"
    flavors = {
        "python_function": _pyfunc("mlflow.xgboost", data="model.ubj"),
        "xgboost": {"code": None, "data": "model.ubj", "model_class": cls, "model_format": "ubj", "xgb_version": xgboost.__version__},
    }
    _mlmodel(folder, flavors, signature_inputs, None)
    _write_env(folder, [f"xgboost=={xgboost.__version__}"])


def write_lightgbm(folder: str, model: Any, signature_inputs: str | None) -> None:
    """`mlflow.lightgbm.save_model(model, folder)` of an LGBMClassifier / LGBMRegressor (cloudpickled)."""
    import lightgbm

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.pkl"), "wb") as f:
        cloudpickle.dump(model, f)
    cls = f"{type(model).__module__}.{type(model).__name__}"
    flavors = {
        "lightgbm": {"code": None, "data": "model.pkl", "lgb_version": lightgbm.__version__, "model_class": cls},
        "python_function": _pyfunc("mlflow.lightgbm", data="model.pkl"),
    }
    _mlmodel(folder, flavors, signature_inputs, None)
    _write_env(folder, [f"lightgbm=={lightgbm.__version__}", f"cloudpickle=={cloudpickle.__version__}"])


def breast_cancer() -> tuple[Any, Any, list[str]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    return data.data, data.target, names


def train_classifier() -> tuple[Any, list[str]]:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y, names = breast_cancer()
    return GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(x, y), names


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--columns", action="store_true", help="a column signature (one double column per feature)")
    p.add_argument("--predict", nargs="*", default=[], help="CSV files (id + the 30 features) to predict")
    p.add_argument("--expected", help="where to write id,prediction for --predict")
    a = p.parse_args()
    import numpy as np

    model, names = train_classifier()
    sig = column_signature([(n, "double") for n in names]) if a.columns else tensor_signature(len(names))
    write_sklearn(a.out_dir, model, sig)
    if a.predict:
        if not a.expected:
            p.error("--predict needs --expected")
        with open(a.expected, "w", newline="") as out:
            w = csv.writer(out)
            w.writerow(["id", "prediction"])
            for path in a.predict:
                with open(path, newline="") as f:
                    rows = list(csv.DictReader(f))
                full = [r for r in rows if all(r[n].strip() for n in names)]
                x = np.asarray([[float(r[n]) for n in names] for r in full])
                for r, label in zip(full, model.predict(x)):
                    w.writerow([r["id"], int(label)])
    print(f"wrote {a.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
