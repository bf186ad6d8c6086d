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
    assert "at least 0.95" in verdict.reason
    assert "significantly better than the baseline" in verdict.reason


def test_no_expectation_still_reports_the_baseline_comparison() -> None:
    verdict = v("")
    assert verdict.status == "inconclusive" and "better than the baseline" in verdict.reason


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


# ------------------------------------------------------------------ wording (item 5)


def test_a_difference_inside_the_interval_is_called_not_significant() -> None:
    # 0.1024 < 0.1397 on average, but the folds disagree: not "does not beat", "not
    # significantly different"
    trial = rows("val_loss", [0.08, 0.16, 0.07])
    base = rows("val_loss", [0.14, 0.13, 0.15])
    verdict = judge(metric="val_loss", goal="minimize", expected="", trial=trial,
                    baselines=[base], folds=3)
    assert "is not significantly different from the baseline" in verdict.reason
    assert "does not beat" not in verdict.reason
    assert "noise floor = the baseline's standard deviation over its 3 folds" in verdict.reason


# ------------------------------------------------------------------ what is judged (item 3)

from orchestrator.method import RunView, assess  # noqa: E402
from orchestrator.sweepspec import Parameter  # noqa: E402

PARAMS = (Parameter("lr", "log_uniform_values", min=1e-4, max=0.1),
          Parameter("dropout", "uniform", min=0.0, max=0.5),
          Parameter("epochs", "constant", value=3))
BASE_CFG = {"lr": 0.001, "dropout": 0.0, "epochs": 3}


def run(tid, config, folds, role="trial", outcome="completed", epochs=3):
    """A run whose val_acc folds reach ``folds`` at its last epoch, lower before."""
    out = {}
    for step in range(1, epochs + 1):
        shift = 0.1 * (epochs - step)
        out[step] = {"epoch": step, **rows("val_acc", [f - shift for f in folds])}
    return RunView(tid, role, outcome, {**BASE_CFG, **config}, out)


def sweep(*trials, expected="val_acc >= baseline + 0.005",
          hypothesis="Dropout improves accuracy"):
    base = run("b", {}, [0.90, 0.91, 0.92], role="baseline")
    return assess(metric="val_acc", goal="maximize", expected=expected, hypothesis=hypothesis,
                  runs=[base, *trials], folds=3, parameters=PARAMS, baseline=BASE_CFG)


def test_the_verdict_tests_the_parameter_the_hypothesis_names() -> None:
    best = run("both", {"lr": 0.01, "dropout": 0.3}, [0.99, 0.99, 0.995])  # best, two changes
    only = run("dropout-only", {"dropout": 0.3}, [0.95, 0.955, 0.97])
    verdict = sweep(best, only)
    assert verdict.factors == ("dropout",) and verdict.trial_id == "dropout-only"
    assert verdict.status == "confirmed", verdict.reason
    assert verdict.reason.startswith("Tests dropout (one factor")
    assert "changed only dropout 0 → 0.3" in verdict.reason
    assert verdict.config["dropout"] == 0.3 and verdict.config["lr"] == 0.001


def test_without_a_one_factor_trial_the_verdict_says_what_to_run() -> None:
    best = run("both", {"lr": 0.01, "dropout": 0.3}, [0.99, 0.99, 0.995])
    verdict = sweep(best)
    assert verdict.status == "inconclusive" and verdict.comparison is None
    assert "no trial changed only dropout" in verdict.reason
    assert verdict.config == {**BASE_CFG, "dropout": 0.3}  # what the confirmation runs


def test_without_a_named_parameter_it_says_it_judges_the_best_configuration() -> None:
    best = run("both", {"lr": 0.01, "dropout": 0.3}, [0.99, 0.99, 0.995])
    verdict = sweep(best, hypothesis="a tuned network is better")
    assert verdict.status == "confirmed" and verdict.factors == ()
    assert verdict.reason.startswith("Judges the best configuration (trial both, which "
                                     "changed dropout 0 → 0.3, lr 0.001 → 0.01), not a single "
                                     "factor")


# ------------------------------------------------------------------ matched budgets (item 2)


def test_an_early_stopped_trial_is_judged_against_the_baseline_at_its_own_epoch() -> None:
    base = run("b", {}, [0.90, 0.91, 0.92], role="baseline", epochs=9)
    cut = run("cut", {"lr": 0.01}, [0.70, 0.71, 0.72], outcome="early_stopped", epochs=3)
    verdict = assess(metric="val_acc", goal="maximize", expected="val_acc >= baseline",
                     runs=[base, cut], folds=3, parameters=PARAMS, baseline=BASE_CFG)
    assert verdict.step == 3 and "At epoch 3 (reached by both)" in verdict.reason
    # the baseline at epoch 3 (0.31), not at its last epoch 9 (0.91): the cut trial
    # (0.71 at epoch 3) is ahead at the same budget, not "worse, p = 0.0005"
    assert verdict.comparison.baseline_mean == pytest.approx(0.31)
    assert verdict.comparison.diff == pytest.approx(0.40) and verdict.comparison.better


def test_the_best_is_chosen_among_the_trials_that_ran_deepest() -> None:
    base = run("b", {}, [0.90, 0.91, 0.92], role="baseline", epochs=9)
    full = run("full", {"lr": 0.01}, [0.95, 0.95, 0.96], epochs=9)
    cut = run("cut", {"lr": 0.02}, [0.99, 0.99, 0.99], outcome="early_stopped", epochs=2)
    verdict = assess(metric="val_acc", goal="maximize", expected="", runs=[base, cut, full],
                     folds=3, parameters=PARAMS, baseline=BASE_CFG)
    assert verdict.trial_id == "full" and verdict.step == 9
