"""Trials that fail: retried from their checkpoint, failed with their traceback, or
restarted from scratch when the checkpoint is damaged. Real Ray, real MLflow."""

from __future__ import annotations

import pytest
from faults._faulty import digits_fails_once, resumable
from mlflow import MlflowClient

import orchestrator
from orchestrator.engine._context import derive_seed

pytestmark = pytest.mark.e2e

EPOCHS = 5
FAIL_AT = 3  # the epoch the failing trial raises in (first attempt only)


def spec(tmp_path, *, max_failures, xs=(0.1, 0.2, 0.3), fail_x=0.2, **extra):
    params = {"x": {"values": list(xs)}, "epochs": {"value": EPOCHS},
              "fail_at": {"value": FAIL_AT}, "fail_x": {"value": fail_x},
              "marker_dir": {"value": str(tmp_path)},
              "results": {"value": str(tmp_path / "results")}}
    params.update(extra)
    return {"name": "faults", "method": "grid", "metric": {"name": "loss"},
            "max_failures": max_failures, "storage_path": str(tmp_path / "results"),
            "parameters": params}


def runs_by_x(store, result):
    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id],
                              "tags.`orch.role` = 'trial'", max_results=100)
    return client, {float(r.data.params["x"]): r for r in runs}


def steps(client, run, metric="loss"):
    return [m.step for m in sorted(client.get_metric_history(run.info.run_id, metric),
                                   key=lambda m: (m.step, m.timestamp))]


def test_a_trial_that_fails_once_resumes_from_its_checkpoint(ray_session, store, tmp_path):
    result = orchestrator.sweep(spec(tmp_path, max_failures=1), trainable=resumable,
                                tracking_uri=store)
    assert result.ok and result.counts["completed"] == 3, result.counts
    by_x = {r.config["x"]: r for r in result.records}
    failed_once = by_x[0.2]
    assert [h["epoch"] for h in failed_once.history] == [1, 2, 3, 4, 5]
    # epochs 1-2 fresh; after the retry it started from the epoch-2 checkpoint
    assert [h["resumed_from"] for h in failed_once.history] == [0, 0, 2, 2, 2]
    for x in (0.1, 0.3):
        assert [h["resumed_from"] for h in by_x[x].history] == [0] * EPOCHS
    assert (tmp_path / "failed-0.2-None").exists()

    client, runs = runs_by_x(store, result)
    assert len(runs) == 3
    for x, run in runs.items():
        assert steps(client, run) == [1, 2, 3, 4, 5], x  # every step once, none twice
        assert run.info.status == "FINISHED" and run.data.tags["orch.outcome"] == "completed"
        assert "orch.error" not in run.data.tags
    resumed = client.get_metric_history(runs[0.2].info.run_id, "resumed_from")
    assert sorted((m.step, m.value) for m in resumed)[-1] == (5, 2.0)


def test_without_retries_the_trial_fails_with_its_traceback(ray_session, store, tmp_path):
    result = orchestrator.sweep(spec(tmp_path, max_failures=0), trainable=resumable,
                                tracking_uri=store)
    assert not result.ok
    by_x = {r.config["x"]: r for r in result.records}
    assert by_x[0.2].outcome == "failed"
    assert "injected failure at epoch 3" in by_x[0.2].error
    assert [h["epoch"] for h in by_x[0.2].history] == [1, 2]
    assert by_x[0.1].outcome == by_x[0.3].outcome == "completed"

    client, runs = runs_by_x(store, result)
    bad = runs[0.2]
    assert bad.info.status == "FAILED"
    assert "injected failure at epoch 3" in bad.data.tags["orch.error"]
    text = client.download_artifacts(bad.info.run_id, "error.txt", str(tmp_path))
    with open(text) as fh:
        body = fh.read()
    assert "RuntimeError: injected failure at epoch 3" in body
    assert "_faulty.py" in body  # the trainable's own frame, not only Ray's
    for x in (0.1, 0.3):
        assert runs[x].info.status == "FINISHED" and steps(client, runs[x]) == [1, 2, 3, 4, 5]


def test_a_damaged_checkpoint_restarts_the_trial_from_scratch(ray_session, store, tmp_path):
    damages = ["delete_file", "truncate", "garbage"]
    s = spec(tmp_path, max_failures=1, xs=(0.1,), fail_x=0.1,
             sabotage={"values": damages})
    result = orchestrator.sweep(s, trainable=resumable, tracking_uri=store)
    assert result.ok and result.counts["completed"] == 3, [r.error for r in result.records]
    for rec in result.records:
        how = rec.config["sabotage"]
        # two epochs, the failure, then all five again from scratch
        assert [h["epoch"] for h in rec.history] == [1, 2, 1, 2, 3, 4, 5], how
        assert all(h["resumed_from"] == 0 for h in rec.history), how
        problem = rec.tags.get("checkpoint_problem", "")
        assert "restarting from scratch" in problem and rec.trial_id in problem, (how, problem)
        expected = {"delete_file": "holds no orch_state.pt", "truncate": "cannot be read",
                    "garbage": "cannot be read"}[how]
        assert expected in problem, (how, problem)

    client, runs = runs_by_x(store, result)
    tags = [r.data.tags.get("orch.checkpoint_problem", "") for r in
            client.search_runs([result.experiment_id], "tags.`orch.role` = 'trial'")]
    assert len(tags) == 3 and all("restarting from scratch" in t for t in tags)


def test_a_deleted_checkpoint_folder_restarts_the_trial_from_scratch(ray_session, store,
                                                                     tmp_path):
    s = spec(tmp_path, max_failures=1, xs=(0.1,), fail_x=0.1,
             sabotage={"value": "delete_folder"})
    result = orchestrator.sweep(s, trainable=resumable, tracking_uri=store)
    assert result.ok, [r.error for r in result.records]
    (rec,) = result.records
    assert [h["epoch"] for h in rec.history][-EPOCHS:] == [1, 2, 3, 4, 5]


def test_fit_classifier_resumes_in_ray_exactly_as_if_never_interrupted(ray_session, store,
                                                                       tmp_path):
    params = {"x": {"value": 0.5}, "fail_x": {"value": 0.5}, "epochs": {"value": 4},
              "fail_epoch": {"value": 3}, "marker_dir": {"value": str(tmp_path)},
              "torch_threads": {"value": 1}}
    s = {"name": "faults-digits", "method": "grid", "metric": {"name": "val_loss"},
         "max_failures": 1, "seed": 5, "parameters": params}
    result = orchestrator.sweep(s, trainable=digits_fails_once, tracking_uri=store)
    assert result.ok, [r.error for r in result.records]
    (rec,) = result.records
    assert (tmp_path / "failed-0.5-None").exists()  # it did fail once
    assert rec.tags["started_from_epoch"] == "2" and rec.tags["resumed_from_epoch"] == "2"
    assert [h["epoch"] for h in rec.history] == [1, 2, 3, 4]

    # the same trial, never interrupted (its marker exists now, so it does not fail)
    with orchestrator.capture_reports(metric="val_loss", seed=derive_seed(5, rec.config),
                                      split_seed=5) as straight:
        digits_fails_once(rec.config)
    assert len(straight.reports) == 4
    for got, want in zip(rec.history, straight.reports):
        shared = [key for key in got if key in want]
        assert len(shared) > 10
        assert {k: got[k] for k in shared} == {k: float(want[k]) for k in shared}
