"""The live view of a running sweep (rich): trials, counts, best so far, ETA.

Drawing is the least important thing a sweep does, so it can never end one: the
view is fully built before rich sees it, every refresh is guarded (a failure to
draw becomes one warning and a plain line, the sweep goes on), and starting or
stopping the display is guarded the same way. Only rich's documented, stable
interfaces are used: ``Live(renderable)`` with an object that has ``__rich__``
(the console protocol), ``Table``, ``Text`` and ``Group``. User text (sweep and
parameter names, config values) is always a ``Text``, never markup, so brackets
in it are shown as they are.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.engine._records import OUTCOMES, best_record
from orchestrator.sweepspec import flatten

if TYPE_CHECKING:
    from orchestrator.engine._ledger import Ledger
    from orchestrator.engine._records import TrialRecord
    from orchestrator.sweepspec import SweepSpec

MAX_ROWS = 12  # trials shown: running ones first, then the most recent
MAX_COLUMNS = 5  # searched parameters shown as columns
MAX_CELL = 16  # characters of a config value or column title before an ellipsis
REFRESH_PER_S = 2  # screen refreshes per second
STYLE = {"running": "cyan", "completed": "green", "early_stopped": "yellow",
         "failed": "red", "killed": "red", "pending": "dim"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class LiveView:
    """A ledger listener that redraws a table of trials while the sweep runs.

    ``problems`` collects what went wrong while drawing (shown as warnings at the
    end of the sweep); the sweep itself never sees an exception from here.
    """

    def __init__(self, spec: SweepSpec, ledger: Ledger, *, console: Console | None = None):
        self.spec = spec
        self.ledger = ledger
        self.columns = [p.name for p in spec.searched][:MAX_COLUMNS]
        self.started = time.time()
        self.problems: list[str] = []
        self.console = console or Console()
        self.live: Live | None = None

    # -- lifecycle: never raises ------------------------------------------------------

    def start(self) -> None:
        self.started = time.time()
        try:
            self.live = Live(self, console=self.console, refresh_per_second=REFRESH_PER_S,
                             transient=False)
            self.live.start()
        except Exception as exc:  # noqa: BLE001 - a sweep without a live table is still a sweep
            self._problem("could not start", exc)
            self.live = None

    def stop(self) -> None:
        if self.live is None:
            return
        try:
            self.live.stop()
        except Exception as exc:  # noqa: BLE001 - see start()
            self._problem("could not stop", exc)
        self.live = None

    def _problem(self, what: str, exc: BaseException) -> None:
        text = f"the live view {what}: {type(exc).__name__}: {exc}; the sweep went on without it"
        if text not in self.problems:
            self.problems.append(text)

    # -- ledger events: the table is rendered from the ledger on each refresh ----------

    def trial_start(self, rec: TrialRecord) -> None: ...
    def trial_result(self, rec: TrialRecord, row: dict[str, float], step: int) -> None: ...
    def trial_end(self, rec: TrialRecord) -> None: ...
    def trial_adopted(self, rec: TrialRecord) -> None: ...

    # -- drawing ----------------------------------------------------------------------

    def __rich__(self) -> Group | Text:
        try:
            return self.render()
        except Exception as exc:  # noqa: BLE001 - one bad frame must not end the sweep
            self._problem("could not draw", exc)
            return Text(f"{self.spec.name}: live view unavailable ({type(exc).__name__})")

    def render(self) -> Group:
        records = list(self.ledger.records.values())
        metric = self.spec.metric.name if self.spec.metric else ""
        total = self.spec.run_cap + (self.spec.baseline_repeats
                                     if isinstance(self.spec.baseline, dict) else 0)
        counts = {k: sum(r.outcome == k for r in records) for k in ("running", *OUTCOMES)}
        done = sum(counts[k] for k in OUTCOMES)
        elapsed = time.time() - self.started
        eta = "?" if done == 0 else f"{elapsed / done * max(total - done, 0):.0f}s"
        best = best_record(records, self.spec)
        head = Text.assemble(
            (self.spec.name, "bold"), f"  {self.spec.method}/{self.spec.scheduler_name}  ",
            f"{done}/{total} done  ", (f"{counts['running']} running  ", "cyan"),
            (f"{counts['completed']} completed  ", "green"),
            (f"{counts['early_stopped']} early-stopped  ", "yellow"),
            (f"{counts['failed']} failed  ", "red"),
            f"elapsed {elapsed:.0f}s  ETA {eta}",
        )
        best_value = best.value(metric) if best is not None else None
        best_line = Text(f"best {metric}: "
                         + (f"{best_value:.5g} ({best.trial_id})" if best is not None
                            and best_value is not None else "-"))
        table = Table(expand=False, show_edge=False, pad_edge=False)
        shown = [metric] if metric else []
        for col in ("trial", "status", "epoch", *shown, *self.columns):
            table.add_column(Text(col), overflow="ellipsis", max_width=MAX_CELL, no_wrap=True)
        order = sorted(records, key=lambda r: (r.outcome != "running", -(r.started or 0)))
        for r in order[:MAX_ROWS]:
            flat = flatten(r.config)
            value = r.value(metric) if metric else None
            table.add_row(Text(r.trial_id[-11:]), Text(r.outcome, STYLE.get(r.outcome, "")),
                          Text(str(r.epochs)),
                          *([Text("-" if value is None else f"{value:.4g}")] if metric else []),
                          *(Text(_fmt(flat.get(c, ""))) for c in self.columns))
        parts: list[Any] = [head, *([best_line] if metric else []), table]
        if len(order) > MAX_ROWS:
            parts.append(Text(f"… and {len(order) - MAX_ROWS} more trials", "dim"))
        return Group(*parts)
