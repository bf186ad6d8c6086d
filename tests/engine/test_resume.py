"""Resume after the driver is killed with SIGKILL: nothing finished runs again, nothing is lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
name: resumable
trainable: _trainables:slow
method: random
metric: {{name: loss}}
run_cap: {run_cap}
max_concurrent: 2
seed: 5
parameters:
  x: {{min: 0.0, max: 1.0}}
  epochs: {{value: 6}}
  pause: {{value: 0.4}}
"""


def finished_runs(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("select count(*) from runs where status = 'FINISHED'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_killed_driver_resumes_with_exact_budget_and_reused_runs(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC.format(run_cap=6))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    first = subprocess.Popen(["orch", "sweep", "spec.yaml", "--no-live"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.time() + 120
    while finished_runs(tmp_path / "mlflow.db") < 2 and time.time() < deadline:
        time.sleep(0.5)
    assert finished_runs(tmp_path / "mlflow.db") >= 2, "the first trials never finished"
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray it started
    first.wait(timeout=30)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("resumable")
    before = {r.info.run_id: r for r in client.search_runs([exp.experiment_id])}
    assert any(r.info.status == "RUNNING" for r in before.values())

    # A changed spec is refused, with the difference shown.
    (tmp_path / "changed.yaml").write_text(SPEC.format(run_cap=7))
    refused = subprocess.run(["orch", "sweep", "changed.yaml", "--resume", "--no-live"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert '-  "run_cap": 6' in refused.stderr and '+  "run_cap": 7' in refused.stderr

    again = subprocess.run(["orch", "sweep", "spec.yaml", "--resume", "--no-live"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "resuming sweep" in again.stdout

    runs = client.search_runs([exp.experiment_id])
    trials = [r for r in runs if r.data.tags.get("orch.role") == "trial"]
    done = [r for r in trials if r.info.status == "FINISHED"]
    assert len(done) == 6, [(r.info.run_name, r.info.status) for r in trials]  # the budget
    assert {r.info.run_id for r in runs} >= set(before)  # the same runs, reused
    # Nothing stays RUNNING. A run whose trial Ray had not yet saved in its state when
    # the driver died is closed as KILLED; its config runs again as a new trial.
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    assert client.get_run(before_parent(before)).info.status == "FINISHED"
    for r in done:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "loss")]
        assert sorted(steps) == list(range(1, 7)), steps  # no step stored twice


def before_parent(runs: dict) -> str:
    return next(rid for rid, r in runs.items() if r.data.tags.get("orch.role") == "sweep")
