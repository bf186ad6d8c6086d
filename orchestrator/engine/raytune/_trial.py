"""The trial wrapper: what runs in a Ray worker around the user's trainable.

It strips orch's private config keys, derives the trial seed, opens the
:class:`~orchestrator.engine._context.TrialContext` (``orchestrator.report`` and
friends), and routes every report — through orch or straight through
``ray.tune.report`` — through :func:`~orchestrator.engine._context.prepare_report`,
so numbers are numbers, the sweep's metric is checked and tags travel with it.
A function that returns a dict (Ray's quick start) has it taken as its last report.
"""

from __future__ import annotations

import faulthandler
import inspect
import logging
import numbers
import os
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.engine._context import TrialContext, _activate, derive_seed, prepare_report
from orchestrator.engine._ledger import unwrap_config
from orchestrator.engine.raytune._private import wrap_session_report

__all__ = ["make_trial_class", "make_trial_function"]


def _report_outputs(returned: Any, metric: str) -> None:
    """Ray's function API: a returned dict (or number) is the last report; a generator's
    yields are reports. A number is taken as the sweep's metric."""
    from orchestrator.engine._context import report

    outputs = returned if inspect.isgenerator(returned) else [returned]
    for out in outputs:
        if isinstance(out, Mapping):
            report(out)
        elif isinstance(out, numbers.Number) and not isinstance(out, bool):
            report({metric: out})
        elif out is not None:
            raise TypeError(f"the trainable returned (or yielded) a {type(out).__name__}; "
                            "return nothing, a dict of metrics, or a number")


def _place_tags(ctx: TrialContext, artifact_root: str | None) -> None:
    """Tags every trial gets, whatever it reports through: node, GPUs, seed, artifacts."""
    import ray
    import ray.tune

    ctx.pending_tags["node"] = socket.gethostname()
    ctx.pending_tags["seed"] = str(ctx.seed)
    try:
        ctx.pending_tags["gpu_ids"] = ",".join(map(str, ray.get_gpu_ids()))
        ctx.pending_tags["node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - not inside Ray (a direct call in a test)
        ctx.pending_tags["gpu_ids"] = ""
    ctx.pending_tags["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    try:
        tune_ctx = ray.tune.get_context()
        # In the sweep's folder when it is a file system path: Ray removes a trial's
        # working folder when a reused actor moves on, before the driver reads it.
        trial_dir = (Path(artifact_root) / tune_ctx.get_trial_id() if artifact_root
                     else Path(tune_ctx.get_trial_dir()))
        ctx.artifacts = trial_dir / "artifacts"
        ctx.pending_tags["artifact_dir"] = str(ctx.artifacts)
    except Exception:  # noqa: BLE001 - not inside a Tune trial: artifact_dir() picks a folder
        pass


CRASH_FILE = "crash.txt"  # beside the trial's artifacts: what Python saw when it crashed


def _crash_report(ctx: TrialContext) -> Any:
    """Where a segfault (or SIGFPE, SIGABRT, SIGBUS, SIGILL) in this trial is described:
    Python's faulthandler writes the signal and the trial's stack there, and the driver
    names them in the trial's error instead of "the worker died"."""
    if ctx.artifacts is None:
        return None
    try:
        ctx.artifacts.parent.mkdir(parents=True, exist_ok=True)
        handle = open(ctx.artifacts.parent / CRASH_FILE, "w")  # noqa: SIM115 - kept open
    except OSError:
        return None
    faulthandler.enable(file=handle, all_threads=True)
    return handle


def make_trial_function(fn: Callable[[dict[str, Any]], Any], *, metric: str | None,
                        sweep_seed: int,
                        split_seed: int, cv: dict[str, Any] | None,
                        artifact_root: str | None = None,
                        trainable_ref: str = "") -> Callable[[dict], None]:
    """Wrap a user trainable so it runs inside a :class:`TrialContext`."""

    def trial(config: dict[str, Any]) -> None:
        # One "Checkpoint successfully created" line per epoch per trial is noise.
        logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
        config, role, repeat = unwrap_config(config)
        seed = derive_seed(sweep_seed, config, repeat) if repeat else derive_seed(sweep_seed, config)
        ctx = TrialContext(metric=metric, seed=seed, split_seed=split_seed, cv=cv)
        _place_tags(ctx, artifact_root)
        if trainable_ref:
            ctx.pending_tags["trainable"] = trainable_ref

        def convert(metrics: dict[str, Any]) -> dict[str, Any]:
            return metrics if ctx.prepared else prepare_report(metrics, ctx)

        undo = wrap_session_report(convert)
        crash = _crash_report(ctx)
        try:
            with _activate(ctx):
                _report_outputs(fn(config), metric)
        finally:
            undo()
            if crash is not None:
                faulthandler.enable(file=sys.stderr)  # Ray's own setting for its workers
                crash.close()

    trial.__name__ = getattr(fn, "__name__", "trainable")
    trial.__qualname__ = trial.__name__
    return trial


def make_trial_class(cls: type, *, metric: str | None, sweep_seed: int, split_seed: int,
                     cv: dict[str, Any] | None, artifact_root: str | None = None,
                     trainable_ref: str = "") -> type:
    """A Ray Tune class trainable (``tune.Trainable``: ``setup``/``step``/
    ``save_checkpoint``/``load_checkpoint``) run the way orch runs a function: its config
    without orch's keys, a trial seed and the trial-side context around ``setup`` and
    every ``step``, each ``step``'s result checked and tagged like a report. Ray's own
    checkpointing of the class (every step) makes retries and resume continue it."""

    def context(config: dict[str, Any]) -> tuple[dict[str, Any], TrialContext]:
        config, _, repeat = unwrap_config(config or {})
        seed = derive_seed(sweep_seed, config, repeat) if repeat else derive_seed(sweep_seed, config)
        ctx = TrialContext(metric=metric, seed=seed, split_seed=split_seed, cv=cv)
        _place_tags(ctx, artifact_root)
        if trainable_ref:
            ctx.pending_tags["trainable"] = trainable_ref
        return config, ctx

    class Trial(cls):  # type: ignore[misc, valid-type]
        def __init__(self, config: dict[str, Any] | None = None, *args: Any,
                     **kwargs: Any) -> None:
            config, self._orch_ctx = context(config or {})
            with _activate(self._orch_ctx):
                super().__init__(config, *args, **kwargs)

        def step(self) -> dict[str, Any]:
            with _activate(self._orch_ctx):
                result = super().step()
            return prepare_report(dict(result or {}), self._orch_ctx)

        def reset(self, new_config: dict[str, Any], *args: Any, **kwargs: Any) -> bool:
            new_config, self._orch_ctx = context(new_config)
            with _activate(self._orch_ctx):
                return super().reset(new_config, *args, **kwargs)

    Trial.__name__ = Trial.__qualname__ = cls.__name__
    Trial.__module__ = cls.__module__
    return Trial
