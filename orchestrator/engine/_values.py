"""Reported values: what counts as a number, and which result keys are Ray's own.

No imports beyond the standard library: the trial side (``orchestrator.report``)
and the driver side (the ledger) both use it, and ``import orchestrator`` stays light.
"""

from __future__ import annotations

import decimal
import numbers
from collections.abc import Mapping
from typing import Any

__all__ = ["RAY_RESULT_KEYS", "TAGS_KEY", "as_number", "numeric_metrics"]

TAGS_KEY = "orch_tags"  # the result key that carries tags from a trial to the recorder

# Keys Ray Tune adds to every result: not the trainable's metrics.
RAY_RESULT_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint",
    "experiment_tag", "episodes_total", "timesteps_total", "timesteps_since_restore",
    TAGS_KEY,
})


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is a number in any clothing, else None.

    Python and numpy numbers (``np.float32``, ``np.int64``, 0-d arrays), ``Decimal``
    and numeric strings (``"1.5"``) are numbers; ``bool`` and everything else are not.

    >>> as_number("1.5"), as_number(True), as_number("abc")
    (1.5, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (numbers.Real, decimal.Decimal)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    shape = getattr(value, "shape", None)
    if shape == () and hasattr(value, "item"):  # numpy 0-d arrays, torch scalars
        return as_number(value.item())
    return None


def numeric_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The trainable's numeric metrics in a result, as floats (Ray's own keys left out)."""
    out = {}
    for k, v in result.items():
        if k in RAY_RESULT_KEYS:
            continue
        number = as_number(v)
        if number is not None:
            out[str(k)] = number
    return out
