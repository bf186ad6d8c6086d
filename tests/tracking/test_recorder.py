"""The recorder with real Ray and real MLflow: the run tree, nothing lost, nothing RUNNING."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _trainables import chatty, quadratic, slow
from mlflow import MlflowClient

import orchestrator
from orchestrator.errors import TrackingError
from orchestrator.tracking import _recorder
from orchestrator.tracking._review import serve_ui

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def new_store(path: Path) -> str:
    """A SQLite store with MLflow's tables created (serve_ui refuses a missing store)."""
    uri = f"sqlite:///{path}"
    MlflowClient(uri).search_experiments()
    return uri


def sweep_runs(client, result):
    runs = client.search_runs([result.experiment_id],
                              f"tags.`orch.sweep_id` = '{result.sweep_id}'", max_results=1000)
    parent = [r for r in runs if r.data.tags["orch.role"] == "sweep"]
    return parent[0], [r for r in runs if r.data.tags["orch.role"] != "sweep"]


def test_run_tree_tags_params_and_every_point(ray_session, store):
    spec = {"name": "tree", "method": "tpe", "metric": {"name": "loss"}, "run_cap": 4,
            "seed": 3, "max_concurrent": 2,
            "hypothesis": "x near 0.3 is best", "expected": "loss < baseline",
            "parameters": {"x": {"min": 0.0, "max": 1.0},
                           "model": {"parameters": {"width": {"values": [8, 16]}}},
                           "epochs": {"value": 30}},
            "baseline": {"x": 0.9, "model": {"width": 8}}}
    # confirm=False: the record of one sweep is the point here (tests/method confirms)
    result = orchestrator.sweep(spec, trainable=chatty, tracking_uri=store, confirm=False)
    assert not result.tracking_problems
    client = MlflowClient(store)
    parent, children = sweep_runs(client, result)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["orch.hypothesis"] == "x near 0.3 is best"
    assert parent.data.params["method"] == "tpe" and parent.data.params["seed"] == "3"
    assert parent.data.metrics["trials_completed"] == 5
    assert parent.data.tags["orch.best_trial_id"] == result.best.trial_id
    assert any(a.path == "spec.yaml" for a in client.list_artifacts(parent.info.run_id))
    assert len(children) == 5
    for run in children:
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        for key in ("orch.sweep_id", "orch.trial_id", "orch.hypothesis", "orch.expected",
                    "orch.method", "orch.scheduler", "orch.seed", "orch.node",
                    "orch.outcome", "orch.diagnosis"):
            assert tags.get(key), (key, tags)
        assert run.info.status == "FINISHED"
        assert set(run.data.params) == {"x", "model.width", "epochs"}
        # every reported point is stored, at step = epoch
        for key in ("loss", "a", "b", "epoch"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, 31)), key
        assert "delta_loss" in run.data.metrics
    roles = sorted(r.data.tags["orch.role"] for r in children)
    assert roles == ["baseline", "trial", "trial", "trial", "trial"]


def test_kfold_sweep_records_folds_fingerprint_and_artifacts(ray_session, store):
    spec = {"name": "kfold", "trainable": "digits_mlp", "method": "random",
            "metric": {"name": "val_loss"}, "run_cap": 2, "seed": 0,
            "cv": {"folds": 3, "stratify": True},
            # ASHA stops trials that reach max_t inside their last report: their
            # artifacts must be written before it.
            "early_terminate": {"type": "asha", "grace_period": 1, "max_t": 3},
            "parameters": {"lr": {"values": [0.003, 0.01]}, "epochs": {"value": 3},
                           "width": {"value": 32}}}
    result = orchestrator.sweep(spec, tracking_uri=store)
    assert result.counts["failed"] == 0, [(r.outcome, r.error) for r in result.records]
    assert result.counts["completed"] >= 1
    client = MlflowClient(store)
    _, children = sweep_runs(client, result)
    prints = {r.data.tags.get("orch.split_fingerprint") for r in children}
    assert len(prints) == 1 and None not in prints  # the same folds in every trial
    for run in children:
        metrics = run.data.metrics
        assert {"val_loss", "val_loss_std", "val_loss_fold0", "val_loss_fold2",
                "train_loss", "val_acc", "grad_norm", "weight_norm", "update_ratio"} <= set(metrics)
        if run.data.tags["orch.outcome"] == "completed":
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"confusion_matrix.png", "confusion_matrix.json", "curves.png"} <= names


def test_mlflow_server_is_a_tracking_store(ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    with serve_ui(tracking_uri=new_store(tmp_path / "server.db"), port=0) as server:
        result = orchestrator.sweep(
            {"name": "served", "method": "random", "metric": {"name": "loss"}, "run_cap": 3,
             "parameters": {"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": 5}}},
            trainable=chatty, tracking_uri=server.url)
        assert not result.tracking_problems
        client = MlflowClient(server.url)
        parent, children = sweep_runs(client, result)
        assert len(children) == 3
        assert all(len(client.get_metric_history(r.info.run_id, "loss")) == 5 for r in children)
    # MLflow's two "View run ... at" lines per closed run (and the get_run behind them) are
    # off: they would run through the live view
    assert "View run" not in capsys.readouterr().out


def stored_points(db: str, *, at_least: int, timeout_s: float = 120) -> None:
    """Wait until the store holds some metric points: the sweep is running and recording."""
    import sqlite3

    path = db[len("sqlite:///"):]
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with sqlite3.connect(path, timeout=5) as conn:
                if conn.execute("select count(*) from metrics").fetchone()[0] >= at_least:
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no metric points in {db} within {timeout_s:g} s")


def test_unreachable_server_is_an_error_before_any_trial(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with pytest.raises(TrackingError, match="cannot be used"):
        orchestrator.sweep({"method": "random", "metric": {"name": "loss"}, "run_cap": 1,
                            "parameters": {"x": {"value": 0.1}}},
                           trainable=quadratic, tracking_uri="http://127.0.0.1:9")


def test_server_that_goes_away_mid_sweep_loses_no_trial(ray_session, tmp_path, monkeypatch):
    """Trials go on while the store is down; retried writes land once it is back."""
    monkeypatch.chdir(tmp_path)
    db = new_store(tmp_path / "flaky.db")
    server = serve_ui(tracking_uri=db, port=0)
    port = int(server.url.rsplit(":", 1)[1])
    spec = {"name": "flaky", "method": "random", "metric": {"name": "loss"}, "run_cap": 2,
            "max_concurrent": 2,
            "parameters": {"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": 12},
                           "pause": {"value": 0.5}}}
    import threading

    def outage():  # the store goes away while trials are recording, for 2.5 s
        stored_points(db, at_least=2)
        server.stop()
        time.sleep(2.5)
        restarted.append(serve_ui(tracking_uri=db, port=port))

    restarted: list = []
    t = threading.Thread(target=outage)
    t.start()
    try:
        result = orchestrator.sweep(spec, trainable=slow, tracking_uri=server.url)
    finally:
        t.join()
    try:
        assert result.counts["completed"] == 2
        assert not result.tracking_problems, result.tracking_problems
        client = MlflowClient(server.url)
        parent, children = sweep_runs(client, result)
        assert parent.info.status == "FINISHED"
        assert all(len(client.get_metric_history(r.info.run_id, "loss")) == 12
                   for r in children)
    finally:
        for s in restarted:
            s.stop()


def test_a_store_that_never_comes_back_is_reported_plainly(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_recorder, "FINISH_DEADLINE_S", 3.0)
    server = serve_ui(tracking_uri=new_store(tmp_path / "gone.db"), port=0)
    import threading

    db = server.command[server.command.index("--backend-store-uri") + 1]
    killer = threading.Thread(target=lambda: (stored_points(db, at_least=2), server.stop()))
    killer.start()
    spec = {"name": "gone", "method": "random", "metric": {"name": "loss"}, "run_cap": 2,
            "max_concurrent": 2,
            "parameters": {"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": 6},
                           "pause": {"value": 0.5}}}
    result = orchestrator.sweep(spec, trainable=slow, tracking_uri=server.url)
    killer.join()
    assert result.counts["completed"] == 2  # the trials did not stop
    assert result.tracking_problems
    assert "could not be written" in result.tracking_problems[0] or \
        "not recorded" in " ".join(result.tracking_problems)
