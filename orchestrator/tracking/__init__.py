"""MLflow, and only here: recording sweeps and reading them back.

========================  ====================================================
``_recorder``             the driver's writer: one parent run, one run per trial
``_journal``              every point on this machine's disk before MLflow has it
``_baseline``             a baseline given as a recorded run, checked first
``_review``               the reader: list, find, export, the UI server
``_store``                what the method layer and the CLI read and write
========================  ====================================================

The only package that imports MLflow (``tests/test_architecture.py`` checks it).
"""

from orchestrator.tracking._baseline import BaselineRun, check_baseline_run
from orchestrator.tracking._recorder import (
    DEFAULT_TRACKING_URI,
    EFFECTIVE_SPEC,
    Recorder,
    git_state,
    resolve_tracking_uri,
)
from orchestrator.tracking._review import (
    SweepNotFoundError,
    SweepSummary,
    export_sweep,
    find_sweep,
    list_sweeps,
    serve_ui,
    storage_exists,
)
from orchestrator.tracking._store import Store, resumable_sweep

__all__ = [
    "DEFAULT_TRACKING_URI",
    "EFFECTIVE_SPEC",
    "BaselineRun",
    "Recorder",
    "Store",
    "SweepNotFoundError",
    "SweepSummary",
    "check_baseline_run",
    "export_sweep",
    "find_sweep",
    "git_state",
    "list_sweeps",
    "resolve_tracking_uri",
    "resumable_sweep",
    "serve_ui",
    "storage_exists",
]
