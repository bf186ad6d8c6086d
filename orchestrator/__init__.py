"""orch: disciplined hyperparameter search for deep learning.

The public Python API lives here and nowhere else; see ``__all__``. Importing
``orchestrator`` imports neither Ray, MLflow nor torch.

>>> import orchestrator
>>> result = orchestrator.sweep("search_spaces/quick.yaml", run_cap=2)   # doctest: +SKIP
>>> result.best.config                                                    # doctest: +SKIP
"""

from importlib import metadata as _metadata

from orchestrator.engine._context import (
    artifact_dir,
    capture_reports,
    cv_settings,
    load_checkpoint,
    report,
    set_tag,
    split_seed,
    trial_seed,
)
from orchestrator.api import sweep
from orchestrator.errors import (
    Issue,
    MetricMissingError,
    NonFiniteMetricError,
    OrchError,
    ResourceError,
    SpecError,
    TrackingError,
    TrainableImportError,
    TrialError,
)
from orchestrator.sweepspec import SweepSpec, load_spec

__all__ = [
    "Issue",
    "MetricMissingError",
    "NonFiniteMetricError",
    "OrchError",
    "ResourceError",
    "SpecError",
    "SweepSpec",
    "TrackingError",
    "TrainableImportError",
    "TrialError",
    "artifact_dir",
    "capture_reports",
    "cv_settings",
    "load_checkpoint",
    "load_spec",
    "report",
    "set_tag",
    "split_seed",
    "sweep",
    "trial_seed",
]
try:
    __version__ = _metadata.version("orch")  # one version: pyproject.toml's
except _metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
