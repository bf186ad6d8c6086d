"""PBT's explore step stays inside the spec's ranges (Ray's perturbation does not)."""

from __future__ import annotations

import cloudpickle

from orchestrator.engine.raytune._population import InRange, population_scheduler
from orchestrator.sweepspec import load_spec

SPEC = load_spec({
    "trainable": "digits_mlp", "method": "pbt", "metric": {"name": "val_loss"}, "run_cap": 4,
    "parameters": {"momentum": {"min": 0.0, "max": 0.95}, "lr": {
        "distribution": "log_uniform_values", "min": 0.001, "max": 0.1},
        "model": {"parameters": {"width": {"distribution": "q_uniform", "min": 16,
                                           "max": 128, "q": 16},
                                 "depth": {"min": 1, "max": 3}}},
        "optimizer": {"values": ["sgd", "adam"]}}})


def test_explored_values_are_brought_back_into_range_and_onto_their_grid():
    fix = InRange([p for p in SPEC.parameters if not p.is_constant])
    config = {"momentum": 0.867 * 1.2, "lr": 0.09 * 1.2, "optimizer": "sgd",
              "model": {"width": 128 * 1.2, "depth": 3.6}}
    assert fix(config) == {"momentum": 0.95, "lr": 0.1, "optimizer": "sgd",
                           "model": {"width": 128.0, "depth": 3}}
    assert fix({"momentum": 0.5, "lr": 0.01, "model": {"width": 45.0, "depth": 2}}) == \
        {"momentum": 0.5, "lr": 0.01, "model": {"width": 48.0, "depth": 2}}


def test_the_scheduler_with_its_explore_step_survives_tunes_pickle():
    scheduler = population_scheduler(SPEC, "abc")
    again = cloudpickle.loads(cloudpickle.dumps(scheduler))
    assert again._custom_explore_fn({"momentum": 2.0})["momentum"] == 0.95
