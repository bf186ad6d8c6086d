"""What a running trial sees: :func:`report`, :func:`artifact_dir`, :func:`trial_seed`.

A trainable is a plain function of ``config``. Inside a sweep its reports go
to Ray Tune; outside one (a unit test, a benchmark, ``orch lr-find``) they go to
whatever :func:`capture_reports` collects them into, so the same trainable runs
everywhere unchanged. Ray is imported only when a report is actually sent to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import MetricMissingError, NonFiniteMetricError

__all__ = [
    "CapturedReports",
    "TrialContext",
    "artifact_dir",
    "capture_reports",
    "current_trial",
    "cv_settings",
    "derive_seed",
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


TAGS_KEY = "orch_tags"  # the result key that carries tags from a trial to the recorder


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


def _check(metrics: Mapping[str, Any], ctx: TrialContext | None) -> None:
    if ctx is None or not ctx.metric:
        return
    if ctx.metric not in metrics:
        reported = ", ".join(sorted(map(str, metrics))) or "nothing"
        raise MetricMissingError(
            f"the sweep optimises metric {ctx.metric!r}, but this report has only: {reported}. "
            f"Report {ctx.metric!r} every epoch, or set `metric.name` to one of these."
        )
    value = metrics[ctx.metric]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetricMissingError(
            f"metric {ctx.metric!r} must be a number, got {value!r}"
        ) from None
    if not math.isfinite(number):
        raise NonFiniteMetricError(
            f"metric {ctx.metric!r} is {number} at report {ctx.reports + 1}: the trial diverged "
            "(lower the learning rate, clip gradients, or check the data)"
        )


def report(metrics: Mapping[str, Any], *, checkpoint: Any = None) -> None:
    """Report one step's metrics (normally one epoch) from inside a trial.

    >>> from orchestrator import capture_reports, report
    >>> with capture_reports() as got:
    ...     report({"epoch": 1, "val_loss": 0.5})
    >>> got.reports
    [{'epoch': 1, 'val_loss': 0.5}]

    The sweep's metric must be present and finite; a NaN or infinite value
    ends the trial as failed (it is never promoted, never the best).
    """
    ctx = _CURRENT
    metrics = dict(metrics)
    _check(metrics, ctx)
    if ctx is not None:
        ctx.reports += 1
        if ctx.pending_tags:
            metrics[TAGS_KEY] = {**metrics.get(TAGS_KEY, {}), **ctx.pending_tags}
            ctx.pending_tags = {}
        if ctx.sink is not None:
            ctx.sink.append(metrics)
            return
    import ray.tune

    ray.tune.report(metrics, checkpoint=checkpoint)


@dataclass
class CapturedReports:
    """What :func:`capture_reports` collected."""

    reports: list[dict[str, Any]]
    artifacts: Path
    context: TrialContext


@contextlib.contextmanager
def capture_reports(
    *,
    metric: str | None = None,
    seed: int = 0,
    split_seed: int = 0,
    cv: dict[str, Any] | None = None,
    artifacts: str | os.PathLike[str] | None = None,
) -> Iterator[CapturedReports]:
    """Run a trainable outside a sweep and collect what it reports.

    >>> from orchestrator import capture_reports
    >>> from trainables.digits import digits_mlp
    >>> with capture_reports(metric="val_loss", seed=0) as got:   # doctest: +SKIP
    ...     digits_mlp({"epochs": 2})
    >>> len(got.reports)                                           # doctest: +SKIP
    2
    """
    folder = Path(artifacts) if artifacts is not None else Path(tempfile.mkdtemp(prefix="orch-"))
    sink: list[dict[str, Any]] = []
    ctx = TrialContext(
        metric=metric, seed=seed, split_seed=split_seed, cv=cv, artifacts=folder, sink=sink
    )
    with _activate(ctx):
        yield CapturedReports(reports=sink, artifacts=folder, context=ctx)
