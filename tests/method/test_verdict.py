"""The verdict from last-epoch rows: every way it can come out, and why."""

from __future__ import annotations

import pytest

from orchestrator.method import judge


def rows(metric: str, values: list[float]) -> dict[str, float]:
    row = {f"{metric}_fold{k}": v for k, v in enumerate(values)}
    row[metric] = sum(values) / len(values)
    return row


BASE = rows("val_acc", [0.90, 0.91, 0.92])
GOOD = rows("val_acc", [0.95, 0.955, 0.97])  # +0.05 on every fold, little spread
SAME = rows("val_acc", [0.92, 0.90, 0.91])


def v(expected, trial=GOOD, baselines=(BASE,), folds=3):
    return judge(metric="val_acc", goal="maximize", expected=expected, trial=trial,
                 baselines=list(baselines), folds=folds, trial_id="t1")


def test_confirmed_when_the_whole_interval_clears_the_margin() -> None:
    verdict = v("val_acc >= baseline + 0.005")
    assert verdict.status == "confirmed", verdict.reason
    assert verdict.beats_baseline is True
    assert "paired t-test over 3 folds" in verdict.reason
    assert verdict.numbers["ci_low"] > 0.005
    assert verdict.tags() == {"orch.verdict": "confirmed", "orch.verdict_reason": verdict.reason}


def test_refuted_when_the_whole_interval_falls_short() -> None:
    verdict = v("val_acc >= baseline + 0.2")
    assert verdict.status == "refuted", verdict.reason


def test_inconclusive_when_the_interval_contains_the_margin() -> None:
    verdict = v("val_acc > baseline", trial=SAME)
    assert verdict.status == "inconclusive" and "contains" in verdict.reason


def test_unparseable_expectation_is_inconclusive_and_quoted() -> None:
    verdict = v("the best trial's val_acc is at least 0.95")
    assert verdict.status == "inconclusive" and verdict.rule is None
    assert "not a machine-checkable rule" in verdict.reason
    assert "at least 0.95" in verdict.reason and "beats the baseline" in verdict.reason


def test_no_expectation_still_reports_the_baseline_comparison() -> None:
    verdict = v("")
    assert verdict.status == "inconclusive" and "beats the baseline" in verdict.reason


def test_single_baseline_without_folds_has_no_noise_estimate() -> None:
    verdict = v("val_acc > baseline", trial={"val_acc": 0.95}, baselines=[{"val_acc": 0.9}],
                folds=None)
    assert verdict.status == "inconclusive" and "baseline_repeats" in verdict.reason


def test_repeated_baseline_gives_a_one_sample_test() -> None:
    verdict = v("val_acc > baseline", trial={"val_acc": 0.95},
                baselines=[{"val_acc": x} for x in (0.90, 0.91, 0.905)], folds=None)
    assert verdict.status == "confirmed" and "one-sample" in verdict.reason


@pytest.mark.parametrize("expected, status", [("val_acc >= 0.9", "confirmed"),
                                              ("val_acc >= 0.99", "refuted"),
                                              ("val_acc >= 0.96", "inconclusive")])
def test_absolute_rule_uses_the_trials_fold_interval(expected, status) -> None:
    assert v(expected).status == status


def test_loss_rule_with_a_rule_metric_other_than_the_sweeps() -> None:
    trial = {**rows("val_loss", [0.10, 0.11, 0.12]), **GOOD}
    base = {**rows("val_loss", [0.30, 0.31, 0.29]), **BASE}
    verdict = judge(metric="val_loss", goal="minimize", expected="val_acc >= baseline + 0.01",
                    trial=trial, baselines=[base], folds=3)
    assert verdict.status == "confirmed" and verdict.comparison.metric == "val_loss"
    assert verdict.rule_comparison.metric == "val_acc"


def test_no_trial_and_no_baseline() -> None:
    assert "no trial finished" in v("val_acc > baseline", trial=None).reason
    verdict = v("val_acc > baseline", baselines=())
    assert verdict.status == "inconclusive" and "no baseline" in verdict.reason
