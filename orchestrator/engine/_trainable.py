"""Find a trainable from its spec reference: a built-in name or ``package.module:function``.

What a spec may name (the trust model, see SECURITY.md): a function or class that
is *defined* in your own module (the folder ``orch`` runs from) or in an installed
package, that takes one argument (the trial's config). Never a function of Python's
standard library or a builtin (``subprocess:run``, ``os:system``, ``builtins:eval``
would let a spec run commands), and never a name a module merely imports from
somewhere else. A spec still runs the code it names, as a script would: run specs
you trust.

``check_trainable`` looks without running anything (``orch validate`` stays
instant and side-effect free: the module's file is parsed, not imported) and says
which module and file will be imported; ``load_trainable`` imports for real and
checks the object. Modules are found in the folder ``orch`` was started from as
well as in installed packages.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import TrainableImportError

__all__ = ["BUILTINS", "TrainableInfo", "check_trainable", "load_trainable", "origin",
           "reference_of", "split_reference"]

# What a trainable calls to use the spec's `cv:` (see README "Your own trainable").
FOLD_READERS = frozenset({"fit_classifier", "cv_settings", "fold_indices", "cv_folds"})
BUILTINS: dict[str, str] = {
    "digits_mlp": "trainables.digits:digits_mlp",
    "digits_cnn": "trainables.digits:digits_cnn",
}


@dataclass(frozen=True)
class TrainableInfo:
    """Where a trainable will come from: shown by ``orch validate``."""

    ref: str
    module: str
    name: str
    file: str  # "" when only a real import can tell (compiled or namespace module)
    kind: str  # "function", "class", "object" (a module-level value, e.g. with_parameters)
    reads_folds: bool | None = None  # its module asks for the spec's `cv:` (None: cannot tell)

    def describe(self) -> str:
        where = f"{self.file}" if self.file else "a compiled or namespace module"
        return f"trainable {self.ref}: {self.kind} {self.name!r} of module {self.module} ({where})"


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


def _refuse_stdlib(ref: str, module: str) -> None:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise TrainableImportError(
            f"trainable {ref!r} names {module!r}, a module of Python's standard library: a "
            "spec may only name a function of your own code or of an installed package "
            "(standard-library functions such as subprocess.run or os.system would let a "
            "spec run commands). Write your trainable in a module of your own, e.g. "
            "`trainable: mymodule:train`"
        )


def _signature_problem(args: ast.arguments) -> str:
    """Why a function of these parameters cannot be called as ``fn(config)``, or ""."""
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    if required > 1:
        names = ", ".join(a.arg for a in positional[:required])
        return f"takes {required} required arguments ({names}); a trainable takes one, the config"
    if not positional and args.vararg is None:
        return "takes no positional argument; a trainable takes one, the config"
    required_kw = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    if required_kw:
        return f"has required keyword-only arguments ({', '.join(required_kw)})"
    return ""


def check_trainable(ref: str) -> TrainableInfo:
    """Raise :class:`TrainableImportError` unless `ref` names a usable trainable; say where.

    Finds the module's file and parses it without running it (parent packages of a
    dotted name are imported, as Python must to find the module).
    """
    module, func = split_reference(ref)
    _refuse_stdlib(ref, module)
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
    origin_file = found.origin
    if not origin_file or not origin_file.endswith(".py") or not Path(origin_file).is_file():
        return TrainableInfo(ref, module, func, "", "object")  # only a real import can tell
    try:
        tree = ast.parse(Path(origin_file).read_text(encoding="utf-8"), filename=origin_file)
    except SyntaxError as exc:
        raise TrainableImportError(
            f"trainable {ref!r}: {origin_file} line {exc.lineno}: syntax error: {exc.msg}"
        ) from None
    defined: dict[str, ast.AST] = {}
    imported: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    defined[t.id] = node
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                imported[a.asname or a.name] = f"{node.module or '.'}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                imported[(a.asname or a.name).split(".")[0]] = a.name
    if func not in defined:
        if func in imported:
            raise TrainableImportError(
                f"trainable {ref!r}: {func!r} is not defined in {module} ({origin_file}) but "
                f"imported into it from {imported[func]}; name the function where it is "
                "defined (and never a standard-library one)"
            )
        public = sorted(n for n in defined if not n.startswith("_"))
        raise TrainableImportError(
            f"trainable {ref!r}: module {module!r} ({origin_file}) defines no {func!r}; "
            f"it defines: {', '.join(public) or 'nothing'}"
        )
    node = defined[func]
    kind = "object"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        kind = "function"
        problem = _signature_problem(node.args)
        if problem:
            raise TrainableImportError(f"trainable {ref!r} ({origin_file} line {node.lineno}) "
                                       f"{problem}: write `def {func}(config):`")
    elif isinstance(node, ast.ClassDef):
        kind = "class"
    elif isinstance(getattr(node, "value", None), ast.Constant):
        raise TrainableImportError(
            f"trainable {ref!r}: {func!r} in {origin_file} line {node.lineno} is a constant, "
            "not a function; name the function that trains"
        )
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | set(imported)
    return TrainableInfo(ref, module, func, origin_file, kind,
                         reads_folds=bool(names & FOLD_READERS))


def origin(obj: Any) -> Any:
    """The user's function behind wrappers: ``functools.partial``, ``__wrapped__``, and
    Ray Tune's ``tune.with_parameters`` (which closes over the function it wraps)."""
    seen = set()
    while id(obj) not in seen:
        seen.add(id(obj))
        if isinstance(obj, functools.partial):
            obj = obj.func
        elif getattr(obj, "__wrapped__", None) is not None:
            obj = obj.__wrapped__
        elif str(getattr(obj, "__module__", "")).startswith("ray.tune") and \
                getattr(obj, "__closure__", None):
            inner = [c.cell_contents for c in obj.__closure__
                     if inspect.isfunction(getattr(c, "cell_contents", None))
                     or inspect.isclass(getattr(c, "cell_contents", None))]
            if not inner:
                break
            obj = inner[0]
        else:
            break
    return obj


def reference_of(fn: Any) -> str:
    """A ``module:function`` name for a trainable passed as an object (recorded, shown)."""
    target = origin(fn)
    module = getattr(target, "__module__", None) or "__main__"
    name = getattr(target, "__qualname__", "") or getattr(target, "__name__", "")
    return f"{module}:{name if name.isidentifier() else 'trainable'}"  # lambdas, partials


def load_trainable(ref: str) -> Callable[[dict[str, Any]], Any]:
    """Import and return the trainable; errors name the module and the cause."""
    module, func = split_reference(ref)
    _refuse_stdlib(ref, module)
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
        raise TrainableImportError(f"trainable {ref!r}: {func!r} is a "
                                   f"{type(fn).__name__}, not a function")
    behind = origin(fn)
    where = getattr(inspect.getmodule(behind), "__name__", "") or ""
    if where:
        _refuse_stdlib(f"{ref} (defined in {where})", where)
    return fn
