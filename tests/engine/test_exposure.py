"""What a local sweep and `orch ui` expose: loopback only, and nothing left behind.

The listening sockets of every process of a running `orch sweep` (the driver,
Ray's GCS, raylet, agents and workers: all in the driver's session) are read from
/proc and must all be on 127.0.0.1 (or ::1). `orch ui` stopped by SIGTERM or by a
closed terminal (SIGHUP) must take its `mlflow server` with it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]
ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = {"0100007F", "00000000000000000000000001000000",  # 127.0.0.1, ::1
            "0000000000000000FFFF00000100007F"}  # ::ffff:127.0.0.1


def session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])  # field 6: the session id


def listening(session: int) -> list[tuple[str, int, str]]:
    """(address in /proc hex, port, process name) of every listening TCP socket."""
    inodes: dict[str, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or session_of(int(proc.name)) != session:
            continue
        try:
            name = (proc / "comm").read_text().strip()
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = name
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
                address, port = parts[1].split(":")
                found.append((address, int(port, 16), inodes[parts[9]]))
    return found


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    out.pop("MLFLOW_TRACKING_URI", None)
    out.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # the sweep must set it itself
    return out


def test_a_local_sweep_listens_on_loopback_only(tmp_path):
    (tmp_path / "spec.yaml").write_text(
        "name: exposure\ntrainable: _trainables:slow\nmethod: random\nmetric: {name: loss}\n"
        "run_cap: 2\nmax_concurrent: 2\nparameters:\n  x: {min: 0.0, max: 1.0}\n"
        "  epochs: {value: 30}\n  pause: {value: 0.2}\n")
    sweep = subprocess.Popen(["orch", "sweep", "spec.yaml", "--no-live"], cwd=tmp_path,
                             env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with sqlite3.connect(tmp_path / "mlflow.db") as conn:
                    if conn.execute("select count(*) from metrics").fetchone()[0] > 2:
                        break
            except sqlite3.Error:
                pass
            time.sleep(0.3)
        sockets = listening(sweep.pid)
    finally:
        os.kill(sweep.pid, signal.SIGINT)
        sweep.wait(timeout=120)
    names = {name for _, _, name in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # Ray's services were seen
    exposed = [s for s in sockets if s[0] not in LOOPBACK]
    assert not exposed, exposed


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_orch_ui_takes_its_mlflow_server_with_it(tmp_path, sig):
    sqlite3.connect(tmp_path / "mlflow.db").close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = subprocess.Popen(["orch", "ui", "--port", str(port), "--tracking-uri",
                           f"sqlite:///{tmp_path / 'mlflow.db'}"], cwd=tmp_path, env=env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = ui.stdout.readline()
    assert f"127.0.0.1:{port}" in line, line
    servers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and
               re.search(rb"mlflow.*server", _cmdline(p)) and
               str(port).encode() in _cmdline(p)]
    assert servers
    ui.send_signal(sig)
    ui.wait(timeout=60)
    time.sleep(1)
    alive = [p for p in servers if p.exists() and _state(p) != "Z"]
    assert not alive, [_cmdline(p) for p in alive]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nobody answers there any more


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
