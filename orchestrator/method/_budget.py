"""Matched budgets: a trial is compared only with what ran as long as it did.

Early stopping (ASHA) leaves trials with different numbers of epochs; a trial cut
at epoch 2 and one trained for 18 cannot be ranked on their last values, nor a
trial cut at epoch 3 judged against the baseline's epoch 9. Two rules, used by
the verdict, the report and the next-sweep ranges alike:

* **trial against baseline**: at the step both reached (the trial's last report,
  since the baseline always runs its full budget): :func:`common_step`;
* **trials against each other** (importance, slice, parallel and contour plots,
  next-sweep ranges): at one *matched budget*, the deepest step that at least
  ``min(MIN_MATCHED, n)`` trials reached, each trial's value at that step; trials
  cut before it are left out, and the report says so: :func:`matched_budget`.

A step is the report number (``training_iteration``, one per epoch for the
toolkit), the ``step`` of the MLflow metric points.

:class:`RunView` is the one form the method reads a trial in, whether it comes
from a :class:`~orchestrator.engine.TrialRecord` (end of a sweep) or from MLflow
(the report): role, outcome, flat config and ``{step: metrics}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.engine import USABLE

__all__ = ["MIN_MATCHED", "Budget", "RunView", "common_step", "matched_budget", "rank"]

MIN_MATCHED = 6  # trials wanted at one budget before a deeper budget is preferred


@dataclass(frozen=True)
class RunView:
    """One trial (or baseline run): what the method needs to judge it."""

    trial_id: str
    role: str  # "trial" or "baseline"
    outcome: str
    config: Mapping[str, Any]  # flat, dotted keys, typed values
    rows: Mapping[int, Mapping[str, float]]  # step -> metrics reported at that step
    run_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    started: float = 0.0  # start time (s): the order trials were created in

    @classmethod
    def from_record(cls, rec: Any) -> RunView:
        from orchestrator.sweepspec import flatten

        steps = rec.steps or list(range(1, len(rec.history) + 1))
        return cls(trial_id=rec.trial_id, role=rec.role, outcome=rec.outcome,
                   config=dict(flatten(rec.config)), rows=dict(zip(steps, rec.history)),
                   tags=dict(rec.tags), started=float(rec.index if rec.index >= 0 else 0))

    @property
    def usable(self) -> bool:
        return self.outcome in USABLE and bool(self.rows)

    def steps(self, metric: str) -> list[int]:
        """The steps with a finite value of ``metric``, in order."""
        return sorted(s for s, row in self.rows.items() if _finite(row.get(metric)))

    def last_step(self, metric: str) -> int | None:
        found = self.steps(metric)
        return found[-1] if found else None

    def value(self, metric: str, step: int | None = None) -> float | None:
        """``metric`` at ``step`` (default: the last step that has it), if finite."""
        step = self.last_step(metric) if step is None else step
        if step is None:
            return None
        v = self.rows.get(step, {}).get(metric)
        return float(v) if _finite(v) else None  # type: ignore[arg-type]

    def row(self, step: int) -> dict[str, float]:
        return dict(self.rows.get(step, {}))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def common_step(trial: RunView, baselines: Sequence[RunView], metric: str) -> int | None:
    """The deepest step the trial and every baseline repeat all reported ``metric`` at."""
    steps = set(trial.steps(metric))
    for b in baselines:
        steps &= set(b.steps(metric))
    return max(steps) if steps else None


@dataclass(frozen=True)
class Budget:
    """A matched budget: the step, the trials compared at it and those left out."""

    step: int | None
    values: dict[str, float]  # trial id -> metric at ``step``
    left_out: dict[str, int]  # trial id -> the last step it reached, before ``step``
    deepest: int | None  # the deepest step any trial reached

    @property
    def full(self) -> bool:
        """Every usable trial reached the budget (nothing left out)."""
        return not self.left_out

    def describe(self, unit: str = "epoch") -> str:
        if self.step is None:
            return "no trial reported the metric"
        n = len(self.values)
        text = f"{n} trial(s) compared at {unit} {self.step}"
        if self.left_out:
            text += (f"; {len(self.left_out)} trial(s) stopped before {unit} {self.step} "
                     "are left out")
        if self.deepest is not None and self.deepest > self.step:
            text += (f" ({unit} {self.deepest}, the deepest reached, has fewer than "
                     f"{MIN_MATCHED} trials)")
        return text


def matched_budget(trials: Iterable[RunView], metric: str, *,
                   min_trials: int = MIN_MATCHED) -> Budget:
    """The deepest step at least ``min(min_trials, n)`` of the usable trials reached.

    >>> a = RunView("a", "trial", "completed", {}, {1: {"m": 3.0}, 2: {"m": 2.0}})
    >>> b = RunView("b", "trial", "early_stopped", {}, {1: {"m": 4.0}})
    >>> matched_budget([a, b], "m", min_trials=2).step
    1
    >>> matched_budget([a, b], "m", min_trials=1).left_out
    {'b': 1}
    """
    runs = [t for t in trials if t.usable and t.last_step(metric) is not None]
    if not runs:
        return Budget(None, {}, {}, None)
    need = max(1, min(min_trials, len(runs)))
    reached = sorted((t.last_step(metric) for t in runs), reverse=True)  # type: ignore[misc]
    deepest = reached[0]
    candidates = sorted({s for t in runs for s in t.steps(metric)}, reverse=True)
    step = next(s for s in candidates
                if sum(1 for t in runs if t.value(metric, s) is not None) >= need)
    values = {t.trial_id: t.value(metric, step) for t in runs}
    kept = {k: v for k, v in values.items() if v is not None}
    left = {t.trial_id: t.last_step(metric) for t in runs if t.trial_id not in kept}
    return Budget(step, kept, left, deepest)  # type: ignore[arg-type]


def rank(trials: Iterable[RunView], metric: str, goal: str) -> list[RunView]:
    """Usable trials best first: those that ran deepest first (what early stopping
    promoted), then by the metric at their own last step."""
    runs = [t for t in trials if t.usable and t.value(metric) is not None]
    sign = 1.0 if goal == "minimize" else -1.0
    return sorted(runs, key=lambda t: (-(t.last_step(metric) or 0),
                                       sign * t.value(metric)))  # type: ignore[operator]
