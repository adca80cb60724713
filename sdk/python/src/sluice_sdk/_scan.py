"""Checks run on the scorer's source before the (slow) componentize-py
build: syntax, the scorer's form, and imports that cannot work in the
sandbox (native extensions) or cannot be found. Runs on the host only."""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

# Modules the guest always has besides the standard library.
GUEST_PROVIDED = {"sluice_sdk", "wit_world", "componentize_py_types", "componentize_py_runtime", "poll_loop"}

_HOST_ONNX = (
    "convert the model to ONNX, grant it to the job as an input (type: mlflow_model or custom_model), "
    "and run it in the host fed by the mini-batch's columns: "
    'sluice_sdk.Model.load("model").request().columns("input", features).to_column("label", "prediction").run()'
)

#: Native-extension packages (C/C++/Rust code built for the build machine's
#: CPU, which WebAssembly cannot load) and what to do instead.
NATIVE: dict[str, str] = {
    "numpy": "keep numeric work in the host: "
    + _HOST_ONNX
    + "; use lists and the math / statistics modules for the rest",
    "pandas": "the mini-batch already arrives as typed columns (mini_batch.rows['col'].to_list()); leave feature "
    "columns in the host and " + _HOST_ONNX,
    "scipy": _HOST_ONNX,
    "sklearn": "convert the model on your machine, not in the scorer (an MLflow model folder: `python -m sluice_sdk "
    "convert-model MODEL_DIR`; a fitted model: skl2onnx), then " + _HOST_ONNX,
    "xgboost": "convert the model on your machine (an MLflow model folder: `python -m sluice_sdk convert-model "
    "MODEL_DIR`; else onnxmltools), then " + _HOST_ONNX,
    "lightgbm": "convert the model on your machine (an MLflow model folder: `python -m sluice_sdk convert-model "
    "MODEL_DIR`; else onnxmltools), then " + _HOST_ONNX,
    "catboost": "export the model to ONNX (model.save_model(path, format='onnx')), then " + _HOST_ONNX,
    "torch": "export the model with torch.onnx.export (on your machine), then " + _HOST_ONNX,
    "tensorflow": "convert the model with tf2onnx (on your machine), then " + _HOST_ONNX,
    "keras": "convert the model with tf2onnx (on your machine), then " + _HOST_ONNX,
    "onnxruntime": "the host runs ONNX Runtime for the scorer: " + _HOST_ONNX,
    "onnx": "the host loads and runs ONNX models for the scorer: " + _HOST_ONNX,
    "pyarrow": "the host reads CSV / Parquet / JSON Lines with Arrow and hands run() typed columns (mini_batch.rows)",
    "polars": "the host reads the input and hands run() typed columns (mini_batch.rows)",
    "cv2": "decode images on the host side before the job, or use a pure-Python decoder",
    "PIL": "use a pure-Python decoder, or prepare the images before the job",
    "numba": "write plain Python, or move the numeric work into an ONNX model run by the host",
    "statsmodels": _HOST_ONNX,
    "mlflow": "sluice reads MLflow model folders itself: grant the folder as an input of type mlflow_model (with an "
    "onnx flavor) and " + _HOST_ONNX,
    "azureml": "sluice runs the job itself: the mini-batch is run()'s argument and outputs go to append_row_to",
    "transformers": _HOST_ONNX,
}

_EXT = (".so", ".pyd", ".dylib")


@dataclass
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class Scan:
    problems: list[Problem] = field(default_factory=list)
    #: "class" (export() seen), "azure" (module-level run), or None.
    form: str | None = None
    files: list[str] = field(default_factory=list)


def _display(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _guarded(handlers: Iterable[ast.ExceptHandler]) -> bool:
    """Whether a `try` catches ImportError (or broader)."""
    for h in handlers:
        if h.type is None:
            return True
        names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
        for n in names:
            if isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError", "Exception", "BaseException"):
                return True
    return False


class _Imports(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[str, int, int]] = []  # (module, line, relative level)
        self._guard = 0

    def visit_Try(self, node: ast.Try) -> None:
        guarded = _guarded(node.handlers)
        self._guard += guarded
        for n in node.body:
            self.visit(n)
        self._guard -= guarded
        for n in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(n)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        t = node.test
        if (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
            isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
        ):
            for n in node.orelse:
                self.visit(n)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        if not self._guard:
            for a in node.names:
                self.found.append((a.name, node.lineno, 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if not self._guard:
            if node.level:
                for a in node.names:
                    mod = f"{node.module}.{a.name}" if node.module else a.name
                    self.found.append((mod, node.lineno, node.level))
            elif node.module:
                self.found.append((node.module, node.lineno, 0))


def _find(name: str, paths: list[str]) -> str | None:
    """The file or package folder of top-level module `name` on `paths`."""
    for p in paths:
        pkg = os.path.join(p, name)
        if os.path.isdir(pkg):
            return pkg
        if os.path.isfile(pkg + ".py"):
            return pkg + ".py"
        if os.path.isdir(p):
            for f in os.listdir(p):
                if f.startswith(name + ".") and f.endswith(_EXT):
                    return os.path.join(p, f)
    return None


def _has_extension(path: str) -> str | None:
    if path.endswith(_EXT):
        return path
    if os.path.isdir(path):
        for root, _dirs, files in os.walk(path):
            for f in files:
                if f.endswith(_EXT):
                    return os.path.join(root, f)
    return None


def _form(tree: ast.Module) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "export") or (isinstance(f, ast.Attribute) and f.attr == "export"):
                return "class"
        if isinstance(node, ast.ClassDef):
            for d in node.decorator_list:
                if (isinstance(d, ast.Name) and d.id == "export") or (
                    isinstance(d, ast.Attribute) and d.attr == "export"
                ):
                    return "class"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "run":
            return "azure"
    return None


#: SDK (and raw binding) functions that call the host.
_HOST_FUNCS = {
    "load", "granted", "deliver_columns", "columns", "null_rows",
    "log", "trace", "debug", "info", "warn", "warning", "error",
}
_HOST_MODULES = {"sluice_sdk", "sluice_sdk.host_batch", "sluice_sdk.onnx", "wit_world.imports.onnx",
                 "wit_world.imports.batch", "wit_world.imports.log"}

IMPORT_TIME = "host imports (onnx, batch, log) can only be called from init/run, not at import time"


class _TopLevelHostCalls(ast.NodeVisitor):
    """Calls of the SDK's host functions that run when the module is
    imported (componentize-py imports it at build time, without a host)."""

    def __init__(self, tree: ast.Module) -> None:
        self.modules: set[str] = set()  # local names of sluice_sdk and its host modules
        self.funcs: set[str] = set()  # local names of host functions
        self.classes: set[str] = set()  # local names of Model
        self.found: list[tuple[int, str]] = []
        for node in tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in _HOST_MODULES:
                        self.modules.add(a.asname or a.name)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    local = a.asname or a.name
                    if full in _HOST_MODULES:
                        self.modules.add(local)
                    elif node.module in _HOST_MODULES and a.name == "Model":
                        self.classes.add(local)
                    elif node.module in _HOST_MODULES and a.name in _HOST_FUNCS:
                        self.funcs.add(local)

    def _dotted(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        pass  # runs later, from init/run

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass

    def visit_If(self, node: ast.If) -> None:
        t = node.test
        if isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == "__name__":
            for n in node.orelse:
                self.visit(n)
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        if name is not None:
            head, _, last = name.rpartition(".")
            root, owner = head.partition(".")[0], head.rpartition(".")[2]
            host = (
                # info(...), after `from sluice_sdk import info`
                (not head and name in self.funcs)
                # sluice.info(...), host_batch.columns(...), onnx.load(...)
                or (head in self.modules and last in _HOST_FUNCS)
                # Model.load(...), after `from sluice_sdk import Model`
                or (head in self.classes and last in ("load", "granted"))
                # sluice.Model.load(...), sluice.host_batch.columns(...)
                or (root in self.modules and owner == "Model" and last in ("load", "granted"))
                or (root in self.modules and owner in ("host_batch", "onnx", "batch", "log") and last in _HOST_FUNCS)
            )
            if host:
                self.found.append((node.lineno, name))
        self.generic_visit(node)


def scan(script: str, paths: list[str]) -> Scan:
    """Checks `script` and the local modules it imports (found on `paths`:
    its folder first, then the `-p` folders)."""
    out = Scan()
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    seen: set[str] = set()
    todo = [os.path.abspath(script)]
    first = True
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        out.files.append(path)
        shown = _display(path)
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
            tree = ast.parse(source, filename=path)
        except SyntaxError as e:
            text = (e.text or "").rstrip("\n")
            msg = f"SyntaxError: {e.msg}"
            if text:
                msg += f"\n    {text}\n    {' ' * max((e.offset or 1) - 1, 0)}^"
            out.problems.append(Problem(shown, e.lineno or 0, msg))
            continue
        except (OSError, UnicodeDecodeError) as e:
            out.problems.append(Problem(shown, 0, f"cannot read: {e}"))
            continue
        if first:
            out.form = _form(tree)
            if out.form is None:
                out.problems.append(
                    Problem(
                        shown,
                        1,
                        "defines no scorer: call sluice_sdk.export(MyScorer) with a sluice_sdk.Scorer subclass, "
                        "or define module-level init() and run(mini_batch) as in an Azure ML score.py",
                    )
                )
            first = False
        calls = _TopLevelHostCalls(tree)
        calls.visit(tree)
        for line, name in calls.found:
            out.problems.append(
                Problem(shown, line, f"`{name}()` at module top level: {IMPORT_TIME}; move it into init()")
            )
        v = _Imports()
        v.visit(tree)
        here = os.path.dirname(path)
        for mod, line, level in v.found:
            if level:
                base = here
                for _ in range(level - 1):
                    base = os.path.dirname(base)
                found = _find(mod.split(".")[0], [base])
                if found:
                    todo.extend(_sources(found))
                continue
            top = mod.split(".")[0]
            if top in NATIVE:
                out.problems.append(
                    Problem(
                        shown,
                        line,
                        f"`import {mod}`: {top} is a native extension (machine code for your CPU), and a scorer runs "
                        f"as WebAssembly, so it cannot be imported. Instead: {NATIVE[top]}.",
                    )
                )
                continue
            if top in GUEST_PROVIDED or top in stdlib or top in sys.builtin_module_names:
                continue
            found = _find(top, paths)
            if found is None:
                out.problems.append(
                    Problem(
                        shown,
                        line,
                        f"`import {mod}`: no module `{top}` in the scorer's folder or a -p folder. A pure-Python "
                        f"package can be bundled: `pip install --target DIR {top}` and build with -p DIR; "
                        "packages with native code (C extensions) cannot run in the sandbox.",
                    )
                )
                continue
            ext = _has_extension(found)
            if ext is not None:
                out.problems.append(
                    Problem(
                        shown,
                        line,
                        f"`import {mod}`: {top} contains native code ({_display(ext)}), and a scorer runs as "
                        "WebAssembly, so it cannot be imported. Use pure-Python code, or move the numeric work into an "
                        "ONNX model the host runs (sluice_sdk.Model).",
                    )
                )
                continue
            todo.extend(_sources(found))
    return out


def _sources(found: str) -> list[str]:
    if found.endswith(".py"):
        return [os.path.abspath(found)]
    init = os.path.join(found, "__init__.py")
    return [os.path.abspath(init)] if os.path.isfile(init) else []
