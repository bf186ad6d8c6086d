"""Nothing lost, nothing twice: what MLflow holds is exactly what the trials reported.

A property test (hypothesis) generates reporting patterns — epochs from 0, from 1 or
absent, several reports per epoch, numpy scalars, checkpoints or none, a failure and a
retry from the checkpoint or from scratch — runs them as real trials on the shared Ray
with a real SQLite store, and counts: every (trial, metric, step) reported is stored
exactly once, with the value reported, every run is closed, and the finished trials
are the budget.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import orchestrator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PATTERN = st.fixed_dictionaries({
    "start": st.sampled_from([0, 1, None]),
    "per_epoch": st.sampled_from([1, 1, 2, 3]),
    "reports": st.integers(1, 7),
    "numpy": st.booleans(),
    "checkpoint": st.booleans(),
    "fail_at": st.integers(0, 4),
})


def expected_points(pattern: dict, x: float) -> dict[str, dict[int, float]]:
    """metric -> {step: value} that the trial must leave in the store."""
    n = pattern["reports"]
    out: dict[str, dict[int, float]] = {"loss": {}}
    for i in range(1, n + 1):
        loss = x + 1.0 / i
        out["loss"][i] = float(np.float32(loss)) if pattern["numpy"] else loss
        if pattern["numpy"]:
            out.setdefault("count", {})[i] = float(i)
        if pattern["start"] is not None:
            out.setdefault("epoch", {})[i] = pattern["start"] + (i - 1) / pattern["per_epoch"]
    return out


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(patterns=st.lists(PATTERN, min_size=3, max_size=3,
                         unique_by=lambda p: json.dumps(p, sort_keys=True)))
def test_every_reported_point_is_stored_exactly_once(ray_session, tmp_path_factory, patterns):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("lost")
    (root / "marks").mkdir()
    store = f"sqlite:///{root / 'mlflow.db'}"
    spec = {"name": "nothing-lost", "method": "grid", "metric": {"name": "loss"},
            "max_failures": 1, "max_concurrent": 2,
            "parameters": {"pattern": {"values": patterns}, "x": {"value": 0.25},
                           "marks": {"value": str(root / "marks")}}}
    from _trainables import patterned

    result = orchestrator.sweep(spec, trainable=patterned, tracking_uri=store,
                                storage_path=str(root / "ray"))
    assert not result.tracking_problems, result.tracking_problems
    assert [r.outcome for r in result.records] == ["completed"] * 3, \
        [(r.outcome, r.error) for r in result.records]
    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"}
    trials = [r for r in runs if r.data.tags.get("orch.role") == "trial"]
    assert len(trials) == 3
    for run in trials:
        params = run.data.params
        rec = next(r for r in result.records if r.trial_id == run.data.tags["orch.trial_id"])
        pattern = rec.config["pattern"]
        want = expected_points(pattern, 0.25)
        for metric, points in want.items():
            history = client.get_metric_history(run.info.run_id, metric)
            got = sorted((m.step, m.value) for m in history)
            assert [s for s, _ in got] == sorted(points), (metric, pattern, got)  # once each
            assert got == pytest.approx(sorted(points.items())), (metric, pattern, got)
        retried = 0 < pattern["fail_at"] < pattern["reports"] or \
            pattern["fail_at"] == pattern["reports"]
        assert run.data.tags["orch.attempts"] == ("2" if retried and pattern["fail_at"] else "1"), \
            (pattern, params)
