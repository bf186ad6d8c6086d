"""The contract on real Ray: a few method x early_terminate choices run a tiny sweep.

tests/engine/test_contract.py drives every choice through the same script without
Ray; these run three of them end to end: real Ray (one shared instance), a real
SQLite MLflow store, a trivial trainable.
Each sweep must: run exactly its budget, never run a config twice for grid,
give every trial an outcome, report a best trial whose loss is the minimum of
the finished trials' last values, and record one MLflow run per trial.
"""

from __future__ import annotations

import pytest
from _trainables import quadratic

import orchestrator

pytestmark = pytest.mark.e2e

EARLY = {
    "none": None,
    "asha": {"type": "asha", "grace_period": 1, "max_t": 4, "reduction_factor": 2},
    "hyperband": {"type": "hyperband", "min_iter": 1, "eta": 2},
    "median": {"type": "median", "grace_period": 1},
}


def spec_for(method: str, early: str) -> dict:
    params = ({"x": {"values": [0.0, 0.3, 0.6, 0.9]}, "epochs": {"value": 4}}
              if method == "grid" else
              {"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": 4}})
    spec = {"name": f"contract-{method}-{early}", "method": method,
            "metric": {"name": "loss", "goal": "minimize"}, "run_cap": 4, "seed": 1,
            "parameters": params, "max_concurrent": 2}
    if EARLY[early] is not None:
        spec["early_terminate"] = EARLY[early]
    return spec


@pytest.fixture(scope="module")
def contract_store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('contract') / 'mlflow.db'}"


@pytest.mark.parametrize("method,early", [("tpe", "asha"), ("grid", "none"),
                                          ("random", "median")])
def test_every_method_and_scheduler_runs_the_same_script(ray_session, contract_store, tmp_path,
                                                         method, early):
    result = orchestrator.sweep(spec_for(method, early), trainable=quadratic,
                                tracking_uri=contract_store, storage_path=str(tmp_path))
    records = result.records
    assert len(records) == 4, [r.trial_id for r in records]
    assert all(r.outcome in ("completed", "early_stopped") for r in records), \
        [(r.trial_id, r.outcome, r.error) for r in records]
    if early == "none":
        assert all(r.outcome == "completed" and r.epochs == 4 for r in records)
    if method == "grid":
        assert sorted(r.config["x"] for r in records) == [0.0, 0.3, 0.6, 0.9]
        assert result.best.config["x"] == 0.3
    finished = [r.value("loss") for r in records]
    assert result.best.value("loss") == min(finished)
    assert result.counts["completed"] + result.counts["early_stopped"] == 4
    assert not result.tracking_problems

    from mlflow import MlflowClient

    client = MlflowClient(contract_store)
    runs = client.search_runs([result.experiment_id],
                              filter_string=f"tags.`orch.sweep_id` = '{result.sweep_id}'")
    children = [r for r in runs if r.data.tags.get("orch.role") == "trial"]
    assert len(children) == 4
    assert all(r.data.tags["mlflow.parentRunId"] == result.parent_run_id for r in children)
    assert {r.data.tags["orch.scheduler"] for r in children} == {
        "fifo" if early == "none" else ("median" if early == "median" else "asha")}
