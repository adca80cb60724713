"""Tests of `python -m sluice_sdk convert-model` (sluice_sdk/convert.py) on
MLflow model folders written by make_mlflow_model.py (no mlflow needed).
They need sdk/python/requirements-convert.txt, which
scripts/install-python-sdk.sh installs; run by tests/all/python.rs:

    .sluice/py-sdk/venv/bin/python -m unittest discover -s sdk/python/tests
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)

try:
    import numpy as np
    import onnxruntime as ort
    import yaml

    import make_mlflow_model as mk
except ImportError as e:  # a failure, not a skip: the project's scripts install these
    raise ImportError(f"{e}: run scripts/install-python-sdk.sh (sdk/python/requirements-convert.txt)") from None


def run(*args: str) -> tuple[int, str]:
    """`python -m sluice_sdk convert-model ARGS`, in this process: (exit code, what it said).
    sluice_sdk is imported here, not at the top, so that test_sdk.py (imported
    after this module by discovery) first puts its generated bindings on the path."""
    from sluice_sdk import build

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = build.main(["convert-model", *args])
    return rc, err.getvalue()


def snapshot(folder: str) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = f.read()
    return out


def large_offset_model():
    """A scaler + logistic regression on features near 1e6 that vary by ~0.05:
    float32 (spacing 0.0625 there) cannot hold them, so a float32 ONNX model
    scores different rows than sklearn does in float64."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = 1e6 + rng.normal(0, 0.05, size=(400, 3))
    y = ((x[:, 0] - 1e6) + (x[:, 1] - 1e6) > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y), x


class ConvertModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model, cls.names = mk.train_classifier()
        cls.x, _, _ = mk.breast_cancer()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-convert-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def folder(self, name="model"):
        return os.path.join(self.tmp, name)

    def session(self, folder, file="model.onnx"):
        return ort.InferenceSession(os.path.join(folder, file), providers=["CPUExecutionProvider"])

    def test_a_matching_conversion_adds_the_onnx_flavor_and_keeps_the_others(self):
        d = self.folder()
        mk.write_sklearn(d, self.model, mk.tensor_signature(30))
        with open(os.path.join(d, "MLmodel")) as f:
            before = yaml.safe_load(f)
        rc, said = run(d)
        self.assertEqual(rc, 0, said)
        self.assertIn("checked on 2000 rows: labels equal on 2000 of 2000 rows", said)
        self.assertIn("outputs label (int64 [N]), probabilities (float32 [N, 2])", said)
        with open(os.path.join(d, "MLmodel")) as f:
            after = yaml.safe_load(f)
        # The onnx flavor as mlflow.onnx writes it; the other flavors as they were.
        onnx_flavor = after["flavors"].pop("onnx")
        self.assertEqual(
            sorted(onnx_flavor), ["code", "data", "onnx_session_options", "onnx_version", "providers"]
        )
        self.assertEqual(onnx_flavor["data"], "model.onnx")
        self.assertEqual(onnx_flavor["providers"], ["CPUExecutionProvider"])
        self.assertIsNone(onnx_flavor["code"])
        import onnx

        self.assertEqual(onnx_flavor["onnx_version"], onnx.__version__)
        self.assertEqual(after["flavors"], before["flavors"])
        self.assertEqual(after["signature"], before["signature"])
        self.assertEqual(after["metadata"]["sluice_convert_model"]["from_flavor"], "sklearn")
        # The written model: one float input [N, 30], label + probabilities, same labels as sklearn's
        # on the real data (not only the synthesised sample it was checked on).
        s = self.session(d)
        [i] = s.get_inputs()
        self.assertEqual((i.name, i.type, i.shape[1]), ("input", "tensor(float)", 30))
        self.assertEqual([(o.name, o.type) for o in s.get_outputs()],
                         [("label", "tensor(int64)"), ("probabilities", "tensor(float)")])  # fmt: skip
        label, proba = s.run(None, {"input": self.x.astype(np.float32)})
        np.testing.assert_array_equal(label, self.model.predict(self.x))
        np.testing.assert_allclose(proba, self.model.predict_proba(self.x), atol=1e-4)
        # A second run refuses: it has an onnx flavor now.
        rc, said = run(d)
        self.assertEqual(rc, 1)
        self.assertIn("already has an onnx flavor", said)
        rc, said = run(d, "--force")
        self.assertEqual(rc, 0, said)

    def test_a_column_signature_and_a_sample_csv_by_feature_name(self):
        d = self.folder()
        mk.write_sklearn(d, self.model, mk.column_signature([(n, "double") for n in self.names]), "pickle")
        # The sample has an id, the features in another order, and a row with an empty feature.
        sample = os.path.join(self.tmp, "sample.csv")
        order = list(reversed(self.names))
        with open(sample, "w") as f:
            f.write("id," + ",".join(order) + "\n")
            for k, row in enumerate(self.x[:50]):
                values = dict(zip(self.names, row))
                f.write(f"{k}," + ",".join(repr(float(values[n])) for n in order) + "\n")
            f.write("50," + ",".join("" if n == "mean_radius" else "1" for n in order) + "\n")
        rc, said = run(d, "--sample", sample)
        self.assertEqual(rc, 0, said)
        self.assertIn("input from the signature's 30 numeric columns", said)
        self.assertIn("skipped 1 row(s) with an empty, non-numeric or non-finite feature", said)
        self.assertIn("checked on 50 rows: labels equal on 50 of 50 rows", said)
        self.assertIn("feature order: mean_radius, mean_texture,", said)
        with open(os.path.join(d, "MLmodel")) as f:
            doc = yaml.safe_load(f)
        self.assertEqual(doc["metadata"]["sluice_convert_model"]["features"], self.names)
        self.assertEqual(doc["flavors"]["sklearn"]["serialization_format"], "pickle")

    def test_refused_signatures_write_nothing(self):
        cases = [
            (
                mk.column_signature([("mean_radius", "double"), ("city", "string")] + [(n, "double") for n in self.names[2:]]),
                "refused signature: column(s) `city` (string) are not numeric",
            ),
            (
                json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 28, 28]}}]),
                "refused signature: the tensor input has shape [-1, 28, 28]",
            ),
            (
                json.dumps([{"type": "tensor", "name": "a", "tensor-spec": {"dtype": "float32", "shape": [-1, 15]}},
                            {"type": "tensor", "name": "b", "tensor-spec": {"dtype": "float32", "shape": [-1, 15]}}]),
                "refused signature: 2 inputs (`a` (tensor float32 [-1, 15]), `b` (tensor float32 [-1, 15]))",
            ),
            (
                json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "str", "shape": [-1, 30]}}]),
                "refused signature: the tensor input is str",
            ),
            (mk.tensor_signature(12), "refused signature: the signature's tensor input float64 [-1, 12] gives 12 "
             "features but the model takes 30"),
        ]  # fmt: skip
        for k, (sig, want) in enumerate(cases):
            with self.subTest(want=want):
                d = self.folder(f"m{k}")
                mk.write_sklearn(d, self.model, sig)
                before = snapshot(d)
                rc, said = run(d)
                self.assertEqual(rc, 1, said)
                self.assertIn(want, said)
                self.assertEqual(snapshot(d), before)

    def test_string_class_labels_are_refused(self):
        from sklearn.tree import DecisionTreeClassifier

        y = np.where(self.model.predict(self.x) == 1, "benign", "malignant")
        d = self.folder()
        mk.write_sklearn(d, DecisionTreeClassifier(max_depth=3).fit(self.x, y), mk.tensor_signature(30))
        before = snapshot(d)
        rc, said = run(d)
        self.assertEqual(rc, 1)
        self.assertIn("the model's classes are ['benign', 'malignant']: sluice reads numeric tensors only", said)
        self.assertEqual(snapshot(d), before)

    def test_a_mismatch_is_refused_and_names_the_rows(self):
        model, x = large_offset_model()
        d = self.folder()
        mk.write_sklearn(d, model, mk.column_signature([("a", "double"), ("b", "double"), ("c", "double")]))
        before = snapshot(d)
        rc, said = run(d, "--rows", "300")
        self.assertEqual(rc, 1, said)
        self.assertRegex(said, r"the converted model disagrees with the original on \d+ of 300 rows, so nothing was written")
        self.assertRegex(said, r"synthesised row \d+: label 0 \(original\) vs 1 \(ONNX\)|synthesised row \d+: label 1 \(original\) vs 0 \(ONNX\)")
        self.assertIn("try --dtype float64", said)
        self.assertEqual(snapshot(d), before)

        # On real rows from a CSV the message names the file's lines.
        sample = os.path.join(self.tmp, "rows.csv")
        with open(sample, "w") as f:
            f.write("a,b,c\n" + "".join(",".join(repr(float(v)) for v in r) + "\n" for r in x[:100]))
        rc, said = run(d, "--sample", sample)
        self.assertEqual(rc, 1, said)
        self.assertRegex(said, r"rows\.csv line \d+: ")
        self.assertEqual(snapshot(d), before)

        # The check is what refused: with a float64 input the same model converts and matches.
        rc, said = run(d, "--rows", "300", "--dtype", "float64")
        self.assertEqual(rc, 0, said)
        s = self.session(d)
        self.assertEqual(s.get_inputs()[0].type, "tensor(double)")
        np.testing.assert_array_equal(s.run(None, {"input": x})[0], model.predict(x))

    def test_a_tolerance_too_tight_is_a_mismatch(self):
        d = self.folder()
        mk.write_sklearn(d, self.model, mk.tensor_signature(30))
        rc, said = run(d, "--tolerance", "0", "--check-only")
        self.assertEqual(rc, 1, said)
        self.assertIn("(differ by ", said)
        self.assertFalse(os.path.exists(os.path.join(d, "model.onnx")))
        rc, said = run(d, "--check-only")
        self.assertEqual(rc, 0, said)
        self.assertIn("--check-only: nothing written", said)
        self.assertFalse(os.path.exists(os.path.join(d, "model.onnx")))

    def test_a_regressor_gets_a_prediction_output(self):
        from sklearn.ensemble import RandomForestRegressor

        y = self.model.predict_proba(self.x)[:, 1] * 100
        model = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(self.x, y)
        d = self.folder()
        mk.write_sklearn(d, model, mk.tensor_signature(30))
        rc, said = run(d)
        self.assertEqual(rc, 0, said)
        s = self.session(d)
        self.assertEqual([o.name for o in s.get_outputs()], ["prediction"])
        np.testing.assert_allclose(s.run(None, {"input": self.x.astype(np.float32)})[0].ravel(), model.predict(self.x),
                                   rtol=1e-4)  # fmt: skip

    def test_xgboost_and_lightgbm_flavors(self):
        import lightgbm
        import xgboost

        y = self.model.predict(self.x)
        for name, write, model in [
            ("xgboost", mk.write_xgboost, xgboost.XGBClassifier(n_estimators=20, max_depth=3)),
            ("lightgbm", mk.write_lightgbm, lightgbm.LGBMClassifier(n_estimators=20, verbose=-1)),
        ]:
            with self.subTest(flavor=name):
                model.fit(self.x, y)
                d = self.folder(name)
                write(d, model, mk.tensor_signature(30))
                rc, said = run(d)
                self.assertEqual(rc, 0, said)
                self.assertIn(f"convert-model: {name} flavor", said)
                label, _ = self.session(d).run(None, {"input": self.x.astype(np.float32)})
                np.testing.assert_array_equal(label, model.predict(self.x))
                with open(os.path.join(d, "MLmodel")) as f:
                    self.assertIn(name, yaml.safe_load(f)["flavors"])

    def test_folders_that_are_not_convertible_say_why(self):
        rc, said = run(os.path.join(self.tmp, "nothing"))
        self.assertEqual(rc, 1)
        self.assertIn("is not a folder", said)
        d = self.folder()
        os.makedirs(d)
        rc, said = run(d)
        self.assertIn("it has no MLmodel file", said)
        with open(os.path.join(d, "MLmodel"), "w") as f:
            f.write("flavors:\n  pytorch:\n    data: model.pth\n")
        rc, said = run(d)
        self.assertEqual(rc, 1)
        self.assertIn("no flavor this command converts (flavors: pytorch;", said)


if __name__ == "__main__":
    unittest.main()
