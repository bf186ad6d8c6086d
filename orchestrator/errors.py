"""The exceptions `orch` raises.

Every error `orch` raises on purpose derives from :class:`OrchError`::

    OrchError
    ├── SpecError            a spec (YAML file, mapping or --set override) is invalid;
    │                        carries every problem found, each with its YAML path
    ├── TrainableImportError a `trainable:` reference cannot be imported
    ├── ResourceError        a trial asks for more CPUs/GPUs than any node has
    ├── TrackingError        the tracking store cannot be reached or written
    └── TrialError           raised inside a trial
        ├── MetricMissingError   a report lacks the sweep's metric
        └── NonFiniteMetricError the sweep's metric is NaN or infinite

`SpecError.issues` is a list of :class:`Issue` (path, rule, value, fix), so
callers can render them however they like; ``str(err)`` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Issue",
    "MetricMissingError",
    "NonFiniteMetricError",
    "OrchError",
    "ResourceError",
    "SpecError",
    "TrackingError",
    "TrainableImportError",
    "TrialError",
]


class OrchError(Exception):
    """Base class of every error `orch` raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One problem in a spec.

    ``path`` is the dotted YAML path (``parameters.lr.min``), ``line`` the
    1-based line in the file when known, ``message`` states the rule and the
    bad value, ``fix`` says what to write instead.
    """

    path: str
    message: str
    fix: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "<spec>"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        text = f"{where}: {self.message}"
        if self.fix:
            text += f" — {self.fix}"
        return text


class SpecError(OrchError):
    """A spec is invalid. ``issues`` holds every problem found, not just the first."""

    def __init__(self, issues: list[Issue], *, source: str = "") -> None:
        self.issues = list(issues)
        self.source = source
        head = f"invalid spec {source}" if source else "invalid spec"
        n = len(self.issues)
        lines = [f"{head}: {n} problem{'s' if n != 1 else ''}"]
        lines += [f"  - {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))


class TrainableImportError(OrchError):
    """A ``trainable:`` reference (``module:function`` or built-in name) cannot be loaded."""


class ResourceError(OrchError):
    """A trial asks for more resources than any node of the cluster has."""


class TrackingError(OrchError):
    """The tracking store cannot be reached, or records could not be written."""


class TrialError(OrchError):
    """Raised inside a trial when what it reports breaks the sweep's contract."""


class MetricMissingError(TrialError):
    """A report does not contain the sweep's metric."""


class NonFiniteMetricError(TrialError):
    """The sweep's metric is NaN or infinite: the trial has diverged."""
