"""Writes a seeded ONNX tabular model and CSV input folder, the same data as the peer baselines' make_data.py.

Under --out (default ./data):
  model/model.onnx        GradientBoostingClassifier (breast-cancer set) exported with skl2onnx, zipmap off,
                          opset 17 / ai.onnx.ml 3: input "input" float32 [N,30];
                          outputs "label" int64 [N], "probabilities" float32 [N,2]
  model/MLmodel           MLflow metadata (onnx + python_function flavors), written by hand: no mlflow needed
  model/python_env.yaml, model/requirements.txt   the environment files that MLmodel names
  model/features.json     feature names in CSV header order, id column, model facts
  model/model.pkl         only with --pickle: the fitted sklearn model (for the peers' sklearn scorer)
  input/part-NNNNN.csv    (folder name: --input-name) N files x R rows: header id,<30 features>;
                          each row = a random data-set row plus Gaussian noise (5% of each feature's std), abs'ed, %.6g; id = global row id

Same arguments -> byte-identical files. The CSVs match the peers' generator for the same
--seed/-N/-R/--noise (its input/ folder). Run with scripts/python-env.sh's venv.
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split


def sanitize(name: str) -> str:
    return name.strip().replace(" ", "_")


def load_data():
    ds = load_breast_cancer()
    return ds.data.astype(np.float64), ds.target, [sanitize(n) for n in ds.feature_names]


def train(X, y, names, seed: int, n_trees: int, depth: int):
    import pandas as pd  # fit on a DataFrame so a pickled model knows its feature names (as the peers')

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    model = GradientBoostingClassifier(n_estimators=n_trees, max_depth=depth, learning_rate=0.1,
                                       random_state=seed)
    model.fit(pd.DataFrame(Xtr, columns=names), ytr)
    acc = float(model.score(pd.DataFrame(Xte, columns=names), yte))
    return model, acc


def export_onnx(model, n_features: int, path: str):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, n_features]))],
                  options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())


def write_mlmodel(model_dir: str, n_features: int):
    """MLmodel in the layout mlflow.onnx.save_model writes, minus its timestamp and uuid."""
    import onnx
    import onnxruntime

    py = "%d.%d.%d" % sys.version_info[:3]
    text = f"""artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: {onnx.__version__}
    providers:
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: {py}
mlflow_version: null
signature:
  inputs: '[{{"type": "tensor", "name": "input", "tensor-spec": {{"dtype": "float32", "shape": [-1, {n_features}]}}}}]'
  outputs: '[{{"type": "tensor", "name": "label", "tensor-spec": {{"dtype": "int64", "shape": [-1]}}}},
    {{"type": "tensor", "name": "probabilities", "tensor-spec": {{"dtype": "float32", "shape": [-1, 2]}}}}]'
  params: null
"""
    with open(os.path.join(model_dir, "MLmodel"), "w") as f:
        f.write(text)
    with open(os.path.join(model_dir, "requirements.txt"), "w") as f:
        f.write(f"onnx=={onnx.__version__}\nonnxruntime=={onnxruntime.__version__}\n")
    with open(os.path.join(model_dir, "python_env.yaml"), "w") as f:
        f.write(f"python: {py}\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n")


def write_inputs(out_dir: str, X, names, n_files: int, rows: int, seed: int, noise: float) -> int:
    # Same RNG calls in the same order as the peers' generator, so the bytes match theirs.
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    rng = np.random.default_rng(seed)
    std = X.std(axis=0)
    header = "id," + ",".join(names) + "\n"
    fmt = ["%d"] + ["%.6g"] * X.shape[1]
    next_id = 0
    for i in range(n_files):
        idx = rng.integers(0, X.shape[0], size=rows)
        block = np.abs(X[idx] + rng.normal(0.0, 1.0, size=(rows, X.shape[1])) * (noise * std))
        ids = np.arange(next_id, next_id + rows, dtype=np.int64)
        next_id += rows
        with open(os.path.join(out_dir, f"part-{i:05d}.csv"), "w", newline="") as f:
            f.write(header)
            np.savetxt(f, np.column_stack([ids.astype(np.float64), block]), delimiter=",", fmt=fmt)
    return next_id


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data")
    ap.add_argument("--files", "-N", type=int, default=200)
    ap.add_argument("--rows", "-R", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--noise", type=float, default=0.05, help="Gaussian noise, as a fraction of each feature's std")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--input-name", default="input", help="name of the CSV folder under --out (default input)")
    ap.add_argument("--pickle", action="store_true", help="also write model/model.pkl (sklearn pickle)")
    ap.add_argument("--skip-model", action="store_true", help="write input/ only")
    a = ap.parse_args()

    t0 = time.time()
    X, y, names = load_data()
    if not a.skip_model:
        import sklearn

        model, acc = train(X, y, names, a.seed, a.trees, a.depth)
        model_dir = os.path.join(a.out, "model")
        os.makedirs(model_dir, exist_ok=True)
        export_onnx(model, X.shape[1], os.path.join(model_dir, "model.onnx"))
        write_mlmodel(model_dir, X.shape[1])
        if a.pickle:
            import pickle

            with open(os.path.join(model_dir, "model.pkl"), "wb") as f:
                pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {"feature_names": names, "id_column": "id", "n_features": len(names),
                "estimator": f"GradientBoostingClassifier(n_estimators={a.trees}, max_depth={a.depth})",
                "holdout_accuracy": acc, "sklearn_version": sklearn.__version__,
                "onnx_input": "input", "onnx_outputs": ["label", "probabilities"],
                "mlmodel": "hand-written (mlflow layout)", "seed": a.seed}
        with open(os.path.join(model_dir, "features.json"), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        print(f"model: holdout accuracy {acc:.4f} -> {model_dir}")

    in_dir = os.path.join(a.out, a.input_name)
    n = write_inputs(in_dir, X, names, a.files, a.rows, a.seed, a.noise)
    print(f"input: {a.files} files x {a.rows} rows = {n} rows -> {in_dir}")
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
