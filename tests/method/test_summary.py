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


def summary(monkeypatch, res) -> str:
    import orchestrator.cli._sweep as sweep_cli

    buf = io.StringIO()
    monkeypatch.setattr(sweep_cli, "out", Console(file=buf, width=200))
    sweep_cli.print_summary(res)
    return buf.getvalue()


def test_two_objectives_list_the_front_and_constraints_count_the_feasible(monkeypatch):
    spec = load_spec({
        "name": "mo", "trainable": "digits_mlp", "method": "tpe", "run_cap": 4,
        "metrics": [{"name": "loss", "goal": "minimize"}, {"name": "size", "goal": "minimize"}],
        "metric_constraints": ["size <= 8"], "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    points = {"a": (0.1, 9.0), "b": (0.2, 4.0), "c": (0.3, 2.0), "d": (0.4, 5.0)}
    records = []
    for tid, (loss, size) in points.items():
        rec = TrialRecord(trial_id=tid, config={"x": loss}, role="trial", outcome="completed")
        rec.add(1, {"loss": loss, "size": size})
        records.append(rec)
    text = summary(monkeypatch, SweepResult(sweep_id="s", spec=spec, storage="/tmp",
                                            records=records))
    # a is infeasible (size 9 > 8) so never on the front; d is beaten by b on both.
    assert "Pareto front (loss minimize, size minimize): 2 trial(s)" in text
    assert "  b: loss=0.2, size=4" in text and "  c: loss=0.3, size=2" in text
    assert "  a:" not in text and "  d:" not in text
    assert "constraints: 3 of 4 trial(s) feasible; size <= 8 missed by up to 1 in 1" in text


def test_a_sweep_without_a_metric_names_no_best_and_judges_nothing(monkeypatch):
    spec = load_spec({"name": "nm", "trainable": "digits_mlp", "method": "grid",
                      "parameters": {"x": {"values": [1, 2]}}})
    rec = TrialRecord(trial_id="t", config={"x": 1}, role="trial", outcome="completed")
    rec.add(1, {"loss": 0.5})
    text = summary(monkeypatch, SweepResult(sweep_id="s", spec=spec, storage="/tmp",
                                            records=[rec]))
    assert "no metric: every point ran, none is named best" in text
    assert "verdict" not in text and "finite" not in text
