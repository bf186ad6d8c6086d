"""orch: disciplined hyperparameter search for deep learning.

The public Python API lives here and nowhere else; see ``__all__``.
"""

from orchestrator._context import (
    artifact_dir,
    capture_reports,
    cv_settings,
    report,
    set_tag,
    split_seed,
    trial_seed,
)
from orchestrator.errors import OrchError, SpecError

__all__ = [
    "OrchError",
    "SpecError",
    "artifact_dir",
    "capture_reports",
    "cv_settings",
    "report",
    "set_tag",
    "split_seed",
    "trial_seed",
]
__version__ = "0.1.0"
