"""The end-of-sweep summary compares the best trial with the baseline at the epoch both
reached, trial − baseline, in the words the statistics allow."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.engine import SweepResult, TrialRecord
from orchestrator.method import against_baseline
from orchestrator.sweepspec import load_spec

SPEC = load_spec({
    "name": "sum", "trainable": "digits_mlp", "method": "random", "seed": 0,
    "metric": {"name": "val_loss", "goal": "minimize"}, "run_cap": 1, "cv": {"folds": 3},
    "parameters": {"lr": {"min": 0.001, "max": 0.1}, "epochs": {"value": 9}},
    "baseline": {"lr": 0.01},
})


def record(tid, role, epochs, level, outcome="completed"):
    rec = TrialRecord(trial_id=tid, config={"lr": 0.01 if role == "baseline" else 0.05,
                                            "epochs": 9}, role=role, outcome=outcome)
    for e in range(1, epochs + 1):
        folds = [level + 1.0 / e + d for d in (-0.01, 0.0, 0.012)]
        rec.add(e, {"epoch": e, "val_loss": sum(folds) / 3,
                    **{f"val_loss_fold{k}": f for k, f in enumerate(folds)}})
    return rec


def result(trial_epochs: int) -> SweepResult:
    return SweepResult(sweep_id="s", spec=SPEC, storage="/tmp", records=[
        record("b", "baseline", 9, 0.30), record("t", "trial", trial_epochs, 0.25)])


def test_the_best_meets_the_baseline_at_the_epoch_both_reached() -> None:
    line = against_baseline(result(9))
    assert line.startswith("baseline val_loss at epoch 9:")
    assert "best − baseline = -0.05" in line and "95% CI" in line
    assert "significantly better than the baseline" in line


def test_print_summary_says_it(monkeypatch) -> None:
    import orchestrator.cli._sweep as sweep_cli

    buf = io.StringIO()
    monkeypatch.setattr(sweep_cli, "out", Console(file=buf, width=200))
    sweep_cli.print_summary(result(9))
    text = buf.getvalue()
    assert "baseline val_loss at epoch 9" in text and "best − baseline" in text
    assert "verdict: inconclusive" in text and "Judges the best configuration" in text
