"""Run ``orch`` (its real CLI) and write down when each phase of its start began and ended.

    ORCH_TIMELINE=marks.json [ORCH_TIMELINE_PREWARM=1] python bench/_timeline.py sweep SPEC ...

Nothing is imported ahead of orch: ``builtins.__import__`` is wrapped to time the first
import of each heavy package where orch really imports it, and each phase's function is
wrapped once its module is loaded. The marks (seconds since this process started, from
``/proc/self/stat``) go to ``$ORCH_TIMELINE`` as JSON when the process exits.

``ORCH_TIMELINE_PREWARM=1`` tries one of the changes bench/README.md proposes: a thread
started with the CLI imports MLflow and Optuna and opens the tracking store while the main
thread starts Ray (what ``orch sweep`` could do itself).
"""

from __future__ import annotations

import atexit
import builtins
import functools
import json
import os
import resource
import sys
import threading
import time

WATCH = ("ray", "mlflow", "optuna", "torch", "pandas", "pyarrow", "sqlalchemy", "sklearn",
         "scipy", "typer", "rich", "numpy", "matplotlib", "yaml", "pydantic")
# (module, attribute path, phase name): wrapped as soon as the module is imported.
PHASES = (
    ("orchestrator.cli._sweep", "load", "load spec"),
    ("orchestrator.method", "resolve_placeholders", "resolve placeholders"),
    ("orchestrator.engine.raytune._run", "ensure_ray", "ensure_ray (ray.init)"),
    ("orchestrator.engine.raytune._run", "trial_resources", "trial_resources"),
    ("orchestrator.engine.raytune._run", "check_resources", "check_resources"),
    ("orchestrator.engine.raytune._run", "_build_tuner", "build Tuner (search, scheduler)"),
    ("orchestrator.tracking._recorder", "Recorder.start", "MLflow store setup (Recorder.start)"),
    ("orchestrator.tracking._recorder", "git_state", "git_state (2 git calls)"),
    ("ray.tune", "Tuner.fit", "Tuner.fit"),
    ("orchestrator.engine.raytune._callbacks", "TuneCallback.on_trial_start",
     "first trial start (driver)"),
    ("orchestrator.tracking._recorder", "Recorder.finish", "Recorder.finish"),
)


def _process_start() -> float:
    """This process's start, on the ``time.time()`` clock."""
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


T0 = _process_start()
MARKS: list[dict] = [{"name": "python started", "begin": 0.0, "end": time.time() - T0}]
_pending = list(PHASES)
_imported: set[str] = set()
_original_import = builtins.__import__
_depth = [0]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime


def _wrap(name: str, fn):  # type: ignore[no-untyped-def]
    once = name.startswith("first ")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        begin, cpu = time.time() - T0, _cpu()
        try:
            return fn(*args, **kwargs)
        finally:
            if not once or not any(m["name"] == name for m in MARKS):
                MARKS.append({"name": name, "begin": begin, "end": time.time() - T0,
                              "cpu": _cpu() - cpu})

    return wrapper


def _patch_ready() -> None:
    for item in list(_pending):
        module, attr, name = item
        mod = sys.modules.get(module)
        if mod is None or getattr(getattr(mod, "__spec__", None), "_initializing", False):
            continue  # not imported yet, or still running its body
        owner, _, leaf = attr.rpartition(".")
        target = getattr(mod, owner, None) if owner else mod
        if target is None or not hasattr(target, leaf):
            continue
        setattr(target, leaf, _wrap(name, getattr(target, leaf)))
        _pending.remove(item)


def _timed_import(name, globals=None, locals=None, fromlist=(), level=0):  # type: ignore[no-untyped-def]
    top = name.split(".", 1)[0] if level == 0 else ""
    watched = top in WATCH and top not in _imported and top not in sys.modules
    if watched:
        _imported.add(top)
        begin = time.time() - T0
    _depth[0] += 1
    try:
        return _original_import(name, globals, locals, fromlist, level)
    finally:
        _depth[0] -= 1
        if watched:
            MARKS.append({"name": f"import {top}", "begin": begin, "end": time.time() - T0,
                          "thread": threading.current_thread().name})
        if _pending:
            _patch_ready()


def _prewarm() -> None:
    """What the main thread would otherwise do after Ray has started."""
    begin = time.time() - T0
    try:
        import optuna  # noqa: F401
        from mlflow import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or ""
        argv = sys.argv
        if "--tracking-uri" in argv:
            uri = argv[argv.index("--tracking-uri") + 1]
        if uri:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    finally:
        MARKS.append({"name": "prewarm thread (mlflow, optuna, store)", "begin": begin,
                      "end": time.time() - T0, "thread": "prewarm"})


def _dump() -> None:
    path = os.environ.get("ORCH_TIMELINE")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"t0": T0, "marks": MARKS}, f, indent=1)


def main() -> None:
    atexit.register(_dump)
    builtins.__import__ = _timed_import
    begin = time.time() - T0
    from orchestrator.cli import main as orch_main

    MARKS.append({"name": "import orchestrator.cli", "begin": begin, "end": time.time() - T0})
    if os.environ.get("ORCH_TIMELINE_PREWARM") == "1":
        threading.Thread(target=_prewarm, name="prewarm", daemon=True).start()
    sys.argv = ["orch", *sys.argv[1:]]
    orch_main()


if __name__ == "__main__":
    main()
