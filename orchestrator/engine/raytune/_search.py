"""The search and the scheduler: what picks each config and what stops poor trials.

Grid search is Ray's ``BasicVariantGenerator`` over the expanded grid (one
``grid_search`` over whole configs, so conditional grids are not cross products);
every sampled method is Ray's ``OptunaSearch`` with a define-by-run space and the
method's Optuna sampler. The baseline is suggested first by :class:`BaselineFirst`.
Early stopping is Ray's ``ASHAScheduler`` or ``MedianStoppingRule``.
"""

from __future__ import annotations

import os
# Ray Tune's own searcher checkpoints are pickles; we read only files we wrote.
import pickle  # nosec B403
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher

from orchestrator.engine._ledger import GRID_KEY, REPEAT_KEY, ROLE_KEY, unwrap_config
from orchestrator.engine._sampling import OptunaSpace, make_sampler
from orchestrator.engine.raytune._private import (
    describe_optuna_study,
    fail_orphaned_optuna_trials,
    kill_trial_actor,
    set_constraints,
    set_optuna_attrs,
)
from orchestrator.sweepspec import (
    POPULATION_METHODS,
    SweepSpec,
    baseline_config,
    grid_configs,
    nest,
)

__all__ = ["BaselineFirst", "OrchSearcher", "Referee", "build_scheduler", "build_search",
           "constraint_values"]


TRIAL_ATTR = "orch.trial_id"  # user attribute of each Optuna trial: its Tune trial id
NO_METRIC = "_orch_no_metric"  # what Optuna is told for a sweep without a metric (random)


class OrchSearcher(Searcher):
    """Ray's ``OptunaSearch``, with what a sweep spec adds to it:

    * the baseline is suggested first (``repeats`` times, distinct seeds), and its
      results are never told to Optuna (the baseline may lie outside the space);
    * a failed trial counts as ``metric.impute`` says (W&B's rule): ``worst`` (the
      default) or ``best`` value seen so far, or the trial's ``latest`` value; Ray
      would tell Optuna nothing (a FAILED trial TPE ignores, so it samples there again);
    * ``metric_constraints`` become Optuna's constraints (``<= 0`` is feasible), set on
      each finished trial before Optuna is told of it (Optuna 5's samplers, TPE and GP
      among them, learn from them);
    * without a metric (``random`` may have none) Optuna is told a constant;
    * a trial the scheduler stopped early (ASHA's rungs, the median rule; the sweep's
      ledger knows which) is told to Optuna as PRUNED, with the intermediate values it
      reported, as Optuna's own pruners do; Ray would tell it COMPLETE with its value at
      the epoch it was cut, and TPE would then model a low-budget value as a final one
      (bench/README.md, case ``mf``).
    """

    def __init__(self, inner: Any, spec: SweepSpec, baseline: dict[str, Any] | None = None,
                 repeats: int = 1, sweep_id: str = "") -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner = inner
        self.spec = spec
        self.sweep_id = sweep_id
        self.baseline = baseline
        self.repeats = repeats if baseline is not None else 0
        self.baseline_trials: list[str] = []
        self.last: dict[str, dict[str, Any]] = {}  # trial id -> its latest result
        self.seen: list[float] = []  # the first metric's final values, for impute
        self.orphans_failed = 0

    def set_search_properties(self, metric, mode, config, **spec):  # type: ignore[no-untyped-def]
        # metric and mode were fixed at construction (see build_search): forward only.
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):  # type: ignore[no-untyped-def]
        if len(self.baseline_trials) < self.repeats:
            repeat = len(self.baseline_trials)
            self.baseline_trials.append(trial_id)
            return baseline_point(self.baseline or {}, repeat)
        point = self.inner.suggest(trial_id)
        # The kept study names each trial's Tune id (the MLflow run's orch.trial_id).
        set_optuna_attrs(self.inner, trial_id, {TRIAL_ATTR: trial_id})
        return point

    def _told(self, result: dict | None) -> dict | None:
        if result is not None and self.spec.metric is None:
            result = {**result, NO_METRIC: 0.0}
        return result

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.baseline_trials:
            return
        self.last[trial_id] = result
        self.inner.on_trial_result(trial_id, self._told(result))

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:  # type: ignore[no-untyped-def]
        if trial_id in self.baseline_trials:
            return
        result = result or self.last.get(trial_id)
        metric = self.spec.metric
        if error and metric is not None:
            result, error = self._imputed(trial_id, result), False
        elif result is not None and metric is not None and metric.name in result:
            self.seen.append(float(result[metric.name]))
        if result is not None and self.spec.metric_constraints:
            set_constraints(self.inner, trial_id, constraint_values(self.spec, result))
        if not error and self._stopped_early(trial_id):
            # The value at the rung it was cut at (Ray passes a stopped trial's last result
            # to the searcher only here), then no value: OptunaSearch tells that as PRUNED.
            if result is not None:
                self.inner.on_trial_result(trial_id, self._told(result))
            self.inner.on_trial_complete(trial_id, result=None, error=False)
        else:
            self.inner.on_trial_complete(trial_id, result=self._told(result), error=error)
        self.last.pop(trial_id, None)

    def _stopped_early(self, trial_id: str) -> bool:
        """Whether the scheduler cut the trial before its budget (the ledger's record)."""
        from orchestrator.engine.raytune._callbacks import LEDGERS

        ledger = LEDGERS.get(getattr(self, "sweep_id", ""))  # a state pickled before it had one
        record = ledger.records.get(trial_id) if ledger is not None else None
        return record is not None and record.stopped_at is not None

    def _imputed(self, trial_id: str, result: dict | None) -> dict | None:
        """A failed trial's value for the searcher (None: nothing to count it as yet)."""
        metric = self.spec.metric
        names = [m.name for m in self.spec.metrics] or [metric.name]
        if metric.impute == "latest" and result and all(n in result for n in names):
            return dict(result)
        if not self.seen:
            return None
        worst = max(self.seen) if metric.goal == "minimize" else min(self.seen)
        best = min(self.seen) if metric.goal == "minimize" else max(self.seen)
        value = best if metric.impute == "best" else worst
        return {**(result or {}), **{n: value for n in names}}

    def save(self, checkpoint_path: str) -> None:
        # Ray restores a searcher from this one file: keep which trials were the
        # baseline beside the wrapped searcher's own state, or a resumed sweep would
        # run the baseline again.
        inner_path = f"{checkpoint_path}.inner"
        self.inner.save(inner_path)
        inner = Path(inner_path).read_bytes()
        os.remove(inner_path)
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"baseline_trials": self.baseline_trials, "seen": self.seen,
                         "inner": inner}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            # A file this class wrote into the sweep's own folder.
            state = pickle.load(f)  # nosec B301
        self.baseline_trials = list(state["baseline_trials"])
        self.seen = list(state.get("seen", []))
        inner_path = f"{checkpoint_path}.inner"
        Path(inner_path).write_bytes(state["inner"])
        try:
            self.inner.restore(inner_path)
        finally:
            os.remove(inner_path)
        # Trials a killed driver had asked the kept study for, after Ray last saved: FAIL.
        self.orphans_failed = fail_orphaned_optuna_trials(self.inner)


BaselineFirst = OrchSearcher  # its first job; the name older code and benchmarks know


def constraint_values(spec: SweepSpec, result: Mapping[str, Any]) -> dict[str, float]:
    """Optuna's constraint values of a result, by rule: ``<= 0`` where a rule holds, the
    shortfall where it does not (a missing metric counts as infinitely infeasible)."""
    values = {}
    for rule in spec.metric_constraints:
        value = result.get(rule.metric)
        if value is None:
            values[rule.text] = float("inf")
            continue
        threshold = rule.threshold()
        gap = float(value) - threshold if rule.op.startswith("<") else threshold - float(value)
        strict = rule.op in ("<", ">")
        values[rule.text] = gap + (1e-12 if strict and gap == 0 else 0.0)
    return values


def baseline_point(base: dict[str, Any], repeat: int) -> dict[str, Any]:
    point = {**base, ROLE_KEY: "baseline"}
    if repeat:
        point[REPEAT_KEY] = repeat
    return point


def build_search(spec: SweepSpec, configs: Sequence[Mapping[str, Any]] | None = None,
                 study: tuple[str, str] | None = None, sweep_id: str = "",
                 ) -> tuple[Any, dict[str, Any], int]:
    """The Ray Tune search algorithm, its param_space and the number of samples.

    ``configs`` (flat, dotted keys) replaces the search: exactly these configs run,
    after the baseline, as one grid (``orch ablate`` uses it). ``study`` is the
    ``(storage URL, study name)`` an Optuna-sampled sweep keeps its study in (see
    :mod:`orchestrator.engine._study`); without it the study lives in memory.
    """
    base = baseline_config(spec)
    extra = spec.baseline_repeats if base is not None else 0
    if spec.method == "grid" or configs is not None:
        from ray import tune
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # One grid_search over whole configs: conditional grids are not cross products.
        if configs is not None:
            points = [nest(dict(c)) for c in configs]
        else:
            points = [nest(c) for c in grid_configs(spec.parameters)][: spec.run_cap]
        if base is not None:
            points[:0] = [baseline_point(base, i) for i in range(spec.baseline_repeats)]
        # A SearchAlgorithm, not a Searcher: Ray ignores max_concurrent_trials for it, so the
        # limit is given to the generator itself.
        return (BasicVariantGenerator(max_concurrent=spec.max_concurrent or 0),
                {GRID_KEY: tune.grid_search(points)}, 1)
    if spec.method in POPULATION_METHODS:
        from orchestrator.engine.raytune._population import population_search

        return population_search(spec, base)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metrics = list(spec.metrics) or ([spec.metric] if spec.metric else [])
    names = [m.name for m in metrics] or [NO_METRIC]
    modes = [m.mode for m in metrics] or ["min"]
    # A define-by-run space fixes the searcher at construction, so metric and mode go here.
    kept: dict[str, Any] = {}
    if study is not None:
        from orchestrator.engine._study import open_storage

        kept = {"storage": open_storage(study[0]), "study_name": study[1]}
    space = OptunaSpace(spec.parameters, method=spec.method)
    if spec.points_to_evaluate:  # tried first, after the baseline (Optuna's enqueue_trial)
        kept["points_to_evaluate"] = [space.optuna_point(p) for p in spec.points_to_evaluate]
    searcher = OptunaSearch(space=space, sampler=make_sampler(spec), **kept,
                            metric=names if len(names) > 1 else names[0],
                            mode=modes if len(modes) > 1 else modes[0])
    if study is not None:
        describe_optuna_study(searcher, names, {"orch.sweep_id": study[1],
                                                "orch.sweep_name": spec.name})
    return (OrchSearcher(searcher, spec, base, spec.baseline_repeats, sweep_id=sweep_id), {},
            spec.run_cap + extra)


def build_scheduler(spec: SweepSpec, sweep_id: str = "") -> Any:
    """Ray's scheduler for `early_terminate:`, inside orch's :class:`Referee` (the baseline
    runs its full budget; trials past a time limit are stopped)."""
    if spec.method in POPULATION_METHODS:
        from orchestrator.engine.raytune._population import population_scheduler

        inner = population_scheduler(spec, sweep_id)
    else:
        inner = _early_stopping(spec)
    return Referee(inner, sweep_id, trial_timeout_s=spec.trial_timeout_s,
                   report_timeout_s=spec.report_timeout_s)


def _early_stopping(spec: SweepSpec) -> Any:
    """Ray's scheduler for ``early_terminate:`` (FIFO without one).

    ``asha`` is Ray's ASHA as written: rungs below ``max_t``, every trial ended at
    ``max_t``. W&B's ``hyperband`` (``max_t`` None) is Ray's ASHA placed on W&B's
    brackets: one bracket whose rung ``k`` is at ``grace_period * reduction_factor**k``
    (the spec fitted both to W&B's bracket epochs, ``et.rungs``), ``max_t`` half a rung
    above the last one so that Ray builds exactly ``len(et.rungs)`` rungs
    (``int(log(max_t / grace) / log(eta) + 1)``), and ``stop_last_trials=False``: no trial
    is cut for its length. ``strict: false`` judges each trial by its best value so far.
    """
    et = spec.early_terminate
    if et is None:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
    if et.type == "median":
        from ray.tune.schedulers import MedianStoppingRule

        return MedianStoppingRule(time_attr="training_iteration", grace_period=et.grace_period,
                                  min_samples_required=et.min_samples_required)
    if et.max_t is not None:
        return ASHAScheduler(time_attr="training_iteration", max_t=et.max_t,
                             grace_period=et.grace_period, reduction_factor=et.reduction_factor)
    kwargs = dict(time_attr="training_iteration", grace_period=et.grace_period,
                  reduction_factor=et.reduction_factor, max_t=_past_last_rung(et),
                  stop_last_trials=False)
    if et.strict or spec.metric is None:
        return ASHAScheduler(**kwargs)
    return BestSoFarASHA(spec.metric.name, spec.metric.goal, **kwargs)


def _past_last_rung(et: Any) -> float:
    """Half a rung (in log scale) above the last of ``et.rungs``: Ray then builds exactly
    ``len(et.rungs)`` rungs, far from the rounding of ``int(log(...))``."""
    return et.grace_period * et.reduction_factor ** (len(et.rungs) - 0.5)


class BestSoFarASHA(ASHAScheduler):
    """ASHA that judges a trial by its best value so far (W&B's hyperband with ``strict:
    false``): each result reaches Ray's ASHA with the metric replaced by the trial's best
    yet. The best values live in the instance, so Ray's save/restore keeps them."""

    def __init__(self, metric: str, goal: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.judged_metric = metric
        self.minimize = goal == "minimize"
        self.best: dict[str, float] = {}  # trial id -> its best value so far

    def _with_best(self, trial: Any, result: dict) -> dict:
        value = result.get(self.judged_metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return result  # not a number (or NaN): left for orch's metric guard
        tid = trial.trial_id
        old = self.best.get(tid, value)
        best = min(old, value) if self.minimize else max(old, value)
        self.best[tid] = best
        return {**result, self.judged_metric: best}

    def on_trial_result(self, tune_controller, trial, result):  # type: ignore[no-untyped-def]
        return super().on_trial_result(tune_controller, trial, self._with_best(trial, result))

    def on_trial_complete(self, tune_controller, trial, result):  # type: ignore[no-untyped-def]
        super().on_trial_complete(tune_controller, trial, self._with_best(trial, result))
        self.best.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller, trial):  # type: ignore[no-untyped-def]
        super().on_trial_remove(tune_controller, trial)
        self.best.pop(trial.trial_id, None)


def _is_baseline(trial: Any) -> bool:
    return unwrap_config(trial.config)[1] == "baseline"


class Referee:
    """Ray's scheduler, with two rules of orch's on top:

    * **the baseline is the reference**: it always runs its full budget, so the
      early-stopping scheduler never sees it (no rung cuts it, and it takes no place
      in the rungs the searched trials compete in);
    * **time limits**: ``trial_timeout_s`` from a trial's start and ``report_timeout_s``
      between its reports; a trial past either is killed and failed with a
      ``TrialTimeoutError`` that says which limit and by how much. Ray calls
      ``choose_trial_to_run`` on every step of its loop (a tenth of a second when
      nothing happens), so that is where the clocks are read.

    Everything else goes to the wrapped scheduler unchanged.
    """

    def __init__(self, inner: Any, sweep_id: str, *, trial_timeout_s: float | None = None,
                 report_timeout_s: float | None = None) -> None:
        self.inner = inner
        self.sweep_id = sweep_id
        self.trial_timeout_s = trial_timeout_s
        self.report_timeout_s = report_timeout_s

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None:  # being unpickled (a resume): Python asks for __setstate__ first
            raise AttributeError(name)
        return getattr(inner, name)

    def set_search_properties(self, metric, mode, **spec):  # type: ignore[no-untyped-def]
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial):  # type: ignore[no-untyped-def]
        if not _is_baseline(trial):
            self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):  # type: ignore[no-untyped-def]
        if not _is_baseline(trial):
            self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):  # type: ignore[no-untyped-def]
        if _is_baseline(trial):
            from ray.tune.schedulers import TrialScheduler

            return TrialScheduler.CONTINUE
        return self.inner.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):  # type: ignore[no-untyped-def]
        if not _is_baseline(trial):
            self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):  # type: ignore[no-untyped-def]
        if not _is_baseline(trial):
            self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):  # type: ignore[no-untyped-def]
        self._enforce(tune_controller)
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.inner.debug_string()

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)

    def _enforce(self, tune_controller: Any) -> None:
        import time

        from orchestrator.engine.raytune._callbacks import LEDGERS

        ledger = LEDGERS.get(getattr(self, "sweep_id", ""))  # a state pickled before it had one
        if ledger is None or not (self.trial_timeout_s or self.report_timeout_s):
            return
        now = time.time()
        for trial in list(tune_controller.get_live_trials()):
            rec = ledger.records.get(trial.trial_id)
            if trial.status != "RUNNING" or rec is None or rec.started is None or \
                    trial.trial_id in ledger.guard_failures:
                continue
            why = ""
            if self.trial_timeout_s and now - rec.started > self.trial_timeout_s:
                why = (f"it ran {now - rec.started:.0f} s, over `trial_timeout_s: "
                       f"{self.trial_timeout_s:g}`")
            elif self.report_timeout_s and rec.last_report is not None and \
                    now - rec.last_report > self.report_timeout_s:
                why = (f"it reported nothing for {now - rec.last_report:.0f} s (last at report "
                       f"{rec.last_step}), over `report_timeout_s: {self.report_timeout_s:g}`")
            if why:
                ledger.guard_failures[trial.trial_id] = f"TrialTimeoutError: {why}"
                if not kill_trial_actor(trial):  # a hung trial cannot be stopped politely
                    tune_controller.stop_trial(trial)
