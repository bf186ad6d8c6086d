"""What a sweep optimises: several objectives, constraints, none at all, and a time budget."""

from __future__ import annotations

import pytest
from _trainables import quadratic, slow, two_objectives
from mlflow import MlflowClient

import orchestrator

pytestmark = pytest.mark.e2e


def base(**extra):
    raw = {"name": "objectives", "method": "random", "run_cap": 6, "seed": 3,
           "max_concurrent": 2, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    raw.update(extra)
    return raw


def test_two_objectives_give_a_pareto_front_tagged_on_every_trial(ray_session, store):
    spec = base(method="tpe", metrics=[{"name": "loss", "goal": "minimize"},
                                       {"name": "size", "goal": "minimize"}],
                metric_constraints=["size <= 8"])
    result = orchestrator.sweep(spec, trainable=two_objectives, tracking_uri=store)
    front = result.pareto
    assert front and all(r.value("size") <= 8 for r in front)
    values = [(r.value("loss"), r.value("size")) for r in front]
    for a in values:  # nobody on the front beats another on both objectives
        assert not any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in values), values
    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.role` = 'trial'")
    tagged = {r.data.tags["orch.trial_id"]: r.data.tags.get("orch.pareto") for r in runs}
    assert set(tagged.values()) <= {"true", "false"} and len(tagged) == 6
    assert {t for t, v in tagged.items() if v == "true"} == {r.trial_id for r in front}
    infeasible = [r for r in runs if r.data.tags.get("orch.feasible") == "false"]
    assert all(r.data.metrics["size"] > 8 for r in infeasible)
    assert all(tagged[r.data.tags["orch.trial_id"]] == "false" for r in infeasible)
    # The report plots the front and counts the infeasible.
    from orchestrator.method import build_report

    html = build_report(result.sweep_id, tracking_uri=store).html
    part = html.split('<section id="objectives">', 1)[1].split("</section>", 1)[0]
    assert 'alt="Pareto front"' in part
    assert f"{6 - len(infeasible)} of 6 trial(s) met every constraint" in part
    assert part.count("<tr>") >= len(front) + 1


def test_an_infeasible_trial_is_never_the_best(ray_session, store):
    spec = base(metric={"name": "loss"}, metric_constraints=["x_seen >= 0.5"],
                parameters={"x": {"values": [0.3, 0.6, 0.9]}, "epochs": {"value": 2}},
                method="grid")
    result = orchestrator.sweep(spec, trainable=quadratic, tracking=False)
    assert result.best.config["x"] == 0.6  # 0.3 has the lowest loss but breaks the rule


def test_a_grid_without_a_metric_runs_every_point_and_names_no_best(ray_session, store):
    spec = {"name": "no-metric", "method": "grid",
            "parameters": {"x": {"values": [0.1, 0.5, 0.9]}, "epochs": {"value": 2}}}
    result = orchestrator.sweep(spec, trainable=quadratic, tracking_uri=store)
    assert result.counts["completed"] == 3 and result.best is None
    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.role` = 'trial'")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    random = orchestrator.sweep({**spec, "method": "random", "run_cap": 2,
                                 "parameters": {"x": {"min": 0.0, "max": 1.0}}},
                                trainable=quadratic, tracking=False)
    assert random.counts["completed"] == 2 and random.best is None


def test_the_time_budget_ends_the_sweep_and_says_why(ray_session, store):
    spec = base(metric={"name": "loss"}, run_cap=20, time_budget_s=15,
                parameters={"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": 100},
                            "pause": {"value": 0.3}})
    result = orchestrator.sweep(spec, trainable=slow, tracking=False)
    assert len(result.records) < 20
    cut = [r for r in result.records if r.outcome == "early_stopped"]
    assert cut and all("time budget" in r.stop_reason for r in cut), \
        [(r.outcome, r.stop_reason) for r in result.records]
