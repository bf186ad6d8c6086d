"""The sweep spec: W&B sweep syntax plus orch's fields, parsed into frozen, typed objects.

Importing this package imports neither Ray nor MLflow, so ``orch validate`` is instant.
"""

from orchestrator.spec._model import (
    CONDITIONAL_METHODS,
    CV,
    DISTRIBUTIONS,
    METHODS,
    EarlyTerminate,
    Metric,
    Parameter,
    Resources,
    SweepSpec,
)
from orchestrator.spec._parse import DEFAULT_RUN_CAP, load_spec

__all__ = [
    "CONDITIONAL_METHODS",
    "CV",
    "DEFAULT_RUN_CAP",
    "DISTRIBUTIONS",
    "METHODS",
    "EarlyTerminate",
    "Metric",
    "Parameter",
    "Resources",
    "SweepSpec",
    "load_spec",
]
