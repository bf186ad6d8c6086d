"""End-to-end engine behaviour with real Ray and a real MLflow store (tiny trainables)."""

from __future__ import annotations

import time

import pytest
from _trainables import diverges_above, quadratic, raises_above, ray_style, wrong_metric

import orchestrator
from orchestrator.errors import ResourceError, TrainableImportError

pytestmark = pytest.mark.e2e


def spec(**extra):
    base = {"name": "engine", "method": "random", "metric": {"name": "loss"}, "run_cap": 6,
            "seed": 0, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    base.update(extra)
    return base


def test_nan_metric_fails_the_trial_and_is_never_best(ray_session, store):
    result = orchestrator.sweep(spec(), trainable=diverges_above, tracking_uri=store)
    nan = [r for r in result.records if r.config["x"] > 0.5]
    ok = [r for r in result.records if r.config["x"] <= 0.5]
    assert nan and ok
    assert all(r.outcome == "failed" and "NonFiniteMetricError" in r.error for r in nan)
    assert all(r.epochs <= 2 for r in nan)  # stopped at once, never promoted
    assert all(r.outcome == "completed" for r in ok)
    assert result.best.config["x"] <= 0.5
    assert all(r.diagnosis == "diverged" for r in nan)
    assert not result.ok


def test_raising_trial_is_failed_with_its_error_and_others_go_on(ray_session, store):
    result = orchestrator.sweep(spec(), trainable=raises_above, tracking_uri=store)
    bad = [r for r in result.records if r.config["x"] > 0.5]
    assert bad and all(r.outcome == "failed" for r in bad)
    assert all("boom at x=" in r.error for r in bad), [r.error for r in bad]
    assert all("RuntimeError" in (r.traceback or "") for r in bad)
    assert result.counts["completed"] == len(result.records) - len(bad)

    from mlflow import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.outcome` = 'failed'")
    assert len(runs) == len(bad)
    assert all(r.info.status == "FAILED" and "boom" in r.data.tags["orch.error"] for r in runs)
    assert all(any(a.path == "error.txt" for a in client.list_artifacts(r.info.run_id))
               for r in runs)


def test_a_ray_tune_trainable_runs_unchanged(ray_session, store):
    result = orchestrator.sweep(spec(run_cap=3), trainable=ray_style, tracking_uri=store)
    assert result.counts["completed"] == 3
    assert all(r.epochs == 2 for r in result.records)


def test_a_metric_never_reported_names_what_was_reported(ray_session, store):
    result = orchestrator.sweep(spec(run_cap=2), trainable=wrong_metric, tracking_uri=store)
    assert result.counts["failed"] == 2
    error = result.records[0].error
    assert "'loss'" in error and "val_loss" in error and "acc" in error


def test_reaching_the_target_ends_the_sweep(ray_session, store):
    xs = [0.3, 0.9, 0.8, 0.7, 0.6, 0.5]
    s = spec(max_concurrent=1, metric={"name": "loss", "target": 0.34}, method="grid",
             parameters={"x": {"values": xs}, "epochs": {"value": 3}})
    result = orchestrator.sweep(s, trainable=quadratic, tracking_uri=store)
    seen = [(r.config["x"], r.outcome, r.epochs, r.error) for r in result.records]
    assert result.target_reached and not result.interrupted, seen
    # x=0.3 reaches loss 1/3 at its last epoch; the sweep ends long before all six ran
    # (how many more Ray had already started depends on timing)
    assert len(result.records) < len(xs), seen
    assert result.best.config["x"] == 0.3, seen
    assert all(r.outcome in ("completed", "early_stopped") for r in result.records), seen


@pytest.mark.parametrize("method", ["random", "grid", "tpe"])
def test_same_spec_and_seed_give_the_same_configs(ray_session, store, method):
    params = ({"x": {"values": [0.1, 0.5, 0.9]}, "y": {"values": [1, 2]}} if method == "grid"
              else {"x": {"min": 0.0, "max": 1.0}, "y": {"values": [1, 2]}})
    s = spec(method=method, parameters=params, run_cap=5, max_concurrent=1, seed=11)

    def configs():
        result = orchestrator.sweep(s, trainable=quadratic, tracking=False)
        return [r.config for r in result.records]

    first, second = configs(), configs()
    assert first == second
    assert len({str(c) for c in first}) == len(first)


def test_baseline_runs_first_and_every_trial_gets_its_delta(ray_session, store):
    s = spec(run_cap=3, baseline={"x": 0.5})
    result = orchestrator.sweep(s, trainable=quadratic, tracking_uri=store)
    assert result.baseline is not None and result.baseline.config == {"x": 0.5}
    assert len(result.records) == 4 and result.best.role == "trial"

    from mlflow import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id],
                              f"tags.`orch.sweep_id` = '{result.sweep_id}'")
    roles = sorted(r.data.tags["orch.role"] for r in runs)
    assert roles == ["baseline", "sweep", "trial", "trial", "trial"]
    base_loss = result.baseline.value("loss")
    for r in runs:
        if r.data.tags["orch.role"] == "trial":
            trial = next(t for t in result.records if t.trial_id == r.data.tags["orch.trial_id"])
            assert r.data.metrics["delta_loss"] == pytest.approx(trial.value("loss") - base_loss)


def test_resources_no_node_has_fail_before_any_trial(ray_session, store):
    with pytest.raises(ResourceError, match=r"cpu=512.*no node has that much"):
        orchestrator.sweep(spec(resources={"cpu": 512}), trainable=quadratic, tracking=False)
    with pytest.raises(ResourceError, match="gpu=64"):  # more than any machine has
        orchestrator.sweep(spec(resources={"gpu": 64}), trainable=quadratic, tracking=False)


def test_a_trainable_that_cannot_be_imported_names_module_and_error(ray_session, store,
                                                                    tmp_path):
    (tmp_path / "broken_mod.py").write_text("import not_a_real_package\n")
    with pytest.raises(TrainableImportError, match="broken_mod.*not_a_real_package"):
        orchestrator.sweep(spec(trainable="broken_mod:train"), tracking=False)
    with pytest.raises(TrainableImportError, match="no module|cannot be found|No module"):
        orchestrator.sweep(spec(trainable="nowhere_at_all:train"), tracking=False)


def test_early_stopped_trials_are_recorded_with_their_rung(ray_session, store):
    s = spec(run_cap=8, max_concurrent=2, parameters={"x": {"min": 0.0, "max": 1.0},
                                                      "epochs": {"value": 8}},
             early_terminate={"type": "asha", "grace_period": 1, "max_t": 8,
                              "reduction_factor": 2})
    result = orchestrator.sweep(s, trainable=quadratic, tracking_uri=store)
    stopped = [r for r in result.records if r.outcome == "early_stopped"]
    assert stopped, [(r.outcome, r.epochs) for r in result.records]
    assert all(r.stopped_at == r.epochs < 8 for r in stopped)

    from mlflow import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.outcome` = 'early_stopped'")
    assert {r.data.tags["orch.stopped_at_epoch"] for r in runs} == {str(r.stopped_at)
                                                                   for r in stopped}
    # every reported point is stored: one history row per epoch per metric
    for r in runs:
        hist = client.get_metric_history(r.info.run_id, "loss")
        assert [m.step for m in hist] == list(range(1, len(hist) + 1))


def test_baseline_repeats_run_with_distinct_seeds(ray_session, store):
    from _trainables import seeded

    s = spec(run_cap=2, baseline={"x": 0.5}, baseline_repeats=3)
    result = orchestrator.sweep(s, trainable=seeded, tracking_uri=store)
    bases = [r for r in result.records if r.role == "baseline"]
    assert sorted(r.repeat for r in bases) == [0, 1, 2]
    seeds = {r.tags["seed"] for r in bases}
    assert len(seeds) == 3
    assert len({r.value("loss") for r in bases}) == 3  # the seed changes the outcome


def test_the_baseline_reaching_the_target_does_not_end_the_search(ray_session, store):
    s = spec(run_cap=3, max_concurrent=1, metric={"name": "loss", "target": 0.34},
             parameters={"x": {"values": [0.8, 0.9, 0.7]}, "epochs": {"value": 3}},
             method="grid", baseline={"x": 0.3})
    result = orchestrator.sweep(s, trainable=quadratic, tracking=False)
    assert not result.target_reached
    assert result.counts["completed"] == 4  # the baseline and all three searched configs


def test_a_sweep_that_breaks_ends_failed_with_a_clear_error(ray_session, store, monkeypatch):
    """Not a trial failing: the search itself. Recorded as FAILED, reported as OrchError."""
    from orchestrator.engine import _sampling as space

    calls = {"n": 0}
    original = space.OptunaSpace.__call__

    def breaks_on_third(self, trial):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("searcher broke")
        return original(self, trial)

    monkeypatch.setattr(space.OptunaSpace, "__call__", breaks_on_third)
    with pytest.raises(orchestrator.OrchError, match="searcher broke"):
        orchestrator.sweep(spec(run_cap=5, max_concurrent=1, name="breaks"),
                           trainable=quadratic, tracking_uri=store)

    from mlflow import MlflowClient

    client = MlflowClient(store)
    exp = client.get_experiment_by_name("breaks")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags["orch.role"] == "sweep")
    assert parent.info.status == "FAILED" and "searcher broke" in parent.data.tags["orch.error"]
    assert "RUNNING" not in {r.info.status for r in runs}


def test_the_baseline_runs_its_full_budget_whatever_the_scheduler_does(ray_session, store):
    """ASHA would cut the worst trial first; the baseline is the reference, never cut."""
    asha = {"type": "asha", "grace_period": 1, "max_t": 6, "reduction_factor": 2}
    s = spec(run_cap=6, max_concurrent=2, early_terminate=asha, baseline={"x": 0.99},
             parameters={"x": {"min": 0.0, "max": 0.6}, "epochs": {"value": 6}})
    result = orchestrator.sweep(s, trainable=quadratic, tracking=False)
    base = result.baseline
    assert base.outcome == "completed" and base.epochs == 6, (base.outcome, base.epochs)
    assert result.counts["early_stopped"] >= 1  # ASHA did cut searched trials
