"""Find a trainable from its spec reference: a built-in name or ``package.module:function``.

``check_trainable`` looks without running anything (``orch validate`` stays
instant and side-effect free); ``load_trainable`` imports for real. Modules are
found in the folder ``orch`` was started from as well as in installed packages.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import TrainableImportError

__all__ = ["BUILTINS", "check_trainable", "load_trainable", "split_reference"]

BUILTINS: dict[str, str] = {
    "digits_mlp": "trainables.digits:digits_mlp",
    "digits_cnn": "trainables.digits:digits_cnn",
}


def split_reference(ref: str) -> tuple[str, str]:
    """``"pkg.mod:fn"`` (or ``"pkg.mod.fn"``) → ``("pkg.mod", "fn")``; built-ins expanded."""
    ref = BUILTINS.get(ref, ref)
    if ":" in ref:
        module, _, func = ref.partition(":")
    elif "." in ref:
        module, _, func = ref.rpartition(".")
    else:
        raise TrainableImportError(
            f"trainable {ref!r} is neither a built-in ({', '.join(BUILTINS)}) nor "
            "`module:function`; write e.g. `trainable: mymodule:train`"
        )
    return module, func


def _ensure_cwd_on_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def check_trainable(ref: str) -> None:
    """Raise :class:`TrainableImportError` unless `ref` names a function that can be imported.

    Finds the module's file and parses it without running it (parent packages of a
    dotted name are imported, as Python must to find the module).
    """
    module, func = split_reference(ref)
    _ensure_cwd_on_path()
    try:
        # For a dotted name this imports the parent packages (their __init__ runs).
        found = importlib.util.find_spec(module)
    except Exception as exc:  # any error in a parent package is the user's to see, clearly
        found, error = None, exc
    else:
        error = None
    if found is None:
        raise TrainableImportError(
            f"trainable {ref!r}: module {module!r} cannot be found"
            + (f" ({error})" if error else "")
            + f"; it must be importable from {os.getcwd()} or an installed package"
        )
    origin = found.origin
    if not origin or not origin.endswith(".py") or not Path(origin).is_file():
        return  # compiled or namespace module: only a real import can tell
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"), filename=origin)
    except SyntaxError as exc:
        raise TrainableImportError(
            f"trainable {ref!r}: {origin} line {exc.lineno}: syntax error: {exc.msg}"
        ) from None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    if func not in names:
        raise TrainableImportError(
            f"trainable {ref!r}: module {module!r} ({origin}) defines no {func!r}; "
            f"it defines: {', '.join(sorted(n for n in names if not n.startswith('_'))) or 'nothing'}"
        )


def load_trainable(ref: str) -> Callable[[dict[str, Any]], Any]:
    """Import and return the trainable function; errors name the module and the cause."""
    module, func = split_reference(ref)
    _ensure_cwd_on_path()
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any error while importing user code is reported, not raised raw
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        raise TrainableImportError(
            f"trainable {ref!r}: importing module {module!r} failed: {last}"
        ) from exc
    fn = getattr(mod, func, None)
    if fn is None:
        public = sorted(n for n in vars(mod) if not n.startswith("_") and callable(vars(mod)[n]))
        raise TrainableImportError(
            f"trainable {ref!r}: module {module!r} has no {func!r}; callables there: "
            f"{', '.join(public[:20]) or 'none'}"
        )
    if not callable(fn):
        raise TrainableImportError(f"trainable {ref!r}: {func!r} is not callable")
    return fn
