"""Case ``mf``: search efficiency on multi-fidelity benchmarks with published optima.

    python bench/run.py mf [--full | --smoke]

The functions are the multi-fidelity Branin and Hartmann-6 of Kandasamy et al. 2017
(Dragonfly's definitions; ``bench/_trainables.py``). A trial reports one fidelity step per
"epoch", instantly: epoch ``e`` of ``E`` is the function at ``z = e / E``; the budget is
counted in epochs. Regret after ``b`` epochs is the best value any trial reported at full
fidelity (``z = 1``, its epoch ``E``) within those ``b`` epochs, minus the published
optimum; before the first full-fidelity value it is infinite.

Systems, all with the same seeds and budget:

* orch (``orchestrator.sweep``, 2 slots, tracking off): random, TPE, TPE+ASHA, GP, and
  the BOHB-like pairing (``method: tpe`` + ``early_terminate: {type: hyperband}``, which
  orch runs as ASHA), as shipped and with early-stopped trials told to Optuna as *pruned*
  (the change bench/README.md proposes, made here by wrapping the searcher orch builds);
* Optuna in-process, sequential: the same TPE sampler with ``HyperbandPruner`` and with
  ``SuccessiveHalvingPruner``;
* Syne Tune (``pip install -e ".[bench]"``), sequential: ``ASHA`` and ``BOHB``.

orch's epochs are put in order by each trial's end time (2 slots run at once: a trial's
epochs are counted when it ends). The other systems run one trial at a time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import orch_sweep, pick, simple_spec, table

OPTIMA = {"branin": 0.397887, "hartmann6": -3.32237}  # published global minima (z = 1)
SPACES = {
    "branin": {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)},
    "hartmann6": {f"x{i}": (0.0, 1.0) for i in range(1, 7)},
}
WITHIN = 0.01  # "within 1% of the optimum": regret <= 1% of |optimum|
LOOSE = 0.10  # ... and within 10%, which the default (small) budget can show
RUN_CAP_ASHA = 4  # run_cap of an early-stopped orch sweep: budget / max epochs x this
CHECKPOINTS = (0.1, 0.25, 0.5, 1.0)  # shares of the budget at which regret is reported


# ----------------------------------------------------------------------------- curves


def curve(events: list[tuple[int, float | None]], function: str, budget: int
          ) -> list[tuple[int, float]]:
    """``[(epochs spent, regret)]`` from ``[(epochs of one trial, full-fidelity value or
    None)]`` in the order the trials ended, cut at the budget."""
    spent, best, out = 0, math.inf, []
    for epochs, value in events:
        if spent + epochs > budget:
            break
        spent += epochs
        if value is not None:
            best = min(best, value)
        out.append((spent, best - OPTIMA[function]))
    return out


def regret_at(points: list[tuple[int, float]], epochs: float) -> float:
    best = math.inf
    for spent, regret in points:
        if spent > epochs:
            break
        best = regret
    return best


def epochs_to(points: list[tuple[int, float]], function: str, within: float = WITHIN) -> float:
    goal = within * abs(OPTIMA[function])
    return next((float(s) for s, r in points if r <= goal), math.inf)


# ----------------------------------------------------------------------------- orch


def _pruned_searcher_class() -> type:
    """``OptunaSearch``, telling a trial that ended before ``max_t`` (stopped by ASHA) to
    Optuna as PRUNED at its last reported step, instead of COMPLETE with a low-fidelity
    value. A module-level class: Ray pickles the searcher with the sweep's state."""
    global PrunedAwareOptunaSearch
    if PrunedAwareOptunaSearch is None:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        class _Pruned(OptunaSearch):
            max_t = 0

            def on_trial_complete(self, trial_id: str, result: dict | None = None,
                                  error: bool = False) -> None:
                step = int((result or {}).get("training_iteration") or 0)
                if not error and result and 0 < step < self.max_t and \
                        trial_id in self._ot_trials and trial_id not in self._completed_trials:
                    self._ot_study.tell(self._ot_trials[trial_id],
                                        state=optuna.trial.TrialState.PRUNED)
                    self._completed_trials.add(trial_id)
                    return
                super().on_trial_complete(trial_id, result=result, error=error)

        _Pruned.__name__ = _Pruned.__qualname__ = "PrunedAwareOptunaSearch"
        _Pruned.__module__ = __name__
        PrunedAwareOptunaSearch = _Pruned
    return PrunedAwareOptunaSearch


PrunedAwareOptunaSearch: Any = None


def _pruned_aware(searcher: Any, max_t: int) -> Any:
    """The searcher orch built, its OptunaSearch made pruned-aware (see above)."""
    inner = getattr(searcher, "inner", searcher)  # BaselineFirst wraps it when there is one
    inner.__class__ = _pruned_searcher_class()
    inner.max_t = max_t
    return searcher


def run_orch(function: str, method: str, et: str | None, seed: int, epochs: int, budget: int,
             work: Path, pruned: bool = False) -> list[tuple[int, float]]:
    from bench import _trainables as T
    from orchestrator.engine.raytune import _run

    params: dict[str, Any] = {k: {"min": lo, "max": hi} for k, (lo, hi) in SPACES[function].items()}
    params.update(function={"value": function}, epochs={"value": epochs})
    full = budget // epochs
    extra: dict[str, Any] = {"max_concurrent": 2}
    if et == "asha":
        extra["early_terminate"] = {"type": "asha", "grace_period": 1, "max_t": epochs,
                                    "reduction_factor": 3}
    elif et == "hyperband":  # W&B's names, as a BOHB user writes it
        extra["early_terminate"] = {"type": "hyperband", "min_iter": 1, "max_iter": epochs,
                                    "eta": 3}
    run_cap = full * (RUN_CAP_ASHA if et else 1)
    spec = simple_spec(f"mf-{function}-{method}", run_cap, metric="value", method=method,
                       params=params, seed=seed, **extra)
    build = _run.build_search
    if pruned:
        def patched(*args: Any, **kwargs: Any) -> Any:
            out = build(*args, **kwargs)
            return (_pruned_aware(out[0], epochs), *out[1:])

        _run.build_search = patched
    try:
        res, _ = orch_sweep(spec, work=work, trainable=T.multi_fidelity, tracking=False)
    finally:
        _run.build_search = build
    events = []
    for r in sorted(res.records, key=lambda r: r.ended or math.inf):
        top = r.history[-1].get("value") if r.history and r.epochs >= epochs else None
        events.append((r.epochs, top))
    return curve(events, function, budget)


# ----------------------------------------------------------------------------- Optuna


def run_optuna(function: str, pruner: str, seed: int, epochs: int, budget: int
               ) -> list[tuple[int, float]]:
    import optuna

    from bench import _trainables as T

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = {"hyperband": lambda: optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=epochs, reduction_factor=3),
            "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(
                min_resource=1, reduction_factor=3)}[pruner]()
    # orch's TPE (make_sampler): multivariate, group, the sweep seed.
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    study = optuna.create_study(sampler=sampler, pruner=made, direction="minimize")
    events: list[tuple[int, float | None]] = []
    spent = {"n": 0}

    def objective(trial: Any) -> float:
        config = {k: trial.suggest_float(k, lo, hi) for k, (lo, hi) in SPACES[function].items()}
        for epoch in range(1, epochs + 1):
            value = T.mf_value(function, config, epoch, epochs)
            trial.report(value, epoch)
            if epoch < epochs and trial.should_prune():
                events.append((epoch, None))
                spent["n"] += epoch
                raise optuna.TrialPruned()
        events.append((epochs, value))
        spent["n"] += epochs
        return value

    def stop(study: Any, trial: Any) -> None:
        if spent["n"] >= budget:
            study.stop()

    study.optimize(objective, n_trials=100_000, callbacks=[stop])
    return curve(events, function, budget)


# ----------------------------------------------------------------------------- Syne Tune


def syne_tune_available() -> bool:
    try:
        import syne_tune  # noqa: F401
    except ImportError:
        return False
    return True


def run_syne(function: str, name: str, seed: int, epochs: int, budget: int
             ) -> list[tuple[int, float]]:
    import datetime

    from syne_tune.backend.trial_status import Trial
    from syne_tune.config_space import uniform
    from syne_tune.optimizer.baselines import ASHA, BOHB
    from syne_tune.optimizer.scheduler import SchedulerDecision

    from bench import _trainables as T

    space = {k: uniform(lo, hi) for k, (lo, hi) in SPACES[function].items()}
    kind = {"ASHA": ASHA, "BOHB": BOHB}[name]
    scheduler = kind(space, metric="value", time_attr="epoch", max_t=epochs, do_minimize=True,
                     random_seed=seed, grace_period=1, reduction_factor=3)
    events: list[tuple[int, float | None]] = []
    spent, trial_id = 0, 0
    while spent < budget:
        suggestion = scheduler.suggest()
        if suggestion is None:
            break
        trial = Trial(trial_id=trial_id, config=dict(suggestion.config),
                      creation_time=datetime.datetime.now())
        trial_id += 1
        scheduler.on_trial_add(trial=trial)
        value, stopped = None, False
        for epoch in range(1, epochs + 1):
            value = T.mf_value(function, trial.config, epoch, epochs)
            result = {"epoch": epoch, "value": value}
            decision = scheduler.on_trial_result(trial=trial, result=result)
            if decision in (SchedulerDecision.STOP, SchedulerDecision.PAUSE) and epoch < epochs:
                scheduler.on_trial_remove(trial=trial)
                events.append((epoch, None))
                spent += epoch
                stopped = True
                break
        if not stopped:
            scheduler.on_trial_complete(trial, result)
            events.append((epochs, value))
            spent += epochs
    return curve(events, function, budget)


# ----------------------------------------------------------------------------- case


def systems(work: Path, epochs: int, budget: int, full: bool
            ) -> list[tuple[str, Callable[[str, int], list[tuple[int, float]]]]]:
    out: list[tuple[str, Callable[[str, int], list[tuple[int, float]]]]] = [
        ("orch random", lambda f, s: run_orch(f, "random", None, s, epochs, budget, work)),
        ("orch TPE", lambda f, s: run_orch(f, "tpe", None, s, epochs, budget, work)),
        ("orch TPE+ASHA", lambda f, s: run_orch(f, "tpe", "asha", s, epochs, budget, work)),
        ("orch GP", lambda f, s: run_orch(f, "gp", None, s, epochs, budget, work)),
        ("orch BOHB-like (TPE + hyperband spec)",
         lambda f, s: run_orch(f, "tpe", "hyperband", s, epochs, budget, work)),
        ("orch TPE+ASHA, stopped told as pruned (proposed)",
         lambda f, s: run_orch(f, "tpe", "asha", s, epochs, budget, work, pruned=True)),
        ("Optuna TPE + HyperbandPruner", lambda f, s: run_optuna(f, "hyperband", s, epochs, budget)),
        ("Optuna TPE + SuccessiveHalvingPruner", lambda f, s: run_optuna(f, "sha", s, epochs, budget)),
    ]
    if full:
        out.insert(1, ("orch random+ASHA",
                       lambda f, s: run_orch(f, "random", "asha", s, epochs, budget, work)))
    if syne_tune_available():
        out += [("Syne Tune ASHA", lambda f, s: run_syne(f, "ASHA", s, epochs, budget)),
                ("Syne Tune BOHB", lambda f, s: run_syne(f, "BOHB", s, epochs, budget))]
    return out


def case_mf(size: str, work: Path) -> dict[str, Any]:
    functions = pick(size, ["hartmann6"], ["hartmann6", "branin"], ["hartmann6", "branin"])
    seeds = list(range(pick(size, 1, 10, 20)))
    epochs = pick(size, 3, 9, 27)  # E: fidelity steps of a full "training"
    trainings = pick(size, 3, 20, 40)  # budget in full trainings
    budget = trainings * epochs
    rows, raw = [], []
    chosen = systems(work, epochs, budget, size == "full")
    if size == "smoke":  # one orch run as shipped, one patched, and every peer
        chosen = [s for s in chosen if not s[0].startswith("orch") or s[0] ==
                  "orch TPE+ASHA, stopped told as pruned (proposed)"]
    for function in functions:
        for label, run in chosen:
            t0 = time.perf_counter()
            curves = [run(function, seed) for seed in seeds]
            row: dict[str, Any] = {"function": function, "system": label, "seeds": len(seeds)}
            for share in CHECKPOINTS:
                row[f"regret@{share:g}"] = statistics.median(
                    regret_at(c, share * budget) for c in curves)
            reach = [epochs_to(c, function) for c in curves]
            row["epochs_to_1pct"] = statistics.median(reach)
            row["reached"] = f"{sum(math.isfinite(x) for x in reach)}/{len(reach)}"
            loose = [epochs_to(c, function, LOOSE) for c in curves]
            row["epochs_to_10pct"] = statistics.median(loose)
            row["reached_10pct"] = f"{sum(math.isfinite(x) for x in loose)}/{len(loose)}"
            row["s_per_seed"] = (time.perf_counter() - t0) / len(seeds)
            rows.append(row)
            raw.append({"function": function, "system": label, "curves": curves})
            print(f"  mf {function} {label}: regret@1 {row['regret@1']:.4g}, epochs to 1% "
                  f"{row['epochs_to_1pct']}", flush=True)
    for function in functions:  # epochs to 1% against orch random's, per function
        mine = [r for r in rows if r["function"] == function]
        # Epochs each needs to reach the regret random search ends its budget with (median
        # over seeds): the "fraction of random's epochs" the aim is stated in.
        curves_of = {x["system"]: x["curves"] for x in raw if x["function"] == function}
        if "orch random" in curves_of:
            goal = statistics.median(c[-1][1] if c else math.inf
                                     for c in curves_of["orch random"])
            for r in mine:
                need = [next((float(s) for s, reg in c if reg <= goal), math.inf)
                        for c in curves_of[r["system"]]]
                r["epochs_to_random_final"] = statistics.median(need)
                r["x_random_budget"] = r["epochs_to_random_final"] / budget
        for key in ("epochs_to_1pct", "epochs_to_10pct"):
            base = next((r[key] for r in mine if r["system"] == "orch random"), math.nan)
            for r in mine:
                r[f"x_random_{key[10:]}"] = (r[key] / base if math.isfinite(base)
                                             and math.isfinite(r[key]) else math.nan)
    cols = ["function", "system", "seeds", *[f"regret@{s:g}" for s in CHECKPOINTS],
            "epochs_to_random_final", "x_random_budget",
            "epochs_to_1pct", "reached", "x_random_1pct", "epochs_to_10pct", "reached_10pct",
            "x_random_10pct", "s_per_seed"]
    text = table(f"mf: multi-fidelity Branin / Hartmann-6 (Kandasamy et al. 2017), E = {epochs} "
                 f"fidelity steps, budget {budget} epochs (= {trainings} full trainings), "
                 f"{len(seeds)} seeds; median regret (full-fidelity best - optimum) after "
                 f"{', '.join(f'{s:g}' for s in CHECKPOINTS)} of the budget; epochs to come "
                 f"within {WITHIN:.0%} (and {LOOSE:.0%}) of |optimum| (median; inf = not within budget); "
                 "x_random = that / orch random's; epochs_to_random_final = epochs to reach "
                 "the regret orch random ends its budget with (median), x_random_budget = "
                 "that / the budget",
                 rows, cols)
    return {"rows": rows, "raw": raw, "epochs": epochs, "budget": budget, "text": text}
