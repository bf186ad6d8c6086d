"""Starting (or joining) Ray, and checking that a trial can be placed at all.

A local sweep starts a Ray of its own (``address="local"``: never a cluster some
earlier ``ray start`` left running) that listens on 127.0.0.1 only (see
``engine/_env.py``), and whose processes ignore the signals a terminal or a job
scheduler sends to the whole process group: Ray already blocks SIGINT in them so
the driver alone handles Ctrl-C; orch does the same for SIGTERM and SIGHUP, so
``timeout``, Slurm, ``kill -- -PGID`` or a closed terminal reach only the driver,
which then stops the sweep in order (runs closed, state saved) and shuts Ray down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.engine.raytune._private import loopback_effective
from orchestrator.errors import OrchError, ResourceError
from orchestrator.sweepspec import SweepSpec

__all__ = ["DEFAULT_STORAGE", "check_resources", "ensure_ray", "trial_resources"]

DEFAULT_STORAGE = "orch_results"  # folder (under the working directory) for Ray Tune's files
RUNTIME_ENV_EXCLUDES = [".git", "mlflow.db", "mlruns", DEFAULT_STORAGE, "*.parquet",
                        "__pycache__", ".venv"]
GROUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # kept from Ray's processes (SIGINT: by Ray)

log = logging.getLogger(__name__)


def _not_news(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Token authentication is enabled")


@contextlib.contextmanager
def _group_signals_blocked() -> Iterator[None]:
    """Processes started inside inherit a signal mask with SIGTERM and SIGHUP blocked."""
    if threading_main() and hasattr(signal, "pthread_sigmask"):
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    else:
        yield


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def ensure_ray(address: str | None) -> None:
    """Connect to (or start) Ray. Local: this machine's CPUs/GPUs; else the cluster at `address`.

    On a cluster the working directory is shipped with Ray's runtime environment so
    ``trainable: module:function`` imports on every node.
    """
    import ray

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
    blocked = contextlib.nullcontext()
    if address:
        kwargs.pop("include_dashboard")
        kwargs["address"] = address
        kwargs["runtime_env"] = {"working_dir": cwd, "excludes": RUNTIME_ENV_EXCLUDES}
    else:
        # A new Ray of this sweep's own, as the README promises: without "local", ray.init()
        # would join whatever cluster `ray start` left running on this machine.
        kwargs["address"] = "local"
        blocked = _group_signals_blocked()
        if not loopback_effective():
            log.warning("Ray was imported before orch could ask it to listen on 127.0.0.1 "
                        "only; this local Ray listens on every interface (token "
                        "authentication stays on). Import orchestrator before ray, or set "
                        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before starting Python.")
        # Ray 2.60 turns token authentication on for a local start and then says so on every
        # start: news to nobody, so that one line is dropped (its other warnings are kept).
        logging.getLogger("ray._private.authentication.authentication_token_setup") \
            .addFilter(_not_news)
    try:
        with blocked:
            ray.init(**kwargs)
    except Exception as exc:  # no cluster there, refused token, ...
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise OrchError(
            f"could not connect to {where}: {type(exc).__name__}: {exc}. Check --address "
            "(and RAY_AUTH_MODE=token / RAY_AUTH_TOKEN_PATH on a cluster with token auth)"
        ) from exc
    if not address:
        _private_token()


def _private_token() -> None:
    """Ray writes the token it generates world-readable; anyone on the machine could then
    join this Ray. Make it the user's own (owner read/write only)."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        if path.is_file() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """Each trial's CPUs and GPUs (each worker's, with `resources.workers` > 1); an unset
    `gpu` means one GPU where the cluster has any, so a single-GPU machine is used without
    flags."""
    import ray

    gpu = spec.resources.gpu
    if gpu is None:
        gpu = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    return {"cpu": spec.resources.cpu, "gpu": gpu}


def describe_nodes(nodes: Sequence[Mapping[str, Any]]) -> str:
    """``address: cpu=N gpu=M`` for each node (``ray.nodes()`` entries), for an error."""
    return ", ".join(
        f"{n.get('NodeManagerAddress', '?')}: cpu={n['Resources'].get('CPU', 0):g} "
        f"gpu={n['Resources'].get('GPU', 0):g}" for n in nodes) or "no nodes"


def check_resources(spec: SweepSpec, resources: Mapping[str, float]) -> None:
    """Fail before any trial when no node could ever run one (never wait forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if spec.resources.distributed:  # a Ray Train job per trial: all its workers must fit
        from orchestrator.engine.raytune._distributed import check_worker_resources, worker_plan

        plan = worker_plan(spec, resources)
        if plan is not None:
            check_worker_resources(plan, nodes)
        return
    need = {"CPU": resources["cpu"], "GPU": resources["gpu"]}
    if any(all(n["Resources"].get(k, 0.0) >= v for k, v in need.items() if v > 0)
           for n in nodes):
        return
    raise ResourceError(
        f"each trial asks for cpu={need['CPU']:g}, gpu={need['GPU']:g} "
        f"(`resources:`), but no node has that much; nodes: {describe_nodes(nodes)}. "
        "Lower `resources`, "
        "or add a node that has them."
    )
