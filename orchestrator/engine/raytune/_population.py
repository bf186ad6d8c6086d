"""Population-based training: ``method: pbt`` and ``method: pb2`` (Ray Tune's schedulers).

The population starts from random configs of the spec's parameters (the baseline,
if any, first: it is kept out of the population by the Referee and trains
untouched). Every ``pbt.interval`` epochs the bottom ``pbt.quantile`` of the
population copies a top trial's checkpoint (the exploit) and perturbs its
hyperparameters (the explore): PBT by mutating them (``resample_probability``:
drawn afresh), PB2 with a GP bandit over the continuous ranges. The exploit step
restores the checkpoints orch already writes (``fit_classifier``, and
``orchestrator.report(..., checkpoint=...)``). Each exploit is told to the ledger,
so a trial's run records where it copied from and its config over epochs.
"""

from __future__ import annotations

import math
from typing import Any

from ray import tune

from orchestrator.engine.raytune._private import population_scheduler_class
from orchestrator.errors import OrchError
from orchestrator.sweepspec import Parameter, SweepSpec, nest

__all__ = ["InRange", "population_scheduler", "population_search", "ray_domain"]


def ray_domain(p: Parameter) -> Any:
    """The Ray Tune search-space object (or constant) for one of the spec's parameters."""
    d = p.distribution
    if d == "constant":
        return p.value
    if d in ("categorical", "categorical_w_probabilities"):
        return tune.choice(list(p.values))
    if d == "int_uniform":
        return tune.randint(int(p.min), int(p.max) + 1)
    if d == "uniform":
        return tune.uniform(p.min, p.max)
    if d == "q_uniform":
        return tune.quniform(p.min, p.max, p.q or 1.0)
    if d == "log_uniform_values":
        return tune.loguniform(p.min, p.max)
    if d == "log_uniform":
        return tune.loguniform(math.exp(p.min), math.exp(p.max))
    if d == "q_log_uniform_values":
        return tune.qloguniform(p.min, p.max, p.q or 1.0)
    if d == "normal":
        return tune.randn(p.mu, p.sigma)
    raise OrchError(f"parameter {p.name!r}: distribution {d} has no population-based form; "
                    "use uniform, log_uniform_values, int_uniform, q_uniform or values")


def _space(spec: SweepSpec) -> dict[str, Any]:
    conditional = [p.name for p in spec.parameters if p.when]
    if conditional:
        raise OrchError(f"method {spec.method} cannot mutate conditional parameters "
                        f"({', '.join(conditional)}): remove their `when:`")
    return nest({p.name: ray_domain(p) for p in spec.parameters})


def population_search(spec: SweepSpec, base: dict[str, Any] | None
                      ) -> tuple[Any, dict[str, Any], int]:
    """Random starting configs for the population (the baseline first)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from orchestrator.engine.raytune._search import baseline_point

    points = [baseline_point(base, i) for i in range(spec.baseline_repeats)] if base else []
    generator = BasicVariantGenerator(points_to_evaluate=points or None,
                                      max_concurrent=spec.max_concurrent or 0,
                                      random_state=spec.seed)
    return generator, _space(spec), spec.run_cap + len(points)


def population_scheduler(spec: SweepSpec, sweep_id: str) -> Any:
    """Ray's PopulationBasedTraining or PB2, telling the ledger of every exploit."""
    settings = spec.pbt
    mutable = [p for p in spec.parameters if not p.is_constant]
    # metric and mode come from the Tuner's TuneConfig (Ray refuses them twice).
    common = dict(time_attr="training_iteration", perturbation_interval=settings.interval,
                  quantile_fraction=settings.quantile)
    if spec.method == "pb2":
        bounds = {p.name: [float(p.min), float(p.max)] for p in mutable
                  if p.min is not None and p.max is not None}
        if not bounds:
            raise OrchError("method pb2 needs at least one parameter with a continuous range "
                            "(min and max)")
        cls = population_scheduler_class("pb2")
        return cls(sweep_id, hyperparam_bounds=nest(bounds), **common)
    cls = population_scheduler_class("pbt")
    return cls(sweep_id, hyperparam_mutations=nest({p.name: ray_domain(p) for p in mutable}),
               resample_probability=settings.resample_probability, synch=False,
               log_config=False, custom_explore_fn=InRange(mutable), **common)


class InRange:
    """Ray's PBT perturbs a number by x0.8 or x1.2 without looking at its range (a momentum
    of 0.9 becomes 1.08): the explored config is brought back inside the spec's range, as
    a whole number for ``int_uniform`` and on the grid for ``q_*``. Picklable (Tune saves
    its scheduler for a resume)."""

    def __init__(self, params: list[Parameter]) -> None:
        self.bounds: dict[str, tuple[float, float, str, float | None]] = {}
        for p in params:
            lo_hi = _bounds(p)
            if lo_hi is not None:
                self.bounds[p.name] = (*lo_hi, p.distribution, p.q)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for name, (lo, hi, dist, q) in self.bounds.items():
            *heads, last = name.split(".")
            node = config
            for h in heads:
                node = node.get(h, {}) if isinstance(node, dict) else {}
            if not isinstance(node, dict) or not isinstance(node.get(last), (int, float)):
                continue
            value = min(max(float(node[last]), lo), hi)
            if dist.startswith("q_") and q:
                value = min(max(round(value / q) * q, lo), hi)
            node[last] = int(round(value)) if dist == "int_uniform" else value
        return config


def _bounds(p: Parameter) -> tuple[float, float] | None:
    d = p.distribution
    if d in ("uniform", "q_uniform", "int_uniform", "log_uniform_values",
             "q_log_uniform_values"):
        return float(p.min), float(p.max)  # type: ignore[arg-type]
    if d == "log_uniform":
        return math.exp(p.min), math.exp(p.max)  # type: ignore[arg-type]
    return None  # categorical (resampled, never perturbed out of its values) and normal
