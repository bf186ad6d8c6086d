"""Case ``startup``: per-trial overhead at steady state, and what happens before the first trial.

    python bench/run.py startup [--full | --smoke]

1. **Steady state.** ``n`` trivial trials (report once, return), 2 slots, in this process on
   one Ray instance, in the order orch on, Ray reuse, orch off, orch off, Ray reuse, orch on
   (drift cancels): milliseconds per trial from the first trial's start to the last one's
   end (driver clock). While the first orch run (tracking on) is in its steady part,
   ``py-spy`` samples the driver (threads holding the GIL only, i.e. Python CPU time) and
   the samples are split by the package of the innermost known frame, and by whether
   an orch frame is on the stack at all.
2. **Imports.** ``python -X importtime`` of what ``orch sweep`` imports, by top-level
   package (cumulative), in fresh processes.
3. **Timeline.** ``orch sweep`` (1 trial, SQLite store, its own Ray) run through
   ``bench/_timeline.py``, which notes when each phase began and ended (imports where orch
   does them, ``ray.init``, the Tuner, the MLflow store, ``Tuner.fit``, the first trial), as
   shipped and with the MLflow/Optuna imports and store set-up moved to a thread started
   with the CLI (``ORCH_TIMELINE_PREWARM=1``), alternating, ``repeats`` times each.
"""

from __future__ import annotations

import collections
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import (
    ROOT,
    TrialClock,
    fresh_store,
    orch_span,
    orch_sweep,
    pick,
    simple_spec,
    stock_tune,
    table,
)

PROFILE_RATE_HZ = 200  # py-spy samples per second
PACKAGES = ("orchestrator", "optuna", "mlflow", "sqlalchemy", "ray", "pyarrow", "bench")


# ----------------------------------------------------------------------------- 1 steady


def _classify(stack: list[str]) -> tuple[str, bool]:
    """The package of the innermost frame we know, and whether orch is on the stack."""
    inner = "other"
    for frame in reversed(stack):  # collapsed stacks list the outermost frame first
        hit = next((p for p in PACKAGES if f"/{p}/" in frame or f"{p}/" in frame.split("(")[-1]),
                   None)
        if hit:
            inner = hit
            break
    return inner, any("orchestrator/" in f for f in stack)


def profile_self(seconds: float, out: Path) -> subprocess.Popen | None:
    """py-spy on this process for ``seconds`` (raw collapsed stacks), or None without it."""
    exe = shutil.which("py-spy")
    if exe is None:
        return None
    return subprocess.Popen([exe, "record", "--pid", str(os.getpid()), "--duration",
                             str(max(1, int(seconds))), "--rate", str(PROFILE_RATE_HZ),
                             "--format", "raw", "--gil", "--nonblocking", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_profile(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    by_inner: collections.Counter[str] = collections.Counter()
    by_func: collections.Counter[str] = collections.Counter()
    orch_on_stack = total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        inner, orch = _classify(stack)
        by_inner[inner] += count
        total += count
        orch_on_stack += count * orch
        for frame in stack:  # inclusive: each orch function once per sample
            if "orchestrator/" in frame:
                by_func[frame.split(" (")[0] + " (" + frame.rsplit("orchestrator/", 1)[1]
                        .split(":")[0] + ")"] += count
    return {"samples": total,
            "by_inner_package": {k: v / total for k, v in by_inner.most_common()} if total else {},
            "orch_on_stack": orch_on_stack / total if total else math.nan,
            "orch_functions": {k: v / total for k, v in by_func.most_common(12)} if total else {}}


def steady(size: str, work: Path) -> dict[str, Any]:
    from ray import tune

    from bench import _trainables as T

    n = pick(size, 4, 200, 1000)
    uri = fresh_store(work, "steady")
    if size != "smoke":  # the first Tuner of a process starts Ray's worker pool: not timed
        stock_tune(T.trivial, {"x": tune.uniform(0, 1)}, 2, work=work / "warm",
                   reuse_actors=True)
    order = ["orch on", "ray reuse", "orch off", "orch off", "ray reuse", "orch on"]
    if size == "smoke":
        order = ["orch on"]
    spans: dict[str, list[float]] = collections.defaultdict(list)
    walls: dict[str, list[float]] = collections.defaultdict(list)
    prof = work / "steady.pyspy.txt"
    profile: dict[str, Any] = {}
    for i, mode in enumerate(order):
        if mode == "ray reuse":
            clock = TrialClock()
            _, wall = stock_tune(T.trivial, {"x": tune.uniform(0, 1)}, n, work=work,
                                 clock=clock, reuse_actors=True, max_concurrent_trials=2)
            span = clock.span()
        else:
            spy = None
            if i == 0 and size != "smoke":  # sample the steady part of the first orch run
                est = max(2.0, n * 0.03)
                spy = profile_self(est * 0.6, prof)
            result, wall = orch_sweep(simple_spec(f"steady-{i}", n, max_concurrent=2),
                                      work=work, trainable=T.trivial, tracking=mode == "orch on",
                                      uri=uri)
            span = orch_span(result)
            if spy is not None:
                spy.wait(timeout=120)
                profile = read_profile(prof)
        spans[mode].append(span)
        walls[mode].append(wall)
    rows = []
    ray_ms = 1000 * statistics.median(spans["ray reuse"]) / n if spans.get("ray reuse") \
        else math.nan
    for mode in [m for m in ("orch on", "orch off", "ray reuse") if spans.get(m)]:
        ms = 1000 * statistics.median(spans[mode]) / n
        rows.append({"system": {"orch on": "orch, tracking on (SQLite)",
                                "orch off": "orch, tracking off",
                                "ray reuse": "Ray Tune reuse_actors=True"}[mode],
                     "trials": n, "runs": len(spans[mode]),
                     "steady_ms_per_trial": ms, "minus_ray_ms": ms - ray_ms,
                     "x_ray": ms / ray_ms,
                     "whole_call_s": statistics.median(walls[mode])})
    return {"rows": rows, "order": order, "profile": profile}


# ----------------------------------------------------------------------------- 2 imports


IMPORTS = {  # what orch sweep imports, one statement per stage, in its order
    "orchestrator.cli": "import orchestrator.cli",
    "+ ray, ray.tune (engine.raytune)": "import orchestrator.cli; "
    "from orchestrator.engine import prepare_driver; prepare_driver(None); "
    "import orchestrator.engine.raytune",
    "+ optuna, OptunaSearch": "import orchestrator.cli; "
    "from orchestrator.engine import prepare_driver; prepare_driver(None); "
    "import orchestrator.engine.raytune, optuna, ray.tune.search.optuna",
    "+ mlflow (MlflowClient)": "import orchestrator.cli; "
    "from orchestrator.engine import prepare_driver; prepare_driver(None); "
    "import orchestrator.engine.raytune, optuna, ray.tune.search.optuna; "
    "from mlflow import MlflowClient",
}
TOP_IMPORTS = ("ray", "mlflow", "optuna", "sqlalchemy", "pandas", "pyarrow", "numpy", "scipy",
               "typer", "rich", "pydantic", "yaml", "sklearn", "torch", "orchestrator",
               "alembic", "flask", "fastapi", "google", "grpc", "opentelemetry", "requests",
               "cloudpickle", "packaging", "uvicorn", "starlette")


def import_times(repeats: int, stages_wanted: int = len(IMPORTS)) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stages = []
    chosen = dict(list(IMPORTS.items())[:stages_wanted])
    for label, code in chosen.items():
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                           capture_output=True, timeout=120)
            walls.append(time.perf_counter() - t0)
        stages.append({"stage": label, "wall_s": min(walls)})
    py = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
        py.append(time.perf_counter() - t0)
    stages.insert(0, {"stage": "python -c pass", "wall_s": min(py)})
    # One -X importtime of the whole chain: cumulative time of each top-level package's
    # first import (a package imported inside another is counted in the outer one too).
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           list(chosen.values())[-1]], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    top: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (x.strip() for x in line[len("import time:"):].split("|"))
        if not cumulative.isdigit():
            continue
        if name in TOP_IMPORTS:  # the top-level entry (not indented) of a package
            top[name] = max(top.get(name, 0.0), int(cumulative) / 1e6)
    packages = [{"package": k, "cumulative_s": v}
                for k, v in sorted(top.items(), key=lambda kv: -kv[1])]
    return {"stages": stages, "packages": packages}


# ----------------------------------------------------------------------------- 3 timeline


SPEC = ("name: bench-cli\ntrainable: bench._trainables:stamp\nmethod: random\n"
        "metric: {name: loss, goal: minimize}\nrun_cap: 1\nseed: 0\n"
        "parameters:\n  x: {min: 0.0, max: 1.0}\n")


def timeline_once(folder: Path, prewarm: bool, tag: str) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "one.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    stamp, marks = folder / f"stamp-{tag}.txt", folder / f"marks-{tag}.json"
    uri = fresh_store(folder, f"cli-{tag}")  # schema made: as after a first sweep
    env = {**os.environ, "ORCH_BENCH_STAMP": str(stamp), "ORCH_TIMELINE": str(marks),
           "ORCH_TIMELINE_PREWARM": "1" if prewarm else "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", ""))
                                         if p)}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, str(ROOT / "bench" / "_timeline.py"), "sweep", str(spec),
           "--no-live", "--tracking-uri", uri, "--storage-path", str(folder / "ray")]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    data = json.loads(marks.read_text()) if marks.exists() else {"t0": t0, "marks": []}
    first = (float(stamp.read_text().split()[0]) - data["t0"]) if stamp.exists() else math.nan
    return {"prewarm": prewarm, "rc": proc.returncode, "first_trial_s": first,
            "exit_s": time.time() - data["t0"], "marks": data["marks"],
            "tail": (proc.stdout + proc.stderr)[-800:] if proc.returncode else ""}


def timelines(work: Path, repeats: int, variants: tuple[bool, ...] = (False, True)
              ) -> list[dict[str, Any]]:
    runs = []
    for i in range(repeats):
        for prewarm in (variants if i % 2 == 0 else variants[::-1]):
            runs.append(timeline_once(work / "timeline", prewarm, f"{i}-{int(prewarm)}"))
    return runs


def phase_table(run: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"phase": m["name"], "begin_s": m["begin"], "end_s": m["end"],
             "took_s": m["end"] - m["begin"], "cpu_s": m.get("cpu"),
             "thread": m.get("thread", "")} for m in run["marks"]]
    rows.sort(key=lambda r: r["begin_s"])
    rows.append({"phase": "first trial running (worker's own clock)",
                 "begin_s": run["first_trial_s"]})
    return rows


# ----------------------------------------------------------------------------- study storage


def storage_costs(n: int = 300, repeats: int = 2, folder: Path | None = None
                  ) -> list[dict[str, Any]]:
    """ms per trial of ``ask`` + one ``suggest_float`` + ``tell`` (RandomSampler) with the
    Optuna storages a sweep's study can live in, side by side in this process."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="orch-bench-storage-")) if folder is None else folder
    kinds = {
        "in memory (Ray's OptunaSearch default)": lambda i: None,
        "RDB on SQLite (engine/_study.py, in progress)":
            lambda i: RDBStorage(f"sqlite:///{folder / f'rdb{i}.db'}"),
        "JournalStorage(JournalFileBackend)":
            lambda i: JournalStorage(JournalFileBackend(str(folder / f"journal{i}.log"))),
    }
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(repeats):
        for name, make in kinds.items():
            study = optuna.create_study(storage=make(i),
                                        sampler=optuna.samplers.RandomSampler(seed=0))
            t0 = time.perf_counter()
            for _ in range(n):
                trial = study.ask()
                study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
            times[name].append(1000 * (time.perf_counter() - t0) / n)
    return [{"storage": k, "trials": n, "ms_per_trial": statistics.median(v),
             "runs_ms": ", ".join(f"{x:.2f}" for x in v)} for k, v in times.items()]


# ----------------------------------------------------------------------------- case


def case_startup(size: str, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    st = steady(size, work)
    out["steady"] = st
    text = table(f"startup/steady: {st['rows'][0]['trials']} trivial trials, 2 slots, order "
                 f"{', '.join(st['order'])}; steady = first trial start to last trial end / "
                 "trials (median of runs)", st["rows"],
                 ["system", "trials", "runs", "steady_ms_per_trial", "minus_ray_ms", "x_ray",
                  "whole_call_s"])
    prof = st.get("profile") or {}
    if prof.get("samples"):
        text += (f"\npy-spy, orch tracking on, steady part ({prof['samples']} samples of the "
                 f"driver holding the GIL): an orch frame on the stack in "
                 f"{prof['orch_on_stack']:.0%}; innermost package: "
                 + ", ".join(f"{k} {v:.0%}" for k, v in prof["by_inner_package"].items())
                 + "\n  orch functions (inclusive share of samples): "
                 + "; ".join(f"{k} {v:.1%}" for k, v in prof["orch_functions"].items()))
    stor = storage_costs(pick(size, 5, 300, 1000), pick(size, 1, 2, 3), work)
    out["storage"] = stor
    text += "\n\n" + table("startup/storage: Optuna study storage, ask + suggest + tell per trial "
                           "(RandomSampler, median of runs)", stor,
                           ["storage", "trials", "ms_per_trial", "runs_ms"])
    imp = import_times(pick(size, 1, 3, 5), pick(size, 1, len(IMPORTS), len(IMPORTS)))
    out["imports"] = imp
    text += "\n\n" + table("startup/imports: fresh process, each stage adds to the one before "
                           "(best of repeats)", imp["stages"], ["stage", "wall_s"])
    text += "\n" + table("startup/imports: -X importtime, cumulative s of each top-level "
                         "package's first import (nested packages counted in both)",
                         imp["packages"][:14], ["package", "cumulative_s"])
    runs = timelines(work, pick(size, 1, 2, 4), pick(size, (False,), (False, True), (False, True)))
    out["timelines"] = runs
    for prewarm in (False, True):
        mine = [r for r in runs if r["prewarm"] == prewarm]
        if not mine:
            continue
        firsts = [r["first_trial_s"] for r in mine]
        label = "with the prewarm thread" if prewarm else "as shipped"
        text += (f"\n\nstartup/timeline `orch sweep` (1 trial) {label}: first trial running at "
                 + ", ".join(f"{x:.2f}" for x in firsts) + " s after the process started "
                 f"(median {statistics.median(firsts):.2f}); rc "
                 + ",".join(str(r["rc"]) for r in mine))
        text += "\n" + table(f"phases of the first run {label} (s since process start; cpu = "
                             "the calling thread's CPU time)", phase_table(mine[0]),
                             ["phase", "begin_s", "end_s", "took_s", "cpu_s", "thread"])
        if mine[0]["tail"]:
            text += "\n" + mine[0]["tail"]
    out["text"] = text
    return out


if __name__ == "__main__":  # a quick look: one timeline, or the storage costs
    if "--storage" in sys.argv:
        print(table("Optuna study storage, ask + suggest + tell per trial", storage_costs(),
                    ["storage", "trials", "ms_per_trial", "runs_ms"]))
    else:
        print(json.dumps(timeline_once(Path(tempfile.mkdtemp()), "--prewarm" in sys.argv, "x"),
                         indent=1))
