"""The only Ray code in orch: Ray start-up, the search and scheduler, the callbacks,
the trial wrapper and the run. Importing it imports Ray (call
:func:`orchestrator.engine.prepare_driver` first: Ray reads its settings on import).
"""

from orchestrator.engine.raytune._callbacks import Guard, TuneCallback, describe_error
from orchestrator.engine._records import Resume
from orchestrator.engine.raytune._run import CHECKPOINTS_KEPT, new_sweep_id, run_sweep
from orchestrator.engine.raytune._search import BaselineFirst, build_scheduler, build_search
from orchestrator.engine.raytune._start import (
    DEFAULT_STORAGE,
    check_resources,
    ensure_ray,
    trial_resources,
)
from orchestrator.engine.raytune._trial import make_trial_function

__all__ = [
    "CHECKPOINTS_KEPT",
    "DEFAULT_STORAGE",
    "BaselineFirst",
    "Guard",
    "Resume",
    "TuneCallback",
    "build_scheduler",
    "build_search",
    "check_resources",
    "describe_error",
    "ensure_ray",
    "make_trial_function",
    "new_sweep_id",
    "run_sweep",
    "trial_resources",
]
