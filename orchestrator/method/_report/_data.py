"""A recorded sweep, read back once for the report: the parent run, every trial's typed
config and metric histories (as :class:`~orchestrator.method._budget.RunView`), the spec."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from orchestrator.method._budget import Budget, RunView, matched_budget, rank

__all__ = ["SweepData", "load"]


@dataclass
class SweepData:
    """Everything a report section reads."""

    sweep: Any  # tracking.SweepSummary
    store: Any  # tracking.Store
    spec: Any | None  # the sweep's SweepSpec, when it could be loaded
    ptags: dict[str, str]
    pparams: dict[str, str]
    runs: list[RunView]
    metric: str
    goal: str
    folds: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def trials(self) -> list[RunView]:
        return [r for r in self.runs if r.role == "trial"]

    @property
    def bases(self) -> list[RunView]:
        return [r for r in self.runs if r.role == "baseline" and r.usable]

    @property
    def ranked(self) -> list[RunView]:
        return rank(self.trials, self.metric, self.goal)

    @property
    def budget(self) -> Budget:
        return matched_budget(self.trials, self.metric)

    @property
    def searched(self) -> list[str]:
        if self.spec is not None:
            return [p.name for p in self.spec.parameters if not p.is_constant]
        keys = sorted({k for r in self.trials for k in r.config})
        return [k for k in keys if len({str(r.config.get(k)) for r in self.trials}) > 1]

    @property
    def baseline_config(self) -> dict[str, Any]:
        if self.spec is not None:
            from orchestrator.sweepspec import baseline_config, flatten

            base = baseline_config(self.spec)
            if base is not None:
                return flatten(base)
        return dict(self.bases[0].config) if self.bases else {}

    def number(self, key: str) -> float | None:
        try:
            x = float(self.pparams.get(key))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return x if math.isfinite(x) else None

    def text(self, run: RunView, name: str) -> str | None:
        try:
            return self.store.text(run.run_id, name)
        except Exception:  # noqa: BLE001 - a missing artifact store: the section says so
            return None

    def confusion(self, run: RunView) -> dict[str, Any] | None:
        """The run's ``confusion_matrix.json`` (what the toolkit writes), parsed."""
        text = self.text(run, "confusion_matrix.json")
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None


def _rows(histories: dict[tuple[str, str], list[Any]], run: Any) -> dict[int, dict[str, float]]:
    """{step: {metric: value}} from every metric history of the run."""
    rows: dict[int, dict[str, float]] = {}
    for key in sorted(run.data.metrics):
        for m in histories[(run.info.run_id, key)]:
            rows.setdefault(int(m.step), {})[key] = float(m.value)
    return rows


def _config(params: dict[str, str], spec: Any | None) -> dict[str, Any]:
    from orchestrator.method._runs import _typed

    by_name = {p.name: p for p in spec.parameters} if spec is not None else {}
    return {k: _typed(v, by_name.get(k)) for k, v in params.items()}


def load(sweep_ref: str, *, tracking_uri: str) -> SweepData:
    """Read the sweep ``sweep_ref`` names (see :func:`orchestrator.tracking.find_sweep`)."""
    from orchestrator.method._runs import sweep_spec
    from orchestrator.tracking import Store, find_sweep

    sweep = find_sweep(sweep_ref, tracking_uri=tracking_uri)
    store = Store(tracking_uri)
    parent = store.run(sweep.parent_run_id)
    spec = sweep_spec(sweep.parent_run_id, tracking_uri=tracking_uri)
    runs = []
    found = store.trial_runs(sweep)
    histories = store.histories([(r.info.run_id, key) for r in found
                                 for key in sorted(r.data.metrics)])  # read at once
    for r in found:
        tags = dict(r.data.tags)
        runs.append(RunView(trial_id=tags.get("orch.trial_id") or r.info.run_name,
                            role=tags.get("orch.role", "trial"),
                            outcome=tags.get("orch.outcome", ""),
                            config=_config(dict(r.data.params), spec), rows=_rows(histories, r),
                            run_id=r.info.run_id, tags=tags,
                            started=(r.info.start_time or 0) / 1000.0))
    pparams = dict(parent.data.params)
    try:
        folds = int(float(pparams.get("cv.folds", "")))
    except ValueError:
        folds = 0
    return SweepData(sweep=sweep, store=store, spec=spec, ptags=dict(parent.data.tags),
                     pparams=pparams, runs=runs, metric=sweep.metric, goal=sweep.goal,
                     folds=folds or None)
