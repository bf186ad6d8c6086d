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

from ray.tune.search import Searcher

from orchestrator.engine._ledger import GRID_KEY, REPEAT_KEY, ROLE_KEY, unwrap_config
from orchestrator.engine._sampling import OptunaSpace, make_sampler
from orchestrator.engine.raytune._private import kill_trial_actor
from orchestrator.sweepspec import SweepSpec
from orchestrator.sweepspec import baseline_config, grid_configs, nest

__all__ = ["BaselineFirst", "Referee", "build_scheduler", "build_search"]


class BaselineFirst(Searcher):
    """Suggests the baseline config first (``repeats`` times, distinct seeds), then
    defers to the wrapped searcher.

    The baseline's results are not told to the wrapped searcher: the baseline may
    lie outside the searched space.
    """

    def __init__(self, inner: Any, baseline: dict[str, Any], repeats: int = 1) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner = inner
        self.baseline = baseline
        self.repeats = repeats
        self.baseline_trials: list[str] = []

    def set_search_properties(self, metric, mode, config, **spec):  # type: ignore[no-untyped-def]
        # metric and mode were fixed at construction (see build_search): forward only.
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):  # type: ignore[no-untyped-def]
        if len(self.baseline_trials) < self.repeats:
            repeat = len(self.baseline_trials)
            self.baseline_trials.append(trial_id)
            return baseline_point(self.baseline, repeat)
        return self.inner.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.baseline_trials:
            self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:  # type: ignore[no-untyped-def]
        if trial_id not in self.baseline_trials:
            self.inner.on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        # Ray restores a searcher from this one file: keep which trials were the
        # baseline beside the wrapped searcher's own state, or a resumed sweep would
        # run the baseline again.
        inner_path = f"{checkpoint_path}.inner"
        self.inner.save(inner_path)
        inner = Path(inner_path).read_bytes()
        os.remove(inner_path)
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"baseline_trials": self.baseline_trials, "inner": inner}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            # A file this class wrote into the sweep's own folder.
            state = pickle.load(f)  # nosec B301
        self.baseline_trials = list(state["baseline_trials"])
        inner_path = f"{checkpoint_path}.inner"
        Path(inner_path).write_bytes(state["inner"])
        try:
            self.inner.restore(inner_path)
        finally:
            os.remove(inner_path)


def baseline_point(base: dict[str, Any], repeat: int) -> dict[str, Any]:
    point = {**base, ROLE_KEY: "baseline"}
    if repeat:
        point[REPEAT_KEY] = repeat
    return point



def build_search(spec: SweepSpec, configs: Sequence[Mapping[str, Any]] | None = None
                 ) -> tuple[Any, dict[str, Any], int]:
    """The Ray Tune search algorithm, its param_space and the number of samples.

    ``configs`` (flat, dotted keys) replaces the search: exactly these configs run,
    after the baseline, as one grid (``orch ablate`` uses it).
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
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A define-by-run space fixes the searcher at construction, so metric and mode go here.
    searcher = OptunaSearch(space=OptunaSpace(spec.parameters, method=spec.method),
                            sampler=make_sampler(spec), metric=spec.metric.name,
                            mode=spec.metric.mode)
    if base is not None:
        searcher = BaselineFirst(searcher, base, spec.baseline_repeats)
    return searcher, {}, spec.run_cap + extra


def build_scheduler(spec: SweepSpec, sweep_id: str = "") -> Any:
    """Ray's scheduler for `early_terminate:`, inside orch's :class:`Referee` (the baseline
    runs its full budget; trials past a time limit are stopped)."""
    return Referee(_early_stopping(spec), sweep_id, trial_timeout_s=spec.trial_timeout_s,
                   report_timeout_s=spec.report_timeout_s)


def _early_stopping(spec: SweepSpec) -> Any:
    et = spec.early_terminate
    if et is None:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
    if et.type == "median":
        from ray.tune.schedulers import MedianStoppingRule

        return MedianStoppingRule(time_attr="training_iteration", grace_period=et.grace_period,
                                  min_samples_required=et.min_samples_required)
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="training_iteration", max_t=et.max_t,
                         grace_period=et.grace_period, reduction_factor=et.reduction_factor)


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
        return getattr(self.__dict__["inner"], name)

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

        ledger = LEDGERS.get(self.sweep_id)
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
