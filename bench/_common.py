"""What every benchmark case shares: sizes, Ray start-up, the orch and stock Ray Tune runs
side by side, tables, and memory sampling. Cases live in ``bench/run.py`` and ``bench/_*.py``.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RAY_CPUS = 2  # the benchmark machine's cores; every trial asks for 1 CPU
SIZES = ("smoke", "default", "full")

# orch sets these for its own driver (engine._driver_env); stock Ray Tune runs without them.
ORCH_ENV = ("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "TUNE_DISABLE_STRICT_METRIC_CHECKING",
            "RAY_AIR_NEW_OUTPUT")
CV3 = {"folds": 3}  # the K-fold the digits cases use
DIGITS_SPACE = {  # a space with good and poor corners, so search and early stopping matter
    "lr": {"distribution": "log_uniform_values", "min": 0.0003, "max": 0.1},
    "optimizer": {"values": ["adam", "sgd"]},
    "width": {"values": [16, 32, 64, 128]},
    "depth": {"min": 1, "max": 3},
    "batch_size": {"values": [32, 64, 128]},
}


def pick(size: str, smoke: Any, default: Any, full: Any) -> Any:
    return {"smoke": smoke, "default": default, "full": full}[size]


# ----------------------------------------------------------------------------- set-up


def start_ray() -> None:
    """Start Ray once (workers import ``bench._trainables``); orch then finds it running."""
    import ray

    if not ray.is_initialized():
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        # address="local": a Ray of this process's own, never a cluster someone else's
        # `ray start` left on the machine (the figures would be that cluster's).
        ray.init(address="local", num_cpus=RAY_CPUS, include_dashboard=False,
                 logging_level="ERROR",
                 _node_ip_address="127.0.0.1", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    from orchestrator.engine import ensure_ray

    ensure_ray(None)


def machine() -> dict[str, Any]:
    import mlflow
    import optuna
    import ray
    import torch

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "ray_cpus": RAY_CPUS, "cpu": cpu,
            "python": platform.python_version(), "ray": ray.__version__,
            "optuna": optuna.__version__, "mlflow": mlflow.__version__,
            "torch": torch.__version__}


def fresh_store(folder: Path, name: str = "mlflow") -> str:
    """A SQLite MLflow store whose schema already exists (as after a first sweep).

    Creating the schema takes about 2 s once per store; no sweep pays it twice.
    """
    uri = f"sqlite:///{folder / name}.db"
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


@contextlib.contextmanager
def ray_defaults() -> Iterator[None]:
    """Stock Ray Tune's environment: without the variables orch sets for its driver."""
    saved = {k: os.environ.pop(k) for k in ORCH_ENV if k in os.environ}
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        os.environ.update(saved)


def orch_sweep(spec: dict[str, Any], *, work: Path, trainable: Callable | None = None,
               tracking: bool = True, uri: str | None = None) -> tuple[Any, float]:
    """Run one orch sweep; return the result and the wall time of the whole call."""
    import orchestrator

    t0 = time.perf_counter()
    result = orchestrator.sweep(spec, trainable=trainable, tracking=tracking,
                                tracking_uri=uri if tracking else None,
                                storage_path=str(work / "ray"), live=False)
    return result, time.perf_counter() - t0


class TrialClock:
    """A Ray Tune callback noting when trials start and end (driver clock, like orch's ledger)."""

    def __new__(cls) -> Any:
        from ray import tune

        class _Clock(tune.Callback):
            def __init__(self) -> None:
                self.started: list[float] = []
                self.ended: list[float] = []
                self.done = 0

            def on_trial_start(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
                self.started.append(time.time())

            def on_trial_complete(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
                self.ended.append(time.time())
                self.done += 1

            def span(self) -> float:
                return max(self.ended) - min(self.started) if self.ended else math.nan

        return _Clock()


def orch_span(result: Any) -> float:
    """Seconds from the first trial's start to the last trial's end (driver clock)."""
    starts = [r.started for r in result.records if r.started]
    ends = [r.ended for r in result.records if r.ended]
    return max(ends) - min(starts) if starts and ends else math.nan


def stock_tune(fn: Callable, param_space: dict[str, Any], num_samples: int, *, work: Path,
               clock: Any = None, **tune_config: Any) -> tuple[Any, float]:
    """Stock Ray Tune: default settings but for the ones given (and files kept in `work`)."""
    from ray import tune

    with ray_defaults():
        tuner = tune.Tuner(fn, param_space=param_space,
                           tune_config=tune.TuneConfig(num_samples=num_samples, **tune_config),
                           run_config=tune.RunConfig(storage_path=str(work / "ray-stock"),
                                                     callbacks=[clock] if clock else None))
        t0 = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - t0
    return grid, wall


def simple_spec(name: str, run_cap: int, *, metric: str = "loss", method: str = "random",
                params: dict[str, Any] | None = None, seed: int = 0,
                **extra: Any) -> dict[str, Any]:
    return {"name": name, "method": method, "metric": {"name": metric, "goal": "minimize"},
            "run_cap": run_cap, "seed": seed,
            "parameters": params or {"x": {"min": 0.0, "max": 1.0}}, **extra}


def digits_spec(name: str, run_cap: int, epochs: int, *, seed: int = 0, method: str = "random",
                asha: bool = False, target: float | None = None, folds: int = 3,
                max_concurrent: int = RAY_CPUS, space: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    metric: dict[str, Any] = {"name": "val_acc", "goal": "maximize"}
    if target is not None:
        metric["target"] = target
    spec: dict[str, Any] = {
        "name": name, "trainable": "digits_mlp", "method": method, "metric": metric,
        "run_cap": run_cap, "seed": seed, "max_concurrent": max_concurrent,
        "cv": {"folds": folds},
        "parameters": {**(space or DIGITS_SPACE), "epochs": {"value": epochs}},
    }
    if asha:
        spec["early_terminate"] = {"type": "asha", "grace_period": 1, "max_t": epochs,
                                   "reduction_factor": 3}
    return spec


def epochs_spent(result: Any, folds: int) -> int:
    """Fold-epochs trained: each trial's epochs times the folds (K-fold trains in lockstep)."""
    return sum(r.epochs for r in result.records) * folds


def best_acc(result: Any) -> float:
    values = [v for r in result.records for v in [r.value("val_acc")] if v is not None]
    return max(values) if values else math.nan


def median_iqr(values: list[float]) -> tuple[float, float, float]:
    import numpy as np

    q25, q50, q75 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q50), float(q25), float(q75)


def table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            if math.isinf(v):
                return "inf"
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return "-" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    lines = [title, "  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)



# ----------------------------------------------------------------------------- memory


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def sampled_sweep(run: Callable[[], Any], count: Callable[[], int]) -> tuple[Any, list]:
    """Run `run` while sampling (finished trials, RSS kB) every 0.2 s."""
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(Exception):
                samples.append((count(), rss_kb()))
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        out = run()
    finally:
        done.set()
        thread.join()
    samples.append((count(), rss_kb()))
    return out, samples


def growth(samples: list[tuple[int, int]], n: int) -> float:
    """kB per finished trial: a linear fit over the samples past the first 10% of trials."""
    import numpy as np

    pts = [(c, r) for c, r in samples if c >= max(1, n // 10)]
    if len({c for c, _ in pts}) < 3:
        return math.nan
    x, y = np.array(pts, dtype=float).T
    return float(np.polyfit(x, y, 1)[0])


