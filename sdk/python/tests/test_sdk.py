"""Unit tests of the SDK's pure-Python parts, on the host, against the
bindings componentize-py generates for the bundled WIT (their host
functions replaced by fakes). Run by tests/all/python.rs:

    .sluice/py-sdk/venv/bin/python -m unittest discover -s sdk/python/tests
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import types as pytypes
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
_BINDINGS = tempfile.mkdtemp(prefix="sluice-sdk-test-bindings-")
atexit.register(shutil.rmtree, _BINDINGS, True)
subprocess.run(
    [
        sys.executable,
        "-c",
        "import sys, componentize_py; sys.argv[0] = 'componentize-py'; sys.exit(componentize_py.script())",
        "-d",
        os.path.join(SRC, "sluice_sdk", "wit"),
        "-w",
        "scorer",
        "bindings",
        _BINDINGS,
    ],
    check=True,
)
sys.path.insert(0, _BINDINGS)
sys.path.insert(0, SRC)

from componentize_py_types import Err  # noqa: E402
from wit_world.imports import batch as wbatch  # noqa: E402
from wit_world.imports import log as wlog  # noqa: E402
from wit_world.imports import onnx as wonnx  # noqa: E402
from wit_world.imports import types as wt  # noqa: E402

import sluice_sdk as sluice  # noqa: E402
from sluice_sdk import _export, _scan, build  # noqa: E402

LOG: list[tuple[str, str]] = []
wlog.log = lambda level, message: LOG.append((level.name, message))


def reset() -> None:
    _export._registered = None
    _export._scorer = None
    _export._module = None
    _export._started = False
    _export._config = None
    _export.configure((HERE + "/",))
    LOG.clear()


def wit_config(**settings: str) -> wt.Config:
    return wt.Config(settings=list(settings.items()), arguments=["--mode", "fast"], environment=[("REGION", "eu")])


def file_batch(*names: str) -> wt.MiniBatch:
    return wt.MiniBatch(id="mb1", items=wt.Items_Files([wt.FileItem(name=n, data=n.encode()) for n in names]))


def row_batch() -> wt.MiniBatch:
    cols = [
        wt.Column(name="id", data=wt.ColumnData_S64([10, 11, 12]), valid=None),
        wt.Column(name="x", data=wt.ColumnData_F64([0.5, 0.0, 2.0]), valid=[True, False, True]),
    ]
    items = wt.TableItems(
        rows=wt.Table(num_rows=3, columns=cols), sources=["a.csv", "b.csv"], row_source=[0, 0, 1], row_number=[0, 1, 0]
    )
    return wt.MiniBatch(id="mb2", items=wt.Items_Rows(items))


def line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if marker in line and "line_of(" not in line:
                return i
    raise AssertionError(marker)


def divide(a: int, b: int) -> float:
    return a / b  # the user's line


class Counter(sluice.Scorer):
    def init(self, config):
        self.prefix = config.require("prefix")
        self.runs = 0

    def run(self, mini_batch):
        self.runs += 1
        if mini_batch.files and mini_batch.files[0].name == "boom":
            divide(1, 0)
        if mini_batch.files and mini_batch.files[0].name == "user":
            raise sluice.UserError("no, said the user")
        return [{"name": f.name, "runs": self.runs, "prefix": self.prefix} for f in mini_batch.files]


def col(result: wt.BatchResult, name: str) -> wt.Column:
    return next(c for c in result.rows.columns if c.name == name)


class ExportTest(unittest.TestCase):
    def setUp(self) -> None:
        reset()

    def test_one_scorer_per_instance_whatever_world_object_calls(self) -> None:
        sluice.export(Counter)
        # componentize-py makes a new WitWorld object for each call.
        _export.WitWorld().init(wit_config(prefix="p"))
        _export.WitWorld().run(file_batch("a"))
        r = _export.WitWorld().run(file_batch("b", "c"))
        self.assertEqual(col(r, "runs").data.value, [2, 2])
        self.assertEqual(col(r, "prefix").data.value, ["p", "p"])
        # One row per item, in order: `row-items` stays empty (0.1.3).
        self.assertEqual((r.rows.num_rows, r.row_items), (2, []))

    def test_an_exception_becomes_the_wit_error_with_the_users_file_and_line(self) -> None:
        sluice.export(Counter)
        _export.init(wit_config(prefix="p"))
        with self.assertRaises(Err) as e:
            _export.run(file_batch("boom"))
        msg = e.exception.value.message
        line = line_of("return a / b  # the user's line")
        self.assertEqual(msg, f"ZeroDivisionError: division by zero at test_sdk.py:{line} in divide()")
        self.assertIsInstance(e.exception.value, wt.Error)
        self.assertEqual(LOG[0], ("ERROR", "run() raised ZeroDivisionError: division by zero"))
        self.assertIn(("ERROR", f"  at test_sdk.py:{line} in divide()"), LOG)
        self.assertFalse(any("_export.py" in m for _, m in LOG), LOG)

    def test_a_user_error_is_its_message_alone_and_not_logged(self) -> None:
        sluice.export(Counter)
        _export.init(wit_config(prefix="p"))
        with self.assertRaises(Err) as e:
            _export.run(file_batch("user"))
        self.assertEqual(e.exception.value.message, "no, said the user")
        self.assertEqual(LOG, [])

    def test_init_errors_raised_or_returned_fail_the_start(self) -> None:
        sluice.export(Counter)
        with self.assertRaises(Err) as e:
            _export.init(wit_config())  # no prefix
        self.assertEqual(e.exception.value.message, "task.config.prefix is required")
        with self.assertRaises(Err) as e:
            _export.run(file_batch("a"))
        self.assertEqual(e.exception.value.message, "run() called before a successful init()")

        reset()

        class Returns(sluice.Scorer):
            def init(self, config):
                return sluice.UserError("returned, not raised")

            def run(self, mini_batch):
                return []

        sluice.export(Returns)
        with self.assertRaises(Err) as e:
            _export.init(wit_config())
        self.assertEqual(e.exception.value.message, "returned, not raised")

    def test_azure_style_module_with_and_without_config(self) -> None:
        mod = pytypes.ModuleType("score")
        state = {}

        def init():
            state["threshold"] = sluice.config().parse_or("threshold", 0.5)

        def run(mini_batch):
            return {"name": [f.name for f in mini_batch.files], "t": [state["threshold"]] * len(mini_batch)}

        mod.init, mod.run = init, run
        World = _export.world(mod)
        World().init(wit_config(threshold="0.75"))
        r = World().run(file_batch("a", "b"))
        self.assertEqual(col(r, "t").data, wt.ColumnData_F64([0.75, 0.75]))

        reset()
        mod2 = pytypes.ModuleType("score2")
        mod2.init = lambda config: state.update(args=config.arguments, env=config.env("REGION"))
        mod2.run = lambda mb: [{"n": 1}] * len(mb)
        _export.world(mod2)
        _export.init(wit_config())
        self.assertEqual(state["args"], ["--mode", "fast"])
        self.assertEqual(state["env"], "eu")

    def test_a_module_without_run_is_refused_when_built(self) -> None:
        with self.assertRaises(TypeError) as e:
            _export.world(pytypes.ModuleType("empty"))
        self.assertIn("defines no scorer", str(e.exception))

    def test_host_calls_before_init_say_where_they_belong(self) -> None:
        with self.assertRaises(_export.HostCallAtImportTime) as e:
            sluice.Model.load("model")
        self.assertIn("host imports (onnx, batch, log) can only be called from init/run, not at import time", str(e.exception))
        with self.assertRaises(_export.HostCallAtImportTime):
            sluice.info("hello")


class DataTest(unittest.TestCase):
    def setUp(self) -> None:
        reset()

    def test_columns_infer_types_and_nulls(self) -> None:
        c = sluice.Column.of("a", [1, None, 3])
        self.assertEqual((c.type, c.values, c.valid), ("s64", [1, 0, 3], [True, False, True]))
        self.assertEqual(c.to_list(), [1, None, 3])
        self.assertEqual(sluice.Column.of("b", [1, 2.5]).values, [1.0, 2.5])
        self.assertEqual(sluice.Column.of("c", [True, False]).type, "bool")
        self.assertEqual(sluice.Column.of("d", [1.0], type="f32").type, "f32")
        with self.assertRaises(TypeError) as e:
            sluice.Column.of("e", [1, "x"])
        self.assertIn("column `e` mixes s64 and string", str(e.exception))
        with self.assertRaises(TypeError):
            sluice.Column.of("f", [object()])

    def test_rows_and_columns_of_a_tabular_batch(self) -> None:
        mb = sluice.MiniBatch._from_wit(row_batch())
        rows = mb.require_rows()
        self.assertEqual(len(mb), 3)
        self.assertEqual(rows["x"].to_list(), [0.5, None, 2.0])
        self.assertEqual(rows["id"].take([2, 0]).values, [12, 10])
        self.assertEqual(rows["x"].take([1]).valid, [False])
        self.assertEqual(rows.source_column("src", [2, 0]).values, ["b.csv", "a.csv"])
        self.assertEqual((rows.source_of(2), rows.row_number(2)), ("b.csv", 0))
        self.assertEqual(rows.to_dicts()[1], {"id": 11, "x": None})
        with self.assertRaises(KeyError) as e:
            rows["nope"]
        self.assertIn("delivered: id, x", str(e.exception))
        with self.assertRaises(sluice.UserError):
            sluice.MiniBatch._from_wit(file_batch("a")).require_rows()
        # Without row origins (deliver_row_origins(False)): a clear error.
        bare = row_batch()
        bare.items.value.row_source, bare.items.value.row_number = [], []
        bare_rows = sluice.MiniBatch._from_wit(bare).require_rows()
        self.assertEqual(len(bare_rows), 3)
        with self.assertRaises(RuntimeError) as e:
            bare_rows.source_of(0)
        self.assertIn("deliver_row_origins(False)", str(e.exception))

    def test_returned_rows_with_item_errors(self) -> None:
        out = [{"a": 1}, sluice.ItemError("bad"), ValueError("worse"), {"a": 2, "b": "x"}]
        r = sluice._data.to_result(out, 4)._to_wit()
        self.assertEqual(r.row_items, [0, 3])
        self.assertEqual([(e.item, e.message) for e in r.errors], [(1, "bad"), (2, "ValueError: worse")])
        self.assertEqual(col(r, "b").valid, [False, True])
        with self.assertRaises(ValueError) as e:
            sluice._data.to_result([{"a": 1}], 2)
        self.assertIn("returned 1 rows for 2 items", str(e.exception))
        with self.assertRaises(TypeError) as e:
            sluice._data.to_result([{"a": 1}, 5], 2)
        self.assertIn("element 1 is of type int", str(e.exception))
        with self.assertRaises(TypeError):
            sluice._data.to_result(None, 1)
        # A wrong return names no place: the message says what was wrong.
        _export.register(type("Bad", (sluice.Scorer,), {"run": lambda self, mb: 42}))
        _export.init(wit_config())
        with self.assertRaises(Err) as e:
            _export.run(file_batch("a"))
        self.assertEqual(
            e.exception.value.message,
            "TypeError: run() returned an object of type int: return rows (a list of dicts, one per item), a column "
            "table (a dict of name -> column), or a ResultBuilder / BatchResult",
        )
        self.assertEqual(sluice._data.to_result(None, 0).row_items, [])

    def test_a_column_table_keeps_host_columns_as_they_came(self) -> None:
        mb = sluice.MiniBatch._from_wit(row_batch())
        host_col = mb.rows["x"]
        r = sluice._data.to_result({"x": host_col, "n": [1, 2, 3]}, 3)._to_wit()
        self.assertIs(col(r, "x"), host_col._wit)
        with self.assertRaises(ValueError) as e:
            sluice._data.to_result({"n": [1]}, 3)
        self.assertIn("has 1 values for 3 items", str(e.exception))

    def test_result_builder(self) -> None:
        out = sluice.ResultBuilder()
        out.row(0).string("name", "a").s64("n", 1)
        out.row(2, name="c")
        out.error(1, "bad")
        out.row(3).s64("n", 4).f64("score", 0.5)
        r = out.finish()._to_wit()
        self.assertEqual(r.row_items, [0, 2, 3])
        self.assertEqual(col(r, "n").data, wt.ColumnData_S64([1, 0, 4]))
        self.assertEqual(col(r, "n").valid, [True, False, True])
        self.assertEqual(col(r, "score").valid, [False, False, True])
        self.assertEqual(col(r, "name").valid, [True, True, False])
        with self.assertRaises(ValueError):
            sluice.ResultBuilder().row(0).s64("x", 1).s64("x", 2)
        b = sluice.ResultBuilder()
        b.row(0).s64("x", 1)
        with self.assertRaises(TypeError):
            b.row(1).string("x", "one")

    def test_config_parsing(self) -> None:
        c = sluice.Config([("n", "3"), ("on", "yes"), ("bad", "x")])
        self.assertEqual((c.parse_or("n", 1), c.parse_or("on", False), c.parse_or("absent", 2.5)), (3, True, 2.5))
        with self.assertRaises(sluice.UserError) as e:
            c.parse_or("bad", 1)
        self.assertIn("task.config.bad = `x`: not a valid int", str(e.exception))


class OnnxTest(unittest.TestCase):
    def setUp(self) -> None:
        reset()
        _export._started = True

    def test_load_errors_are_onnx_errors_with_the_wit_code(self) -> None:
        def load(name):
            raise Err(wonnx.Error(code=wonnx.ErrorCode.UNKNOWN_MODEL, message=f"no model `{name}`"))

        wonnx.load = load
        with self.assertRaises(sluice.OnnxError) as e:
            sluice.Model.load("other")
        self.assertEqual((e.exception.code, str(e.exception)), ("unknown-model", "unknown-model: no model `other`"))

    def test_a_request_is_the_wit_run_request(self) -> None:
        seen = []

        class FakeModel:
            def info(self):
                t = wonnx.TensorInfo(name="input", element_type=wonnx.ElementType.F32, shape=[-1, 2])
                return wonnx.ModelInfo(name="m", inputs=[t], outputs=[])

            def run(self, req):
                seen.append(req)
                c = wt.Column(name="prediction", data=wt.ColumnData_S64([1]), valid=None)
                return wonnx.RunResult(tensors=[], columns=[c])

        wonnx.load = lambda name: FakeModel()
        m = sluice.Model.load("m")
        self.assertEqual(m.info().inputs[0].width(), 2)
        self.assertEqual(m.info().inputs[0].element_type, "f32")
        r = m.request().columns("input", ["a", "b"], rows=[0]).to_column("label", "prediction").to_column(
            "p", "q", "max"
        ).to_column("p", "k", 1).run()
        req = seen[0]
        self.assertEqual(req.inputs[0].source, wonnx.TensorSource_Columns(wonnx.ColumnSource(["a", "b"], [0])))
        self.assertEqual(
            [type(c.select).__name__ for c in req.to_columns],
            ["OutputSelect_Whole", "OutputSelect_Max", "OutputSelect_Index"],
        )
        self.assertEqual(r.column("prediction").values, [1])
        with self.assertRaises(ValueError):
            m.request().to_column("p", "q", "biggest")

    def test_run_into_result_sends_the_request_and_returns_the_rows(self) -> None:
        seen = []

        class FakeModel:
            def info(self):
                return wonnx.ModelInfo(name="m", inputs=[], outputs=[])

            def run_into_result(self, req):
                seen.append(req)
                if req.to_columns[0].column == "bad":
                    raise Err(wonnx.Error(code=wonnx.ErrorCode.INVALID_INPUT, message="already added"))
                return 3

        wonnx.load = lambda name: FakeModel()
        m = sluice.Model.load("m")
        self.assertEqual(m.request().columns("input", ["a"]).to_column("label", "prediction").run_into_result(), 3)
        self.assertEqual(([c.column for c in seen[0].to_columns], seen[0].fetch), (["prediction"], []))
        with self.assertRaises(sluice.OnnxError) as e:
            m.request().to_column("label", "bad").run_into_result()
        self.assertEqual(e.exception.code, "invalid-input")

    def test_a_range_of_row_items_is_sent_as_empty_and_anything_else_whole(self) -> None:
        c = sluice.Column.of("x", [1, 2, 3])
        r = sluice.BatchResult.from_columns(range(3), [c])._to_wit()
        self.assertEqual((r.rows.num_rows, r.row_items), (3, []))
        r = sluice.BatchResult.from_columns([0, 1, 2], [c])._to_wit()
        self.assertEqual(r.row_items, [0, 1, 2])
        r = sluice.BatchResult.from_columns(range(1, 3), [c.take([0, 1])], [(0, "bad")])._to_wit()
        self.assertEqual((r.rows.num_rows, r.row_items), (2, [1, 2]))
        with self.assertRaises(ValueError):
            sluice.BatchResult.from_columns(range(2), [c])

    def test_f32_tensor_stacks_rows_in_the_guest(self) -> None:
        rows = sluice.MiniBatch._from_wit(row_batch()).rows
        t = sluice.onnx.f32_tensor(rows, ["id", "x"], [0, 2])
        self.assertEqual((t.shape, t.element_type, t.data), ([2, 2], "f32", [10.0, 0.5, 12.0, 2.0]))
        with self.assertRaises(ValueError) as e:
            sluice.onnx.f32_tensor(rows, ["x"])
        self.assertIn("column `x` is null at row 1", str(e.exception))

    def test_host_batch(self) -> None:
        got = []
        wbatch.deliver_columns = got.append

        def null_rows(names):
            raise Err(wonnx.Error(code=wonnx.ErrorCode.UNKNOWN_NAME, message="no column"))

        wbatch.null_rows = null_rows
        sluice.host_batch.deliver_columns("id")
        self.assertEqual(got, [["id"]])
        wbatch.deliver_row_origins = got.append
        sluice.host_batch.deliver_row_origins(False)
        self.assertEqual(got[-1], False)
        with self.assertRaises(sluice.OnnxError) as e:
            sluice.host_batch.null_rows(["x"])
        self.assertEqual(e.exception.code, "unknown-name")


def tempdir(test: unittest.TestCase) -> str:
    d = tempfile.mkdtemp()
    test.addCleanup(shutil.rmtree, d, True)
    return d


def write(dir: str, name: str, text: str) -> str:
    p = os.path.join(dir, name)
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    return p


class ScanTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempdir(self)

    def problems(self, text: str, name: str = "score.py") -> list[str]:
        return [str(p) for p in _scan.scan(write(self.dir, name, text), [self.dir]).problems]

    def test_native_imports_are_named_with_what_to_do(self) -> None:
        (p,) = self.problems("import sluice_sdk\nimport numpy as np\ndef run(mb):\n    return []\n")
        self.assertIn("score.py:2: `import numpy`: numpy is a native extension", p)
        self.assertIn("sluice_sdk.Model.load", p)
        # Found through a local module, too.
        write(self.dir, "helpers.py", "from sklearn.linear_model import LogisticRegression\n")
        (p,) = self.problems("import helpers\ndef run(mb):\n    return []\n")
        self.assertIn("helpers.py:1: `import sklearn.linear_model`", p)
        self.assertIn("skl2onnx", p)

    def test_any_package_with_native_code_is_refused(self) -> None:
        os.makedirs(os.path.join(self.dir, "fastthing"))
        write(self.dir, "fastthing/__init__.py", "from ._core import f\n")
        write(self.dir, "fastthing/_core.cpython-311-x86_64-linux-gnu.so", "")
        (p,) = self.problems("import fastthing\ndef run(mb):\n    return []\n")
        self.assertIn("score.py:1: `import fastthing`: fastthing contains native code", p)
        # A pure-Python package next to the script is fine, and scanned.
        write(self.dir, "purething.py", "import json\n")
        self.assertEqual(self.problems("import purething\ndef run(mb):\n    return []\n"), [])

    def test_guarded_and_stdlib_imports_pass(self) -> None:
        text = "import json, math\ntry:\n    import numpy\nexcept ImportError:\n    numpy = None\ndef run(mb):\n    return []\n"
        self.assertEqual(self.problems(text), [])

    def test_missing_modules_syntax_errors_and_no_scorer(self) -> None:
        (p,) = self.problems("import nosuchpkg\ndef run(mb):\n    return []\n")
        self.assertIn("no module `nosuchpkg`", p)
        (p,) = self.problems("def run(mb)\n    return []\n")
        self.assertIn("score.py:1: SyntaxError", p)
        (p,) = self.problems("x = 1\n")
        self.assertIn("defines no scorer", p)
        self.assertEqual(self.problems("import sluice_sdk\nclass A(sluice_sdk.Scorer):\n    pass\nsluice_sdk.export(A)\n"), [])

    def test_host_calls_at_module_top_level(self) -> None:
        text = (
            "import sluice_sdk as s\nfrom sluice_sdk import host_batch\nm = s.Model.load('model')\n"
            "host_batch.deliver_columns(['id'])\ndef init():\n    s.info('fine here')\ndef run(mb):\n    return []\n"
        )
        ps = self.problems(text)
        self.assertEqual(len(ps), 2, ps)
        self.assertIn("score.py:3: `s.Model.load()` at module top level: host imports (onnx, batch, log)", ps[0])
        self.assertIn("score.py:4: `host_batch.deliver_columns()`", ps[1])


# componentize-py 0.25.1's output for a module that raises while being
# built, and for a host import called at import time (backtraces cut).
RAISED = """Traceback (most recent call last):
  File "/venv/bin/componentize-py", line 8, in <module>
    sys.exit(script())
             ^^^^^^^^
AssertionError: Traceback (most recent call last):
  File "/1/sluice_component_main.py", line 5, in <module>
  File "/0/score.py", line 4, in <module>
    helper()
    ~~~~~~^^
  File "/0/score.py", line 3, in helper
    raise ValueError("bad setting")
ValueError: bad setting


Caused by:
    ValueError: bad setting

Stack backtrace:
   0: <anyhow::Error>::msg::<alloc::string::String>
   1: anyhow::__private::format_err
"""

TRAPPED = """AssertionError: 

Caused by:
    0: error while executing at wasm backtrace:
           0: 0xa0991d - <unknown>!<wasm function 91>
           1: 0x9fb9ba - <unknown>!adapter load
    1: called trapping stub: sluice:scorer/onnx@0.1.3#load

Stack backtrace:
   0: <anyhow::Error>::msg::<alloc::string::String>
"""


class BuildTest(unittest.TestCase):
    def test_a_failed_build_is_the_users_traceback(self) -> None:
        msg = build.explain_failure(RAISED, "/app/score.py", {"/0/": "/app"})
        self.assertIn("/app/score.py:4 in <module>", msg)
        self.assertIn("/app/score.py:3 in helper", msg)
        self.assertIn("ValueError: bad setting", msg)
        self.assertNotIn("sluice_component_main", msg)
        self.assertNotIn("Stack backtrace", msg)
        self.assertNotIn("AssertionError", msg)

    def test_a_trapping_stub_is_a_sentence(self) -> None:
        msg = build.explain_failure(TRAPPED, "/app/score.py", {"/0/": "/app"})
        self.assertIn("`sluice:scorer/onnx@0.1.3#load` was called at import time", msg)
        self.assertIn("can only be called from init/run, not at import time", msg)
        self.assertNotIn("0xa0991d", msg)

    def test_a_native_import_stops_the_build_before_componentize_py(self) -> None:
        d = tempdir(self)
        script = write(d, "score.py", "import pandas\ndef run(mb):\n    return []\n")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = build.main(["build", script, "-o", os.path.join(d, "out.wasm")])
        self.assertEqual(rc, 1)
        self.assertIn("score.py:1: `import pandas`: pandas is a native extension", err.getvalue())
        self.assertFalse(os.path.exists(os.path.join(d, "out.wasm")))

    def test_a_module_named_like_the_standard_library_is_refused(self) -> None:
        d = tempdir(self)
        with self.assertRaises(build.BuildError) as e:
            build.build(write(d, "json.py", "def run(mb):\n    return []\n"), os.path.join(d, "o.wasm"))
        self.assertIn("rename the file", str(e.exception))


if __name__ == "__main__":
    unittest.main()
