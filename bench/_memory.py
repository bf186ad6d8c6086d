"""Case ``memory``: where the driver's memory goes over a long sweep of trivial trials.

    python bench/run.py memory [--full | --smoke]

Three systems run the same trivial trainable, one after another in this process on the
one Ray instance:

* orch, tracking on (SQLite store);
* stock Ray Tune with ``reuse_actors=True`` (its default searcher, ``BasicVariantGenerator``);
* stock Ray Tune with ``reuse_actors=True`` and ``OptunaSearch(RandomSampler)``: the
  searcher orch uses for every sampled method, so orch's own part is what is left.

Each system runs twice. First plain, with the driver's RSS sampled every 0.2 s (growth =
linear fit of RSS against finished trials). Then under ``tracemalloc``: a snapshot when a
fifth of the trials have finished and one near the end; the difference, divided by the
trials finished in between, is the Python memory each trial leaves behind, attributed to
the innermost frame in a known package (orch, Ray, Optuna, MLflow, SQLAlchemy, ...).
Near the end the live objects are measured directly as well: orch's ledger records and
the recorder's per-trial dicts, Ray's ``Trial`` objects, and Optuna's stored trials.
"""

from __future__ import annotations

import gc
import math
import sys
import threading
import time
import tracemalloc
import types
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import (
    fresh_store,
    growth,
    orch_sweep,
    pick,
    ray_defaults,
    rss_kb,
    sampled_sweep,
    simple_spec,
    table,
)

TRACE_FRAMES = 10  # frames kept per allocation: enough to reach the owning package's frame
FIRST_AT = 0.2  # first snapshot when this share of the trials has finished
LAST_AT = 0.95  # ... the second one here (before the sweep's end frees anything)
TOP_SITES = 12  # allocation sites listed
TOP_OTHER = 4  # ... and of each package that is not Ray's

# Innermost frame whose file path holds one of these names owns the allocation.
OWNERS = (("orch", "/orchestrator/"), ("bench", "/bench/"), ("mlflow", "/mlflow/"),
          ("sqlalchemy", "/sqlalchemy/"), ("optuna", "/optuna/"), ("ray", "/ray/"),
          ("pyarrow", "/pyarrow/"), ("pandas", "/pandas/"))


def owner(frames: Any) -> tuple[str, str]:
    """``(package, "file:line")`` of the innermost frame in a known package (else stdlib)."""
    for frame in reversed(frames):  # tracemalloc lists the oldest call first
        name = frame.filename
        for label, part in OWNERS:
            if part in name:
                short = name.split(part, 1)[1]
                return label, f"{part.strip('/')}/{short}:{frame.lineno}"
    top = frames[-1]
    return "stdlib/other", f"{Path(top.filename).name}:{top.lineno}"


_OPAQUE = (type, types.ModuleType, types.FunctionType, types.MethodType,
           types.BuiltinFunctionType, threading.Thread)  # shared code, not per-trial data


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and everything it holds (dicts, lists, tuples, sets, objects)."""
    seen = set() if seen is None else seen
    stack, total = [obj], 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _OPAQUE):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o, 0)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        else:
            d = getattr(o, "__dict__", None)
            if isinstance(d, dict):
                stack.append(d)
            for slot in getattr(type(o), "__slots__", ()) or ():
                if isinstance(slot, str) and hasattr(o, slot):
                    stack.append(getattr(o, slot))
    return total


class Probe:
    """Counts finished trials and takes the two snapshots from a thread of its own."""

    def __init__(self, n: int, count: Callable[[], int], inspect: Callable[[], dict] | None,
                 traced: bool) -> None:
        self.n, self.count, self.inspect, self.traced = n, count, inspect, traced
        self.snaps: list[tuple[int, Any]] = []
        self.pace: list[tuple[float, int]] = []  # (time, finished trials)
        self.objects: dict[str, Any] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        marks = [math.ceil(FIRST_AT * self.n), math.floor(LAST_AT * self.n)]
        while not self.done.is_set():
            c = self.count()
            self.pace.append((time.perf_counter(), c))
            if not marks:
                self.done.wait(0.2)
                continue
            if c >= marks[0]:
                marks.pop(0)
                if self.traced:
                    gc.collect()
                    self.snaps.append((self.count(), tracemalloc.take_snapshot()))
                if not marks and self.inspect is not None:
                    try:
                        self.objects = self.inspect()
                    except Exception as exc:  # noqa: BLE001 - a measurement, never the sweep
                        self.objects = {"error": f"{type(exc).__name__}: {exc}"}
            self.done.wait(0.05)


def pace(points: list[tuple[float, int]], n: int) -> dict[str, float]:
    """ms per trial over the second tenth and the last tenth of the trials finished: a
    per-trial cost that grows with the sweep shows as a rising figure."""
    def ms(lo: float, hi: float) -> float:
        inside = [(t, c) for t, c in points if lo * n <= c <= hi * n]
        if len(inside) < 2 or inside[-1][1] == inside[0][1]:
            return math.nan
        return 1000 * (inside[-1][0] - inside[0][0]) / (inside[-1][1] - inside[0][1])

    early, late = ms(0.1, 0.2), ms(0.85, 0.95)
    return {"ms_per_trial_early": early, "ms_per_trial_late": late}


def attribute(first: tuple[int, Any], last: tuple[int, Any]) -> dict[str, Any]:
    """KiB per trial between the two snapshots, by package and by allocation site."""
    (c1, s1), (c2, s2) = first, last
    trials = max(c2 - c1, 1)
    by_pkg: dict[str, float] = defaultdict(float)
    by_site: dict[tuple[str, str], float] = defaultdict(float)
    for stat in s2.compare_to(s1, "traceback"):
        if stat.size_diff == 0:
            continue
        pkg, site = owner(stat.traceback)
        by_pkg[pkg] += stat.size_diff
        by_site[(pkg, site)] += stat.size_diff
    kib = 1024.0 * trials
    sites = sorted(by_site.items(), key=lambda kv: -kv[1])[:TOP_SITES]
    # ... and the top few of every package that is not Ray's (orch's part is small beside it)
    for pkg in sorted(by_pkg):
        if pkg != "ray":
            sites += sorted(((k, v) for k, v in by_site.items() if k[0] == pkg and
                             (k, v) not in sites), key=lambda kv: -kv[1])[:TOP_OTHER]
    return {"trials_between": trials,
            "kib_per_trial": sum(by_pkg.values()) / kib,
            "by_package": {k: v / kib for k, v in sorted(by_pkg.items(), key=lambda kv: -kv[1])},
            "top_sites": [{"package": p, "site": s, "kib_per_trial": v / kib}
                          for (p, s), v in sites]}


# ----------------------------------------------------------------------------- systems


def _orch(n: int, work: Path, uri: str | None) -> tuple[Callable[[], Any], Callable[[], int],
                                                  Callable[[], dict]]:
    from bench import _trainables as T
    from orchestrator.engine import OUTCOMES
    from orchestrator.engine.raytune import _callbacks, _run

    seen: dict[str, Any] = {}
    build = _run.build_search

    def capture(*args: Any, **kwargs: Any) -> Any:  # the searcher, to measure it
        out = build(*args, **kwargs)
        seen["search"] = out[0]
        return out

    step = _callbacks.TuneCallback.on_step_begin

    def on_step_begin(self: Any, iteration: int, trials: list, **info: Any) -> None:
        seen["trials"] = trials  # Ray's own list of Trial objects
        step(self, iteration, trials, **info)

    def run() -> Any:
        _run.build_search = capture
        _callbacks.TuneCallback.on_step_begin = on_step_begin
        try:
            return orch_sweep(simple_spec("memory", n), work=work, trainable=T.trivial, uri=uri,
                              tracking=uri is not None)
        finally:
            _run.build_search = build
            _callbacks.TuneCallback.on_step_begin = step

    def count() -> int:
        return sum(1 for led in list(_callbacks.LEDGERS.values())
                   for r in list(led.records.values()) if r.outcome in OUTCOMES)

    def inspect() -> dict[str, Any]:
        ledger = next(iter(_callbacks.LEDGERS.values()))
        records = list(ledger.records.values())
        k = len(records)
        out: dict[str, Any] = {"records": k}
        # One TrialRecord, field by field (bytes per trial).
        fields = ("config", "history", "steps", "last", "tags", "attempts")
        for f in fields:
            out[f"record.{f}"] = sum(deep_size(getattr(r, f)) for r in records) / k
        out["record.total"] = sum(deep_size(r) for r in records) / k
        out["ledger.maps"] = deep_size([ledger.ended_itself, ledger.guard_failures]) / k
        recorder = next((x for x in ledger.listeners if hasattr(x, "_run_ids")), None)
        if recorder is not None:
            for name in ("_run_ids", "_run_status", "_stored_max", "_pending"):
                out[f"recorder.{name}"] = deep_size(getattr(recorder, name)) / k
            out["recorder.queue"] = recorder._ops.qsize()
        trials = list(seen.get("trials", []))
        if trials:
            t = trials[: len(trials)]
            shared: set[int] = set()
            # What every Trial shares (the storage context, the stopper...) is counted once.
            for o in (getattr(trials[0], "storage", None), getattr(trials[0], "stopper", None),
                      getattr(trials[0], "placement_group_factory", None)):
                if o is not None:
                    shared.add(id(o))
            out["ray.trials"] = len(t)
            out["ray.trial.last_result"] = sum(deep_size(x.last_result) for x in t) / len(t)
            out["ray.trial.config"] = sum(deep_size(x.config) for x in t) / len(t)
            out["ray.trial.run_metadata"] = sum(deep_size(x.run_metadata) for x in t) / len(t)
            out["ray.trial.total"] = sum(deep_size(x, set(shared)) for x in t) / len(t)
        search = seen.get("search")
        inner = getattr(search, "searcher", search)  # ConcurrencyLimiter wraps it
        inner = getattr(inner, "inner", inner)  # BaselineFirst wraps it
        study = getattr(inner, "_ot_study", None)
        if study is not None:
            frozen = study.get_trials(deepcopy=False)
            out["optuna.trials"] = len(frozen)
            out["optuna.frozen_trial"] = sum(deep_size(ft) for ft in frozen) / max(len(frozen), 1)
            out["optuna.searcher._ot_trials"] = deep_size(inner._ot_trials) / max(len(frozen), 1)
        return out

    return run, count, inspect


def _stock(n: int, work: Path, searcher: str) -> tuple[Callable[[], Any], Callable[[], int],
                                                       Callable[[], dict]]:
    from ray import tune

    from bench import _trainables as T

    done = {"n": 0}
    seen: dict[str, Any] = {}

    class Count(tune.Callback):
        def on_step_begin(self, iteration, trials, **info):  # type: ignore[no-untyped-def]
            seen["trials"] = trials

        def on_trial_complete(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
            done["n"] += 1

    def run() -> Any:
        alg = None
        if searcher == "optuna":
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            alg = OptunaSearch(sampler=optuna.samplers.RandomSampler(seed=0), metric="loss",
                               mode="min")
            seen["search"] = alg
        with ray_defaults():
            tuner = tune.Tuner(T.trivial, param_space={"x": tune.uniform(0, 1)},
                               tune_config=tune.TuneConfig(num_samples=n, reuse_actors=True,
                                                           search_alg=alg,
                                                           max_concurrent_trials=2
                                                           if alg is not None else None),
                               run_config=tune.RunConfig(storage_path=str(work / f"ray-{searcher}"),
                                                         callbacks=[Count()]))
            t0 = time.perf_counter()
            tuner.fit()
            return None, time.perf_counter() - t0

    def inspect() -> dict[str, Any]:
        t = list(seen.get("trials", []))
        out: dict[str, Any] = {"ray.trials": len(t)}
        if t:
            shared = {id(o) for o in (getattr(t[0], "storage", None),
                                      getattr(t[0], "stopper", None),
                                      getattr(t[0], "placement_group_factory", None)) if o}
            out["ray.trial.last_result"] = sum(deep_size(x.last_result) for x in t) / len(t)
            out["ray.trial.run_metadata"] = sum(deep_size(x.run_metadata) for x in t) / len(t)
            out["ray.trial.total"] = sum(deep_size(x, set(shared)) for x in t) / len(t)
        alg = seen.get("search")
        if alg is not None:
            frozen = alg._ot_study.get_trials(deepcopy=False)
            out["optuna.frozen_trial"] = sum(deep_size(ft) for ft in frozen) / max(len(frozen), 1)
        return out

    return run, (lambda: done["n"]), inspect


def measure(label: str, n: int, make: Callable[[], tuple], *, traced: bool) -> dict[str, Any]:
    run, count, inspect = make()
    gc.collect()
    row: dict[str, Any] = {"system": label, "trials": n, "traced": traced}
    if traced:
        tracemalloc.start(TRACE_FRAMES)
    probe = Probe(n, count, inspect, traced)
    probe.thread.start()
    start = rss_kb()
    try:
        (_, wall), samples = sampled_sweep(run, count)
    finally:
        probe.done.set()
        probe.thread.join()
        if traced:
            tracemalloc.stop()
    row.update(wall_s=wall, ms_per_trial=1000 * wall / n, rss_start_mb=start / 1024,
               rss_peak_mb=max(r for _, r in samples) / 1024,
               rss_kib_per_trial=growth(samples, n) * 1000 / 1024)  # kB (1000) -> KiB
    if len(probe.snaps) == 2:
        row.update(attribute(*probe.snaps))
    row.update(pace(probe.pace, n))
    row["objects"] = probe.objects
    return row


def case_memory(size: str, work: Path) -> dict[str, Any]:
    n = pick(size, 12, 1000, 5000)
    traced_n = pick(size, 12, 300, 1000)  # tracemalloc slows the driver ~20x: fewer trials
    uri = fresh_store(work, "memory")
    systems = [
        ("orch (tracking on, SQLite)", lambda k: _orch(k, work, uri)),
        ("orch (tracking off)", lambda k: _orch(k, work, None)),
        ("Ray Tune reuse_actors=True", lambda k: _stock(k, work, "basic")),
        ("Ray Tune reuse + OptunaSearch(random)", lambda k: _stock(k, work, "optuna")),
    ]
    rows = []
    runs = ((True, traced_n),) if size == "smoke" else ((False, n), (True, traced_n))
    for traced, k in runs:
        for label, make in systems:
            if size == "smoke" and label != systems[0][0]:
                continue  # smoke: orch's code path (the stock ones are Ray's), traced only
            if traced and label == "orch (tracking off)":
                continue  # its RSS beside tracking on says what the recorder keeps
            rows.append(measure(label, k, lambda: make(k), traced=traced))
    plain = [r for r in rows if not r["traced"]]
    traced_rows = [r for r in rows if r["traced"]]
    plain = plain or traced_rows  # smoke: RSS from the traced runs
    text = table(f"memory: driver RSS over {plain[0]['trials']} trivial trials (2 slots; growth = linear fit "
                 "of RSS vs finished trials, past the first 10%)", plain,
                 ["system", "trials", "wall_s", "ms_per_trial", "ms_per_trial_early",
                  "ms_per_trial_late", "rss_start_mb", "rss_peak_mb", "rss_kib_per_trial"])
    pkgs = sorted({p for r in traced_rows for p in r.get("by_package", {})})
    flat = [{"system": r["system"], "trials": r["trials"],
             "kib_per_trial": r.get("kib_per_trial"),
             **{p: r.get("by_package", {}).get(p, 0.0) for p in pkgs}} for r in traced_rows]
    text += "\n\n" + table(f"memory: Python allocations kept per trial (tracemalloc, {traced_n} "
                           f"trials; between {FIRST_AT:.0%} and {LAST_AT:.0%} of them), KiB "
                           "by the package of the innermost frame", flat,
                           ["system", "trials", "kib_per_trial", *pkgs])
    for r in traced_rows:
        sites = r.get("top_sites", [])
        text += "\n\n" + table(f"top allocation sites, {r['system']} (KiB per trial)", sites,
                               ["package", "site", "kib_per_trial"])
    for r in traced_rows:
        objects = [{"object": k, "bytes_per_trial": v} for k, v in r["objects"].items()]
        text += "\n\n" + table(f"live objects near the end, {r['system']} (bytes per trial, "
                               "deep size)", objects, ["object", "bytes_per_trial"])
    return {"rows": rows, "text": text}
