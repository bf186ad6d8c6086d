"""Sampling W&B's distributions as W&B defines them (wandb/sweeps ``params.py``), checked with
goodness-of-fit tests over many draws of Optuna's RandomSampler. No Ray."""

from __future__ import annotations

import math
from collections import Counter

import optuna
import pytest
from scipy import stats

from orchestrator.engine._sampling import OptunaSpace, inverse_cdf, make_sampler
from orchestrator.sweepspec import Parameter, load_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)
ALPHA = 1e-3  # a correct sampler fails a test this seldom


def draws(body: dict, n: int, *, seed: int = 0) -> list:
    spec = load_spec({"trainable": "digits_mlp", "method": "random", "seed": seed,
                      "metric": {"name": "loss"}, "parameters": {"x": body}})
    study = optuna.create_study(sampler=make_sampler(spec))
    space = OptunaSpace(spec.parameters, method="random")
    return [space(study.ask())["x"] for _ in range(n)]


def test_q_uniform_rounds_a_uniform_draw_so_the_ends_get_half_weight():
    values = draws({"distribution": "q_uniform", "min": 5, "max": 20, "q": 5}, 20_000)
    counts = Counter(values)
    assert set(counts) == {5, 10, 15, 20} and all(isinstance(v, int) for v in counts)
    observed = [counts[v] for v in (5, 10, 15, 20)]
    wandb = [n * 20_000 for n in (1 / 6, 1 / 3, 1 / 3, 1 / 6)]  # round(U(5, 20) / 5) * 5
    assert stats.chisquare(observed, wandb).pvalue > ALPHA
    equal = [5_000] * 4  # what equally likely grid points (the old sampling) would give
    assert stats.chisquare(observed, equal).pvalue < 1e-12


def test_inv_log_uniform_values_is_log_uniform_between_its_bounds():
    values = draws({"distribution": "inv_log_uniform_values", "min": 0.1, "max": 10}, 4_000)
    assert all(0.1 <= v <= 10 for v in values)
    # log(1/X) uniform on [log(1/max), log(1/min)]  <=>  log X uniform on [log min, log max]
    logs = [math.log(v) for v in values]
    assert stats.kstest(logs, stats.uniform(math.log(0.1), math.log(100)).cdf).pvalue > ALPHA


def test_inv_log_uniform_takes_exponents():
    values = draws({"distribution": "inv_log_uniform", "min": 0, "max": 7}, 4_000)
    assert all(math.exp(-7) <= v <= 1.0 for v in values)
    minus_logs = [-math.log(v) for v in values]  # log(1/X) uniform on [min, max]
    assert stats.kstest(minus_logs, stats.uniform(0, 7).cdf).pvalue > ALPHA


def test_beta_and_q_beta_follow_scipys_beta():
    values = draws({"distribution": "beta", "a": 8, "b": 2}, 4_000)
    assert stats.kstest(values, stats.beta(8, 2).cdf).pvalue > ALPHA
    q = draws({"distribution": "q_beta", "a": 2, "b": 8, "q": 0.05}, 2_000)
    assert all(abs(v / 0.05 - round(v / 0.05)) < 1e-9 for v in q)


def test_categorical_w_probabilities_honours_them():
    values = draws({"distribution": "categorical_w_probabilities", "values": ["a", "b", "c"],
                    "probabilities": [0.5, 0.3, 0.2]}, 10_000)
    counts = Counter(values)
    assert stats.chisquare([counts[k] for k in "abc"], [5_000, 3_000, 2_000]).pvalue > ALPHA


@pytest.mark.parametrize("p", [
    Parameter("a", "inv_log_uniform", min=0.0, max=7.0),
    Parameter("b", "inv_log_uniform_values", min=1e-4, max=1.0),
    Parameter("c", "beta", a=0.5, b=0.5),
    Parameter("d", "normal", mu=1.0, sigma=2.0),
    Parameter("e", "log_normal"),
])
def test_the_inverse_cdf_is_increasing_so_samplers_see_a_faithful_order(p):
    us = [i / 100 for i in range(1, 100)]
    xs = [inverse_cdf(p, u) for u in us]
    assert all(a < b for a, b in zip(xs, xs[1:]))


def test_same_seed_same_draws_for_the_new_distributions():
    body = {"distribution": "q_beta", "a": 2, "b": 3, "q": 0.1}
    assert draws(body, 20, seed=5) == draws(body, 20, seed=5)
    assert draws(body, 20, seed=5) != draws(body, 20, seed=6)
