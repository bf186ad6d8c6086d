"""Run one sweep on Ray Tune: build the Tuner, run it, and close every record.

Order of a sweep: the trainable is found, Ray started (``_start.py``), the sweep's
lock taken (one process per sweep), the Tuner built (``_search.py``, a new one or
one restored from an interrupted sweep), the recorder opened (MLflow), then
``Tuner.fit()``. Whatever happens after the recorder opened — a finished sweep, a
trial that broke the search, Ctrl-C, SIGTERM or SIGHUP — every run is closed.

Interrupts: the first Ctrl-C, SIGTERM or SIGHUP asks Tune to stop the way Tune's
own signal handler does (its SIGUSR1 handler): Tune saves its state with the
unfinished trials still unfinished, so ``orch resume`` continues them from their
checkpoints and runs the rest of the budget. A second signal stops at once.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ray.tune.search import SearchAlgorithm, Searcher

from orchestrator.engine._ledger import Ledger
from orchestrator.engine._lock import local_sweep_dir, sweep_lock
from orchestrator.engine._records import Resume, SweepResult
from orchestrator.engine._trainable import load_trainable
from orchestrator.engine.raytune._callbacks import LEDGERS, Guard, TuneCallback
from orchestrator.engine.raytune._distributed import (
    DRIVER_RESOURCES,
    WorkerGroupJanitor,
    close_registry,
    limit_concurrency,
    make_distributed_trial,
    worker_plan,
)
from orchestrator.engine.raytune._search import build_scheduler, build_search
from orchestrator.engine.raytune._start import (
    DEFAULT_STORAGE,
    check_resources,
    ensure_ray,
    trial_resources,
)
from orchestrator.engine.raytune._trial import make_trial_class, make_trial_function
from orchestrator.errors import OrchError
from orchestrator.sweepspec import POPULATION_METHODS, SweepSpec

__all__ = ["CHECKPOINTS_KEPT", "Resume", "new_sweep_id", "run_sweep"]

CHECKPOINTS_KEPT = 2  # per trial: the latest and one before it, in case the latest is corrupt
# PBT copies other trials' checkpoints while they train on; Ray warns that <= 2 races there.
POPULATION_CHECKPOINTS_KEPT = 4
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def new_sweep_id() -> str:
    return uuid.uuid4().hex[:12]


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
    verdict: Callable[[SweepResult], Any] | None = None,
) -> SweepResult:
    """Run `spec` on Ray Tune and return what happened to every trial.

    ``configs`` runs exactly these flat configs (and the baseline) instead of the
    spec's search; see :func:`build_search`. ``resume`` continues an interrupted
    sweep: Ray Tune restores its trials (finished ones are not run again,
    unfinished ones continue from their last checkpoint) and the recorder reuses
    its MLflow runs. ``verdict`` judges the finished sweep for its record
    (``orchestrator.method.verdict_for``; the engine itself judges nothing).
    """
    fn = trainable if trainable is not None else load_trainable(spec.trainable)
    sweep_id = resume.sweep_id if resume else new_sweep_id()
    storage = storage_path or spec.storage_path or str(Path(DEFAULT_STORAGE).resolve())
    if resume is not None:
        storage = resume.experiment_path.rstrip("/").rsplit("/", 1)[0]
    experiment_path = f"{storage.rstrip('/')}/{spec.slug}-{sweep_id}"
    local_dir = local_sweep_dir(experiment_path, sweep_id)
    with sweep_lock(local_dir, sweep_id):  # before Ray starts: a second resume fails at once
        ensure_ray(address)
        resources = trial_resources(spec)
        check_resources(spec, resources)
        return _run_locked(spec, fn, address, tracking_uri, tracking, live, spec_text,
                           configs, resume, sweep_id, storage, experiment_path, local_dir,
                           resources, verdict)


def _run_locked(spec: SweepSpec, fn: Callable[..., Any], address: str | None,
                tracking_uri: str | None, tracking: bool, live: bool | None,
                spec_text: str | None, configs: Sequence[Mapping[str, Any]] | None,
                resume: Resume | None, sweep_id: str, storage: str, experiment_path: str,
                local_dir: Path, resources: Mapping[str, float],
                verdict: Callable[[SweepResult], Any] | None) -> SweepResult:
    ledger = Ledger(spec)
    LEDGERS[sweep_id] = ledger
    study = _study(spec, configs, tracking_uri, tracking, local_dir)
    try:
        tuner = _build_tuner(spec, fn, resources, storage, experiment_path, sweep_id,
                             configs, resume, study)
    except OrchError:
        _forget(sweep_id)
        raise
    except Exception as exc:  # a damaged experiment folder, a searcher that cannot start
        _forget(sweep_id)
        raise OrchError(f"the sweep could not be set up: {type(exc).__name__}: {exc}") from exc
    recorder = None
    if tracking:
        from orchestrator.tracking import Recorder

        recorder = Recorder(spec, sweep_id=sweep_id, tracking_uri=tracking_uri,
                            spec_text=spec_text, experiment_path=experiment_path,
                            journal_dir=local_dir, verdict=verdict,
                            optuna_storage=study or "")
        try:  # fails here, before any trial, if the store is unreachable
            recorder.start(resume_parent=resume.parent_run_id if resume else None)
        except BaseException:
            _forget(sweep_id)
            raise
        ledger.prior_outcomes = dict(recorder.prior_outcomes)
        ledger.prior_diagnoses = dict(recorder.prior_diagnoses)
        ledger.listeners.append(recorder)
    result = SweepResult(sweep_id=sweep_id, spec=spec, records=[], storage=storage,
                         tracking_uri=recorder.tracking_uri if recorder else None,
                         parent_run_id=recorder.parent_run_id if recorder else None,
                         experiment_id=recorder.experiment_id if recorder else None)
    _quiet_ray_advice()
    started = time.time()
    failure: BaseException | None = None
    view = None
    handlers: dict[int, Any] = {}
    try:  # from here on, whatever happens, every run is closed (recorder.finish)
        if live is None:
            live = sys.stdout.isatty()
        if live:
            from orchestrator.engine._live import LiveView

            view = LiveView(spec, ledger)
            ledger.listeners.append(view)
            view.start()  # never raises: a failure to draw is a warning
        handlers = _install_interrupt_handlers(ledger)
        try:
            tuner.fit()
        except KeyboardInterrupt:  # a second signal, or one before Tune was ready: stop now
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
        _forget(sweep_id)
        result.target_reached = ledger.target_reached
        result.storage_problem = ledger.storage_problem
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


def _forget(sweep_id: str) -> None:
    """What the driver kept for the sweep while it ran: its ledger, its worker registry."""
    LEDGERS.pop(sweep_id, None)
    close_registry(sweep_id)


def _build_tuner(spec: SweepSpec, fn: Callable[[dict[str, Any]], Any],
                 resources: Mapping[str, float], storage: str, experiment_path: str,
                 sweep_id: str, configs: Sequence[Mapping[str, Any]] | None,
                 resume: Resume | None, study: str | None = None) -> Any:
    from ray import tune

    plan = worker_plan(spec, resources)  # None: one process per trial
    if plan is not None:  # no more trials at once than the cluster holds all the workers of
        spec = limit_concurrency(spec, plan)
    search_alg, param_space, num_samples = build_search(
        spec, configs, study=(study, sweep_id) if study and resume is None else None,
        sweep_id=sweep_id)
    cv = spec.cv.as_dict(spec.seed) if spec.cv else None
    metric = spec.metric.name if spec.metric else None
    artifact_root = experiment_path if "://" not in storage else None
    if plan is not None:  # each trial one Ray Train job of several workers (_distributed.py)
        trial_fn = make_distributed_trial(
            fn, plan, sweep_id=sweep_id, metric=metric, sweep_seed=spec.seed,
            split_seed=cv["seed"] if cv else spec.seed, cv=cv, train_storage=experiment_path,
            checkpoints_kept=CHECKPOINTS_KEPT, artifact_root=artifact_root)
        trainable = tune.with_resources(trial_fn, DRIVER_RESOURCES)
    else:
        wrap = make_trial_class if isinstance(fn, type) else make_trial_function
        trial_fn = wrap(fn, metric=metric, sweep_seed=spec.seed,
                        split_seed=cv["seed"] if cv else spec.seed, cv=cv,
                        artifact_root=artifact_root)
        trainable = tune.with_resources(trial_fn, dict(resources))
    if resume is not None:
        _check_state(resume.experiment_path)
        # Errored trials stay failed (they used up their retries), unless the storage
        # failing was what ended them.
        return tune.Tuner.restore(resume.experiment_path, trainable=trainable,
                                  resume_unfinished=True,
                                  resume_errored=resume.after_storage_problem,
                                  restart_errored=False, param_space=param_space or None)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=spec.metric.mode if spec.metric else None,
            search_alg=search_alg,
            scheduler=build_scheduler(spec, sweep_id),
            num_samples=num_samples,
            max_concurrent_trials=None if isinstance(search_alg, SearchAlgorithm)
            and not isinstance(search_alg, Searcher) else spec.max_concurrent,
            # A distributed trial's actor waits on its Train run: one Tune stopped cannot be
            # reset for the next trial (Ray would fail that trial), so it is never reused.
            reuse_actors=_reusable(fn) and plan is None,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=f"{spec.slug}-{sweep_id}",
            storage_path=storage,
            stop=Guard(sweep_id),
            callbacks=[TuneCallback(sweep_id),
                       *([WorkerGroupJanitor(sweep_id)] if plan is not None else [])],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # A class trainable (tune.Trainable) is checkpointed every step by Ray; a function
            # checkpoints itself when it reports (orch's toolkit does, every epoch).
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=POPULATION_CHECKPOINTS_KEPT if spec.method in POPULATION_METHODS
                else CHECKPOINTS_KEPT,
                checkpoint_frequency=1 if isinstance(fn, type) else 0),
            verbose=0,
            log_to_file=False,
        ),
    )


def _study(spec: SweepSpec, configs: Sequence[Mapping[str, Any]] | None,
           tracking_uri: str | None, tracking: bool, local_dir: Path) -> str | None:
    """The Optuna storage URL of a sweep Optuna samples (None for grid, PBT and ablations).
    A resumed sweep's searcher comes back from Ray's state with the storage it had."""
    if spec.method == "grid" or spec.method in POPULATION_METHODS or configs is not None:
        return None
    from orchestrator.engine._study import study_url

    if tracking:
        from orchestrator.tracking import resolve_tracking_uri

        tracking_uri = resolve_tracking_uri(tracking_uri)
    return study_url(tracking_uri if tracking else None, local_dir)


STATE_FILES = ("experiment_state-*.json", "searcher-state-*.pkl", "search_gen_state-*.json",
               "tuner.pkl")  # what Ray Tune restores a sweep from


def _check_state(experiment_path: str) -> None:
    """Refuse to resume from Ray Tune state files that were cut short (a full disk while they
    were written): Ray would restore an empty trial list and silently start over."""
    if "://" in experiment_path:
        return  # object stores write whole objects or nothing
    folder = Path(experiment_path)
    for pattern in STATE_FILES:
        found = sorted(folder.glob(pattern))
        if not found:
            continue
        newest = found[-1]
        problem = _cut_short(newest)
        if problem:
            free = shutil.disk_usage(folder).free / 2**20
            raise OrchError(
                f"cannot resume: Ray Tune's state file {newest} {problem}; it was cut short "
                f"when it was written (no space left on the device? {free:.0f} MiB free now). "
                "Resuming from it would start the sweep over and lose track of the trials "
                "already recorded, so orch does not. The trials' records stay in MLflow; "
                "start a new sweep to run the rest of the budget.")


def _cut_short(path: Path) -> str:
    """Why a state file is unusable ("" when it looks whole). Ray writes JSON and pickles
    (``search_gen_state-*.json`` is a pickle despite its name); a pickle cut short lacks
    its final STOP opcode."""
    data = path.read_bytes()
    if not data:
        return "is empty (0 bytes)"
    if data[:1] == b"\x80":  # a pickle's PROTO opcode
        return "" if data.endswith(b".") else "is a pickle cut short (no STOP opcode)"
    if path.suffix == ".json":
        try:
            json.loads(data.decode("utf-8"))
        except ValueError as exc:
            return f"is not valid JSON ({exc})"
    return ""


def _quiet_ray_advice() -> None:
    """Ray's own lines that give advice orch replaces with its own."""
    # "Resume experiment with: Tuner.restore(...)": orch's summary says `orch resume ID`.
    logging.getLogger("ray.tune.tune").addFilter(
        lambda r: not str(r.msg).startswith(("Experiment has been interrupted",
                                             "Stop signal received")))
    # A resumed or retried trial reports steps again; Ray's OptunaSearch passes them to
    # Optuna, which warns and keeps the first value (as orch's record does).
    warnings.filterwarnings("ignore", message="The reported value is ignored because this",
                            category=UserWarning)


def _reusable(fn: Any) -> bool:
    """Actors are reused between trials (a second saved per trial) unless the trainable is a
    class that cannot be reset (Ray then fails the next trial it runs on that actor)."""
    if not isinstance(fn, type):
        return True
    from ray.tune import Trainable

    return getattr(fn, "reset_config", None) is not Trainable.reset_config


def _install_interrupt_handlers(ledger: Ledger) -> dict[int, Any]:
    """The first Ctrl-C, SIGTERM or SIGHUP stops the sweep resumably; a second stops now."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        if ledger.interrupted:
            raise KeyboardInterrupt(f"signal {signum}")
        ledger.interrupted = True
        tune_handler = signal.getsignal(signal.SIGUSR1)
        if not callable(tune_handler):  # Tune is not running yet: nothing to save
            raise KeyboardInterrupt(f"signal {signum}")
        tune_handler(signal.SIGUSR1, frame)  # Tune's own graceful stop: state saved

    previous = {sig: signal.getsignal(sig) for sig in (*INTERRUPT_SIGNALS, signal.SIGUSR1)}
    for sig in INTERRUPT_SIGNALS:
        signal.signal(sig, handler)
    # An earlier sweep's Tune left its handler here; this sweep's Tune installs its own.
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
