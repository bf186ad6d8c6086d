"""A point reported is a point kept: the journal, and a driver killed while the store hung."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.tracking._journal import Journal, read_journal

ROOT = Path(__file__).resolve().parents[2]


def test_the_journal_reads_back_what_was_written_and_ignores_a_torn_line(tmp_path):
    journal = Journal(tmp_path)
    journal.point("a", 1, {"loss": 1.5, "acc": float("nan")}, 1000)
    journal.point("a", 2, {"loss": 0.5}, 2000)
    journal.written("a", 1)
    journal.point("b", 1, {"loss": 3.0}, 3000)
    journal.closed("b")
    journal.close()
    with open(journal.path, "a") as fh:
        fh.write('{"p": "a", "s": 3, "m": {"lo')  # the driver died mid-write
    got = read_journal(journal.path)
    assert got["a"].last_step == 2 and got["a"].written_to == 1
    assert list(got["a"].unconfirmed()) == [2]
    assert got["b"].closed and got["b"].unconfirmed() == {}
    assert got["a"].points[1]["loss"] == 1.5 and got["a"].points[1]["acc"] != 0  # NaN kept
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"


def test_a_full_disk_is_said_once_and_recording_goes_on(tmp_path):
    journal = Journal(tmp_path)
    os.close(journal._fd)
    journal._fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    journal.point("a", 1, {"loss": 1.0}, 1)
    journal.point("a", 2, {"loss": 1.0}, 1)
    assert "No space left on device" in journal.problem
    journal.close()


SPEC = """\
name: frozen-store
trainable: _trainables:slow
method: random
metric: {name: loss}
run_cap: 4
max_concurrent: 2
seed: 2
parameters:
  x: {min: 0.0, max: 1.0}
  epochs: {value: 8}
  pause: {value: 0.25}
"""


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_driver_killed_while_the_tracking_server_hung_loses_no_point(tmp_path):
    """The tracking server freezes; points pile up in the driver; the driver is killed;
    the server comes back. One `orch resume` later the store holds every step once."""
    from mlflow import MlflowClient

    from orchestrator.tracking._review import serve_ui

    backend = tmp_path / "server.db"
    sqlite3.connect(backend).close()
    server = serve_ui(tracking_uri=f"sqlite:///{backend}", port=0, timeout_s=90,
                      log_path=tmp_path / "server.log")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    (tmp_path / "spec.yaml").write_text(SPEC)
    try:
        driver = subprocess.Popen(["orch", "sweep", "spec.yaml", "--no-live", "--tracking-uri",
                                   server.url], cwd=tmp_path, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)

        def stored() -> int:
            with sqlite3.connect(backend, timeout=10) as conn:
                try:
                    return conn.execute("select count(*) from metrics").fetchone()[0]
                except sqlite3.Error:
                    return 0

        deadline = time.time() + 120
        while stored() < 4 and time.time() < deadline:
            time.sleep(0.2)
        os.killpg(server.process.pid, signal.SIGSTOP)  # the server hangs
        time.sleep(4)  # trials go on reporting into the driver's queue
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
        os.killpg(server.process.pid, signal.SIGCONT)
        client = MlflowClient(server.url)
        exp = client.get_experiment_by_name("frozen-store")
        parent = client.search_runs([exp.experiment_id], "tags.`orch.role` = 'sweep'")[0]
        sweep_id = parent.data.tags["orch.sweep_id"]
        before = stored()
        resumed = subprocess.run(["orch", "resume", sweep_id, "--no-live", "--tracking-uri",
                                  server.url], cwd=tmp_path, env=env, capture_output=True,
                                 text=True, timeout=240)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        runs = client.search_runs([exp.experiment_id], max_results=100)
        trials = [r for r in runs if r.data.tags.get("orch.role") == "trial"]
        finished = [r for r in trials if r.info.status == "FINISHED"]
        assert len(finished) == 4 and "RUNNING" not in {r.info.status for r in runs}
        for run in finished:
            for metric in ("loss", "epoch"):
                steps = sorted(m.step for m in client.get_metric_history(run.info.run_id,
                                                                         metric))
                assert steps == list(range(1, 9)), (run.info.run_name, metric, steps)
        assert stored() > before  # the resume wrote what the freeze had kept from the store
    finally:
        try:
            os.killpg(server.process.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        server.stop()
