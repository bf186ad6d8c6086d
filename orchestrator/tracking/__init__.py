"""MLflow: recording sweeps (the driver's :class:`Recorder`) and reading them back.

The only package that imports MLflow.
"""

from orchestrator.tracking._baseline import BaselineRun, check_baseline_run
from orchestrator.tracking._recorder import (
    DEFAULT_TRACKING_URI,
    EFFECTIVE_SPEC,
    Recorder,
    resolve_tracking_uri,
)

__all__ = ["DEFAULT_TRACKING_URI", "EFFECTIVE_SPEC", "BaselineRun", "Recorder",
           "check_baseline_run", "resolve_tracking_uri"]
