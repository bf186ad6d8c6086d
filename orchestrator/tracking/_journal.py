"""The recorder's journal: every point accepted for MLflow, on this machine's disk first.

A point reported is a point kept: before a point is queued for the tracking
store it is appended to the sweep's journal (one JSON line per report, written
with ``os.write`` on an ``O_APPEND`` file, so it is in the kernel the moment the
call returns and survives the driver being killed, even with SIGKILL). When a
trial's points are all in MLflow and its run is closed, a ``closed`` line says so.
A resumed sweep reads the journal back and writes what the store lacks.

Lines::

    {"p": trial, "s": step, "m": {metric: value, ...}, "t": ms}   a report's points
    {"w": trial, "s": step}     every point of the trial up to this step is stored
    {"c": trial}                the trial's run is closed: nothing of it is missing

A line cut short by a crash mid-write is ignored on reading.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL_FILE", "Journal", "TrialJournal", "read_journal"]

JOURNAL_FILE = "orch_journal.jsonl"


@dataclass
class TrialJournal:
    """What the journal says of one trial."""

    points: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> metrics
    times: dict[int, int] = field(default_factory=dict)  # step -> ms
    written_to: int = 0  # every step up to this one is stored
    closed: bool = False

    @property
    def last_step(self) -> int:
        return max(self.points, default=0)

    def unconfirmed(self) -> dict[int, dict[str, float]]:
        """Points not known to be stored (may or may not be in MLflow)."""
        if self.closed:
            return {}
        return {s: m for s, m in self.points.items() if s > self.written_to}


def read_journal(path: Path) -> dict[str, TrialJournal]:
    """Every trial's journal entries (empty when there is no journal)."""
    out: dict[str, TrialJournal] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut short by a crash
            continue
        if not isinstance(entry, dict):
            continue
        if "p" in entry:
            tj = out.setdefault(str(entry["p"]), TrialJournal())
            step = int(entry.get("s", 0))
            tj.points[step] = {str(k): float(v) for k, v in dict(entry.get("m", {})).items()}
            tj.times[step] = int(entry.get("t", 0))
        elif "w" in entry:
            tj = out.setdefault(str(entry["w"]), TrialJournal())
            tj.written_to = max(tj.written_to, int(entry.get("s", 0)))
        elif "c" in entry:
            out.setdefault(str(entry["c"]), TrialJournal()).closed = True
    return out


class Journal:
    """The sweep's journal file, appended to line by line."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / JOURNAL_FILE
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                       0o600)
        self.problem = ""  # set when the disk refused a write (the points go on to MLflow)

    def _append(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            return
        data = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self._fd, data)
        except OSError as exc:  # a full disk: say so once, keep recording to MLflow
            if not self.problem:
                self.problem = (f"the journal {self.path} could not be written ({exc}); points "
                                "not yet in MLflow when the driver dies cannot be recovered")

    def point(self, trial_id: str, step: int, metrics: dict[str, float], ms: int) -> None:
        self._append({"p": trial_id, "s": step, "m": metrics, "t": ms})

    def written(self, trial_id: str, step: int) -> None:
        self._append({"w": trial_id, "s": step})

    def closed(self, trial_id: str) -> None:
        self._append({"c": trial_id})

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
