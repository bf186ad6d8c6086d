"""The live table, drawn into a recording console: no Ray, no terminal needed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.engine._live import MAX_ROWS, LiveView
from orchestrator.engine import TrialRecord
from orchestrator.sweepspec import load_spec

ROOT = Path(__file__).resolve().parents[2]
RICH_FLOOR = "13.7.1"  # the lowest rich pyproject.toml admits; the newest is tested everywhere


class FakeLedger:
    def __init__(self, records):
        self.records = {r.trial_id: r for r in records}


def _spec(**extra):
    raw = {"name": "live [x] 名前", "trainable": "digits_mlp", "method": "random",
           "metric": {"name": "val_loss"}, "run_cap": 20, "baseline": {"lr": 0.01},
           "parameters": {"lr": {"min": 0.001, "max": 0.1},
                          "opt": {"values": ["[red]adam[/]", "sgd"]}}}
    raw.update(extra)
    return load_spec(raw)


def _record(i, outcome, loss=None, **config):
    rec = TrialRecord(trial_id=f"trial_{i:05d}", config={"lr": 0.01 * i, **config},
                      outcome=outcome, started=time.time() - 10 + i)
    if loss is not None:
        rec.history = [{"val_loss": loss + 1}, {"val_loss": loss}]
    return rec


def _draw(view, width=80):
    console = Console(record=True, width=width, force_terminal=True, color_system=None,
                      file=io.StringIO())
    console.print(view)
    return console.export_text()


def test_the_table_shows_counts_best_eta_and_each_trial():
    records = [_record(1, "completed", 0.5, opt="sgd"), _record(2, "running", 0.7),
               _record(3, "early_stopped", 0.9), _record(4, "failed")]
    text = _draw(LiveView(_spec(), FakeLedger(records)))
    head = " ".join(text.splitlines()[:2])  # the header wraps at 80 columns
    assert "3/21 done" in head and "1 running" in head and "1 completed" in head
    assert "1 early-stopped" in head and "1 failed" in head and "ETA" in head
    assert "best val_loss: 0.5 (trial_00001)" in text
    for word in ("trial", "status", "epoch", "val_loss", "lr", "opt", "running", "failed"):
        assert word in text
    assert "live [x] 名前" in text  # user text is text, not markup


def test_brackets_wide_characters_and_long_values_do_not_break_the_layout():
    records = [_record(i, "running", 0.1 * i, opt="[red]adam[/] " + "幅" * 30)
               for i in range(1, MAX_ROWS + 6)]
    for width in (80, 160):
        text = _draw(LiveView(_spec(), FakeLedger(records)), width=width)
        lines = text.splitlines()
        assert all(len(line) <= width for line in lines), (width, text)
        assert "[red]adam" in text
        assert "… and 5 more trials" in text
        rows = [ln for ln in lines if ln.count("│") + ln.count("┃") >= 4]
        assert len(rows) == MAX_ROWS + 1  # the header and MAX_ROWS trials, one line each


def test_a_failure_to_draw_is_a_warning_never_an_exception():
    class Broken:
        @property
        def records(self):
            raise RuntimeError("ledger went away")

    view = LiveView(_spec(), Broken())
    text = _draw(view)
    assert "live view unavailable (RuntimeError)" in text
    assert view.problems and "ledger went away" in view.problems[0]
    _draw(view)
    assert len(view.problems) == 1  # said once


def test_start_and_stop_never_raise_even_when_the_terminal_is_gone():
    class Closed(io.StringIO):
        def write(self, s):
            raise OSError(5, "Input/output error")

        def isatty(self):
            return True

    view = LiveView(_spec(), FakeLedger([_record(1, "running", 0.3)]),
                    console=Console(file=Closed(), force_terminal=True))
    view.start()
    view.stop()
    assert any("Input/output error" in p for p in view.problems), view.problems


@pytest.mark.e2e
def test_the_lowest_declared_rich_draws_the_same_table(tmp_path):
    """pyproject says rich>=13.7: draw the view with exactly that release."""
    target = tmp_path / "rich-floor"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), f"rich=={RICH_FLOOR}"], check=True, timeout=240)
    script = textwrap.dedent(f"""
        import io, sys
        sys.path.insert(0, {str(ROOT / 'tests' / 'cli')!r})
        import rich, test_live_view as t
        assert rich.__file__.startswith({str(target)!r}), rich.__file__
        records = [t._record(1, "completed", 0.5), t._record(2, "running", 0.7)]
        view = t.LiveView(t._spec(), t.FakeLedger(records))
        view.console = t.Console(file=io.StringIO(), force_terminal=True, width=100)
        view.start(); view.stop()
        assert not view.problems, view.problems
        print(t._draw(view))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best val_loss: 0.5" in proc.stdout and "running" in proc.stdout
