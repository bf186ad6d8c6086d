"""Storage trouble is the sweep's problem, not the trials': stop resumably, say why."""

from __future__ import annotations

import pytest

import orchestrator
from orchestrator.engine import Resume, run_sweep

pytestmark = pytest.mark.e2e


def test_a_read_only_storage_stops_the_sweep_resumably_and_resume_finishes_it(ray_session,
                                                                           tmp_path):
    from _trainables import storage_down
    from mlflow import MlflowClient

    down = tmp_path / "storage-is-down"
    down.touch()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = orchestrator.load_spec({
        "name": "storage", "trainable": "_trainables:storage_down", "method": "grid", "metric": {"name": "loss"}, "max_concurrent": 1,
        "parameters": {"x": {"values": [0.1, 0.2, 0.3, 0.4]}, "down": {"value": str(down)}}})
    first = orchestrator.sweep(spec, trainable=storage_down, tracking_uri=store,
                               storage_path=str(tmp_path / "ray"))
    assert first.interrupted and "read-only" in first.storage_problem
    assert first.counts["failed"] == 0, [(r.outcome, r.error) for r in first.records]
    client = MlflowClient(store)
    parent = client.get_run(first.parent_run_id)
    assert parent.data.tags["orch.stopped_for"].startswith("storage: the file system is read-only")
    assert "RUNNING" not in {r.info.status for r in client.search_runs([first.experiment_id])}

    down.unlink()  # the storage is back
    path = parent.data.tags["orch.storage"]
    again = run_sweep(spec, trainable=storage_down, tracking_uri=store,
                      resume=Resume(sweep_id=first.sweep_id, experiment_path=path,
                                    parent_run_id=first.parent_run_id,
                                    after_storage_problem=True))
    assert not again.interrupted and again.counts["completed"] == 4, \
        [(r.outcome, r.error) for r in again.records]
    runs = client.search_runs([first.experiment_id], "tags.`orch.role` = 'trial'")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4


def test_a_state_file_cut_short_is_refused_not_restarted(ray_session, tmp_path):
    from _trainables import quadratic

    spec = orchestrator.load_spec({"name": "cut", "trainable": "_trainables:quadratic",
                                   "method": "random", "run_cap": 2,
                                   "metric": {"name": "loss"},
                                   "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    first = orchestrator.sweep(spec, trainable=quadratic, tracking=False,
                               storage_path=str(tmp_path))
    folder = next(tmp_path.glob("cut-*"))
    for state in folder.glob("experiment_state-*.json"):
        state.write_text("")  # a full disk when Ray last wrote it
    with pytest.raises(orchestrator.OrchError, match=r"is empty \(0 bytes\).*no space left"):
        run_sweep(spec, trainable=quadratic, tracking=False,
                  resume=Resume(sweep_id=first.sweep_id, experiment_path=str(folder)))
