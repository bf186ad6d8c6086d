"""Matched budgets: trials compared only with what ran as long as they did."""

from __future__ import annotations

from orchestrator.method import RunView, matched_budget
from orchestrator.method._budget import MIN_MATCHED, common_step, rank


def trial(tid: str, values: list[float], outcome: str = "completed", role: str = "trial"):
    return RunView(tid, role, outcome, {}, {i + 1: {"m": v} for i, v in enumerate(values)})


def test_asha_rungs_give_the_deepest_budget_enough_trials_reached() -> None:
    # 8 trials cut at epoch 2, 3 at epoch 6, 1 at epoch 18: the epoch-1 highs of the
    # cut trials must not be ranked against 18-epoch values
    runs = [trial(f"c{i}", [2.0, 1.0 + i / 10], "early_stopped") for i in range(8)]
    runs += [trial(f"m{i}", [2.0, 1.0, 0.8, 0.7, 0.6, 0.5 + i / 100], "early_stopped")
             for i in range(3)]
    runs += [trial("full", [2.0, 1.0, 0.8, 0.7, 0.6, 0.5] + [0.4] * 12)]
    budget = matched_budget(runs, "m")
    assert budget.step == 2 and len(budget.values) == 12  # only epoch 2 has >= 6 trials
    assert budget.deepest == 18 and not budget.left_out
    deeper = matched_budget(runs, "m", min_trials=4)
    assert deeper.step == 6 and set(deeper.values) == {"m0", "m1", "m2", "full"}
    assert deeper.values["full"] == 0.5  # its value AT epoch 6, not its last (0.4)
    assert len(deeper.left_out) == 8
    assert "8 trial(s) stopped before epoch 6 are left out" in deeper.describe()
    assert MIN_MATCHED == 6


def test_a_trial_meets_the_baseline_where_both_reported() -> None:
    base = trial("b", [3.0] * 9, role="baseline")
    cut = trial("t", [2.0, 1.5, 1.2], "early_stopped")
    assert common_step(cut, [base], "m") == 3


def test_ranking_puts_the_deepest_first_then_the_metric() -> None:
    runs = [trial("cut-low", [0.1]), trial("full-hi", [1.0, 0.9]), trial("full-lo", [1.0, 0.5])]
    assert [r.trial_id for r in rank(runs, "m", "minimize")] == ["full-lo", "full-hi", "cut-low"]
