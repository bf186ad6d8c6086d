#!/usr/bin/env python
"""A real multi-node Ray cluster on one machine, for development and tests.

One head node (by default with 0 CPUs, so trials only run on workers) and N
worker nodes, each a separate set of Ray processes (raylet, object store,
agents) started with ``ray start`` in its own process group and its own temp
dir.  Everything listens on 127.0.0.1 and token authentication is on.

CLI::

    eval "$(python cluster/local_cluster.py start --workers 2 --cpus-per-worker 1 --gpus-per-worker 0)"
    orch sweep search_spaces/x.yaml --address "$RAY_ADDRESS"
    python cluster/local_cluster.py status
    python cluster/local_cluster.py stop

``start`` prints the ``export`` lines a driver needs on stdout (human-readable
notes go to stderr), so it can be ``eval``-ed; ``env`` prints them again.

Python (e.g. a pytest fixture)::

    from cluster.local_cluster import LocalCluster
    with LocalCluster(workers=2, cpus_per_worker=1, gpus_per_worker=1) as c:
        subprocess.run([...], env=c.driver_env())   # ray.init(address=c.address)
        c.kill_worker(0)                              # node lost

Why the env matters (Ray 2.60, verified against the installed source):

* ``RAY_AUTH_MODE=token`` must be set explicitly for every worker node and
  every driver that connects with an explicit address.  Only ``ray start
  --head`` (and ``ray.init()``/``address="auto"`` on the head machine) turn
  token mode on by themselves when they find a token; a ``ray start
  --address=...`` or ``ray.init(address="host:port")`` without
  ``RAY_AUTH_MODE=token`` sends no token and the GCS refuses it
  ("Unauthenticated: InvalidAuthToken").
* ``RAY_AUTH_TOKEN_PATH`` points at the token file (``ray get-auth-token
  --generate`` always writes ``~/.ray/auth_token``, which would clash with a
  developer's own cluster, so the token is generated into this cluster's temp
  dir instead).  ``RAY_AUTH_TOKEN`` (the token itself) takes precedence over
  the path, so it is removed from the nodes' env and must not be set for
  drivers.
* On Linux Ray rewrites ``127.0.0.1`` in ``--node-ip-address``/``--address``/
  ``ray.init(address=...)`` into the machine's LAN address, unless
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (in Ray 2.60 this only makes
  ``get_node_ip_address()`` return 127.0.0.1): the head and every driver get it,
  so the GCS binds 127.0.0.1 and drivers connect there. Worker nodes cannot (that
  setting refuses multi-node clusters): they start through
  ``orchestrator.engine.raytune._private`` (orch's one module of Ray-private code,
  checked on every Ray release pyproject admits), which keeps 127.0.0.1 as given.

Linux only (process groups, /proc).
"""

# No `from __future__ import annotations`: the file is also loaded by path (its README
# says so), and dataclasses then cannot look its string annotations up in sys.modules.

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
MARKER_ENV = "ORCH_LOCAL_CLUSTER_ID"
NODE_MARKER_ENV = "ORCH_LOCAL_CLUSTER_NODE"
DEFAULT_STATE_FILE = Path(tempfile.gettempdir()) / f"orch-local-cluster-{os.getuid()}.json"

# Prints the cluster's nodes as JSON, polling until `want` nodes are alive (public API:
# a driver joins with ray.init and reads ray.nodes()).
_NODES_PROBE = r"""
import json, logging, sys, time
import ray
addr, want, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
last_err, nodes = None, []
while True:
    try:
        if not ray.is_initialized():
            ray.init(address=addr, logging_level=logging.ERROR, log_to_driver=False)
        nodes = [{
            "node_id": n["NodeID"],
            "alive": bool(n["Alive"]),
            "address": n["NodeManagerAddress"],
            "is_head": "node:__internal_head__" in n.get("Resources", {}),
            "resources": dict(n.get("Resources", {})),
            "labels": dict(n.get("Labels", {})),
        } for n in ray.nodes()]
        if want < 0 or sum(n["alive"] for n in nodes) == want:
            break
    except Exception as e:  # GCS not up yet / auth error
        last_err = repr(e)
    if time.monotonic() > deadline:
        print(json.dumps({"timeout": True, "nodes": nodes, "error": last_err}))
        sys.exit(3)
    time.sleep(0.2)
print(json.dumps({"timeout": False, "nodes": nodes, "error": None}))
"""


class LocalClusterError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _ray_client_available() -> bool:
    try:
        from ray._private.utils import get_ray_client_dependency_error
    except Exception:  # pragma: no cover - other Ray versions
        return False
    return get_ray_client_dependency_error() is None


def _read_stat(pid: int):
    """(ppid, pgid, starttime, state) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[2]), int(fields[19]), fields[0].decode()


def _has_env(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def find_processes(cluster_id: str, pgids, node: str | None = None) -> dict[int, int]:
    """Live (non-zombie) processes of this cluster (or of one node): {pid: starttime}.

    A process belongs to the cluster if it is in one of the nodes' process
    groups (``ray start`` runs in a new session), carries the marker env var,
    or descends from such a process.  All three are needed: Ray worker
    processes put themselves in their own process group, and processes that
    set their title (``ray::IDLE``, the agents) overwrite /proc/PID/environ.
    """
    if node is None:
        needle = f"{MARKER_ENV}={cluster_id}".encode()
    else:
        needle = f"{NODE_MARKER_ENV}={cluster_id}:{node}".encode()
    pgids = set(pgids)
    me = os.getpid()
    procs, children = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        st = _read_stat(int(entry))
        if st is not None:
            procs[int(entry)] = st
            children.setdefault(st[0], []).append(int(entry))
    todo = [pid for pid, (_, pgid, _, _) in procs.items() if pgid in pgids or _has_env(pid, needle)]
    found = set()
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return {pid: procs[pid][2] for pid in found if procs[pid][3] not in ("Z", "X")}


def _still_alive(known: dict[int, int]) -> list[int]:
    alive = []
    for pid, start in known.items():
        st = _read_stat(pid)
        if st is not None and st[2] == start and st[3] not in ("Z", "X"):
            alive.append(pid)
    return alive


def _signal_pids(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _signal_group(pgid: int | None, sig) -> None:
    if not pgid:
        return
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class NodeInfo:
    name: str  # "head" or "worker-<i>"
    pgid: int
    temp_dir: str
    resources: dict = field(default_factory=dict)
    killed: bool = False


class LocalCluster:
    """A head + N worker Ray nodes on this machine. See the module docstring."""

    def __init__(
        self,
        workers: int = 2,
        cpus_per_worker: int = 1,
        gpus_per_worker: int = 0,
        head_cpus: int = 0,
        head_gpus: int = 0,
        object_store_mb: int = 256,
        dashboard: bool = False,
        dashboard_port: int | None = None,
        base_dir: str | os.PathLike | None = None,
        timeout: float = 60.0,
        health_check_period_ms: int = 1000,
        keep_dir: bool = False,
    ):
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.head_cpus = head_cpus
        self.head_gpus = head_gpus
        self.object_store_mb = object_store_mb
        self.dashboard = dashboard
        self.dashboard_port = dashboard_port
        self.timeout = timeout
        self.health_check_period_ms = health_check_period_ms
        self.keep_dir = keep_dir
        self._base_dir_arg = base_dir
        self.cluster_id = uuid.uuid4().hex[:12]
        self.base_dir: Path | None = None
        self.gcs_port: int | None = None
        self.nodes: list[NodeInfo] = []
        self._started = False

    # ----------------------------------------------------------------- props
    @property
    def address(self) -> str:
        """GCS address for ``ray.init(address=...)`` / ``orch sweep --address``."""
        if self.gcs_port is None:
            raise LocalClusterError("cluster not started")
        return f"{LOOPBACK}:{self.gcs_port}"

    @property
    def token_path(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "auth_token"

    @property
    def dashboard_url(self) -> str | None:
        if not self.dashboard or self.dashboard_port is None:
            return None
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        """Env vars a driver process needs (add to its environment)."""
        env = {
            "RAY_ADDRESS": self.address,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        }
        if self.dashboard_url:
            # `ray job submit` / JobSubmissionClient read this before RAY_ADDRESS.
            env["RAY_API_SERVER_ADDRESS"] = self.dashboard_url
        return env

    def driver_env(self, base: dict[str, str] | None = None, token: bool = True) -> dict[str, str]:
        """A full environment for a driver subprocess (``base`` defaults to os.environ).

        ``token=False`` gives the same env without any token (to check refusal).
        """
        env = dict(os.environ if base is None else base)
        for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS",
                  "RAY_API_SERVER_ADDRESS"):
            env.pop(k, None)
        env.update(self.env)
        if not token:
            env.pop("RAY_AUTH_TOKEN_PATH")
            env.pop("RAY_AUTH_MODE")
        return env

    def _node_env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER too: a driver that ran a local sweep in this
        # process has it set to 0 (orch's loopback setting), and a worker node given that
        # refuses to join (Ray: "multi-node clusters are not supported").
        for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_API_SERVER_ADDRESS",
                  "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
            env.pop(k, None)
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            # The head keeps its loopback --node-ip-address (binds 127.0.0.1) only then.
            **({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"} if name == "head" else {}),
            RAY_USAGE_STATS_ENABLED="0",
            # fast detection of a lost node (defaults: 3 s x 5 failures)
            RAY_health_check_period_ms=str(self.health_check_period_ms),
            RAY_health_check_timeout_ms=str(max(500, self.health_check_period_ms)),
            RAY_health_check_failure_threshold="3",
            RAY_health_check_initial_delay_ms="0",
            **{MARKER_ENV: self.cluster_id, NODE_MARKER_ENV: f"{self.cluster_id}:{name}"},
        )
        return env

    # ------------------------------------------------------------- lifecycle
    def start(self) -> "LocalCluster":
        if self._started:
            return self
        t0 = time.monotonic()
        # Short path: Ray's unix sockets live under it (108-byte limit).
        if self._base_dir_arg is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="orch-rc-", dir="/tmp"))
        else:
            self.base_dir = Path(self._base_dir_arg)
            self.base_dir.mkdir(parents=True, exist_ok=True)
        self._started = True
        try:
            fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))  # what `ray get-auth-token --generate` writes

            self.gcs_port = _free_port()
            if self.dashboard_port is None:
                # dashboard.py runs even with --include-dashboard=false; never let it take 8265
                self.dashboard_port = _free_port()
            head_args = [
                "--head",
                "--port", str(self.gcs_port),
                "--num-cpus", str(self.head_cpus),
                "--num-gpus", str(self.head_gpus),
                "--include-dashboard", "true" if self.dashboard else "false",
                "--dashboard-host", LOOPBACK,
                "--dashboard-port", str(self.dashboard_port),
            ]
            if _ray_client_available():
                head_args += ["--ray-client-server-port", str(_free_port())]
            head = self._launch("head", head_args, {})
            self._wait_launch([head])

            procs = []
            for i in range(self.workers):
                resources = {f"worker_{i}": 1}
                args = [
                    "--address", self.address,
                    "--num-cpus", str(self.cpus_per_worker),
                    "--num-gpus", str(self.gpus_per_worker),
                    "--resources", json.dumps(resources),
                    "--labels", f"orch-role=worker,orch-worker={i}",
                ]
                procs.append(self._launch(f"worker-{i}", args, resources))
            self._wait_launch(procs)
            self.wait_for_nodes(self.workers + 1, timeout=max(5.0, self.timeout - (time.monotonic() - t0)))
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _launch(self, name: str, args: list[str], resources: dict):
        temp_dir = self.base_dir / ("h" if name == "head" else "w" + name.split("-")[1])
        cmd = [
            # The head: plain `ray start` (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps it on
            # 127.0.0.1). Workers: that setting refuses multi-node clusters, so they start
            # through orch's one module of Ray-private code, which keeps 127.0.0.1 as given.
            *([sys.executable, "-m", "ray.scripts.scripts", "start"] if name == "head" else
              [sys.executable, "-m", "orchestrator.engine.raytune._private", "ray-start"]),
            "--node-ip-address", LOOPBACK,
            "--temp-dir", str(temp_dir),
            "--object-store-memory", str(self.object_store_mb * 1024 * 1024),
            # every node picks free ports for everything it listens on
            "--node-manager-port", "0",
            "--object-manager-port", "0",
            "--metrics-export-port", "0",
            "--dashboard-agent-listen-port", "0",
            "--dashboard-agent-grpc-port", "0",
            "--runtime-env-agent-port", "0",
            "--min-worker-port", "0",
            "--max-worker-port", "0",
            "--disable-usage-stats",
            "--log-style", "record",
            *args,
        ]
        log = open(self.base_dir / f"{name}.start.log", "w")
        proc = subprocess.Popen(
            cmd, env=self._node_env(name), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.base_dir,
        )
        log.close()
        # with start_new_session the `ray start` pid is the pgid of the node's processes
        self.nodes.append(NodeInfo(name=name, pgid=proc.pid, temp_dir=str(temp_dir), resources=resources))
        proc.node_name = name  # type: ignore[attr-defined]
        return proc

    def _wait_launch(self, procs) -> None:
        deadline = time.monotonic() + self.timeout
        for p in procs:
            try:
                rc = p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise LocalClusterError(
                    f"`ray start` for {p.node_name} did not finish within {self.timeout:.0f}s; "
                    f"see {self.base_dir}/{p.node_name}.start.log"
                ) from None
            if rc != 0:
                tail = (self.base_dir / f"{p.node_name}.start.log").read_text()[-3000:]
                raise LocalClusterError(f"`ray start` for {p.node_name} failed (rc={rc}):\n{tail}")

    def nodes_info(self, want: int = -1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Node table from the GCS (queried in a subprocess with this cluster's token).

        ``want >= 0``: poll until exactly that many nodes are alive, at most ``timeout`` s.
        """
        env = self.driver_env()
        try:
            r = subprocess.run(
                [sys.executable, "-c", _NODES_PROBE, self.address, str(want), str(timeout)],
                env=env, capture_output=True, text=True, timeout=timeout + 30,
            )
        except subprocess.TimeoutExpired:
            raise LocalClusterError(f"node probe hung for {timeout + 30:.0f}s") from None
        try:
            out = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise LocalClusterError(f"node probe failed (rc={r.returncode}): {r.stderr[-2000:]}") from None
        if out["timeout"]:
            alive = sum(n["alive"] for n in out["nodes"])
            raise LocalClusterError(
                f"timed out after {timeout:.0f}s waiting for {want} alive Ray nodes at "
                f"{self.address} (alive: {alive}; last error: {out['error']}); logs under {self.base_dir}"
            )
        return out["nodes"]

    def wait_for_nodes(self, n: int, timeout: float | None = None) -> list[dict[str, Any]]:
        return self.nodes_info(want=n, timeout=self.timeout if timeout is None else timeout)

    def alive_nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.nodes_info() if n["alive"]]

    def pids(self, node: str | None = None) -> list[int]:
        """Live pids of this cluster (or of node "head" / "worker-<i>")."""
        return sorted(self._procs(node))

    def _procs(self, node: str | None = None) -> dict[int, int]:
        pgids = [n.pgid for n in self.nodes if node is None or n.name == node]
        return find_processes(self.cluster_id, pgids, node)

    def kill_worker(self, i: int, wait: bool = True, timeout: float = 30.0) -> None:
        """SIGKILL worker node ``i`` (its raylet's process group and every process it
        started), like a machine dying.  With ``wait``, block until the GCS marks it dead.
        """
        node = next((n for n in self.nodes if n.name == f"worker-{i}"), None)
        if node is None:
            raise IndexError(f"no worker {i}")
        known = self._procs(node.name)
        _signal_group(node.pgid, signal.SIGKILL)
        _signal_pids(known, signal.SIGKILL)
        node.killed = True
        deadline = time.monotonic() + 10
        while (left := _still_alive(known)) and time.monotonic() < deadline:
            _signal_pids(left, signal.SIGKILL)
            time.sleep(0.05)
        if wait:
            alive = sum(1 for n in self.nodes if not n.killed)
            self.wait_for_nodes(alive, timeout=timeout)

    def stop(self, grace: float = 3.0) -> None:
        """Stop exactly the processes this cluster started, then remove its temp dir."""
        if not self._started:
            return
        known = self._procs()
        # workers first, head (GCS) last; SIGTERM lets the raylets stop their workers
        for node in reversed(self.nodes):
            _signal_group(node.pgid, signal.SIGTERM)
        _signal_pids(known, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _still_alive(known) and time.monotonic() < deadline:
            time.sleep(0.1)
            known.update(self._procs())  # catch anything spawned meanwhile
        for node in self.nodes:
            _signal_group(node.pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (left := _still_alive(known)) and time.monotonic() < deadline:
            _signal_pids(left, signal.SIGKILL)
            time.sleep(0.1)
            known.update(self._procs())
        left = _still_alive(known)
        self._started = False
        if self.base_dir is not None and not self.keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        if left:
            raise LocalClusterError(f"processes of cluster {self.cluster_id} survived stop: {left}")

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------- CLI state
    def to_state(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "address": self.address,
            "base_dir": str(self.base_dir),
            "gcs_port": self.gcs_port,
            "dashboard": self.dashboard,
            "dashboard_port": self.dashboard_port,
            "env": self.env,
            "nodes": [asdict(n) for n in self.nodes],
            "keep_dir": self.keep_dir,
        }

    @classmethod
    def from_state(cls, state: dict) -> "LocalCluster":
        c = cls(workers=sum(1 for n in state["nodes"] if n["name"] != "head"),
                dashboard=state["dashboard"], dashboard_port=state["dashboard_port"],
                base_dir=state["base_dir"], keep_dir=state.get("keep_dir", False))
        c.cluster_id = state["cluster_id"]
        c.base_dir = Path(state["base_dir"])
        c.gcs_port = state["gcs_port"]
        c.nodes = [NodeInfo(**n) for n in state["nodes"]]
        c._started = True
        return c


# ---------------------------------------------------------------------- CLI
def _exports(env: dict[str, str]) -> str:
    lines = ["unset RAY_AUTH_TOKEN"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    return "\n".join(lines)


def _load_state(path: Path) -> LocalCluster:
    if not path.exists():
        raise SystemExit(f"no local cluster state at {path} (not started, or already stopped)")
    return LocalCluster.from_state(json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE,
                    help=f"where `start` records the cluster for `stop` (default {DEFAULT_STATE_FILE})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("start", help="start head + workers, print the driver env")
    st.add_argument("--workers", type=int, default=2)
    st.add_argument("--cpus-per-worker", type=int, default=1)
    st.add_argument("--gpus-per-worker", type=int, default=0, help="logical GPUs per worker node")
    st.add_argument("--head-cpus", type=int, default=0)
    st.add_argument("--object-store-mb", type=int, default=256)
    st.add_argument("--dashboard", action="store_true",
                    help="start the dashboard/job API on 127.0.0.1 (for `ray job submit`)")
    st.add_argument("--dashboard-port", type=int, default=None)
    st.add_argument("--timeout", type=float, default=60.0)
    st.add_argument("--keep-dir", action="store_true", help="keep temp dir (logs) after stop")
    sub.add_parser("stop", help="stop the cluster recorded in the state file")
    sub.add_parser("env", help="print the driver env (export lines)")
    sub.add_parser("status", help="print the node table")
    a = ap.parse_args(argv)

    if a.cmd == "start":
        if a.state_file.exists():
            raise SystemExit(f"{a.state_file} exists: a local cluster is already running "
                             "(stop it first, or pass --state-file)")
        c = LocalCluster(workers=a.workers, cpus_per_worker=a.cpus_per_worker,
                         gpus_per_worker=a.gpus_per_worker, head_cpus=a.head_cpus,
                         object_store_mb=a.object_store_mb, dashboard=a.dashboard,
                         dashboard_port=a.dashboard_port, timeout=a.timeout, keep_dir=a.keep_dir)
        c.start()
        a.state_file.write_text(json.dumps(c.to_state(), indent=2))
        err = sys.stderr
        print(f"Local Ray cluster {c.cluster_id} up in {c.startup_s:.1f}s: head ({a.head_cpus} CPU) + "
              f"{a.workers} workers ({a.cpus_per_worker} CPU, {a.gpus_per_worker} GPU, resource "
              f"worker_<i>); token auth on; temp dir {c.base_dir}", file=err)
        print(f"  address:   {c.address}", file=err)
        if c.dashboard_url:
            print(f"  dashboard: {c.dashboard_url}  (ray job submit --working-dir . -- "
                  "orch sweep SPEC --address auto)", file=err)
        print("  A driver needs this env (eval this output, or set it in your driver's env):", file=err)
        print('    ray.init(address="%s")  # or orch sweep SPEC --address %s' % (c.address, c.address), file=err)
        sf = "" if a.state_file == DEFAULT_STATE_FILE else f" --state-file {shlex.quote(str(a.state_file))}"
        print(f"  stop with: python {sys.argv[0]}{sf} stop", file=err)
        print(_exports(c.env))
        return 0
    c = _load_state(a.state_file)
    if a.cmd == "env":
        print(_exports(c.env))
    elif a.cmd == "status":
        for n in c.nodes_info():
            res = {k: v for k, v in n["resources"].items() if not k.startswith(("node:", "memory", "object_store"))}
            print(f"{n['node_id'][:12]} {'head  ' if n['is_head'] else 'worker'} "
                  f"{'ALIVE' if n['alive'] else 'DEAD '} {res}")
    elif a.cmd == "stop":
        try:
            c.stop()
        finally:
            a.state_file.unlink(missing_ok=True)
        print(f"stopped local Ray cluster {c.cluster_id}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
