"""Run a command the way a person does: in a pseudo-terminal, and read the screen.

``pexpect`` gives the command a real pty (``isatty()`` is true, the size is set),
and ``pyte``, a VT100 emulator, replays what it wrote into a screen, so a test
reads what a person would see (cursor moves and redraws applied), not the raw
bytes. ``watch`` is called with the screen's text after every chunk of output;
a test uses it to take a snapshot in the middle of a run or to press keys.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
import pyte


@dataclass
class Session:
    """What a command showed in a terminal: its exit status and its screens."""

    status: int | None
    signal: int | None
    screen: str  # everything shown, scrolled-off lines included, redraws applied
    raw: bytes
    snapshots: dict[str, str] = field(default_factory=dict)
    child: object | None = None

    def lines(self) -> list[str]:
        return self.screen.splitlines()


def _text(screen: pyte.HistoryScreen) -> str:
    cols = screen.columns
    rows = ["".join(line[x].data for x in range(cols)) for line in screen.history.top]
    rows += list(screen.display)
    return "\n".join(r.rstrip() for r in rows).rstrip("\n")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh terminal: no forced sizes, no MLflow store chosen."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "MLFLOW_TRACKING_URI", "NO_COLOR", "TERM")}
    env.update({"TERM": "xterm-256color", **extra})
    return env


def run(argv: list[str], *, cwd: str | Path, cols: int = 80, rows: int = 40,
        env: dict[str, str] | None = None, timeout: float = 300,
        watch: Callable[[str, pexpect.spawn, Session], None] | None = None) -> Session:
    """Run ``argv`` in a ``cols`` x ``rows`` pty until it exits (or ``timeout`` s pass)."""
    screen = pyte.HistoryScreen(cols, rows, history=20_000, ratio=0.5)
    stream = pyte.ByteStream(screen)
    child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), env=env or clean_env(),
                          dimensions=(rows, cols), timeout=5)
    session = Session(status=None, signal=None, screen="", raw=b"", child=child)
    raw = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = child.read_nonblocking(65536, timeout=0.5)
            except pexpect.TIMEOUT:
                chunk = b""
            except pexpect.EOF:
                break
            if chunk:
                raw.extend(chunk)
                stream.feed(chunk)
            if watch is not None:
                watch(_text(screen), child, session)
        else:
            child.kill(9)
            raise TimeoutError(f"{' '.join(argv)} did not end within {timeout:g} s; screen:\n"
                               + _text(screen)[-4000:])
    finally:
        child.close(force=True)
    session.status, session.signal = child.exitstatus, child.signalstatus
    session.screen, session.raw = _text(screen), bytes(raw)
    return session
