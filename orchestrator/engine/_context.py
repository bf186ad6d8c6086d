"""What a running trial sees: :func:`report`, :func:`load_checkpoint`, :func:`artifact_dir`,
:func:`trial_seed`.

A trainable is a plain function of ``config``. Inside a sweep its reports go
to Ray Tune; outside one (a unit test, a benchmark, ``orch lr-find``) they go to
whatever :func:`capture_reports` collects them into, so the same trainable runs
everywhere unchanged. Ray is imported only when a report is actually sent to it.

Checkpoints follow the same path: ``report(metrics, checkpoint=state)`` hands
the state to Ray Tune (which keeps the last few, and gives the latest back
through :func:`load_checkpoint` when it retries a failed trial), or to the
capture, where a test can resume from it with ``capture_reports(resume_from=...)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.engine._checkpoint import (
    CheckpointUnreadable,
    load_state,
    save_state,
    snapshot,
)
from orchestrator.engine._values import TAGS_KEY, as_number
from orchestrator.errors import MetricMissingError, NonFiniteMetricError

__all__ = [
    "CapturedReports",
    "TrialContext",
    "artifact_dir",
    "capture_reports",
    "current_trial",
    "cv_settings",
    "derive_seed",
    "load_checkpoint",
    "prepare_report",
    "report",
    "set_tag",
    "split_seed",
    "trial_seed",
]


@dataclass
class TrialContext:
    """Set by the engine around a trainable call (and by :func:`capture_reports`)."""

    metric: str | None = None
    seed: int = 0  # this trial's seed: model init, shuffling, dropout
    split_seed: int = 0  # the sweep's seed: the data split, the same in every trial
    cv: dict[str, Any] | None = None  # the spec's `cv:` ({folds, stratify, seed}) or None
    artifacts: Path | None = None
    sink: list[dict[str, Any]] | None = None  # None: send to Ray Tune
    reports: int = 0
    pending_tags: dict[str, str] = field(default_factory=dict)
    checkpoints: list[Any] | None = None  # with a sink: every checkpoint reported, in order
    resume_from: dict[str, Any] | None = None  # with a sink: what load_checkpoint() returns
    keep_checkpoints: bool = True  # with a sink: False drops them (nothing to resume from)
    prepared: bool = False  # inside report(): the metrics were prepared already
    # In a Ray Train worker (a trial of several workers): where reports and checkpoints go
    # instead of Ray Tune, with .report(metrics, checkpoint) and .get_checkpoint()
    # (engine/raytune/_distributed.py).
    channel: Any = None


_CURRENT: TrialContext | None = None


def current_trial() -> TrialContext | None:
    """The context of the trial running in this process, if any."""
    return _CURRENT


@contextlib.contextmanager
def _activate(ctx: TrialContext) -> Iterator[TrialContext]:
    global _CURRENT
    previous, _CURRENT = _CURRENT, ctx
    try:
        yield ctx
    finally:
        _CURRENT = previous


def derive_seed(sweep_seed: int, *parts: Any) -> int:
    """A 31-bit seed derived from the sweep seed and anything JSON-serialisable.

    The same inputs give the same seed in every process and on every machine.
    """
    blob = json.dumps([sweep_seed, *parts], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "big") & 0x7FFFFFFF


def trial_seed(default: int = 0) -> int:
    """The running trial's seed (derived from the sweep seed and its config)."""
    return _CURRENT.seed if _CURRENT is not None else default


def split_seed(default: int = 0) -> int:
    """The seed that fixes the data split: the sweep's (or `cv.seed`), never the trial's."""
    return _CURRENT.split_seed if _CURRENT is not None else default


def cv_settings() -> dict[str, Any] | None:
    """The spec's `cv:` settings (``{"folds", "stratify", "seed"}``), or None without K-fold."""
    return dict(_CURRENT.cv) if _CURRENT is not None and _CURRENT.cv else None


def set_tag(key: str, value: Any) -> None:
    """Record a tag on the running trial's MLflow run (sent with the next report).

    Tags are stored as ``orch.<key>``; e.g. ``set_tag("split_fingerprint", fp)``.
    """
    if _CURRENT is not None:
        _CURRENT.pending_tags[str(key)] = str(value)



def artifact_dir() -> Path:
    """A folder the running trial may write files into.

    Everything in it is recorded as an artifact of the trial's MLflow run when
    the trial ends.
    """
    if _CURRENT is not None and _CURRENT.artifacts is not None:
        _CURRENT.artifacts.mkdir(parents=True, exist_ok=True)
        return _CURRENT.artifacts
    try:
        import ray.tune

        path = Path(ray.tune.get_context().get_trial_dir()) / "artifacts"
    except Exception:  # not inside a Ray Tune trial
        path = Path(tempfile.mkdtemp(prefix="orch-artifacts-"))
    if _CURRENT is not None:
        _CURRENT.artifacts = path
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_report(metrics: Mapping[str, Any], ctx: TrialContext | None) -> dict[str, Any]:
    """What a report sends: numbers as floats, the sweep's metric checked, tags attached.

    Numbers in any clothing (``np.float32``, ``np.int64``, ``Decimal``, ``"1.5"``) become
    floats, so the scheduler, the searcher and the record see the same value; other
    values pass as they are. The sweep's metric must be there and be a finite number:
    otherwise this trial (and only it) fails with a message saying what it reported.
    """
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        plain = isinstance(value, (int, float)) and not isinstance(value, bool)
        number = None if plain or key == TAGS_KEY else as_number(value)
        out[key] = number if number is not None else value
    if ctx is not None and ctx.metric:
        if ctx.metric not in out:
            reported = ", ".join(sorted(map(str, out))) or "nothing"
            raise MetricMissingError(
                f"the sweep optimises metric {ctx.metric!r}, but this report has only: "
                f"{reported}. Report {ctx.metric!r} every epoch, or set `metric.name` to one "
                "of these."
            )
        value = metrics[ctx.metric]
        number = as_number(value)
        if number is None:
            raise MetricMissingError(
                f"metric {ctx.metric!r} must be a number, but report {ctx.reports + 1} gave "
                f"{value!r} ({type(value).__name__}); report a float"
            )
        if not math.isfinite(number):
            raise NonFiniteMetricError(
                f"metric {ctx.metric!r} is {number} at report {ctx.reports + 1}: the trial "
                "diverged (lower the learning rate, clip gradients, or check the data)"
            )
    if ctx is not None:
        ctx.reports += 1
        if ctx.pending_tags:
            out[TAGS_KEY] = {**out.get(TAGS_KEY, {}), **ctx.pending_tags}
            ctx.pending_tags = {}
    return out


def report(metrics: Mapping[str, Any], *, checkpoint: Any = None) -> None:
    """Report one step's metrics (normally one epoch) from inside a trial.

    >>> from orchestrator import capture_reports, report
    >>> with capture_reports() as got:
    ...     report({"epoch": 1, "val_loss": 0.5})
    >>> got.reports
    [{'epoch': 1, 'val_loss': 0.5}]

    The sweep's metric must be present and finite; a NaN or infinite value
    ends the trial as failed (it is never promoted, never the best).

    ``checkpoint`` saves the trial's state with this report, so that a trial
    Ray Tune restarts after a failure (``max_failures``) can carry on from it
    through :func:`load_checkpoint`. Pass a mapping of state (tensors,
    ``state_dict()`` s, numpy arrays, plain Python): it is written with
    ``torch.save`` into a fresh folder that Ray copies into the trial's storage.
    A ``ray.tune.Checkpoint`` is passed to Ray unchanged.

    >>> with capture_reports() as got:
    ...     report({"epoch": 1}, checkpoint={"epoch": 1, "weights": [0.5, 0.25]})
    >>> got.checkpoint
    {'epoch': 1, 'weights': [0.5, 0.25]}
    """
    ctx = _CURRENT
    if checkpoint is not None and not isinstance(checkpoint, Mapping):
        _check_ray_checkpoint(checkpoint)
    metrics = prepare_report(metrics, ctx)
    if ctx is not None and ctx.sink is not None:
        if checkpoint is not None and ctx.keep_checkpoints:
            if ctx.checkpoints is None:
                ctx.checkpoints = []
            ctx.checkpoints.append(
                snapshot(checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
            )
        ctx.sink.append(metrics)
        return
    if ctx is not None and ctx.channel is not None:  # a Ray Train worker: to ray.train.report
        ctx.channel.report(metrics, checkpoint)
        return
    import ray.tune

    if ctx is not None:
        ctx.prepared = True  # the trial's report hook (raytune/_trial.py) need not redo it
    try:
        if not isinstance(checkpoint, Mapping):
            ray.tune.report(metrics, checkpoint=checkpoint)
            return
        with tempfile.TemporaryDirectory(prefix="orch-ckpt-") as folder:
            save_state(checkpoint, folder)
            # Ray copies the folder into the trial's storage before report() returns.
            ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(folder))
    finally:
        if ctx is not None:
            ctx.prepared = False


def _check_ray_checkpoint(checkpoint: Any) -> None:
    ray_checkpoint = None
    if "ray" in sys.modules:  # a ray Checkpoint can only exist once Ray is imported
        from ray.train import Checkpoint as ray_checkpoint
    if ray_checkpoint is None or not isinstance(checkpoint, ray_checkpoint):
        raise TypeError(
            "`checkpoint` must be a mapping of state (e.g. {'model': model.state_dict()}) "
            f"or a ray.tune.Checkpoint, but got {type(checkpoint).__name__}"
        )


def load_checkpoint() -> dict[str, Any] | None:
    """The state last saved with ``report(..., checkpoint=state)``, to resume from; else None.

    In a trial that Ray Tune restarted after a failure, this is the trial's
    latest checkpoint; in a fresh trial, None. A checkpoint that cannot be read
    (deleted, truncated, corrupt) gives None too, after a warning naming the
    trial and the problem: the trial then restarts from scratch instead of
    failing again. The problem is also tagged on the trial's run as
    ``orch.checkpoint_problem``. Under ``capture_reports(resume_from=state)``
    it returns ``state``:

    >>> from orchestrator import capture_reports, load_checkpoint
    >>> with capture_reports(resume_from={"epoch": 2}):
    ...     load_checkpoint()
    {'epoch': 2}

    A trainable resumes like this::

        state = orchestrator.load_checkpoint()
        start = state["epoch"] + 1 if state else 1
        if state:
            model.load_state_dict(state["model"])
        for epoch in range(start, epochs + 1):
            ...
            orchestrator.report({"epoch": epoch, "loss": loss},
                                checkpoint={"epoch": epoch, "model": model.state_dict()})
    """
    ctx = _CURRENT
    if ctx is not None and ctx.sink is not None:
        return ctx.resume_from
    if ctx is not None and ctx.channel is not None:  # a Ray Train worker: ray.train's checkpoint
        checkpoint = ctx.channel.get_checkpoint()
    elif "ray" not in sys.modules:  # not inside a Ray Tune trial
        return None
    else:
        import ray.tune

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Ray warns outside a trial; None is the answer
            checkpoint = ray.tune.get_checkpoint()
    if checkpoint is None:
        return None
    where = getattr(checkpoint, "path", None) or str(checkpoint)
    try:
        with checkpoint.as_directory() as folder:
            return load_state(folder)
    except Exception as exc:  # CheckpointUnreadable, or the storage lost the folder
        problem = str(exc) if isinstance(exc, CheckpointUnreadable) else (
            f"{type(exc).__name__}: {exc}")
        _checkpoint_problem(f"checkpoint {where}: {problem}")
        return None


def _trial_name() -> str:
    try:
        import ray.tune

        return str(ray.tune.get_context().get_trial_name() or "?")
    except Exception:  # outside a trial
        return "?"


def _checkpoint_problem(problem: str) -> None:
    message = f"trial {_trial_name()}: {problem}; restarting from scratch"
    set_tag("checkpoint_problem", message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


@dataclass
class CapturedReports:
    """What :func:`capture_reports` collected.

    ``checkpoints`` holds every checkpoint reported, in order, each as
    :func:`load_checkpoint` would return it after a restart (written and read
    back); ``checkpoint`` is the latest, or None.
    """

    reports: list[dict[str, Any]]
    artifacts: Path
    context: TrialContext
    checkpoints: list[Any] = field(default_factory=list)

    @property
    def checkpoint(self) -> Any:
        return self.checkpoints[-1] if self.checkpoints else None


@contextlib.contextmanager
def capture_reports(
    *,
    metric: str | None = None,
    seed: int = 0,
    split_seed: int = 0,
    cv: dict[str, Any] | None = None,
    artifacts: str | os.PathLike[str] | None = None,
    resume_from: Mapping[str, Any] | None = None,
    keep_checkpoints: bool = True,
) -> Iterator[CapturedReports]:
    """Run a trainable outside a sweep and collect what it reports.

    >>> from orchestrator import capture_reports
    >>> from trainables.digits import digits_mlp
    >>> with capture_reports(metric="val_loss", seed=0) as got:   # doctest: +SKIP
    ...     digits_mlp({"epochs": 2})
    >>> len(got.reports)                                           # doctest: +SKIP
    2

    ``resume_from`` is what :func:`load_checkpoint` returns inside, as if Ray
    had restarted the trial from that checkpoint (e.g. ``got.checkpoints[1]``
    of an earlier capture). ``keep_checkpoints=False`` skips copying each reported
    checkpoint (a plain run, e.g. ``orch reproduce``, needs none of them).
    """
    folder = Path(artifacts) if artifacts is not None else Path(tempfile.mkdtemp(prefix="orch-"))
    sink: list[dict[str, Any]] = []
    checkpoints: list[Any] = []
    ctx = TrialContext(
        metric=metric, seed=seed, split_seed=split_seed, cv=cv, artifacts=folder, sink=sink,
        checkpoints=checkpoints, resume_from=dict(resume_from) if resume_from is not None else None,
        keep_checkpoints=keep_checkpoints,
    )
    with _activate(ctx):
        yield CapturedReports(reports=sink, artifacts=folder, context=ctx,
                              checkpoints=checkpoints)
