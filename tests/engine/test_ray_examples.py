"""Ray Tune's own example trainables, imported from the installed Ray wheel, unchanged.

Each runs through ``orchestrator.sweep`` with a spec a Ray user would write for it
(the example's ``param_space``, ``stop=`` and scheduler in W&B syntax), and every
trial and point must be recorded: a function that returns its result, one that
reports checkpoints through Ray's own API and resumes from them, a ``while True``
loop ended by ``stop:``, a ``tune.Trainable`` class retried from its checkpoint,
and the ``tune.with_parameters`` pattern.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

import orchestrator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
EXAMPLES = "ray.tune.examples"


def sweep(store, tmp_path, **raw):
    spec = {"method": "random", "seed": 0, "max_concurrent": 2, **raw}
    return orchestrator.sweep(spec, tracking_uri=store, storage_path=str(tmp_path / "ray"))


def points(store, result, metric):
    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.role` = 'trial'")
    return {r.data.tags["orch.trial_id"]: sorted(m.step for m in client.get_metric_history(
        r.info.run_id, metric)) for r in runs}, runs


def test_async_hyperband_example_with_asha(ray_session, store, tmp_path):
    result = sweep(store, tmp_path, name="async-hyperband",
                   trainable=f"{EXAMPLES}.async_hyperband_example:easy_objective",
                   metric={"name": "mean_loss", "goal": "minimize"}, run_cap=4,
                   parameters={"steps": {"value": 6}, "width": {"min": 0.0, "max": 20.0},
                               "height": {"min": -100.0, "max": 100.0}},
                   early_terminate={"type": "asha", "grace_period": 1, "max_t": 6,
                                    "reduction_factor": 2})
    assert result.counts["failed"] == 0, [r.error for r in result.records]
    stored, runs = points(store, result, "mean_loss")
    for r in result.records:
        assert stored[r.trial_id] == list(range(1, r.epochs + 1))  # epoch 0 kept: steps 1..n
    assert all("orch.seed" in r.data.tags and "orch.node" in r.data.tags for r in runs)


def test_custom_func_checkpointing_example_stops_and_retries_from_its_checkpoint(
        ray_session, store, tmp_path):
    result = sweep(store, tmp_path, name="func-checkpointing",
                   trainable=f"{EXAMPLES}.custom_func_checkpointing:train_func",
                   metric={"name": "mean_loss"}, run_cap=2, stop={"training_iteration": 3},
                   parameters={"width": {"min": 0.0, "max": 20.0},
                               "height": {"min": -100.0, "max": 100.0}})
    assert result.counts["completed"] == 2, [(r.outcome, r.error) for r in result.records]
    assert all(r.epochs == 3 and "stop: training_iteration" in r.stop_reason
               for r in result.records), [(r.epochs, r.stop_reason) for r in result.records]


def test_pbt_function_while_true_ends_by_stop_and_exploits(ray_session, store, tmp_path):
    result = sweep(store, tmp_path, name="pbt-function", method="pbt", run_cap=4,
                   trainable=f"{EXAMPLES}.pbt_function:pbt_function",
                   metric={"name": "mean_accuracy", "goal": "maximize"},
                   stop={"training_iteration": 12},
                   pbt={"interval": 3, "quantile": 0.5, "resample_probability": 0.5},
                   parameters={"lr": {"distribution": "log_uniform_values", "min": 0.0001,
                                      "max": 0.1},
                               "checkpoint_interval": {"value": 3}})
    assert result.counts["failed"] == 0, [r.error for r in result.records]
    assert all(r.epochs <= 12 for r in result.records)
    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.role` = 'trial'")
    exploited = [r for r in runs if r.data.tags.get("orch.pbt.exploits")]
    assert exploited, "PBT never exploited in 12 epochs with interval 3"
    one = exploited[0]
    assert one.data.tags["orch.pbt.exploited_from"] in {r.data.tags["orch.trial_id"]
                                                        for r in runs}
    assert any(a.path == "pbt_schedule.json" for a in client.list_artifacts(one.info.run_id))
    # The report draws the best trial's schedule (or says it kept its own config).
    from orchestrator.method import build_report

    html = build_report(result.sweep_id, tracking_uri=store).html
    part = html.split('<section id="population">', 1)[1].split("</section>", 1)[0]
    best = next(r for r in runs if r.data.tags["orch.trial_id"] == result.best.trial_id)
    if best.data.tags.get("orch.pbt.exploits"):
        assert "<img" in part and "exploit(s)" in part, part[:500]
    else:
        assert "never exploited" in part, part[:500]


def test_a_tune_trainable_class_retries_from_its_own_checkpoint(ray_session, store, tmp_path):
    result = sweep(store, tmp_path, name="trainable-class", run_cap=2, max_failures=1,
                   trainable="ray.tune.utils.mock_trainable:MyTrainableClass",
                   metric={"name": "episode_reward_mean", "goal": "maximize"},
                   stop={"training_iteration": 5},
                   parameters={"width": {"min": 1.0, "max": 5.0}, "height": {"value": 2.0},
                               "mock_error": {"value": True}})  # fails once, after step 1
    assert result.counts["completed"] == 2, [(r.outcome, r.error) for r in result.records]
    stored, runs = points(store, result, "episode_reward_mean")
    assert all(steps == [1, 2, 3, 4, 5] for steps in stored.values()), stored
    assert all(r.data.tags["orch.attempts"] == "2" for r in runs)


def test_a_function_that_returns_its_result_and_with_parameters(ray_session, store, tmp_path):
    result = sweep(store, tmp_path, name="quickstart", trainable="_ray_quickstart:objective",
                   metric={"name": "score"}, run_cap=3,
                   parameters={"a": {"min": 0.0, "max": 1.0}, "b": {"min": 0.0, "max": 1.0}})
    assert result.counts["completed"] == 3, [r.error for r in result.records]
    assert all(r.epochs == 1 for r in result.records)
    wp = sweep(store, tmp_path, name="with-parameters", trainable="_ray_quickstart:train",
               metric={"name": "loss"}, run_cap=2, parameters={"x": {"min": 0.0, "max": 1.0}})
    assert wp.counts["completed"] == 2 and all(r.epochs == 3 for r in wp.records)
    from _ray_quickstart import train

    via_api = orchestrator.sweep({"name": "api-wp", "method": "random", "run_cap": 1,
                                  "metric": {"name": "loss"},
                                  "parameters": {"x": {"value": 0.5}}},
                                 trainable=train, tracking_uri=store,
                                 storage_path=str(tmp_path / "ray"))
    client = MlflowClient(store)
    parent = client.get_run(via_api.parent_run_id)
    assert parent.data.params["trainable"] == "_ray_quickstart:train_fn"  # where the user's is
