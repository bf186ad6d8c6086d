"""Four `orch sweep` processes at once against one fresh SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")]

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
PROCESSES = 4
TRIALS = 3
EPOCHS = 3
SPEC = """\
name: concurrent-{i}
trainable: _trainables:quadratic
method: random
seed: {i}
run_cap: {trials}
metric: {{name: loss}}
parameters:
  x: {{min: 0.0, max: 1.0}}
  epochs: {{value: {epochs}}}
"""


def test_four_sweeps_at_once_share_one_fresh_sqlite_store(tmp_path):
    db = tmp_path / "mlflow.db"  # fresh: the four processes race to create its tables
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
           "RAY_ADDRESS": "", "PYTHONHASHSEED": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = []
    for i in range(PROCESSES):
        folder = tmp_path / f"p{i}"
        folder.mkdir()
        (folder / "spec.yaml").write_text(SPEC.format(i=i, trials=TRIALS, epochs=EPOCHS))
        cmd = [sys.executable, "-m", "orchestrator.cli", "sweep", "spec.yaml",
               "--tracking-uri", f"sqlite:///{db}", "--no-live"]
        procs.append(subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    started = time.perf_counter()
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    wall = time.perf_counter() - started
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
        assert "database is locked" not in out.lower(), out[-3000:]
        assert "tracking:" not in out, out[-3000:]  # the summary lists tracking problems so

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiments = [e for e in client.search_experiments() if e.name.startswith("concurrent-")]
    assert len(experiments) == PROCESSES
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=1000)
    trials = [r for r in runs if r.data.tags.get("orch.role") == "trial"]
    assert len(runs) == PROCESSES * (TRIALS + 1)
    assert len(trials) == PROCESSES * TRIALS
    for run in trials:
        assert run.info.status == "FINISHED"
        for metric in ("loss", "x_seen", "epoch"):
            history = client.get_metric_history(run.info.run_id, metric)
            assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), metric
    print(f"{PROCESSES} sweeps x {TRIALS} trials at once: {wall:.1f} s")
