"""Build and run the Ray Tune sweep: the one module that touches Ray Tune.

The spec becomes a ``Tuner``: ``OptunaSearch`` with the method's Optuna
sampler (or ``BasicVariantGenerator`` over the expanded grid), Ray's
``ASHAScheduler`` / ``MedianStoppingRule``, ``FailureConfig`` for retries, and
three callbacks: the :class:`Ledger` (what happened to each trial), the MLflow
recorder, and the live view. The :class:`Guard` stopper fails trials whose
metric is missing or not finite before any scheduler or searcher sees it, and
ends the sweep when ``metric.target`` is reached.
"""

from __future__ import annotations

import logging
import math
import os
# Ray Tune's own searcher checkpoints are pickles; we read only files we wrote.
import pickle  # nosec B403
import signal
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any


def _driver_env() -> None:
    # Our Guard reports a missing metric with the metrics that were reported;
    # Ray's strict check would instead abort the whole sweep with a traceback.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # Everything a trial reports is recorded by orch (MLflow); Ray's per-trial CSV,
    # JSON and TensorBoard files only cost time.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Trainables open data relative to where `orch` was started, as users expect.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # orch handles Ctrl-C itself (see _install_interrupt_handlers); Ray's handler would
    # end the sweep as if it had finished.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # Save the experiment state at most 1 s apart (Ray's "auto" waits >= 10 s): a resumed
    # sweep must know every trial that was started, or it runs more than the budget.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # With CheckpointConfig(num_to_keep) Ray forces an experiment snapshot every few trial
    # checkpoints and warns each time two come within 5 s: with a checkpoint every epoch
    # that is thousands of lines in a long sweep. Frequent snapshots are what orch wants
    # (see above), and on a file system they cost milliseconds, so the warning is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


_driver_env()

from ray.tune import Callback  # noqa: E402  (after the environment above)
from ray.tune.search import Searcher  # noqa: E402
from ray.tune.stopper import Stopper  # noqa: E402

from orchestrator._context import TAGS_KEY, TrialContext, _activate, derive_seed
from orchestrator._trainable import load_trainable
from orchestrator.errors import OrchError, ResourceError
from orchestrator.space import (
    OptunaSpace,
    constants,
    flatten,
    grid_configs,
    make_sampler,
    nest,
)
from orchestrator.spec import SweepSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SweepResult", "TrialRecord", "run_sweep"]

DEFAULT_STORAGE = "orch_results"  # folder (under the working directory) for Ray Tune's files
ROLE_KEY = "__orch_role"  # marks the baseline trial's config; removed before the trainable runs
REPEAT_KEY = "__orch_repeat"  # which baseline repeat: enters the trial seed, then removed
GRID_KEY = "__orch_config"  # grid: one grid_search over whole configs (conditionals included)
CHECKPOINTS_KEPT = 2  # per trial: the latest and one before it, in case the latest is corrupt

# Keys Ray Tune adds to every result: not the trainable's metrics.
RAY_RESULT_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint",
    "experiment_tag", "episodes_total", "timesteps_total", "timesteps_since_restore",
    TAGS_KEY,
})

OUTCOMES = ("completed", "early_stopped", "failed", "killed")


# ----------------------------------------------------------------------------- records


@dataclass
class TrialRecord:
    """What happened to one trial, as the driver saw it."""

    trial_id: str
    config: dict[str, Any]
    role: str = "trial"  # or "baseline"
    repeat: int = 0  # baseline repeat index (distinct seed), 0 for the first
    index: int = -1  # creation order in the sweep (the searcher's order), -1 until known
    outcome: str = "pending"  # running, then one of OUTCOMES
    history: list[dict[str, float]] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    stopped_at: int | None = None
    started: float | None = None
    ended: float | None = None
    node: str = ""
    diagnosis: str = ""
    diagnosis_reason: str = ""

    @property
    def epochs(self) -> int:
        return len(self.history)

    def value(self, metric: str) -> float | None:
        """The metric's last reported value (Ray Tune's default scope), if finite."""
        for row in reversed(self.history):
            if metric in row:
                v = row[metric]
                return v if math.isfinite(v) else None
        return None


@dataclass
class SweepResult:
    """What :func:`orchestrator.sweep` returns.

    ``best`` is the best non-baseline trial by the metric's last value;
    ``trials`` a pandas DataFrame with one row per trial.
    """

    sweep_id: str
    spec: SweepSpec
    records: list[TrialRecord]
    storage: str
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    experiment_id: str | None = None
    interrupted: bool = False
    target_reached: bool = False
    tracking_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def metric(self) -> str:
        return self.spec.metric.name

    @property
    def best(self) -> TrialRecord | None:
        return best_record(self.records, self.spec)

    @property
    def baseline(self) -> TrialRecord | None:
        return next((r for r in self.records if r.role == "baseline"), None)

    @property
    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in OUTCOMES}
        for r in self.records:
            if r.outcome in out:
                out[r.outcome] += 1
        return out

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.counts["failed"] == 0

    @property
    def trials(self) -> pd.DataFrame:
        import pandas as pd

        rows = []
        for r in self.records:
            row: dict[str, Any] = {
                "trial_id": r.trial_id,
                "role": r.role,
                "outcome": r.outcome,
                "epochs": r.epochs,
                self.metric: r.value(self.metric),
                "duration_s": (r.ended - r.started) if r.started and r.ended else None,
                "diagnosis": r.diagnosis,
                "error": r.error,
            }
            row.update({f"config.{k}": v for k, v in flatten(r.config).items()})
            rows.append(row)
        return pd.DataFrame(rows)


def best_record(records: list[TrialRecord], spec: SweepSpec) -> TrialRecord | None:
    metric, sign = spec.metric.name, (1 if spec.metric.goal == "minimize" else -1)
    scored = [(r.value(metric), r) for r in records
              if r.role == "trial" and r.outcome in ("completed", "early_stopped")]
    scored = [(v, r) for v, r in scored if v is not None]
    if not scored:
        return None
    return min(scored, key=lambda vr: sign * vr[0])[1]


# ----------------------------------------------------------------------------- trial side


def unwrap_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The trainable's config and the trial's role, without orch's private keys."""
    config = dict(config)
    if GRID_KEY in config:
        config = {**config.pop(GRID_KEY), **config}
    role = config.pop(ROLE_KEY, "trial")
    repeat = config.pop(REPEAT_KEY, 0)
    if repeat:
        role = f"{role}:{repeat}"
    return config, role


def _role_and_repeat(role: str) -> tuple[str, int]:
    name, _, repeat = role.partition(":")
    return name, int(repeat or 0)


def make_trial_function(fn: Callable[[dict[str, Any]], Any], *, metric: str, sweep_seed: int,
                        split_seed: int, cv: dict[str, Any] | None,
                        artifact_root: str | None = None) -> Callable[[dict], None]:
    """Wrap a user trainable so it runs inside a :class:`TrialContext`.

    The wrapper strips orch's private config keys, derives the trial seed from
    the sweep seed and the config, and tags the node and GPUs it ran on.
    """

    def trial(config: dict[str, Any]) -> None:
        # One "Checkpoint successfully created" line per epoch per trial is noise.
        logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
        config, role = unwrap_config(config)
        _, repeat = _role_and_repeat(role)
        seed = derive_seed(sweep_seed, config, repeat) if repeat else derive_seed(sweep_seed, config)
        ctx = TrialContext(metric=metric, seed=seed,
                           split_seed=split_seed, cv=cv)
        ctx.pending_tags["node"] = socket.gethostname()
        ctx.pending_tags["seed"] = str(ctx.seed)
        try:
            import ray

            gpu_ids = ray.get_gpu_ids()
            ctx.pending_tags["node_id"] = ray.get_runtime_context().get_node_id()
        except Exception:  # not inside Ray (a direct call in a test)
            gpu_ids = []
        ctx.pending_tags["gpu_ids"] = ",".join(map(str, gpu_ids))
        ctx.pending_tags["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        try:
            import ray.tune

            tune_ctx = ray.tune.get_context()
            # In the sweep's folder when it is a file system path: Ray removes a trial's
            # working folder when a reused actor moves on, before the driver reads it.
            trial_dir = (Path(artifact_root) / tune_ctx.get_trial_id() if artifact_root
                         else Path(tune_ctx.get_trial_dir()))
            ctx.artifacts = trial_dir / "artifacts"
            ctx.pending_tags["artifact_dir"] = str(ctx.artifacts)
        except Exception:  # not inside a Ray Tune trial: artifact_dir() picks a temp folder
            pass
        with _activate(ctx):
            fn(config)

    trial.__name__ = getattr(fn, "__name__", "trainable")
    trial.__qualname__ = trial.__name__
    return trial


# ----------------------------------------------------------------------------- driver side


def _numeric(result: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in result.items():
        if k in RAY_RESULT_KEYS or isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[k] = float(v)
    return out


class Ledger:
    """Tracks every trial's config, history and outcome; the other callbacks read it.

    Outcome rules: a trial the :class:`Guard` stopped is ``failed``; a trial that
    raised is ``failed``; a trial stopped by the scheduler before ``max_t`` is
    ``early_stopped`` (Ray marks the result that got a STOP decision ``done``; a
    trainable that returns on its own never sends a ``done`` result to callbacks);
    trials still running at Ctrl-C, or cut off when the target was reached, are
    ``killed`` and ``early_stopped`` respectively.
    """

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.records: dict[str, TrialRecord] = {}
        self.guard_failures: dict[str, str] = {}
        self.target_reached = False
        self.listeners: list[Any] = []
        self.prior_outcomes: dict[str, str] = {}
        self.interrupted = False  # Ctrl-C / SIGTERM: the Guard asks Ray to stop
        self.adopted = False
        self.numbered = 0
        from orchestrator.diagnosis import diagnose

        self._diagnose = diagnose

    def record(self, trial: Any) -> TrialRecord:
        rec = self.records.get(trial.trial_id)
        if rec is None:
            config, role = unwrap_config(trial.config)
            role, repeat = _role_and_repeat(role)
            rec = TrialRecord(trial_id=trial.trial_id, config=config, role=role, repeat=repeat)
            self.records[trial.trial_id] = rec
        return rec

    # -- Tune callback hooks (called by _TuneCallback) --
    def number(self, trials: list[Any]) -> None:
        """Remember each trial's creation order (Ray's list is in that order; only new
        trials at its end are looked at)."""
        for i in range(self.numbered, len(trials)):
            self.record(trials[i]).index = i
        self.numbered = max(self.numbered, len(trials))

    def adopt(self, trials: list[Any]) -> None:
        """Take in trials that finished before a resumed sweep was interrupted."""
        for trial in trials:
            if trial.trial_id in self.records or trial.status not in ("TERMINATED", "ERROR"):
                continue
            rec = self.record(trial)
            rec.history = [_numeric(trial.last_result)] if trial.last_result else []
            prior = self.prior_outcomes.get(trial.trial_id, "")
            if prior in OUTCOMES:
                rec.outcome = prior
            else:
                rec.outcome = "failed" if trial.status == "ERROR" else "completed"
            if rec.outcome == "failed" and not rec.error:
                rec.error = "failed before the sweep was resumed"
            rec.ended = rec.started = rec.started or time.time()
            self._emit("trial_adopted", rec)

    def on_trial_start(self, trial: Any) -> None:
        rec = self.record(trial)
        if rec.started is None:
            rec.started = time.time()
        rec.outcome = "running"
        rec.node = getattr(trial, "node_ip", "") or rec.node
        self._emit("trial_start", rec)

    def on_trial_result(self, trial: Any, result: dict[str, Any]) -> None:
        rec = self.record(trial)
        rec.last = result
        row = _numeric(result)
        row.setdefault("epoch", float(result.get("training_iteration", len(rec.history) + 1)))
        rec.history.append(row)
        tags = result.get(TAGS_KEY)
        if isinstance(tags, Mapping):
            rec.tags.update({str(k): str(v) for k, v in tags.items()})
        if result.get("done") and trial.trial_id not in self.guard_failures:
            it = int(result.get("training_iteration", rec.epochs))
            et = self.spec.early_terminate
            if et is None or et.type != "asha" or it < et.max_t or self.target_reached:
                rec.stopped_at = it
        self._emit("trial_result", rec, row)

    def on_trial_complete(self, trial: Any) -> None:
        rec = self.record(trial)
        if trial.trial_id in self.guard_failures:
            rec.outcome, rec.error = "failed", self.guard_failures[trial.trial_id]
        elif rec.stopped_at is not None:
            rec.outcome = "early_stopped"
        else:
            rec.outcome = "completed"
        self._finish(rec)

    def on_trial_error(self, trial: Any) -> None:
        rec = self.record(trial)
        rec.outcome = "failed"
        err = None
        try:
            err = trial.get_pickled_error() or trial.get_error()
        except Exception:  # error files missing: fall back to Ray's message
            err = None
        rec.error, rec.traceback = _describe_error(err, trial)
        if _lost_node(err, rec.error):
            node = rec.tags.get("node_id") or getattr(trial, "node_ip", "") or "unknown"
            rec.error = f"the node running this trial was lost (node {node}): {rec.error}"
        self._finish(rec)

    def end_unfinished(self) -> None:
        """Close trials the sweep ended: cut off at the target, else interrupted.

        Trials the searcher created but Ray never started are dropped: they did not run.
        """
        for tid in [t for t, r in self.records.items()
                    if r.outcome == "pending" and r.started is None]:
            del self.records[tid]
        for rec in self.records.values():
            if rec.outcome in ("pending", "running"):
                if self.target_reached:
                    rec.outcome, rec.stopped_at = "early_stopped", rec.epochs
                else:
                    rec.outcome = "killed"
                    rec.error = rec.error or "sweep interrupted"
                self._finish(rec)

    def _finish(self, rec: TrialRecord) -> None:
        rec.ended = time.time()
        if rec.error and "NonFiniteMetricError" in rec.error:
            # The non-finite report never reaches the driver (report() raises first).
            rec.diagnosis, rec.diagnosis_reason = "diverged", rec.error
        elif rec.history:
            d = self._diagnose(rec.history)
            rec.diagnosis, rec.diagnosis_reason = d.label, d.reason
        elif rec.outcome == "failed":
            rec.diagnosis, rec.diagnosis_reason = "failed", rec.error or ""
        self._emit("trial_end", rec)

    def _emit(self, event: str, rec: TrialRecord, *args: Any) -> None:
        for listener in self.listeners:
            getattr(listener, event)(rec, *args)


_LOST_NODE_ERRORS = ("NodeDiedError", "ActorDiedError", "ActorUnavailableError",
                     "WorkerCrashedError", "OwnerDiedError")


def _lost_node(err: BaseException | None, message: str | None) -> bool:
    """Whether a trial failed because its worker process or node went away."""
    names = set()
    while err is not None:
        names.add(type(err).__name__)
        err = getattr(err, "cause", None) or err.__cause__
    text = message or ""
    return bool(names & set(_LOST_NODE_ERRORS)) or any(n in text for n in _LOST_NODE_ERRORS) \
        or "The actor" in text and "unavailable" in text


def _describe_error(err: BaseException | None, trial: Any) -> tuple[str, str]:
    import traceback as tb

    if err is None:
        text = ""
        path = getattr(trial, "error_file", None)
        if path and os.path.exists(path):
            text = Path(path).read_text(errors="replace")
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return (lines[-1] if lines else "trial failed (no error recorded)"), text
    cause: BaseException = err
    while getattr(cause, "cause", None) is not None or cause.__cause__ is not None:
        cause = getattr(cause, "cause", None) or cause.__cause__  # type: ignore[assignment]
    full = "".join(tb.format_exception(type(err), err, err.__traceback__))
    message = f"{type(cause).__name__}: {cause}".strip()
    # Ray wraps user exceptions (RayTaskError) with the remote traceback in str().
    first = message.splitlines()
    lines = [ln for ln in str(err).splitlines() if ln.strip()]
    if lines and "Error" in lines[-1]:
        message = lines[-1].strip()
    elif first:
        message = first[0]
    return message, full


# Ray Tune pickles its callbacks and stopper with the experiment state; they find the
# live ledger through this registry instead of holding it (it owns locks and threads).
_LEDGERS: dict[str, Ledger] = {}



class Guard(Stopper):
    """Fails trials with a missing or non-finite metric; ends the sweep at the target."""

    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id

    @property
    def ledger(self) -> Ledger:
        return _LEDGERS[self.sweep_id]

    @property
    def metric(self) -> Any:
        return self.ledger.spec.metric

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        name = self.metric.name
        if name not in result:
            reported = sorted(k for k in result if k not in RAY_RESULT_KEYS)
            self.ledger.guard_failures[trial_id] = (
                f"MetricMissingError: the sweep's metric {name!r} was not reported; the "
                f"trainable reported: {', '.join(reported) or 'nothing'}. Set `metric.name` "
                "to one of these, or report it."
            )
            return True
        try:
            value = float(result[name])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            self.ledger.guard_failures[trial_id] = (
                f"NonFiniteMetricError: metric {name!r} is {result[name]!r} at epoch "
                f"{result.get('training_iteration')}: the trial diverged"
            )
            return True
        rec = self.ledger.records.get(trial_id)
        if self.metric.reached(value) and (rec is None or rec.role == "trial"):
            self.ledger.target_reached = True  # the baseline reaching it proves nothing
        return False

    def stop_all(self) -> bool:
        return self.ledger.target_reached or self.ledger.interrupted

class TuneCallback(Callback):
    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id

    @property
    def ledger(self) -> Ledger:
        return _LEDGERS[self.sweep_id]

    def on_step_begin(self, iteration, trials, **info):  # type: ignore[no-untyped-def]
        ledger = self.ledger
        if not ledger.adopted:  # first step: trials restored from an interrupted sweep
            ledger.adopted = True
            ledger.adopt(trials)
        ledger.number(trials)

    def on_trial_start(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
        self.ledger.on_trial_start(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):  # type: ignore[no-untyped-def]
        self.ledger.on_trial_result(trial, result)

    def on_trial_complete(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
        self.ledger.on_trial_complete(trial)

    def on_trial_error(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
        self.ledger.on_trial_error(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
        problem = _fall_back_to_existing_checkpoint(trial)
        if problem:
            self.ledger.record(trial).tags["checkpoint_problem"] = problem


def _fall_back_to_existing_checkpoint(trial: Any) -> str:
    """Before Ray retries a trial, make sure the checkpoint it will restore still exists.

    Ray refuses to restore from a checkpoint folder that was deleted and fails the
    trial again; instead the newest kept checkpoint that exists is used, or none (the
    trial restarts from scratch). Returns what was wrong, or "".
    Uses Ray Tune 2.x's checkpoint manager (a private attribute): checked in tests.
    """
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    latest = getattr(manager, "latest_checkpoint_result", None)
    if manager is None or latest is None:
        return ""
    from ray.train._internal.storage import _exists_at_fs_path

    def exists(result: Any) -> bool:
        ckpt = result.checkpoint
        return bool(_exists_at_fs_path(ckpt.filesystem, ckpt.path))

    if exists(latest):
        return ""
    kept = [r for r in getattr(manager, "_checkpoint_results", []) if exists(r)]
    manager._latest_checkpoint_result = kept[-1] if kept else None
    return (f"trial {trial.trial_id}: checkpoint {latest.checkpoint.path} is gone; "
            + ("resuming from an older kept checkpoint" if kept
               else "restarting from scratch"))


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
        self._metric, self._mode = metric, mode
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


def baseline_config(spec: SweepSpec) -> dict[str, Any] | None:
    """The baseline as a nested config: the space's constants overlaid with `baseline:`."""
    if not isinstance(spec.baseline, dict):
        return None
    flat = constants(spec.parameters)
    flat.update(flatten(spec.baseline))
    return nest(flat)


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
        return BasicVariantGenerator(), {GRID_KEY: tune.grid_search(points)}, 1
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


def build_scheduler(spec: SweepSpec) -> Any:
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


# ----------------------------------------------------------------------------- Ray set-up


RUNTIME_ENV_EXCLUDES = [".git", "mlflow.db", "mlruns", DEFAULT_STORAGE, "*.parquet",
                        "__pycache__", ".venv"]


def ensure_ray(address: str | None) -> None:
    """Connect to (or start) Ray. Local: this machine's CPUs/GPUs; else the cluster at `address`.

    On a cluster the working directory is shipped with Ray's runtime environment so
    ``trainable: module:function`` imports on every node.
    """
    import ray

    _driver_env()
    # orch records results itself (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS), so Ray's analysis
    # finds no result.json per trial; its warning about that is noise.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    if ray.is_initialized():
        return
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # Ray passes the driver's sys.path to local workers
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                              "log_to_driver": True}
    if address:
        kwargs.pop("include_dashboard")
        kwargs["address"] = address
        kwargs["runtime_env"] = {"working_dir": cwd, "excludes": RUNTIME_ENV_EXCLUDES}
    else:
        # A new Ray of this sweep's own, as the README promises: without "local", ray.init()
        # would join whatever cluster `ray start` left running on this machine.
        kwargs["address"] = "local"
        kwargs["_node_ip_address"] = "127.0.0.1"
        # Ray 2.60 turns token authentication on for a local start and then says so on every
        # start: news to nobody, so that one line is dropped (its other warnings are kept).
        logging.getLogger("ray._private.authentication.authentication_token_setup") \
            .addFilter(_not_news)
    try:
        ray.init(**kwargs)
    except Exception as exc:  # no cluster there, refused token, ...
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise OrchError(
            f"could not connect to {where}: {type(exc).__name__}: {exc}. Check --address "
            "(and RAY_AUTH_MODE=token / RAY_AUTH_TOKEN_PATH on a cluster with token auth)"
        ) from exc


def _not_news(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Token authentication is enabled")


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """Each trial's CPUs and GPUs; an unset `gpu` means one GPU where the cluster has any,
    so a single-GPU machine is used without flags."""
    import ray

    gpu = spec.resources.gpu
    if gpu is None:
        gpu = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    return {"cpu": spec.resources.cpu, "gpu": gpu}


def check_resources(spec: SweepSpec, resources: Mapping[str, float]) -> None:
    """Fail before any trial when no node could ever run one (never wait forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": resources["cpu"], "GPU": resources["gpu"]}
    if any(all(n["Resources"].get(k, 0.0) >= v for k, v in need.items() if v > 0)
           for n in nodes):
        return
    have = ", ".join(
        f"{n.get('NodeManagerAddress', '?')}: cpu={n['Resources'].get('CPU', 0):g} "
        f"gpu={n['Resources'].get('GPU', 0):g}" for n in nodes) or "no nodes"
    raise ResourceError(
        f"each trial asks for cpu={need['CPU']:g}, gpu={need['GPU']:g} "
        f"(`resources:`), but no node has that much; nodes: {have}. Lower `resources`, "
        "or add a node that has them."
    )


# ----------------------------------------------------------------------------- the sweep


def new_sweep_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Resume:
    """Where an interrupted sweep lives: its id, its Ray Tune folder and its MLflow parent run."""

    sweep_id: str
    experiment_path: str
    parent_run_id: str | None = None


def run_sweep(
    spec: SweepSpec,
    *,
    trainable: Callable[[dict[str, Any]], Any] | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    tracking: bool = True,
    storage_path: str | None = None,
    live: bool | None = None,
    spec_text: str | None = None,
    configs: Sequence[Mapping[str, Any]] | None = None,
    resume: Resume | None = None,
) -> SweepResult:
    """Run `spec` on Ray Tune and return what happened to every trial.

    ``configs`` runs exactly these flat configs (and the baseline) instead of the
    spec's search; see :func:`build_search`. ``resume`` continues an interrupted
    sweep: Ray Tune restores its trials (finished ones are not run again,
    unfinished ones continue from their last checkpoint) and the recorder reuses
    its MLflow runs.
    """
    fn = trainable if trainable is not None else load_trainable(spec.trainable)
    ensure_ray(address)
    resources = trial_resources(spec)
    check_resources(spec, resources)

    from ray import tune

    sweep_id = resume.sweep_id if resume else new_sweep_id()
    storage = storage_path or spec.storage_path or str(Path(DEFAULT_STORAGE).resolve())
    if resume is not None:
        storage = resume.experiment_path.rstrip("/").rsplit("/", 1)[0]
    experiment_path = f"{storage.rstrip('/')}/{spec.slug}-{sweep_id}"
    ledger = Ledger(spec)
    _LEDGERS[sweep_id] = ledger
    try:
        tuner = _build_tuner(spec, fn, resources, storage, experiment_path, sweep_id,
                             configs, resume)
    except Exception as exc:  # a damaged experiment folder, a searcher that cannot start
        _LEDGERS.pop(sweep_id, None)
        raise OrchError(f"the sweep could not be set up: {type(exc).__name__}: {exc}") from exc
    recorder = None
    if tracking:
        from orchestrator.tracking import Recorder

        recorder = Recorder(spec, sweep_id=sweep_id, tracking_uri=tracking_uri,
                            spec_text=spec_text, experiment_path=experiment_path)
        try:  # fails here, before any trial, if the store is unreachable
            recorder.start(resume_parent=resume.parent_run_id if resume else None)
        except BaseException:
            _LEDGERS.pop(sweep_id, None)
            raise
        ledger.prior_outcomes = dict(recorder.prior_outcomes)
        ledger.listeners.append(recorder)
    result = _result_shell(spec, sweep_id, storage, recorder)
    started = time.time()
    failure: BaseException | None = None
    view = None
    handlers: dict[int, Any] = {}
    try:  # from here on, whatever happens, every run is closed (recorder.finish)
        if live is None:
            live = sys.stdout.isatty()
        if live:
            from orchestrator._live import LiveView

            view = LiveView(spec, ledger)
            ledger.listeners.append(view)
            view.start()  # never raises: a failure to draw is a warning
        handlers = _install_interrupt_handlers(ledger)
        try:
            tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            ledger.interrupted = True
        finally:
            if view is not None:
                view.stop()
    except Exception as exc:  # Ray or a searcher failed: record it, then report it
        failure = exc
    finally:
        _restore_handlers(handlers)
        result.interrupted = ledger.interrupted or failure is not None
        if result.interrupted or any(r.outcome in ("pending", "running")
                                     for r in ledger.records.values()):
            ledger.end_unfinished()
        # In the searcher's order: the same spec and seed list the same configs.
        result.records = sorted(ledger.records.values(),
                                key=lambda r: (r.index < 0, r.index, r.started or math.inf))
        _LEDGERS.pop(sweep_id, None)
        result.target_reached = ledger.target_reached
        result.wall_s = time.time() - started
        if view is not None:
            result.warnings.extend(view.problems)
        if recorder is not None:
            recorder.finish(result, failure=failure)
            result.tracking_problems = list(recorder.problems)
            result.warnings.extend(recorder.warnings)
    if failure is not None:
        raise OrchError(f"the sweep stopped with an error: {type(failure).__name__}: "
                        f"{failure}; finished trials are recorded") from failure
    return result


def _build_tuner(spec: SweepSpec, fn: Callable[[dict[str, Any]], Any],
                 resources: Mapping[str, float], storage: str, experiment_path: str,
                 sweep_id: str, configs: Sequence[Mapping[str, Any]] | None,
                 resume: Resume | None) -> Any:
    from ray import tune

    search_alg, param_space, num_samples = build_search(spec, configs)
    cv = spec.cv.as_dict(spec.seed) if spec.cv else None
    trial_fn = make_trial_function(fn, metric=spec.metric.name, sweep_seed=spec.seed,
                                   split_seed=cv["seed"] if cv else spec.seed, cv=cv,
                                   artifact_root=experiment_path if "://" not in storage
                                   else None)
    trainable = tune.with_resources(trial_fn, dict(resources))
    if resume is not None:
        # Errored trials stay failed: they used up their retries before the interruption.
        return tune.Tuner.restore(resume.experiment_path, trainable=trainable,
                                  resume_unfinished=True, resume_errored=False,
                                  restart_errored=False, param_space=param_space or None)
    return _new_tuner(spec, trainable, param_space, search_alg, num_samples, sweep_id,
                      storage)


def _install_interrupt_handlers(ledger: Ledger) -> dict[int, Any]:
    """Ctrl-C / SIGTERM ask Ray Tune to stop the sweep (through the Guard's stop_all),
    so it stops trials and saves its state for a resume; a second signal stops now."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        if ledger.interrupted:
            raise KeyboardInterrupt(f"signal {signum}")
        ledger.interrupted = True

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _result_shell(spec: SweepSpec, sweep_id: str, storage: str, recorder: Any) -> SweepResult:
    return SweepResult(sweep_id=sweep_id, spec=spec, records=[], storage=storage,
                       tracking_uri=recorder.tracking_uri if recorder else None,
                       parent_run_id=recorder.parent_run_id if recorder else None,
                       experiment_id=recorder.experiment_id if recorder else None)


def _new_tuner(spec: SweepSpec, trainable: Any, param_space: dict[str, Any], search_alg: Any,
               num_samples: int, sweep_id: str, storage: str) -> Any:
    from ray import tune

    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric.name,
            mode=spec.metric.mode,
            search_alg=search_alg,
            scheduler=build_scheduler(spec),
            num_samples=num_samples,
            max_concurrent_trials=spec.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=f"{spec.slug}-{sweep_id}",
            storage_path=storage,
            stop=Guard(sweep_id),
            callbacks=[TuneCallback(sweep_id)],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
            verbose=0,
            log_to_file=False,
        ),
    )

