"""What both integrations share: a framework's logged numbers as orch's metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MetricNames", "pick_metrics"]

MetricNames = Sequence[str] | Mapping[str, str] | None


def pick_metrics(logged: Mapping[str, Any], names: MetricNames, where: str) -> dict[str, float]:
    """The numbers of ``logged`` orch reports: all of them (``names=None``), the names
    listed, or ``{orch_name: logged_name}`` renamed (Ray Tune's callbacks take the same)."""
    if names is None:
        wanted = {k: k for k in logged}
    elif isinstance(names, Mapping):
        wanted = dict(names)
    else:
        wanted = {n: n for n in names}
    missing = sorted(v for v in wanted.values() if v not in logged)
    if missing and names is not None:
        raise KeyError(f"{where}: {', '.join(missing)} not logged; logged: "
                       f"{', '.join(sorted(logged)) or 'nothing'}. Log it (self.log(...)) "
                       "or change the callback's metrics=")
    picked: dict[str, float] = {}
    for ours, theirs in wanted.items():
        value = _number(logged.get(theirs))
        if value is not None:
            picked[ours] = value
    return picked


def _number(value: Any) -> float | None:
    """A float from a Python, numpy or one-element tensor number (NaN kept: orch's report
    fails the trial on it); None for anything else."""
    if hasattr(value, "numel") and hasattr(value, "item"):  # a tensor
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
