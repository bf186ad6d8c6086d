"""A real 3-node Ray cluster on this machine (cluster/local_cluster.py), with token auth.

Drivers run in subprocesses so they never clash with a Ray instance another
test started in this pytest process.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="local cluster needs Linux (/proc)"),
]

ROOT = Path(__file__).resolve().parents[2]


def _load_local_cluster():
    name = "orch_cluster_local_cluster"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "cluster" / "local_cluster.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses need the module registered
        spec.loader.exec_module(mod)
    return sys.modules[name]


lc = _load_local_cluster()

DRIVER = textwrap.dedent(
    """
    import json, os, sys, time
    import ray
    ray.init(address=sys.argv[1], log_to_driver=False)

    @ray.remote(num_cpus=1, num_gpus=1)
    def where():
        time.sleep(1.0)  # both run at once: 1 CPU per worker forces one per node
        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "gpu_ids": ray.get_gpu_ids(),
                "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}

    nodes = [{"node_id": n["NodeID"], "alive": n["Alive"], "resources": n["Resources"]}
             for n in ray.nodes()]
    placed = ray.get([where.remote() for _ in range(2)])
    print("RESULT " + json.dumps({"nodes": nodes, "placed": placed,
                                  "cluster": ray.cluster_resources()}))
    """
)


def run_driver(env, timeout=60):
    return subprocess.run(
        [sys.executable, "-c", DRIVER, env["RAY_ADDRESS"]],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


@pytest.fixture(scope="module")
def cluster():
    t0 = time.monotonic()
    c = lc.LocalCluster(workers=2, cpus_per_worker=1, gpus_per_worker=1, head_cpus=0, timeout=60)
    c.start()
    c.startup_wall_s = time.monotonic() - t0
    try:
        yield c
    finally:
        c.stop()


def test_start_registers_three_nodes_quickly(cluster):
    assert cluster.startup_wall_s < 45, f"startup took {cluster.startup_wall_s:.1f}s"
    nodes = cluster.alive_nodes()
    assert len(nodes) == 3
    assert all(n["address"] == "127.0.0.1" for n in nodes)
    assert cluster.address.startswith("127.0.0.1:")
    assert cluster.env["RAY_AUTH_MODE"] == "token"
    assert Path(cluster.env["RAY_AUTH_TOKEN_PATH"]).stat().st_mode & 0o077 == 0


def test_listeners_are_loopback_only(cluster):
    """Every TCP socket the cluster's processes listen on is bound to 127.0.0.1."""
    inodes = set()
    for pid in cluster.pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                listening.append(f[1])
    assert listening, "found no listening sockets of the cluster"
    loopback = ("0100007F:", "0000000000000000FFFF00000100007F:", "00000000000000000000000001000000:")
    assert all(a.startswith(loopback) for a in listening), listening


def test_driver_with_token_sees_cluster_and_tasks_use_both_workers(cluster):
    r = run_driver(cluster.driver_env())
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))[7:])
    alive = [n for n in out["nodes"] if n["alive"]]
    assert len(alive) == 3
    workers = {n["node_id"]: n["resources"] for n in alive if n["resources"].get("CPU", 0) > 0}
    head = [n for n in alive if n["resources"].get("CPU", 0) == 0]
    assert len(workers) == 2 and len(head) == 1
    for res in workers.values():
        assert res["CPU"] == 1 and res["GPU"] == 1
    assert {k for res in workers.values() for k in res if k.startswith("worker_")} == {"worker_0", "worker_1"}
    assert out["cluster"]["CPU"] == 2 and out["cluster"]["GPU"] == 2
    placed = {p["node_id"] for p in out["placed"]}
    assert placed == set(workers), "the two tasks did not land on both workers"
    assert all(p["gpu_ids"] and p["cuda"] is not None for p in out["placed"])


@pytest.mark.parametrize("variant", ["no-token", "wrong-token"])
def test_driver_without_the_token_is_refused(cluster, tmp_path, variant):
    env = cluster.driver_env(token=(variant != "no-token"))
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token of the developer's
    env["RAY_NUM_REDIS_GET_RETRIES"] = "2"  # fail fast instead of retrying 20x
    if variant == "wrong-token":
        bad = tmp_path / "bad_token"
        bad.write_text("0" * 64)
        env["RAY_AUTH_TOKEN_PATH"] = str(bad)
    r = run_driver(env, timeout=60)
    assert r.returncode != 0
    assert "RESULT" not in r.stdout
    assert "InvalidAuthToken" in r.stderr or "Unauthenticated" in r.stderr, r.stderr[-3000:]


def test_kill_worker_removes_a_node(cluster):
    victim = [n for n in cluster.alive_nodes() if "worker_1" in n["resources"]]
    assert len(victim) == 1
    pids = cluster.pids("worker-1")
    assert pids
    t0 = time.monotonic()
    cluster.kill_worker(1)  # waits until the GCS marks it dead
    assert time.monotonic() - t0 < 30
    alive = cluster.alive_nodes()
    assert len(alive) == 2
    assert victim[0]["node_id"] not in {n["node_id"] for n in alive}
    assert any("worker_0" in n["resources"] for n in alive)
    assert not any(Path(f"/proc/{p}").exists() and lc._read_stat(p) and lc._read_stat(p)[3] != "Z" for p in pids)
    assert cluster.pids("worker-1") == []


def test_stop_leaves_nothing_behind(cluster):
    known = cluster._procs()
    assert known
    base_dir = cluster.base_dir
    port = cluster.gcs_port
    cluster.stop()
    assert lc._still_alive(known) == []
    assert cluster.pids() == []
    assert not base_dir.exists()
    # no process anywhere still refers to the cluster's temp dir
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            assert str(base_dir).encode() not in cmd, (entry, cmd[:200])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
