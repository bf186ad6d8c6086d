"""What a sweep produced: one :class:`TrialRecord` per trial and the :class:`SweepResult`.

Ray-free and MLflow-free: the engine fills these from Ray Tune's events, the
tracking package writes them, the method layer judges them, and tests build
them by hand.

A trial's outcome is one word, set once it ends::

    pending ─▶ running ─┬─▶ completed      ran its budget (or ended itself: done, stop:)
                        ├─▶ early_stopped  the scheduler (ASHA ...) or the sweep's target cut it
                        ├─▶ failed         raised, diverged (NaN), timed out, or lost its worker
                        └─▶ killed         the sweep was interrupted while it ran
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.sweepspec import SweepSpec
from orchestrator.sweepspec import flatten

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OUTCOMES", "USABLE", "Outcome", "Resume", "SweepResult", "TrialRecord",
           "best_record", "feasible", "pareto_front"]

Outcome = Literal["pending", "running", "completed", "early_stopped", "failed", "killed"]
OUTCOMES: tuple[str, ...] = ("completed", "early_stopped", "failed", "killed")  # how trials end
USABLE: tuple[str, ...] = ("completed", "early_stopped")  # ended with a metric that counts


@dataclass
class TrialRecord:
    """What happened to one trial, as the driver saw it.

    ``history`` holds one row of metrics per report of the trial's current line of
    attempts, ``steps`` the report number of each row (Ray's ``training_iteration``:
    1, 2, ... and, after a restore from a checkpoint, continuing from it). A retried
    attempt that repeats steps replaces them here; ``attempts`` lists the attempts
    that failed before the last one, with their errors.
    """

    trial_id: str
    config: dict[str, Any]
    role: str = "trial"  # or "baseline"
    repeat: int = 0  # baseline repeat index (distinct seed), 0 for the first
    index: int = -1  # creation order in the sweep (the searcher's order), -1 until known
    outcome: str = "pending"  # an Outcome
    history: list[dict[str, float]] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    stopped_at: int | None = None
    stop_reason: str = ""  # why it ended before its budget, in words
    started: float | None = None
    ended: float | None = None
    last_report: float | None = None  # wall time of its latest report
    node: str = ""
    diagnosis: str = ""
    diagnosis_reason: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    max_step: int = 0  # the highest step any attempt reported
    # population-based training: each exploit (step, the trial copied, the config after)
    exploits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """Reports in the current line of attempts (one per epoch for the toolkit)."""
        return len(self.history)

    @property
    def last_step(self) -> int:
        return self.steps[-1] if self.steps else 0

    def add(self, step: int, row: dict[str, float]) -> bool:
        """Add one report; a step at or below the last one starts a new line from there.

        Returns whether no attempt of this trial had reported the step before.
        """
        if step <= self.last_step:
            keep = [i for i, s in enumerate(self.steps) if s < step]
            self.history = [self.history[i] for i in keep]
            self.steps = [self.steps[i] for i in keep]
        self.history.append(row)
        self.steps.append(step)
        new = step > self.max_step
        self.max_step = max(self.max_step, step)
        return new

    def value(self, metric: str) -> float | None:
        """The metric's last reported value (Ray Tune's default scope), if finite."""
        for row in reversed(self.history):
            if metric in row:
                v = row[metric]
                return v if math.isfinite(v) else None
        return None


def feasible(rec: TrialRecord, spec: SweepSpec) -> bool:
    """Every ``metric_constraints`` rule holds on the trial's last values (a constraint
    metric it never reported makes it infeasible)."""
    for rule in spec.metric_constraints:
        value = rec.value(rule.metric)
        if value is None or not rule.holds(value):
            return False
    return True


def best_record(records: list[TrialRecord], spec: SweepSpec) -> TrialRecord | None:
    """The best searched trial (never the baseline, never an infeasible one) by the metric's
    last finite value; None without a metric."""
    if spec.metric is None:
        return None
    metric, sign = spec.metric.name, (1 if spec.metric.goal == "minimize" else -1)
    scored = [(r.value(metric), r) for r in records
              if r.role == "trial" and r.outcome in USABLE and feasible(r, spec)]
    scored = [(v, r) for v, r in scored if v is not None]
    if not scored:
        return None
    return min(scored, key=lambda vr: sign * vr[0])[1]


def pareto_front(records: list[TrialRecord], spec: SweepSpec) -> list[TrialRecord]:
    """The searched, feasible trials no other one beats on every objective (``metrics:``),
    in their order; empty for a single objective."""
    if len(spec.metrics) < 2:
        return []
    signs = [1.0 if m.goal == "minimize" else -1.0 for m in spec.metrics]
    points = []
    for r in records:
        if r.role != "trial" or r.outcome not in USABLE or not feasible(r, spec):
            continue
        values = [r.value(m.name) for m in spec.metrics]
        if all(v is not None for v in values):
            points.append((r, [s * v for s, v in zip(signs, values)]))  # all minimised

    def dominated(a: list[float]) -> bool:
        return any(all(x <= y for x, y in zip(b, a)) and any(x < y for x, y in zip(b, a))
                   for _, b in points)

    return [r for r, p in points if not dominated(p)]


@dataclass
class SweepResult:
    """What :func:`orchestrator.sweep` returns.

    ``best`` is the best non-baseline trial by the metric's last value;
    ``trials`` a pandas DataFrame with one row per trial.
    """

    sweep_id: str
    spec: SweepSpec
    records: list[TrialRecord]
    storage: str
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    experiment_id: str | None = None
    interrupted: bool = False
    target_reached: bool = False
    tracking_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    storage_problem: str = ""  # the storage failed: the sweep stopped, resumably
    # The verdict on the hypothesis once judged after the sweep (``orchestrator.sweep``
    # confirms it on fresh seeds when the spec has ``expected:``); None until then.
    verdict: Any = None

    @property
    def metric(self) -> str:
        return self.spec.metric.name if self.spec.metric else ""

    @property
    def feasible_ids(self) -> set[str]:
        """The trials every ``metric_constraints`` rule holds for (all, without constraints)."""
        return {r.trial_id for r in self.records if feasible(r, self.spec)}

    @property
    def pareto(self) -> list[TrialRecord]:
        """Multi-objective sweeps: the trials on the Pareto front (see :func:`pareto_front`)."""
        return pareto_front(self.records, self.spec)

    @property
    def best(self) -> TrialRecord | None:
        return best_record(self.records, self.spec)

    @property
    def baseline(self) -> TrialRecord | None:
        return next((r for r in self.records if r.role == "baseline"), None)

    @property
    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in OUTCOMES}
        for r in self.records:
            if r.outcome in out:
                out[r.outcome] += 1
        return out

    @property
    def ok(self) -> bool:
        """Every trial ended well and every record was written."""
        return (not self.interrupted and self.counts["failed"] == 0
                and not self.tracking_problems)

    @property
    def trials(self) -> pd.DataFrame:
        import pandas as pd

        rows = []
        for r in self.records:
            row: dict[str, Any] = {
                "trial_id": r.trial_id,
                "role": r.role,
                "outcome": r.outcome,
                "epochs": r.epochs,
                **{m.name: r.value(m.name) for m in
                   (self.spec.metrics or ((self.spec.metric,) if self.spec.metric else ()))},
                "duration_s": (r.ended - r.started) if r.started and r.ended else None,
                "diagnosis": r.diagnosis,
                "attempts": len(r.attempts) + 1,
                "error": r.error,
            }
            row.update({f"config.{k}": v for k, v in flatten(r.config).items()})
            rows.append(row)
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class Resume:
    """Where an interrupted sweep lives: its id, its Ray Tune folder and its MLflow parent run."""

    sweep_id: str
    experiment_path: str
    parent_run_id: str | None = None
    # The last stop was the storage failing: trials Ray saw error then are run again.
    after_storage_problem: bool = False
