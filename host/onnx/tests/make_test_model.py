#!/usr/bin/env python3
"""Writes the tiny ONNX models the sluice-onnx tests use, into tests/fixtures/.

The .onnx files are committed (a few hundred bytes to a few kB each), so the
tests do not need Python. Run this only to change them:

    python3 -m venv /tmp/onnxgen && /tmp/onnxgen/bin/pip install onnx
    /tmp/onnxgen/bin/python host/onnx/tests/make_test_model.py

Models:
- double_sum.onnx: x f32 [N,3] -> y = x*2 f32 [N,3], s = ReduceSum(x, axis 1) f32 [N]
- int_plus.onnx:   ids s64 [N] -> out = ids + 1 s64 [N]; count s32 [] (Size of ids, cast to s32)
- slow.onnx:       x f32 [N,512] -> y f32 [N,512] through LAYERS MatMuls with a 512x512 weight of 1/512
                   (built at run time by ConstantOfShape, so the file stays small); y == x when x's rows are
                   constant. Small enough to run uncut in tests (N=1024 takes about 0.65 s on one thread).
- spin.onnx:       x f32 [N,1024] -> y f32 [N,1024] through SPIN_LAYERS MatMuls with a 1024x1024 weight of 1/1024,
                   eight times slow.onnx's work per row (5-10 ms a row of one core's time), for the deadline tests,
                   whose runs must take at least 10x the deadline that cuts them. The weight's shape is computed
                   from x's at run time, so nothing is folded or pre-packed when a session loads (a constant weight
                   made ONNX Runtime pre-pack it once per node: 1.5 s and 1.6 GB per session).
- pairs.onnx:      x f32 [N,3] -> y = Reshape(x, [-1, 2]) f32 [M,2]: passes every check before the run, and
                   fails inside ONNX Runtime when N is odd (3N values cannot make pairs): a runtime failure.
- batch_mean.onnx: x f32 [N,3] -> y = ReduceMean(x, axis 0) f32 [3]: one value per column, not one per row (a
                   model that is not row-wise), for the host's row-chunked runs (run whole, not per chunk).
- mlflow_model/:   an MLflow model folder (MLmodel with an onnx flavor) holding a copy of double_sum.onnx.
"""

import os
import shutil

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
OPSET = [helper.make_opsetid("", 17)]
LAYERS = 200
SPIN_LAYERS = 400


def save(graph, name):
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="sluice-onnx tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name))


def double_sum():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N"])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["y"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
    ]
    save(helper.make_graph(nodes, "double_sum", [x], [y, s], [two, axes]), "double_sum.onnx")


def int_plus():
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"])
    out = helper.make_tensor_value_info("out", TensorProto.INT64, ["N"])
    count = helper.make_tensor_value_info("count", TensorProto.INT32, [])
    one = helper.make_tensor("one", TensorProto.INT64, [], [1])
    nodes = [
        helper.make_node("Add", ["ids", "one"], ["out"]),
        helper.make_node("Size", ["ids"], ["size"]),
        helper.make_node("Cast", ["size"], ["count"], to=TensorProto.INT32),
    ]
    save(helper.make_graph(nodes, "int_plus", [ids], [out, count], [one]), "int_plus.onnx")


def slow():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 512])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 512])
    shape = helper.make_tensor("w_shape", TensorProto.INT64, [2], [512, 512])
    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["w_shape"],
            ["w"],
            value=helper.make_tensor("value", TensorProto.FLOAT, [1], [1.0 / 512]),
        )
    ]
    matmul_chain(nodes, LAYERS)
    save(helper.make_graph(nodes, "slow", [x], [y], [shape]), "slow.onnx")


def spin():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1024])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1024])
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    two = helper.make_tensor("two", TensorProto.INT64, [1], [2])
    nodes = [
        # w_shape = [x.shape[1], x.shape[1]], known only at run time
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "one", "two"], ["width"]),
        helper.make_node("Concat", ["width", "width"], ["w_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["w_shape"],
            ["w"],
            value=helper.make_tensor("value", TensorProto.FLOAT, [1], [1.0 / 1024]),
        ),
    ]
    matmul_chain(nodes, SPIN_LAYERS)
    save(helper.make_graph(nodes, "spin", [x], [y], [one, two]), "spin.onnx")


def matmul_chain(nodes, layers):
    """x -> h0 -> ... -> y, each step a MatMul by w."""
    prev = "x"
    for i in range(layers):
        out = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, "w"], [out]))
        prev = out


def pairs():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", 2])
    shape = helper.make_tensor("pair_shape", TensorProto.INT64, [2], [-1, 2])
    nodes = [helper.make_node("Reshape", ["x", "pair_shape"], ["y"])]
    save(helper.make_graph(nodes, "pairs", [x], [y], [shape]), "pairs.onnx")


def batch_mean():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    # Opset 17: ReduceMean's axes are an attribute.
    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], axes=[0], keepdims=0)]
    save(helper.make_graph(nodes, "batch_mean", [x], [y]), "batch_mean.onnx")


MLMODEL = """artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.19.0
    providers:
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.7
mlflow_version: 2.22.0
model_uuid: 0b6c4d1f5a2e4c3b9d8e7f6a5b4c3d2e
utc_time_created: '2025-01-01 00:00:00.000000'
"""


def mlflow_folder():
    folder = os.path.join(OUT, "mlflow_model")
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(os.path.join(OUT, "double_sum.onnx"), os.path.join(folder, "model.onnx"))
    with open(os.path.join(folder, "MLmodel"), "w") as f:
        f.write(MLMODEL)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    double_sum()
    int_plus()
    pairs()
    batch_mean()
    slow()
    spin()
    mlflow_folder()
    for root, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, HERE)}: {os.path.getsize(p)} bytes")
