"""The sweep spec: W&B sweep syntax plus orch's fields, parsed into frozen, typed objects.

The pipeline (see ``_parse``): ``_yaml`` reads text safely (lines kept, limits
enforced), ``_overrides`` applies ``--set``, ``_shapes`` checks each section's shape,
and the section modules (``_sections``, ``_objectives``, ``_parameters``,
``_conditions``, ``_early``, ``_running``) check what depends on several values and
build ``_model``'s frozen objects, reporting every problem at once through
``_issues``. ``_space`` is the parameter space's logic (conditions, grids, nesting)
and ``_rules`` the grammar of ``expected:`` and ``metric_constraints:``. Importing
this package imports neither Ray nor MLflow, so ``orch validate`` is instant.
"""

from orchestrator.sweepspec._model import (
    CONDITIONAL_METHODS,
    CV,
    DEFAULT_Q,
    DEFAULT_RUN_CAP,
    DISTRIBUTIONS,
    METHODS,
    METRIC_OPTIONAL_METHODS,
    MULTI_OBJECTIVE_METHODS,
    PBT,
    POPULATION_METHODS,
    EarlyTerminate,
    Metric,
    Parameter,
    Resources,
    SweepSpec,
)
from orchestrator.sweepspec._parse import load_spec, slugify
from orchestrator.sweepspec._rules import Rule, parse_rule
from orchestrator.sweepspec._space import (
    active,
    baseline_config,
    constants,
    flatten,
    grid_configs,
    nest,
    quantize,
    same,
    sampling_order,
)

__all__ = [
    "CONDITIONAL_METHODS",
    "CV",
    "DEFAULT_Q",
    "DEFAULT_RUN_CAP",
    "DISTRIBUTIONS",
    "METHODS",
    "METRIC_OPTIONAL_METHODS",
    "MULTI_OBJECTIVE_METHODS",
    "PBT",
    "POPULATION_METHODS",
    "EarlyTerminate",
    "Metric",
    "Parameter",
    "Resources",
    "Rule",
    "SweepSpec",
    "active",
    "baseline_config",
    "constants",
    "flatten",
    "grid_configs",
    "load_spec",
    "nest",
    "parse_rule",
    "quantize",
    "same",
    "sampling_order",
    "slugify",
]
