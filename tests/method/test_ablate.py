"""One factor at a time: the plan (no Ray), then one real parallel run."""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import SpecError
from orchestrator.method import ablation_plan, ablation_values
from orchestrator.sweepspec import Parameter, load_spec

COND = {
    "name": "abl", "trainable": "digits_mlp", "method": "tpe", "metric": {"name": "val_loss"},
    "parameters": {
        "optimizer": {"values": ["adam", "sgd"]},
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "momentum": {"min": 0.5, "max": 0.9, "when": {"optimizer": "sgd"}},
        "width": {"values": [16, 32]},
        "depth": {"min": 1, "max": 20},
        "epochs": {"value": 2},
    },
    "baseline": {"optimizer": "adam", "lr": 0.003, "width": 16, "depth": 2},
}


@pytest.mark.parametrize("param, expected", [
    (Parameter("lr", "log_uniform_values", min=1e-4, max=1e-1), (0.0003162, 0.003162, 0.03162)),
    (Parameter("d", "uniform", min=0.0, max=0.6), (0.1, 0.3, 0.5)),
    (Parameter("w", "categorical", values=(1, 2, 3)), (1, 2, 3)),
    (Parameter("k", "int_uniform", min=1, max=3), (1, 2, 3)),
    (Parameter("k", "int_uniform", min=1, max=100), (18, 50, 84)),
    (Parameter("q", "q_uniform", min=0, max=1, q=0.5), (0.0, 0.5, 1.0)),
])
def test_values_per_distribution(param, expected) -> None:
    assert ablation_values(param) == pytest.approx(expected)


def test_one_factor_at_a_time_around_the_baseline() -> None:
    base, points, skipped = ablation_plan(load_spec(COND))
    assert base == {"epochs": 2, "optimizer": "adam", "lr": 0.003, "width": 16, "depth": 2}
    for p in points:  # exactly one searched parameter differs (plus what `when` switches on)
        changed = {k for k in p.config if p.config.get(k) != base.get(k)}
        assert changed == {p.param, *p.filled}, p
    seen = [(p.param, p.value) for p in points]
    assert ("optimizer", "adam") not in seen and ("width", 16) not in seen  # = baseline
    assert [v for n, v in seen if n == "lr"] == [0.0003162, 0.003162, 0.03162]
    assert [v for n, v in seen if n == "depth"] == [4, 10, 17]


def test_when_conditions_are_respected() -> None:
    _, points, skipped = ablation_plan(load_spec(COND))
    assert ("momentum", "inactive at the baseline (needs optimizer in ['sgd'])") in skipped
    sgd = next(p for p in points if p.param == "optimizer")
    assert sgd.value == "sgd" and sgd.filled == {"momentum": 0.7}
    assert all("momentum" not in p.config for p in points if p is not sgd)
    # switching a condition off drops the dependent parameter
    spec = load_spec({**COND, "baseline": {**COND["baseline"], "optimizer": "sgd",
                                           "momentum": 0.8}})
    _, points, _ = ablation_plan(spec)
    adam = next(p for p in points if p.param == "optimizer")
    assert adam.dropped == ("momentum",) and "momentum" not in adam.config
    assert [p.value for p in points if p.param == "momentum"] == [0.5667, 0.7, 0.8333]


def test_an_ablation_needs_a_baseline() -> None:
    spec = load_spec({k: v for k, v in COND.items() if k != "baseline"})
    with pytest.raises(SpecError, match="baseline"):
        ablation_plan(spec)


@pytest.mark.e2e
def test_ablation_runs_in_one_sweep_and_is_recorded(ray_session, store, tmp_path) -> None:
    from mlflow import MlflowClient

    from orchestrator.method import run_ablation

    spec = load_spec({
        "name": "abl-e2e", "trainable": "digits_mlp", "method": "random",
        "metric": {"name": "val_loss"}, "cv": {"folds": 3}, "seed": 0,
        "parameters": {"width": {"values": [8, 32]},
                       "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1e-1},
                       "epochs": {"value": 2}, "train_fraction": {"value": 0.5}},
        "baseline": {"width": 8, "lr": 0.01},
        "early_terminate": {"type": "asha", "max_t": 2},
    })
    ab = run_ablation(spec, quantiles=2, tracking_uri=store)
    res = ab.result
    assert res.spec.method == "grid" and res.spec.early_terminate is None
    assert sorted(r.role for r in res.records) == ["baseline", "trial", "trial", "trial"]
    assert [(r.param, r.value) for r in ab.rows] == [("width", 32), ("lr", 0.003162),
                                                    ("lr", 0.03162)]
    for row in ab.rows:
        assert row.outcome == "completed" and row.spread_of == "folds"
        assert row.diff is not None and row.ci_low <= row.diff <= row.ci_high
    client = MlflowClient(store)
    runs = client.search_runs([res.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{res.parent_run_id}'")
    tagged = sorted((r.data.tags["orch.ablation.param"], r.data.tags["orch.ablation.value"])
                    for r in runs)
    assert tagged == [("(baseline)", ""), ("lr", "0.003162"), ("lr", "0.03162"),
                      ("width", "32")]
    arts = {a.path for a in client.list_artifacts(res.parent_run_id)}
    assert {"ablation.csv", "ablation.json"} <= arts
    path = client.download_artifacts(res.parent_run_id, "ablation.json", str(tmp_path))
    data = json.loads(open(path).read())
    assert len(data["rows"]) == 3 and data["baseline"]["width"] == 8
