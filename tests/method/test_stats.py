"""Baseline statistics on data whose answers are known by hand."""

from __future__ import annotations

import math

import pytest

from orchestrator.method import compare_one_sample, compare_paired
from orchestrator.method._stats import noise_floor

T_975_DF2 = 4.302652729749462  # Student t, 97.5% quantile, 2 degrees of freedom
T_975_DF3 = 3.182446305284263


def test_paired_t_on_known_differences() -> None:
    # differences 1, 2, 3: mean 2, sd 1, n 3 -> t = 2 / (1/sqrt 3) = 3.4641, p(df 2) = 0.07418
    c = compare_paired([2, 4, 6], [1, 2, 3], metric="val_acc", goal="maximize")
    half = T_975_DF2 / math.sqrt(3)
    assert c.diff == pytest.approx(2.0)
    assert c.ci == pytest.approx((2 - half, 2 + half))
    assert c.p_value == pytest.approx(0.07417990022744854)
    assert c.n == 3 and c.noise == pytest.approx(1.0)  # baseline 1, 2, 3: sd 1
    assert not c.better and not c.worse  # the interval contains 0
    assert "paired t-test over 3 folds" in c.test


def test_one_sample_for_a_single_seed_trial_against_repeats() -> None:
    base = [0.5, 0.6, 0.7, 0.8]  # mean 0.65, sd 0.1291
    c = compare_one_sample(1.0, base, metric="val_loss", goal="minimize")
    half = T_975_DF3 * noise_floor(base) / 2
    assert c.diff == pytest.approx(0.35)
    assert c.ci == pytest.approx((0.35 - half, 0.35 + half))
    assert c.p_value == pytest.approx(0.012307551821486285)
    assert c.worse and not c.better  # a loss 0.35 higher, interval above 0
    assert "one-sample" in c.test and "4 baseline seeds" in c.test


@pytest.mark.parametrize("goal, trial, better", [
    ("minimize", [0.10, 0.11, 0.12], True),
    ("maximize", [0.10, 0.11, 0.12], False),
])
def test_direction_follows_the_goal(goal, trial, better) -> None:
    c = compare_paired(trial, [0.20, 0.22, 0.21], metric="m", goal=goal)
    assert c.better is better and c.worse is not better


def test_identical_differences_give_an_exact_interval() -> None:
    c = compare_paired([1.5, 2.5], [1.0, 2.0], metric="m", goal="maximize")
    assert c.ci == (0.5, 0.5) and c.p_value == 0.0 and c.better


@pytest.mark.parametrize("trial, base", [([1.0], [1.0]), ([1, 2], [1, 2, 3]),
                                         ([1, math.nan], [1, 2])])
def test_bad_inputs_are_refused(trial, base) -> None:
    with pytest.raises(ValueError):
        compare_paired(trial, base, metric="m")
