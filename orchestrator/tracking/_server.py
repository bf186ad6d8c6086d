"""A local web server orch starts for a person to look at (the MLflow UI, Optuna's dashboard).

It listens on 127.0.0.1 only, runs in its own session (its workers stop with it), writes
its output to a log file, and is ready once it answers HTTP; started, it is stopped by
:meth:`LocalServer.stop` or ``with``. Neither server has authentication: that is why
they never listen beyond this machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import TrackingError

__all__ = ["LocalServer", "free_port", "port_taken", "start_server"]


@dataclass
class LocalServer:
    """A running server process; use :meth:`stop` (or ``with``) to end it."""

    url: str
    process: subprocess.Popen
    command: list[str]
    log_path: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server and its workers (its own process group); idempotent."""
        proc = self.process
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        else:  # the leader is gone; make sure no worker of its group outlives it
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        proc.send_signal(sig)


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        return s.connect_ex((host, int(port))) == 0


def answers(url: str) -> bool:
    # `url` is always http://127.0.0.1:<port>/... built by start_server, never user input.
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310  # nosec B310
            return 200 <= resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def start_server(argv: Sequence[str], *, what: str, host: str, port: int,
                 ready_paths: Sequence[str] = ("/",), timeout_s: float = 60.0,
                 log_path: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> LocalServer:
    """Start ``argv`` (a server for ``what`` on ``host:port``) and wait until it answers.

    On timeout, or if it exits first (e.g. port taken), stops it and raises
    :class:`~orchestrator.errors.TrackingError` with the end of its log.
    """
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="orch-server-", suffix=".log")
        os.close(fd)
        log = Path(name)
    else:
        log = Path(log_path)
        log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(  # noqa: S603 - argv we built
            list(argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env if env is not None else os.environ), cwd=tempfile.gettempdir(),
            start_new_session=True)
    url_host = f"[{host}]" if ":" in host else host
    server = LocalServer(url=f"http://{url_host}:{port}", process=proc, command=list(argv),
                         log_path=log)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise TrackingError(
                f"{what} exited with code {proc.returncode} before answering on {server.url}; "
                f"command: {' '.join(argv)}\nlast lines of {log}:\n{tail}")
        if any(answers(server.url + p) for p in ready_paths):
            return server
        if time.monotonic() >= deadline:
            tail = server.log_tail()
            server.stop()
            raise TrackingError(
                f"{what} did not answer on {server.url} within {timeout_s:g} s; command: "
                f"{' '.join(argv)}\nlast lines of {log}:\n{tail}\n"
                "raise timeout_s if the store is large or the machine slow")
        time.sleep(0.25)
