"""One orch process per sweep: a lock taken by a sweep and by every resume of it.

An exclusive ``flock`` on a file in the sweep's own folder (a file system path)
or under ``~/.cache/orch`` (object-store storage). The file says who holds it, so
the second process is told which process to wait for. The kernel releases the
lock when its holder dies, however it dies: a killed driver never leaves a stale
lock. Ray-free.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import OrchError

__all__ = ["SweepBusyError", "local_sweep_dir", "sweep_lock"]

LOCK_FILE = ".orch.lock"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orch"


class SweepBusyError(OrchError):
    """Another orch process is running (or resuming) this sweep."""


def local_sweep_dir(experiment_path: str, sweep_id: str) -> Path:
    """A folder on this machine for the sweep's lock and journal: the sweep's own folder
    when it is on a file system, else a cache folder named by the sweep id."""
    if "://" not in experiment_path:
        return Path(experiment_path)
    return CACHE / "sweeps" / sweep_id


@contextlib.contextmanager
def sweep_lock(folder: Path, sweep_id: str) -> Iterator[None]:
    """Hold the sweep's lock for the block, or raise :class:`SweepBusyError` at once."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except ValueError:
                holder = {}
            since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0)))
            raise SweepBusyError(
                f"sweep {sweep_id} is already being run by another orch process (pid "
                f"{holder.get('pid', '?')} on {holder.get('host', '?')}, since {since}); two "
                "processes would run its trials twice. Wait for that one to end, or stop it "
                "(Ctrl-C) and resume again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.time()}))
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
