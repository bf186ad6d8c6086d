"""orch benchmarks: ratios measured side by side in one process, on one machine.

    python bench/run.py CASE [--full | --smoke] [--out results.json]

CASE is one of overhead, bookkeeping, throughput, tracking, kfold, target, scale,
memory, startup, mf, parallel, server, or ``all``. The default size runs each case in under about five minutes on two
cores; ``--full`` is the size quoted in bench/README.md's aims; ``--smoke`` is
the tiny size tests/bench runs. Ray starts once per process and every sub-case
(orch and stock Ray Tune alike) runs on that one instance.

Each case prints a compact table and writes JSON (default
``bench/results/<case>.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402 - after the path is set
    CV3,
    DIGITS_SPACE,
    ORCH_ENV,
    RAY_CPUS,
    SIZES,
    TrialClock,
    digits_spec,
    epochs_spent,
    best_acc,
    fresh_store,
    growth,
    machine,
    median_iqr,
    orch_span,
    orch_sweep,
    pick,
    ray_defaults,
    rss_kb,
    sampled_sweep,
    simple_spec,
    start_ray,
    stock_tune,
    table,
)

CASES = ("overhead", "bookkeeping", "throughput", "tracking", "kfold", "target", "scale",
         "memory", "startup", "mf", "parallel", "server")
# ----------------------------------------------------------------------------- 1 overhead


def case_overhead(size: str, work: Path) -> dict[str, Any]:
    import optuna
    from ray import tune

    from bench import _trainables as T

    n = pick(size, 4, 30, 100)
    space = {"x": tune.uniform(0, 1)}
    if size != "smoke":  # the first Tuner of a process starts Ray's worker pool: not timed
        stock_tune(T.trivial, space, 2, work=work / "warm")

    rows: list[dict[str, Any]] = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    t0 = time.perf_counter()
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
    floor = time.perf_counter() - t0
    rows.append({"system": "optuna in-process (floor)", "wall_s": floor, "span_s": floor})

    uri = fresh_store(work, "overhead")
    result, wall = orch_sweep(simple_spec("overhead", n), work=work, trainable=T.trivial, uri=uri)
    rows.append({"system": "orch (tracking on, SQLite)", "wall_s": wall,
                 "span_s": orch_span(result), "completed": result.counts["completed"]})
    if size != "smoke":  # smoke: one orch code path (tracking on) is enough
        result, wall = orch_sweep(simple_spec("overhead-off", n), work=work, trainable=T.trivial,
                                  tracking=False)
        rows.append({"system": "orch (tracking off)", "wall_s": wall,
                     "span_s": orch_span(result), "completed": result.counts["completed"]})
    stock = [("Ray Tune defaults", {}), ("Ray Tune reuse_actors=True", {"reuse_actors": True})]
    for label, extra in stock[1:] if size == "smoke" else stock:  # smoke: one code path
        clock = TrialClock()
        grid, wall = stock_tune(T.trivial, space, n, work=work, clock=clock, **extra)
        rows.append({"system": label, "wall_s": wall, "span_s": clock.span(),
                     "completed": sum(1 for r in grid if r.error is None)})
    for row in rows:
        row["trials"] = n
        row["ms_per_trial"] = 1000 * row["wall_s"] / n
        row["x_optuna"] = row["wall_s"] / floor
        row["steady_ms_per_trial"] = 1000 * row["span_s"] / n
        row["setup_s"] = row["wall_s"] - row["span_s"]
    text = table(f"overhead: {n} trivial trials, 2 slots. ms_per_trial = whole call / trials; "
                 "steady = first trial start to last trial end / trials; setup = the rest",
                 rows, ["system", "trials", "completed", "wall_s", "ms_per_trial", "x_optuna",
                        "steady_ms_per_trial", "setup_s"])
    text += "\n(time to the first trial of `orch sweep`, with its breakdown: case `startup`)"
    return {"rows": rows, "text": text}


# ----------------------------------------------------------------------------- 2 bookkeeping


def case_bookkeeping(size: str, work: Path) -> dict[str, Any]:
    from ray import tune

    from bench import _trainables as T

    n, k = pick(size, 2, 40, 200), 1
    ideal = n * k / RAY_CPUS
    rows = []
    uri = fresh_store(work, "bookkeeping")
    spec = simple_spec("bookkeeping", n, max_concurrent=RAY_CPUS, resources={"cpu": 1},
                       params={"x": {"min": 0.0, "max": 1.0}, "k": {"value": k}})
    result, wall = orch_sweep(spec, work=work, trainable=T.sleeper, uri=uri)
    rows.append({"system": "orch (tracking on)", "wall_s": wall, "fit_s": result.wall_s,
                 "span_s": orch_span(result), "completed": result.counts["completed"]})
    stock = [("Ray Tune defaults", {}), ("Ray Tune reuse_actors=True", {"reuse_actors": True})]
    for label, extra in stock[1:] if size == "smoke" else stock:  # smoke: one code path
        clock = TrialClock()
        grid, wall = stock_tune(T.sleeper, {"x": tune.uniform(0, 1), "k": k}, n, work=work,
                                clock=clock, **extra)
        rows.append({"system": label, "wall_s": wall, "fit_s": wall, "span_s": clock.span(),
                     "completed": sum(1 for r in grid if r.error is None)})
    for row in rows:
        row.update(trials=n, ideal_s=ideal, ratio=row["wall_s"] / ideal,
                   fit_ratio=row["fit_s"] / ideal, span_ratio=row["span_s"] / ideal)
    aim = 1.10 if n <= 40 else 1.05
    text = table(f"bookkeeping: {n} trials x {k} s sleep, {RAY_CPUS} at once; ideal "
                 f"{ideal:g} s; aim <= {aim} (Ray's bar 1.28, best 1.14)", rows,
                 ["system", "trials", "completed", "wall_s", "ratio", "fit_s", "fit_ratio",
                  "span_s", "span_ratio"])
    text += ("\nratio = whole call / ideal; fit = Tuner.fit only (orch: result.wall_s); span = "
             "first trial start to last trial end (driver clock)")
    return {"rows": rows, "aim": aim, "text": text}


# ----------------------------------------------------------------------------- 3 throughput


def stored_points(uri: str, parent_run_id: str | None) -> int:
    path = uri[len("sqlite:///"):]
    with contextlib.closing(sqlite3.connect(path)) as db:
        (count,) = db.execute("select count(*) from metrics where run_uuid != ?",
                              (parent_run_id or "",)).fetchone()
    return int(count)


def case_throughput(size: str, work: Path) -> dict[str, Any]:
    from bench import _trainables as T

    rates = pick(size, [50], [50, 200], [50, 200, 1000])
    seconds = pick(size, 1.0, 10.0, 20.0)
    rows = []
    for rate in rates:
        sent = round(rate * seconds)
        uri = fresh_store(work, f"throughput{rate}")
        spec = simple_spec(f"throughput-{rate}", 2, max_concurrent=2,
                           params={"x": {"min": 0.0, "max": 1.0}, "rate": {"value": rate},
                                   "seconds": {"value": seconds}})
        result, wall = orch_sweep(spec, work=work, trainable=T.streamer, uri=uri)
        reported = sum(len(row) for r in result.records for row in r.history)
        stored = stored_points(uri, result.parent_run_id)
        elapsed = max((r.history[-1].get("elapsed", math.nan) for r in result.records
                       if r.history), default=math.nan)
        rows.append({"system": "orch (tracking on)", "rate": rate, "sent": 2 * sent,
                     "received": sum(r.epochs for r in result.records),
                     "trial_ratio": elapsed / seconds, "wall_ratio": wall / seconds,
                     "points_reported": reported, "points_stored": stored,
                     "stored_ratio": stored / reported if reported else math.nan,
                     "problems": "; ".join(result.tracking_problems)})
        grid, wall = stock_tune(T.streamer, {"x": 0.5, "rate": rate, "seconds": seconds}, 2,
                                work=work)
        elapsed = max((r.metrics or {}).get("elapsed", math.nan) for r in grid)
        received = sum(int((r.metrics or {}).get("training_iteration", 0)) for r in grid)
        rows.append({"system": "Ray Tune defaults", "rate": rate, "sent": 2 * sent,
                     "received": received, "trial_ratio": elapsed / seconds,
                     "wall_ratio": wall / seconds})
    text = table(f"throughput: 2 trials x {seconds:g} s at each rate (reports/s per trial); "
                 "trial_ratio = trial's own run time / duration, wall_ratio = whole call / "
                 "duration; stored_ratio must be 1.0", rows,
                 ["system", "rate", "sent", "received", "trial_ratio", "wall_ratio",
                  "points_reported", "points_stored", "stored_ratio"])
    return {"rows": rows, "seconds": seconds, "text": text}


# ----------------------------------------------------------------------------- 4 tracking


def case_tracking(size: str, work: Path) -> dict[str, Any]:
    trials, epochs, repeats = pick(size, (2, 1, 1), (6, 8, 3), (12, 8, 5))
    folds = pick(size, 2, 3, 3)
    space = {"lr": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.01},
             "width": {"values": [32, 64]}}
    uri = fresh_store(work, "tracking")
    walls: dict[str, list[float]] = {"on": [], "off": []}
    order = (["on", "off", "off", "on"] * repeats)[: 2 * repeats]  # ABBA: drift cancels
    for i, mode in enumerate(order):
        spec = digits_spec(f"tracking-{mode}", trials, epochs, folds=folds, space=space)
        _, wall = orch_sweep(spec, work=work, tracking=(mode == "on"), uri=uri)
        walls[mode].append(wall)
    rows = [{"tracking": m, "runs": len(w), "walls_s": ", ".join(f"{x:.2f}" for x in w),
             "median_s": statistics.median(w)} for m, w in walls.items()]
    ratio = rows[0]["median_s"] / rows[1]["median_s"]
    text = table(f"tracking: digits MLP, {trials} trials x {epochs} epochs x {folds} folds, "
                 f"2 slots; order {' '.join(order)}", rows,
                 ["tracking", "runs", "walls_s", "median_s"])
    text += f"\non/off wall ratio (medians): {ratio:.3f} (aim <= 1.02)"
    return {"rows": rows, "order": order, "ratio": ratio, "aim": 1.02, "text": text}


# ----------------------------------------------------------------------------- 5 kfold


def run_direct(configs: list[tuple[dict[str, Any], int]], cv: dict[str, Any],
               each: list[float] | None = None) -> float:
    """The same trainable and configs, called in this process one after another."""
    import orchestrator
    from trainables.digits import digits_mlp

    t0 = time.perf_counter()
    for config, seed in configs:
        t1 = time.perf_counter()
        with orchestrator.capture_reports(metric="val_loss", seed=seed, split_seed=cv["seed"],
                                          cv=cv, keep_checkpoints=False):
            digits_mlp(config)
        if each is not None:
            each.append(time.perf_counter() - t1)
    return time.perf_counter() - t0


def warm_direct(cv: dict[str, Any]) -> None:
    """Imports and the digits arrays, loaded before the direct run is timed."""
    run_direct([({"epochs": 1}, 0)], cv)


def case_kfold(size: str, work: Path) -> dict[str, Any]:
    from orchestrator.engine._context import derive_seed

    trials, epochs = pick(size, (1, 1), (4, 10), (8, 20))
    folds = pick(size, 2, 3, 3)
    uri = fresh_store(work, "kfold")
    spec = digits_spec("kfold-overhead", trials, epochs, folds=folds, max_concurrent=1)
    result, wall = orch_sweep(spec, work=work, uri=uri)
    cv = {"folds": folds, "stratify": True, "seed": spec["seed"]}
    configs = [(r.config, derive_seed(spec["seed"], r.config)) for r in result.records]
    warm_direct(cv)
    each: list[float] = []
    direct = run_direct(configs, cv, each)
    durations = [r.ended - r.started for r in result.records if r.started and r.ended]
    in_trials = sum(durations)
    over = [{"run": "direct (capture_reports, sequential, warm process)", "wall_s": direct,
             "ratio": 1.0},
            {"run": "orch, 1 slot, tracking on: whole call", "wall_s": wall,
             "ratio": wall / direct},
            {"run": "orch: sum of trial durations", "wall_s": in_trials,
             "ratio": in_trials / direct}]
    if len(durations) > 1:  # the first trial of a sweep pays the worker's cold imports
        over.append({"run": "orch: trials 2..n (warm worker) vs direct 2..n",
                     "wall_s": sum(durations[1:]), "ratio": sum(durations[1:]) / sum(each[1:])})
    text = table(f"kfold overhead: {trials} configs x {epochs} epochs x {folds} folds "
                 "(aim <= 1.05)", over, ["run", "wall_s", "ratio"])

    es_trials, es_epochs = pick(size, (2, 1), (12, 9), (30, 27))
    es = []
    runs = {}
    for asha in () if size == "smoke" else (True, False):  # smoke: the overhead part only
        spec = digits_spec("kfold-asha" if asha else "kfold-fifo", es_trials, es_epochs,
                           folds=folds, asha=asha)
        res, wall = orch_sweep(spec, work=work, tracking=False)
        runs[asha] = res
        es.append({"scheduler": "ASHA (grace 1, rf 3)" if asha else "none (FIFO)",
                   "trials": len(res.records), "stopped": res.counts["early_stopped"],
                   "fold_epochs": epochs_spent(res, folds), "best_val_acc": best_acc(res),
                   "wall_s": wall})
    if not es:
        return {"overhead": over, "early_stopping": es, "text": text}
    # Fold-epochs the no-stopping run spent before a finished trial first matched ASHA's best.
    goal, spent, reached = es[0]["best_val_acc"], 0, None
    for rec in sorted(runs[False].records, key=lambda r: r.ended or math.inf):
        spent += rec.epochs * folds
        if (rec.value("val_acc") or 0.0) >= goal:
            reached = spent
            break
    es[1]["fold_epochs_to_asha_best"] = reached
    es[0]["fold_epochs_to_asha_best"] = es[0]["fold_epochs"]
    text += "\n\n" + table(f"kfold early stopping: random search, seed 0, {es_trials} trials, "
                           f"max {es_epochs} epochs x {folds} folds (val_acc, max)", es,
                           ["scheduler", "trials", "stopped", "fold_epochs", "best_val_acc",
                            "fold_epochs_to_asha_best", "wall_s"])
    return {"overhead": over, "early_stopping": es, "text": text}


# ----------------------------------------------------------------------------- 6 target


ANALYTIC = {  # function -> (trainable name, space, optimum)
    "branin": ("branin", {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}},
               0.397887),
    "hartmann6": ("hartmann6", {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(1, 7)},
                  -3.32237),
}


def case_target(size: str, work: Path) -> dict[str, Any]:
    from bench import _trainables as T

    seeds = pick(size, 1, 3, 5)
    run_cap, epochs = pick(size, (2, 1), (12, 6), (40, 12))
    target = pick(size, 0.5, 0.95, 0.95)
    folds = pick(size, 2, 3, 3)
    cv = {"folds": folds, "stratify": True, "seed": 0}
    warm_direct(cv)
    one = run_direct([({"epochs": epochs}, 0)], cv)  # one default config, all epochs
    one_epochs = epochs * folds
    rows, raw = [], []
    searches = [("tpe", True), ("random", True), ("tpe", False), ("random", False)]
    for method, asha in searches[1:2] if size == "smoke" else searches:
        per_seed = []
        for seed in range(seeds):
            spec = digits_spec(f"target-{method}", run_cap, epochs, seed=seed, method=method,
                               asha=asha, target=target, folds=folds)
            res, wall = orch_sweep(spec, work=work, tracking=False)
            hit = res.target_reached
            per_seed.append({"seed": seed, "reached": hit, "fold_epochs": epochs_spent(res, folds),
                             "wall_s": wall, "best_val_acc": best_acc(res)})
        raw.append({"method": method, "asha": asha, "seeds": per_seed})
        ep = [s["fold_epochs"] if s["reached"] else math.inf for s in per_seed]
        wl = [s["wall_s"] if s["reached"] else math.inf for s in per_seed]
        med_ep, med_wall = statistics.median(ep), statistics.median(wl)
        rows.append({"search": f"{method}{'+ASHA' if asha else ''}",
                     "reached": f"{sum(s['reached'] for s in per_seed)}/{seeds}",
                     "median_fold_epochs": med_ep, "x_one_training_epochs": med_ep / one_epochs,
                     "median_wall_s": med_wall, "x_one_training_time": med_wall / one})
    text = table(f"target: digits MLP, val_acc >= {target}, {folds}-fold, <= {run_cap} trials x "
                 f"{epochs} epochs, 2 slots, {seeds} seed(s), tracking off; one full training "
                 f"= {one_epochs} fold-epochs, {one:.2f} s", rows,
                 ["search", "reached", "median_fold_epochs", "x_one_training_epochs",
                  "median_wall_s", "x_one_training_time"])

    trials, aseeds = pick(size, 5, 20, 50), pick(size, 1, 3, 10)
    samplers = pick(size, ["tpe"], ["random", "tpe", "gp", "cmaes"],
                    ["random", "tpe", "gp", "cmaes"])
    arows, araw = [], []
    functions = list(ANALYTIC.items())
    for fname, (tname, space, optimum) in functions[:1] if size == "smoke" else functions:
        for method in samplers:
            gaps, walls = [], []
            for seed in range(aseeds):
                spec = simple_spec(f"{fname}-{method}", trials, metric="value", method=method,
                                   params=space, seed=seed)
                res, wall = orch_sweep(spec, work=work, trainable=getattr(T, tname),
                                       tracking=False)
                best = min(v for r in res.records for v in [r.value("value")] if v is not None)
                gaps.append(best - optimum)
                walls.append(wall)
            med, q25, q75 = median_iqr(gaps)
            arows.append({"function": fname, "sampler": method, "trials": trials,
                          "seeds": aseeds, "gap_median": med, "gap_q25": q25, "gap_q75": q75,
                          "wall_s_median": statistics.median(walls)})
            araw.append({"function": fname, "sampler": method, "gaps": gaps, "walls": walls})
    text += "\n\n" + table(f"analytic: best value after {trials} trials (orch sweep, 2 slots, "
                           "tracking off), gap to the optimum over seeds", arows,
                           ["function", "sampler", "trials", "seeds", "gap_median", "gap_q25",
                            "gap_q75", "wall_s_median"])
    return {"digits": rows, "digits_raw": raw, "one_training": {"s": one, "fold_epochs": one_epochs},
            "analytic": arows, "analytic_raw": araw, "text": text}


# ----------------------------------------------------------------------------- 7 scale


def ask_times(method: str, checkpoints: list[int], asks: int) -> list[dict[str, Any]]:
    """Median time of ``study.ask()`` plus the define-by-run space, after n finished trials."""
    import optuna

    from orchestrator.engine._sampling import OptunaSpace, make_sampler
    from orchestrator.sweepspec import load_spec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(digits_spec("scale", 10, 5, method=method))
    space = OptunaSpace(spec.parameters, method=method)
    pool_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rng = __import__("random").Random(0)

    def value(params: dict[str, Any]) -> float:
        return (math.log10(params["lr"]) + 2.5) ** 2 + 0.1 * rng.random()

    def fill(study: Any, n: int) -> None:
        while len(study.trials) < n:
            t = pool_study.ask()
            params = space(t)
            pool_study.tell(t, value(params))
            study.add_trial(pool_study.trials[-1])

    study = optuna.create_study(sampler=make_sampler(spec))
    rows = []
    for n in checkpoints:
        fill(study, n)
        times = []
        for _ in range(asks):
            t0 = time.perf_counter()
            trial = study.ask()
            params = space(trial)
            times.append(time.perf_counter() - t0)
            study.tell(trial, value(params))
        rows.append({"sampler": method, "finished": n, "asks": asks,
                     "ask_ms_median": 1000 * statistics.median(times),
                     "ask_ms_max": 1000 * max(times)})
    return rows


def case_scale(size: str, work: Path) -> dict[str, Any]:
    from ray import tune

    from bench import _trainables as T
    from orchestrator.engine import OUTCOMES
    from orchestrator.engine.raytune._callbacks import LEDGERS

    tpe_at = pick(size, [20, 50], [100, 200, 300], [100, 500, 1000, 2000])
    gp_at = pick(size, [20], [100, 200], [100, 200, 500])  # GP is capped: its fit is O(n^3)
    asks = pick(size, 2, 5, 5)
    rows = ask_times("tpe", tpe_at, asks) + ask_times("gp", gp_at, asks)
    text = table(f"scale: searcher ask time vs finished trials (5-parameter digits space; GP "
                 f"capped at {gp_at[-1]})", rows,
                 ["sampler", "finished", "asks", "ask_ms_median", "ask_ms_max"])

    n = pick(size, 10, 200, 2000)
    uri = fresh_store(work, "scale")

    def orch_count() -> int:
        return sum(1 for led in list(LEDGERS.values())
                   for r in list(led.records.values()) if r.outcome in OUTCOMES)

    start = rss_kb()
    (_, wall), samples = sampled_sweep(
        lambda: orch_sweep(simple_spec("scale-mem", n), work=work, trainable=T.trivial, uri=uri),
        orch_count)
    mem = [{"system": "orch (tracking on)", "trials": n, "wall_s": wall, "rss_start_mb": start / 1024,
            "rss_peak_mb": max(r for _, r in samples) / 1024,
            "rss_end_mb": samples[-1][1] / 1024, "kb_per_trial": growth(samples, n)}]

    stock_done = {"n": 0}

    class Count(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
            stock_done["n"] += 1

    from ray import tune as _tune

    def stock() -> Any:
        with ray_defaults():
            tuner = _tune.Tuner(T.trivial, param_space={"x": _tune.uniform(0, 1)},
                                tune_config=_tune.TuneConfig(num_samples=n, reuse_actors=True),
                                run_config=_tune.RunConfig(storage_path=str(work / "ray-stock"),
                                                           callbacks=[Count()]))
            t0 = time.perf_counter()
            tuner.fit()
            return time.perf_counter() - t0

    start = rss_kb()
    wall, samples = sampled_sweep(stock, lambda: stock_done["n"])
    mem.append({"system": "Ray Tune reuse_actors=True", "trials": n, "wall_s": wall,
                "rss_start_mb": start / 1024, "rss_peak_mb": max(r for _, r in samples) / 1024,
                "rss_end_mb": samples[-1][1] / 1024, "kb_per_trial": growth(samples, n)})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text += "\n\n" + table(f"scale: driver memory over {n} trivial trials (RSS sampled every "
                           f"0.2 s; growth = linear fit vs finished trials); process peak "
                           f"{peak:.0f} MB", mem,
                           ["system", "trials", "wall_s", "rss_start_mb", "rss_peak_mb",
                            "rss_end_mb", "kb_per_trial"])
    return {"ask": rows, "memory": mem, "process_peak_mb": peak, "text": text}


# ----------------------------------------------------------------------------- entry


def _lazy(module: str, name: str) -> Callable[[str, Path], dict[str, Any]]:
    """A case in a module of its own, imported when it runs."""

    def run(size: str, work: Path) -> dict[str, Any]:
        import importlib

        return getattr(importlib.import_module(module), name)(size, work)

    return run


RUNNERS: dict[str, Callable[[str, Path], dict[str, Any]]] = {
    "overhead": case_overhead, "bookkeeping": case_bookkeeping, "throughput": case_throughput,
    "tracking": case_tracking, "kfold": case_kfold, "target": case_target, "scale": case_scale,
    "memory": _lazy("bench._memory", "case_memory"),
    "startup": _lazy("bench._startup", "case_startup"),
    "mf": _lazy("bench._mf", "case_mf"),
    "parallel": _lazy("bench._parallel", "case_parallel"),
    "server": _lazy("bench._server", "case_server"),
}


def run_case(name: str, size: str = "default", work: Path | None = None) -> dict[str, Any]:
    """Run one case at `size` (smoke, default, full) and return its JSON-able result."""
    if name not in RUNNERS:
        raise ValueError(f"unknown case {name!r}; choose one of {', '.join(CASES)} or all")
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, but got {size!r}")
    start_ray()
    load_before = os.getloadavg()[0]
    owned = work is None
    folder = Path(tempfile.mkdtemp(prefix=f"orch-bench-{name}-")) if owned else Path(work)
    folder.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(folder)  # Ray/orch leave no files in the repository
    t0 = time.perf_counter()
    try:
        out = RUNNERS[name](size, folder)
    finally:
        os.chdir(cwd)
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
    # Load average of the machine over the last minute: well above 2 means other work shared
    # the cores and the figures are suspect.
    out.update(case=name, size=size, case_wall_s=time.perf_counter() - t0,
               loadavg_1min=(load_before, os.getloadavg()[0]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=[*CASES, "all"])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true", help="the full size (slow)")
    group.add_argument("--smoke", action="store_true", help="the tiny size the tests run")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/<case>.json)")
    args = parser.parse_args(argv)
    size = "full" if args.full else "smoke" if args.smoke else "default"
    names = list(CASES) if args.case == "all" else [args.case]
    results: dict[str, Any] = {"machine": machine(), "size": size,
                               "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
                               "cases": {}}
    out = args.out or ROOT / "bench" / "results" / f"{args.case}{'' if size == 'default' else '-' + size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        res = run_case(name, size)
        results["cases"][name] = res
        print("\n" + res["text"] + f"\n({name}: {res['case_wall_s']:.0f} s; load average "
              "before/after %.1f/%.1f)" % res["loadavg_1min"], flush=True)
        out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"\nmachine: {results['machine']}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
