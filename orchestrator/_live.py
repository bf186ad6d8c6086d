"""The live view of a running sweep (rich): trials, counts, best so far, ETA."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.space import flatten

if TYPE_CHECKING:
    from orchestrator.engine import Ledger, TrialRecord
    from orchestrator.spec import SweepSpec

MAX_ROWS = 12  # trials shown: running ones first, then the most recent
REFRESH_PER_S = 2  # screen refreshes per second
STYLE = {"running": "cyan", "completed": "green", "early_stopped": "yellow",
         "failed": "red", "killed": "red", "pending": "dim"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v)
    return text if len(text) <= 14 else text[:13] + "…"


class LiveView:
    """A ledger listener that redraws a table of trials while the sweep runs."""

    def __init__(self, spec: SweepSpec, ledger: Ledger, *, console: Console | None = None):
        self.spec = spec
        self.ledger = ledger
        self.console = console or Console()
        self.started = time.time()
        self.live = Live(get_renderable=self.render, console=self.console,
                         refresh_per_second=REFRESH_PER_S, transient=False)
        self.columns = [p.name for p in spec.searched][:5]

    def start(self) -> None:
        self.started = time.time()
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    # ledger events: the table is rendered from the ledger on each refresh
    def trial_start(self, rec: TrialRecord) -> None: ...
    def trial_result(self, rec: TrialRecord, row: dict[str, float]) -> None: ...
    def trial_end(self, rec: TrialRecord) -> None: ...
    def trial_adopted(self, rec: TrialRecord) -> None: ...

    def render(self) -> Group:
        from orchestrator.engine import OUTCOMES, best_record

        records = list(self.ledger.records.values())
        metric = self.spec.metric.name
        total = self.spec.run_cap + (self.spec.baseline_repeats
                                     if isinstance(self.spec.baseline, dict) else 0)
        counts = {k: sum(r.outcome == k for r in records) for k in ("running", *OUTCOMES)}
        done = sum(counts[k] for k in OUTCOMES)
        elapsed = time.time() - self.started
        eta = "?" if done == 0 else f"{elapsed / done * max(total - done, 0):.0f}s"
        best = best_record(records, self.spec)
        head = Text.assemble(
            (f"{self.spec.name}", "bold"), f"  {self.spec.method}",
            f"/{self.spec.scheduler_name}  ",
            f"{done}/{total} done  ", (f"{counts['running']} running  ", "cyan"),
            (f"{counts['completed']} completed  ", "green"),
            (f"{counts['early_stopped']} early-stopped  ", "yellow"),
            (f"{counts['failed']} failed  ", "red"),
            f"elapsed {elapsed:.0f}s  ETA {eta}",
        )
        best_line = Text(
            f"best {metric}: {best.value(metric):.5g} ({best.trial_id})" if best
            else f"best {metric}: -")
        table = Table(expand=False, show_edge=False, pad_edge=False)
        for col in ("trial", "status", "epoch", metric, *self.columns):
            table.add_column(col, overflow="ellipsis", max_width=16)
        order = sorted(records, key=lambda r: (r.outcome != "running", -(r.started or 0)))
        for r in order[:MAX_ROWS]:
            flat = flatten(r.config)
            value = r.value(metric)
            table.add_row(r.trial_id[-11:], Text(r.outcome, STYLE.get(r.outcome, "")),
                          str(r.epochs), "-" if value is None else f"{value:.4g}",
                          *(_fmt(flat.get(c, "")) for c in self.columns))
        return Group(head, best_line, table)
