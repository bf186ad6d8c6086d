"""Sampling: define-by-run with conditionals, W&B distributions, grids, seeds (no Ray)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter

import optuna
import pytest

from orchestrator.engine._sampling import OptunaSpace, make_sampler
from orchestrator.sweepspec import flatten, grid_configs, nest
from orchestrator.sweepspec import load_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)


def make(params, method="random", **extra):
    return load_spec({"trainable": "digits_mlp", "method": method,
                      "metric": {"name": "loss"}, "parameters": params, **extra})


def draw(spec, n, seed_override=None):
    study = optuna.create_study(sampler=make_sampler(spec))
    space = OptunaSpace(spec.parameters, method=spec.method)
    out = []
    for _ in range(n):
        trial = study.ask()
        cfg = nest(space(trial), sep="/")
        study.tell(trial, float(len(out)))
        out.append(cfg)
    return out


CONDITIONAL = {
    "opt": {"values": ["sgd", "adam"]},
    "momentum": {"min": 0.5, "max": 0.99, "when": {"opt": "sgd"}},
    "sched": {"values": ["none", "step"]},
    "gamma": {"min": 0.1, "max": 0.9, "when": {"sched": "step", "opt": ["sgd", "adam"]}},
}


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_conditional_parameters_exist_only_when_their_condition_holds(method):
    configs = draw(make(CONDITIONAL, method=method), 30)
    for cfg in configs:
        assert ("momentum" in cfg) == (cfg["opt"] == "sgd"), cfg
        assert ("gamma" in cfg) == (cfg["sched"] == "step"), cfg
    assert {c["opt"] for c in configs} == {"sgd", "adam"}


def test_same_seed_same_configs_for_random_and_tpe():
    for method in ("random", "tpe"):
        spec = make(CONDITIONAL, method=method, seed=3)
        assert draw(spec, 15) == draw(spec, 15)
        other = make(CONDITIONAL, method=method, seed=4)
        assert draw(spec, 15) != draw(other, 15)


def test_same_seed_same_configs_across_processes():
    code = ("import optuna; optuna.logging.set_verbosity(optuna.logging.ERROR);"
            "from test_space import make, draw, CONDITIONAL;"
            "print(draw(make(CONDITIONAL, method='tpe', seed=5), 12))")
    import pathlib

    here = pathlib.Path(__file__).parent
    runs = {subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True,
                           text=True, check=True).stdout for _ in range(2)}
    assert len(runs) == 1
    assert runs.pop().strip() == str(draw(make(CONDITIONAL, method="tpe", seed=5), 12))


def test_probabilities_are_honoured_by_random():
    spec = make({"o": {"values": ["a", "b", "c"], "probabilities": [0.7, 0.2, 0.1]}})
    counts = Counter(c["o"] for c in draw(spec, 2000))
    assert abs(counts["a"] / 2000 - 0.7) < 0.04
    assert abs(counts["c"] / 2000 - 0.1) < 0.03


@pytest.mark.parametrize("dist,kw,check", [
    ("int_uniform", {"min": 2, "max": 5}, lambda v: isinstance(v, int) and 2 <= v <= 5),
    ("uniform", {"min": -1.0, "max": 1.0}, lambda v: -1 <= v <= 1),
    ("q_uniform", {"min": 0, "max": 1, "q": 0.25}, lambda v: v in (0, 0.25, 0.5, 0.75, 1)),
    ("log_uniform", {"min": -3, "max": 0}, lambda v: math.exp(-3) <= v <= 1),
    ("log_uniform_values", {"min": 1e-4, "max": 1e-1}, lambda v: 1e-4 <= v <= 1e-1),
    ("q_log_uniform_values", {"min": 1, "max": 1000, "q": 1},
     lambda v: isinstance(v, int) and 1 <= v <= 1000),
    ("normal", {"mu": 10, "sigma": 0.1}, lambda v: 9 < v < 11),
    ("q_normal", {"mu": 10, "sigma": 3, "q": 2}, lambda v: v % 2 == 0),
    ("log_normal", {"mu": 0, "sigma": 0.5}, lambda v: v > 0),
    ("categorical", {"values": [[1, 2], {"a": 1}, "x"]}, lambda v: v in ([1, 2], {"a": 1}, "x")),
    ("constant", {"value": {"k": [1]}}, lambda v: v == {"k": [1]}),
])
def test_each_distribution_samples_inside_its_support(dist, kw, check):
    spec = make({"p": {"distribution": dist, **kw}})
    values = [c["p"] for c in draw(spec, 200)]
    bad = [v for v in values if not check(v)]
    assert not bad, bad[:5]
    if dist == "normal":
        mean = sum(values) / len(values)
        assert abs(mean - 10) < 0.03


def test_grid_expands_conditionals_without_duplicates():
    spec = make({
        "opt": {"values": ["sgd", "adam"]},
        "momentum": {"values": [0.8, 0.9], "when": {"opt": "sgd"}},
        "depth": {"distribution": "int_uniform", "min": 1, "max": 2},
    }, method="grid")
    configs = grid_configs(spec.parameters)
    assert len(configs) == 6  # sgd x 2 momenta x 2 depths + adam x 2 depths
    assert len({str(sorted(c.items())) for c in configs}) == 6
    assert all(("momentum" in c) == (c["opt"] == "sgd") for c in configs)
    assert spec.run_cap == 6  # conditionals shrink the grid and so the budget


def test_nest_and_flatten_are_inverse():
    flat = {"a": 1, "m.width": 3, "m.inner.x": [1]}
    assert nest(flat) == {"a": 1, "m": {"width": 3, "inner": {"x": [1]}}}
    assert flatten(nest(flat)) == flat
