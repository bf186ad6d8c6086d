"""The environment the Ray driver needs, each setting with its reason.

Ray reads these when it is first imported, so :func:`prepare_driver` runs before
``orchestrator.engine.raytune`` (which imports Ray) is loaded. Every setting is a
default: a value the user exported wins. Ray-free.
"""

from __future__ import annotations

import os

__all__ = ["CONNECT_RETRIES", "prepare_driver"]

CONNECT_RETRIES = "2"  # Ray's default (20) waits ~12 minutes on an address nobody answers

DRIVER_ENV = {
    # orch's guard reports a missing metric with the metrics that were reported; Ray's
    # strict check would instead abort the whole sweep with a traceback.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # Everything a trial reports is recorded by orch (MLflow, and its own journal); Ray's
    # per-trial CSV, JSON and TensorBoard files only cost time.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Trainables open data relative to where `orch` was started, as users expect.
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    # orch handles Ctrl-C, SIGTERM and SIGHUP itself and then asks Tune to stop the way
    # Tune's own handler does (SIGUSR1: state saved, unfinished trials resumable).
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    # Save the experiment state at most 1 s apart (Ray's "auto" waits >= 10 s): a resumed
    # sweep must know every trial that was started, or it runs more than the budget.
    "TUNE_GLOBAL_CHECKPOINT_S": "1",
    # With CheckpointConfig(num_to_keep) Ray forces an experiment snapshot every few trial
    # checkpoints and warns each time two come within 5 s: with a checkpoint every epoch
    # that is thousands of lines in a long sweep. Frequent snapshots are what orch wants
    # (see above), and on a file system they cost milliseconds, so the warning is noise.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}

LOCAL_ENV = {
    # A local sweep listens on 127.0.0.1 only. On Linux Ray otherwise binds its GCS,
    # raylet, workers and agents to every interface (and rewrites 127.0.0.1 given as the
    # node address into the LAN address); this setting, meant for laptops, makes Ray use
    # the loopback address for the node. Never set for a cluster (--address): its nodes
    # must reach the driver.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}

CLUSTER_ENV = {
    # Connecting to an `--address` nobody answers fails in about a minute and a half.
    "RAY_NUM_REDIS_GET_RETRIES": CONNECT_RETRIES,
}


_SET_HERE: set[str] = set()  # keys this module set (not the user): it may take them back


def prepare_driver(address: str | None) -> None:
    """Set the driver's environment for a local sweep (``address`` None) or a cluster."""
    wanted = {**DRIVER_ENV, **(CLUSTER_ENV if address else LOCAL_ENV)}
    for key in set(LOCAL_ENV) | set(CLUSTER_ENV):
        if key not in wanted and key in _SET_HERE:  # e.g. a cluster sweep after a local one
            os.environ.pop(key, None)
            _SET_HERE.discard(key)
    for key, value in wanted.items():
        if key not in os.environ:
            os.environ[key] = value
            _SET_HERE.add(key)
