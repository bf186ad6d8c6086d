"""The same sweep on a real multi-node Ray cluster on this machine (head + workers).

Each test starts its own cluster with cluster/local_cluster.py (token auth, all on
127.0.0.1) and runs `orch sweep --address ...` as a driver process, as a user would.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("local_cluster", ROOT / "cluster/local_cluster.py")
local_cluster = importlib.util.module_from_spec(_spec)
sys.modules["local_cluster"] = local_cluster
_spec.loader.exec_module(local_cluster)

TRAINABLE = '''
import os, time
import orchestrator

def train(config):
    for epoch in range(1, config["epochs"] + 1):
        time.sleep(config["pause"])
        orchestrator.report({"epoch": epoch, "loss": config["x"] + 1.0 / epoch,
                             "gpus_seen": len([d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d])})
'''


def write_sweep(folder: Path, *, run_cap: int, epochs: int, pause: float, cpu: float = 1,
                gpu: float | None = None, max_failures: int = 0, concurrent: int = 4) -> None:
    # The trainable lives in the driver's folder: `orch` ships it to every node.
    (folder / "cluster_trainable.py").write_text(TRAINABLE)
    gpu_line = f", gpu: {gpu}" if gpu is not None else ""
    (folder / "spec.yaml").write_text(
        f"name: cluster-sweep\ntrainable: cluster_trainable:train\nmethod: random\n"
        f"metric: {{name: loss}}\nrun_cap: {run_cap}\nseed: 0\nmax_concurrent: {concurrent}\n"
        f"max_failures: {max_failures}\nresources: {{cpu: {cpu}{gpu_line}}}\n"
        f"parameters:\n  x: {{min: 0.0, max: 1.0}}\n  epochs: {{value: {epochs}}}\n"
        f"  pause: {{value: {pause}}}\n")


def drive(cluster, folder: Path, uri: str, *, timeout: float = 240) -> subprocess.CompletedProcess:
    env = cluster.driver_env()
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(["orch", "sweep", "spec.yaml", "--address", cluster.address,
                           "--tracking-uri", uri, "--no-live"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout)


def trial_runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cluster-sweep")
    return client.search_runs([exp.experiment_id], "tags.`orch.role` = 'trial'")


def test_trials_spread_over_both_workers_and_record_to_a_server(tmp_path):
    from orchestrator.tracking._review import serve_ui

    uri_db = f"sqlite:///{tmp_path / 'server.db'}"
    MlflowClient(uri_db).search_experiments()
    write_sweep(tmp_path, run_cap=4, epochs=3, pause=0.5, concurrent=2)
    with local_cluster.LocalCluster(workers=2, cpus_per_worker=1, head_cpus=0) as cluster, \
            serve_ui(tracking_uri=uri_db, port=0) as server:
        proc = drive(cluster, tmp_path, server.url)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        runs = trial_runs(server.url)
        worker_ids = {n["node_id"] for n in cluster.alive_nodes() if not n["is_head"]}
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    nodes = {r.data.tags["orch.node_id"] for r in runs}
    assert nodes == worker_ids  # both workers ran trials; the 0-CPU head ran none
    # the same results layout as a local run
    assert all(len(MlflowClient(uri_db).get_metric_history(r.info.run_id, "loss")) == 3
               for r in runs)
    assert "cluster-sweep finished" in proc.stdout


def test_fractional_gpus_pack_four_trials_on_two_gpus(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_sweep(tmp_path, run_cap=4, epochs=4, pause=0.75, cpu=0.5, gpu=0.5)
    with local_cluster.LocalCluster(workers=2, cpus_per_worker=1, gpus_per_worker=1) as cluster:
        proc = drive(cluster, tmp_path, uri)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    runs = trial_runs(uri)
    assert len(runs) == 4
    for r in runs:
        assert r.data.tags["orch.gpu_ids"] in ("0",)  # each worker's own (logical) GPU 0
        assert r.data.tags["orch.cuda_visible_devices"] == "0"
        assert r.data.metrics["gpus_seen"] == 1  # exactly one device visible
    per_node = {}
    for r in runs:
        per_node.setdefault(r.data.tags["orch.node_id"], []).append(r)
    assert sorted(len(v) for v in per_node.values()) == [2, 2]  # 2 x 0.5 GPU on each
    spans = [(r.info.start_time, r.info.end_time) for r in runs]
    latest_start = max(s for s, _ in spans)
    earliest_end = min(e for _, e in spans)
    assert latest_start < earliest_end  # all four ran at once


def test_more_gpus_than_any_node_has_is_an_error_at_start(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_sweep(tmp_path, run_cap=1, epochs=1, pause=0.1, gpu=2)
    with local_cluster.LocalCluster(workers=1, cpus_per_worker=1, gpus_per_worker=1) as cluster:
        started = time.perf_counter()
        proc = drive(cluster, tmp_path, uri, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "gpu=2" in proc.stderr and "no node has that much" in proc.stderr
    assert time.perf_counter() - started < 90


@pytest.mark.parametrize("max_failures", [2, 0])
def test_a_worker_lost_mid_sweep(tmp_path, max_failures):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_sweep(tmp_path, run_cap=2, epochs=12, pause=0.5, max_failures=max_failures,
                concurrent=2)
    with local_cluster.LocalCluster(workers=2, cpus_per_worker=1) as cluster:
        victim = cluster.nodes[-1]

        def kill_when_running():
            deadline = time.time() + 90
            while time.time() < deadline:
                time.sleep(0.5)
                try:
                    runs = trial_runs(uri)
                except Exception:  # store not created yet
                    continue
                if len(runs) >= 2:
                    time.sleep(1.5)
                    cluster.kill_worker(len(cluster.nodes) - 2)
                    return

        killer = threading.Thread(target=kill_when_running)
        killer.start()
        proc = drive(cluster, tmp_path, uri)
        killer.join()
    out = proc.stdout + proc.stderr
    runs = trial_runs(uri)
    assert len(runs) == 2
    statuses = sorted(r.info.status for r in runs)
    if max_failures:
        assert proc.returncode == 0, out[-3000:]
        assert statuses == ["FINISHED", "FINISHED"]  # the lost trial moved to the other node
        assert len({r.data.tags.get("orch.node_id") for r in runs}) == 1
    else:
        assert proc.returncode == 3, out[-3000:]
        assert statuses == ["FAILED", "FINISHED"]
        failed = next(r for r in runs if r.info.status == "FAILED")
        error = failed.data.tags["orch.error"]
        assert "node" in error.lower(), error  # names the lost node
    assert victim is not None
