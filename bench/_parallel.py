"""Case ``parallel``: search quality with trials in parallel, orch against Optuna's own.

    python bench/run.py parallel [--full | --smoke]

Hartmann-6 (minimum -3.32237), 25 trials, the same seeds for every system. For each
sampler (TPE, GP; random as the floor) and each number of slots N:

* **orch, N slots**: ``orchestrator.sweep`` with ``max_concurrent: N`` and ``cpu: 2/N`` per
  trial (the function is instant, so slots can exceed cores), tracking off;
* **orch, N slots, fixed**: the same sweep with the sampler changes bench/README.md
  proposes, made in this process by replacing ``make_sampler`` where ``build_search``
  finds it (nothing in ``orchestrator/`` is edited);
* **Optuna, n_jobs=N**: ``study.optimize(n_jobs=N)`` with the same sampler
  (``orchestrator.engine._sampling.make_sampler``) and the same define-by-run space;
* **Optuna, n_jobs=N, 50 ms trials**: the same, with each trial sleeping 50 ms, so that
  N trials really are in flight at once (with an instant objective Optuna's threads
  mostly take turns).

Each sampler is wrapped to count, at every model-based suggestion, how many trials were
running with their parameters known (what the sampler can take into account) and how
many trials before the first model-based one were random (the start-up).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from bench._common import RAY_CPUS, median_iqr, orch_sweep, pick, simple_spec, table

OPTIMUM = -3.32237  # Hartmann-6's global minimum
SPACE = {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(1, 7)}
SLOW_TRIAL_S = 0.05  # the "really parallel" Optuna variant: each trial takes this long


class Watch(optuna.samplers.BaseSampler):
    """Wraps a sampler: counts running trials with parameters at each relative sample."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner  # no lock: Ray pickles the searcher, and list.append is atomic
        self.visible: list[int] = []  # running trials with params, at each model-based ask
        self.first_model = None  # number of the first trial the model suggested

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        out = self.inner.sample_relative(study, trial, search_space)
        if out:
            running = [t for t in study.get_trials(deepcopy=False,
                                                   states=(optuna.trial.TrialState.RUNNING,))
                       if t.number != trial.number and t.params]
            self.visible.append(len(running))
            if self.first_model is None:
                self.first_model = trial.number
        return out

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self.inner.sample_independent(study, trial, name, dist)

    def before_trial(self, study: Any, trial: Any) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def sampler_variant(spec: Any, variant: str, slots: int) -> Any:
    """orch's sampler for ``spec``, with a proposed change applied (``variant``)."""
    from orchestrator.engine._sampling import make_sampler

    if variant == "shipped" or spec.method == "random":
        return make_sampler(spec)
    startup = max(2, 10 - (slots - 1))  # ~10 random suggestions whatever the slots
    if variant == "startup":
        if spec.method in ("tpe", "bayes"):
            return optuna.samplers.TPESampler(seed=spec.seed, multivariate=True, group=True,
                                              n_startup_trials=startup)
        if spec.method == "gp":
            return optuna.samplers.GPSampler(seed=spec.seed, warn_independent_sampling=False,
                                             n_startup_trials=startup)
    if variant == "no-liar" and spec.method in ("tpe", "bayes"):
        return optuna.samplers.TPESampler(seed=spec.seed, multivariate=True, group=True,
                                          constant_liar=False)
    return make_sampler(spec)


def run_orch(method: str, slots: int, seed: int, trials: int, work: Path,
             variant: str) -> dict[str, Any]:
    from bench import _trainables as T
    from orchestrator.engine.raytune import _search

    watch: dict[str, Watch] = {}
    original = _search.make_sampler

    def make(spec: Any) -> Any:
        watch["w"] = Watch(sampler_variant(spec, variant, slots))
        return watch["w"]

    _search.make_sampler = make
    try:
        spec = simple_spec(f"par-{method}-{slots}", trials, metric="value", method=method,
                           params=SPACE, seed=seed, max_concurrent=slots,
                           resources={"cpu": RAY_CPUS / max(slots, RAY_CPUS) if slots > 1
                                      else 1})
        res, wall = orch_sweep(spec, work=work, trainable=T.hartmann6, tracking=False)
    finally:
        _search.make_sampler = original
    values = [v for r in res.records for v in [r.value("value")] if v is not None]
    w = watch.get("w")
    return {"best": min(values) if values else float("nan"), "wall_s": wall,
            "visible": statistics.mean(w.visible) if w and w.visible else 0.0,
            "first_model": w.first_model if w else None, "trials": len(values)}


def run_replay(method: str, slots: int, seed: int, trials: int, variant: str
               ) -> dict[str, Any]:
    """orch's own searcher (``build_search``, the sampler ``make_sampler`` makes), behind
    Ray's ``ConcurrencyLimiter`` as Tune puts it for ``max_concurrent``, driven by an
    N-slot event loop instead of Ray's actors: each trial takes 0.5-1.5 time units (seeded),
    and when one ends its result is told (``on_trial_result``, ``on_trial_complete``)
    before the freed slot asks for the next config, as Tune's controller does."""
    import heapq
    import random

    from ray.tune.search import ConcurrencyLimiter

    from bench import _trainables as T
    from orchestrator.engine.raytune import _search
    from orchestrator.sweepspec import load_spec

    spec = load_spec(simple_spec("par-replay", trials, metric="value", method=method,
                                 params=SPACE, seed=seed, max_concurrent=slots),
                     trainable="bench._trainables:hartmann6")
    original, made = _search.make_sampler, {}

    def make(s: Any) -> Any:
        made["w"] = Watch(sampler_variant(s, variant, slots))
        return made["w"]

    _search.make_sampler = make
    try:
        searcher = _search.build_search(spec)[0]
    finally:
        _search.make_sampler = original
    limiter = ConcurrencyLimiter(searcher, max_concurrent=slots)
    rng = random.Random(1000 + seed)
    heap: list[tuple[float, int, str, dict]] = []
    now, started, best = 0.0, 0, float("inf")
    t0 = time.perf_counter()
    while started < trials or heap:
        while started < trials and len(heap) < slots:
            tid = f"t{started:05d}"
            config = limiter.suggest(tid)
            if config is None:
                break
            heapq.heappush(heap, (now + rng.uniform(0.5, 1.5), started, tid, config))
            started += 1
        now, _, tid, config = heapq.heappop(heap)
        value = T.hartmann6_value([config[f"x{i}"] for i in range(1, 7)])
        best = min(best, value)
        result = {"value": value, "training_iteration": 1}
        limiter.on_trial_result(tid, result)
        limiter.on_trial_complete(tid, result)
    w = made["w"]
    return {"best": best, "wall_s": time.perf_counter() - t0,
            "visible": statistics.mean(w.visible) if w.visible else 0.0,
            "first_model": w.first_model, "trials": started}


def run_optuna(method: str, slots: int, seed: int, trials: int, slow: bool) -> dict[str, Any]:
    from bench import _trainables as T
    from orchestrator.engine._sampling import OptunaSpace, make_sampler
    from orchestrator.sweepspec import load_spec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(simple_spec("par-optuna", trials, metric="value", method=method,
                                 params=SPACE, seed=seed), trainable="bench._trainables:hartmann6")
    space = OptunaSpace(spec.parameters, method=spec.method)
    watch = Watch(make_sampler(spec))
    study = optuna.create_study(sampler=watch, direction="minimize")

    def objective(trial: Any) -> float:
        config = space(trial)
        if slow:
            time.sleep(SLOW_TRIAL_S)
        return T.hartmann6_value([config[f"x{i}"] for i in range(1, 7)])

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=slots)
    return {"best": study.best_value, "wall_s": time.perf_counter() - t0,
            "visible": statistics.mean(watch.visible) if watch.visible else 0.0,
            "first_model": watch.first_model, "trials": len(study.trials)}


def summarise(system: str, method: str, slots: int, runs: list[dict[str, Any]]
              ) -> dict[str, Any]:
    best = [r["best"] for r in runs]
    med, q25, q75 = median_iqr(best)
    firsts = [r["first_model"] for r in runs if r["first_model"] is not None]
    return {"sampler": method, "slots": slots, "system": system, "seeds": len(runs),
            "best_median": med, "best_q25": q25, "best_q75": q75,
            "gap_median": med - OPTIMUM, "mean_best": statistics.mean(best),
            "running_seen": statistics.mean(r["visible"] for r in runs),
            "first_model_trial": statistics.median(firsts) if firsts else None,
            "wall_s_median": statistics.median(r["wall_s"] for r in runs),
            "bests": best}


def case_parallel(size: str, work: Path) -> dict[str, Any]:
    trials = pick(size, 12, 25, 25)
    seeds = list(range(pick(size, 1, 10, 20)))
    real_seeds = seeds[:pick(size, 1, 5, 10)]
    slot_counts = pick(size, [2], [1, 2, 4, 8], [1, 2, 4, 8])
    real_slots = pick(size, [2], [2, 4], [2, 4, 8])
    methods = pick(size, ["tpe"], ["tpe", "gp", "random"], ["tpe", "gp", "random"])
    fixes = pick(size, ["startup"], ["startup", "no-liar"], ["startup", "no-liar"])
    rows: list[dict[str, Any]] = []

    def add(label: str, method: str, slots: int, fn: Callable[[int], dict[str, Any]],
            use: list[int]) -> None:
        rows.append(summarise(label, method, slots, [fn(seed) for seed in use]))
        r = rows[-1]
        print(f"  parallel {method} N={slots} {label}: median best {r['best_median']:.3f}, "
              f"running seen {r['running_seen']:.2f}", flush=True)

    for method in methods:
        for slots in slot_counts:
            add("optuna n_jobs", method, slots,
                lambda s: run_optuna(method, slots, s, trials, False), seeds)
            if slots > 1 and method != "random":
                add(f"optuna n_jobs, {SLOW_TRIAL_S * 1000:g} ms trials", method, slots,
                    lambda s: run_optuna(method, slots, s, trials, True), seeds)
            add("orch searcher, replayed", method, slots,
                lambda s: run_replay(method, slots, s, trials, "shipped"), seeds)
            if slots > 1 and method != "random":
                for fix in fixes:
                    if fix == "no-liar" and method != "tpe":
                        continue
                    add(f"orch searcher, replayed, fix: {fix}", method, slots,
                        lambda s, f=fix: run_replay(method, slots, s, trials, f), seeds)
            if method == "tpe" and slots in real_slots:  # the real thing, on Ray
                add("orch sweep (Ray)", method, slots,
                    lambda s: run_orch(method, slots, s, trials, work, "shipped"), real_seeds)
                if size != "smoke":  # smoke: the fix is exercised by the replay
                    add("orch sweep (Ray), fix: startup", method, slots,
                        lambda s: run_orch(method, slots, s, trials, work, "startup"),
                        real_seeds)
    text = table(f"parallel: Hartmann-6 (min {OPTIMUM}), {trials} trials, {len(seeds)} seeds "
                 f"({len(real_seeds)} for the real orch sweeps; same seeds everywhere); best "
                 "value found, median [IQR] over seeds; running_seen = mean running trials with "
                 "known params at each model-based suggestion; first_model_trial = median "
                 "number of the first trial the model suggested (0-based)", rows,
                 ["sampler", "slots", "system", "seeds", "best_median", "best_q25", "best_q75",
                  "mean_best", "running_seen", "first_model_trial", "wall_s_median"])
    return {"rows": rows, "trials": trials, "seeds": seeds, "text": text}
