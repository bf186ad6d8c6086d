"""Interrupted sweeps, the way schedulers and people interrupt them: real processes, real
signals, then `orch resume`; counted in the store afterwards.

The property: whatever signal arrives (Ctrl-C, SIGTERM or SIGHUP to the driver,
SIGTERM to its whole process group as `timeout`, Slurm or `kill -- -PGID` send it,
SIGKILL of the group) at whatever moment, the sweep ends with its runs closed (all
but SIGKILL), and one resume finishes exactly the budget: every finished trial has
every step once, nothing is left RUNNING.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
RUN_CAP, EPOCHS = 4, 5
SPEC = f"""\
name: interrupted
trainable: _trainables:slow
method: random
metric: {{name: loss}}
run_cap: {RUN_CAP}
max_concurrent: 2
seed: 5
parameters:
  x: {{min: 0.0, max: 1.0}}
  epochs: {{value: {EPOCHS}}}
  pause: {{value: 0.3}}
"""
SIGNALS = {
    "ctrl-c": (signal.SIGINT, False),
    "sigterm": (signal.SIGTERM, False),
    "sighup": (signal.SIGHUP, False),
    "sigterm-group": (signal.SIGTERM, True),
    "sigkill-group": (signal.SIGKILL, True),
}


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    out.pop("MLFLOW_TRACKING_URI", None)
    return out


def query(db: Path, sql: str) -> list[tuple]:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def points(db: Path) -> int:
    return (query(db, "select count(*) from metrics") or [(0,)])[0][0]


def check_complete(db: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("interrupted")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert "RUNNING" not in {r.info.status for r in runs}
    trials = [r for r in runs if r.data.tags.get("orch.role") == "trial"]
    done = [r for r in trials if r.info.status == "FINISHED"]
    assert len(done) == RUN_CAP, [(r.info.run_name, r.info.status) for r in trials]
    for run in done:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
        assert steps == list(range(1, EPOCHS + 1)), (run.info.run_name, steps)
    parent = next(r for r in runs if r.data.tags.get("orch.role") == "sweep")
    assert parent.info.status == "FINISHED" and parent.data.tags["orch.status"] == "finished"
    # The kept Optuna study continued across the resume: the budget once, nothing RUNNING
    # (trials a killed driver had asked for are told FAIL), each finished trial's value.
    from optuna.trial import TrialState

    from orchestrator.engine._study import load_study

    study = load_study(parent.data.tags["orch.optuna_storage"], parent.data.tags["orch.sweep_id"])
    states = [t.state for t in study.get_trials()]
    assert TrialState.RUNNING not in states, states
    told = {t.user_attrs["orch.trial_id"]: t.value for t in study.get_trials()
            if t.state == TrialState.COMPLETE}
    final = {r.data.tags["orch.trial_id"]: r.data.metrics["loss"] for r in done}
    assert told == final, (told, final)


@pytest.mark.slow  # about 2.5 minutes: two real processes per example
@settings(max_examples=5, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(SIGNALS)), after=st.floats(0.0, 3.0))
def test_any_signal_at_any_moment_then_one_resume_finishes_the_budget(tmp_path_factory, kind,
                                                                      after):
    folder = tmp_path_factory.mktemp("interrupted")
    (folder / "spec.yaml").write_text(SPEC)
    db = folder / "mlflow.db"
    first = subprocess.Popen(["orch", "sweep", "spec.yaml", "--no-live"], cwd=folder,
                             env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    deadline = time.time() + 90
    while points(db) == 0 and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    time.sleep(after)
    sig, group = SIGNALS[kind]
    if first.poll() is None:
        (os.killpg if group else os.kill)(first.pid, sig)
    out = first.communicate(timeout=120)[0]
    if kind != "sigkill-group" and first.returncode == 130:
        assert "interrupted" in out and "orch resume" in out, out[-2000:]
        assert "Traceback" not in out, out[-3000:]
        statuses = {row[0] for row in query(db, "select status from runs")}
        assert "RUNNING" not in statuses, (kind, statuses, out[-2000:])
    elif kind != "sigkill-group":  # the signal came after the sweep had finished
        assert first.returncode == 0, out[-3000:]
    (sweep_id,) = query(db, "select value from tags where key = 'orch.sweep_id' limit 1")[0]
    if first.returncode != 0:
        again = subprocess.run(["orch", "resume", sweep_id, "--no-live"], cwd=folder, env=env(),
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, (kind, after, again.stdout[-3000:] + again.stderr[-2000:])
    check_complete(db)


def test_a_second_resume_at_the_same_time_is_refused_at_once(tmp_path):
    """One process per sweep: the lock is taken before Ray starts, and says who holds it."""
    from orchestrator.engine._lock import SweepBusyError, sweep_lock

    long = SPEC.replace("run_cap: 4", "run_cap: 2").replace(f"{{value: {EPOCHS}}}", "{value: 40}")
    (tmp_path / "spec.yaml").write_text(long)
    db = tmp_path / "mlflow.db"
    first = subprocess.Popen(["orch", "sweep", "spec.yaml", "--no-live"], cwd=tmp_path,
                             env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    deadline = time.time() + 90
    while points(db) == 0 and time.time() < deadline:
        time.sleep(0.2)
    (sweep_id,) = query(db, "select value from tags where key = 'orch.sweep_id' limit 1")[0]
    busy = subprocess.run(["orch", "resume", sweep_id, "--no-live"], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=120)
    os.kill(first.pid, signal.SIGINT)  # done with it: Ctrl-C
    first.communicate(timeout=120)
    assert first.returncode == 130
    # A changed spec is refused with the difference shown (a resume runs the same spec).
    (tmp_path / "changed.yaml").write_text(long.replace("run_cap: 2", "run_cap: 3"))
    refused = subprocess.run(["orch", "sweep", "changed.yaml", "--resume", "--no-live"],
                             cwd=tmp_path, env=env(), capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert '-  "run_cap": 2' in refused.stderr and '+  "run_cap": 3' in refused.stderr
    assert busy.returncode == 4, busy.stdout + busy.stderr
    assert "already being run by another orch process" in busy.stderr, busy.stderr
    assert f"pid {first.pid}" in busy.stderr
    folder = next((tmp_path / "orch_results").iterdir())
    with sweep_lock(folder, sweep_id):  # and released when its holder ended
        with pytest.raises(SweepBusyError):
            with sweep_lock(folder, sweep_id):
                pass
