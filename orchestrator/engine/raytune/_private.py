"""Every use of Ray's private API in orch, in one place, each with why and what breaks.

``tests/engine/test_ray_private.py`` checks each of these against the installed
Ray on every run; pyproject.toml admits only the Ray versions they were written
for (``RAY_TESTED``). Anything else in orch uses Ray's public API only.

1. :func:`wrap_session_report` — the trial process's report path. Ray Tune's
   ``tune.report`` and ``train.report`` both end in ``get_session().report``; orch
   wraps that bound method for the duration of one trial so that whatever a
   trainable reports (through orch or through Ray's own API, unchanged) has its
   numbers converted, its tags attached and, once Ray has stopped the trial, any
   further report refused at once (a trainable that swallows Ray's stop signal
   would otherwise keep its actor busy forever).
2. :func:`fall_back_to_existing_checkpoint` — before Ray retries a trial from its
   latest checkpoint, a deleted checkpoint folder is replaced by the newest kept
   one (Ray would fail the trial again). Reads and sets attributes of the trial's
   checkpoint manager.
3. :func:`loopback_effective` — whether Ray's node address will be 127.0.0.1 for
   a local start (Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, on import).
5. :func:`ray_start_keeping_loopback` — ``cluster/local_cluster.py`` starts worker nodes
   of a one-machine cluster on 127.0.0.1 (``python -m orchestrator.engine.raytune._private
   ray-start ...``): ``ray start`` on Linux rewrites a loopback ``--node-ip-address`` into
   the LAN address, and the setting that stops that (3.) refuses multi-node clusters, so
   Ray's address resolution is wrapped to keep loopback addresses as given.
6. :func:`set_constraints` — ``metric_constraints`` reach Optuna's constrained samplers
   as the finished trial's constraints (``Trial.set_constraint``), set before Ray's
   ``OptunaSearch`` tells the study: that needs the Optuna trial it keeps per Tune trial
   (``_ot_trials``); :func:`set_optuna_attrs` sets user attributes on it the same way.
8. :func:`fail_orphaned_optuna_trials` — after a resume, the Optuna trials the kept study
   holds as RUNNING that the restored ``OptunaSearch`` does not know (asked by a driver
   killed before Ray saved the searcher) are told FAIL, so the study shows no trial
   running forever; it reads the searcher's ``_ot_study`` and ``_ot_trials``.
   :func:`describe_optuna_study` names the study's objectives through ``_ot_study``.
7. :func:`population_scheduler_class` — Ray's PopulationBasedTraining and PB2, with
   their ``_exploit`` step (private) wrapped to tell orch's ledger which trial copied
   which, at which step, into which config.
4. :func:`kill_trial_actor` — a trial past its time limit is ended by killing its
   actor (``ray.kill``, public) found through the trial's temporary state: a hung
   trainable never returns to Ray, so stopping it politely would leave its actor busy
   and fail the next trial that Ray tries to run on it.
9. :func:`torch_trainer_class` — Ray Train's ``TorchTrainer`` for trials of several workers
   (``engine/raytune/_distributed.py``), without the ``PlacementGroupCleanerCallback`` that
   ``_create_default_callbacks`` (private) adds: the cleaner asks the dashboard's state API
   whether the Train controller lives, and orch's local Ray runs no dashboard, so it warns
   every second of every run and, once Tune has ended a trial, stays for good. orch's
   ``WorkerGroupJanitor`` removes the workers' placement group of every trial Tune ends.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["RAY_TESTED", "fall_back_to_existing_checkpoint", "kill_trial_actor",
           "loopback_effective", "population_scheduler_class", "ray_start_keeping_loopback",
           "describe_optuna_study", "fail_orphaned_optuna_trials", "set_constraints", "set_optuna_attrs",
           "torch_trainer_class", "wrap_session_report"]

RAY_TESTED = (">=2.54", "<2.61")  # the Ray releases these helpers were checked against


def wrap_session_report(convert: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[], None]:
    """Route every report of this trial process through ``convert``; return an undo.

    ``convert(metrics)`` returns the metrics to send (it may raise to fail the trial).
    Outside a Ray Tune trial this does nothing.
    """
    from ray.train._internal import session as train_session

    current = train_session.get_session()
    if current is None:
        return lambda: None
    original = current.report
    stopped = threading.Event()

    @functools.wraps(original)
    def report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
        if stopped.is_set():  # Ray stopped this trial; a trainable that caught it goes on
            raise SystemExit(0)
        try:
            original(convert(dict(metrics)), checkpoint=checkpoint)
        except SystemExit:  # Ray's way of ending a stopped trial from inside report()
            stopped.set()
            raise

    current.report = report  # an instance attribute: this session only

    def undo() -> None:
        if current.__dict__.get("report") is report:
            del current.report

    return undo


def fall_back_to_existing_checkpoint(trial: Any) -> str:
    """Make sure the checkpoint a retried trial restores still exists; say what was wrong.

    Ray refuses to restore from a checkpoint folder that was deleted and fails the
    trial again; instead the newest kept checkpoint that exists is used, or none (the
    trial restarts from scratch). Returns what was wrong, or "".
    """
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    latest = getattr(manager, "latest_checkpoint_result", None)
    if manager is None or latest is None:
        return ""
    import pyarrow.fs

    def exists(result: Any) -> bool:
        ckpt = result.checkpoint
        return ckpt.filesystem.get_file_info(ckpt.path).type != pyarrow.fs.FileType.NotFound

    if exists(latest):
        return ""
    kept = [r for r in getattr(manager, "_checkpoint_results", []) if exists(r)]
    manager._latest_checkpoint_result = kept[-1] if kept else None
    return (f"trial {trial.trial_id}: checkpoint {latest.checkpoint.path} is gone; "
            + ("resuming from an older kept checkpoint" if kept
               else "restarting from scratch"))


@functools.lru_cache(maxsize=1)
def torch_trainer_class() -> type:
    """``ray.train.torch.TorchTrainer`` without Ray Train's placement-group cleaner (9.)."""
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.placement_group_callback import (
        PlacementGroupCleanerCallback,
    )

    class OrchTorchTrainer(TorchTrainer):  # type: ignore[misc, valid-type]
        def _create_default_callbacks(self) -> list[Any]:
            return [c for c in super()._create_default_callbacks()
                    if not isinstance(c, PlacementGroupCleanerCallback)]

    return OrchTorchTrainer


def loopback_effective() -> bool:
    """Whether a local Ray started now gets 127.0.0.1 as its node address."""
    from ray._private import ray_constants

    return not ray_constants.ENABLE_RAY_CLUSTER


def kill_trial_actor(trial: Any) -> bool:
    """Kill the Ray actor running ``trial``; False when it has none (not started, gone)."""
    import ray

    actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
    if actor is None:
        return False
    ray.kill(actor, no_restart=True)
    return True


def ray_start_keeping_loopback(argv: list[str]) -> int:
    """``ray start ARGV`` with loopback addresses kept as given (see 5. above)."""
    import sys

    import ray._private.services as services
    from ray._common.network_utils import is_localhost
    from ray.scripts.scripts import main

    original = services.resolve_ip_for_localhost
    services.resolve_ip_for_localhost = lambda h: h if h and is_localhost(h) else original(h)
    sys.argv = ["ray", "start", *argv]
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def set_constraints(searcher: Any, trial_id: str, values: dict[str, float]) -> None:
    """Set a trial's constraint values (``{rule: value}``, feasible at <= 0) on the Optuna
    trial Ray's OptunaSearch keeps, before it is told: Optuna 5's samplers read them."""
    ot_trial = getattr(searcher, "_ot_trials", {}).get(trial_id)
    if ot_trial is not None:
        for key, value in values.items():
            ot_trial.set_constraint(key, float(value))


def set_optuna_attrs(searcher: Any, trial_id: str, attrs: dict[str, Any]) -> None:
    """Set user attributes on the Optuna trial Ray's OptunaSearch keeps for a Tune trial."""
    ot_trial = getattr(searcher, "_ot_trials", {}).get(trial_id)
    if ot_trial is not None:
        for key, value in attrs.items():
            ot_trial.set_user_attr(key, value)


def describe_optuna_study(searcher: Any, metric_names: list[str],
                          attrs: dict[str, Any]) -> None:
    """Name the kept study's objectives (Optuna's dashboard shows "Objective 0" otherwise)
    and set its user attributes."""
    study = getattr(searcher, "_ot_study", None)
    if study is None:
        return
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names)
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def fail_orphaned_optuna_trials(searcher: Any) -> int:
    """Tell FAIL every RUNNING trial of the searcher's study it does not hold; how many."""
    study = getattr(searcher, "_ot_study", None)
    if study is None:
        return 0
    from optuna.trial import TrialState

    held = {t.number for t in getattr(searcher, "_ot_trials", {}).values()}
    orphans = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if t.number not in held]
    for number in orphans:
        study.tell(number, state=TrialState.FAIL)
    return len(orphans)


def population_scheduler_class(kind: str) -> type:
    """PopulationBasedTraining (``"pbt"``) or PB2 (``"pb2"``), telling the sweep's ledger
    of each exploit: ``ledger.on_trial_exploit(trial, clone, step)``."""
    if kind == "pb2":
        from ray.tune.schedulers.pb2 import PB2 as base
    else:
        from ray.tune.schedulers import PopulationBasedTraining as base

    class Recorded(base):  # type: ignore[misc, valid-type]
        def __init__(self, sweep_id: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.sweep_id = sweep_id

        def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
            super()._exploit(tune_controller, trial, trial_to_clone)
            from orchestrator.engine.raytune._callbacks import LEDGERS

            ledger = LEDGERS.get(self.sweep_id)
            if ledger is not None:
                ledger.on_trial_exploit(trial, trial_to_clone,
                                        int(trial_to_clone.last_result.get(
                                            "training_iteration", 0)))

    Recorded.__name__ = Recorded.__qualname__ = f"Orch{base.__name__}"
    return Recorded


if __name__ == "__main__":  # python -m orchestrator.engine.raytune._private ray-start ...
    import sys

    if sys.argv[1:2] != ["ray-start"]:
        raise SystemExit("usage: python -m orchestrator.engine.raytune._private ray-start ARGS")
    raise SystemExit(ray_start_keeping_loopback(sys.argv[2:]))
