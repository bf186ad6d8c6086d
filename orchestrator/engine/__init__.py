"""The engine: from a validated spec to trials run, watched and recorded.

Ray-free at import. The core (records, the ledger and its listeners, the live
view, sampling, checkpoints, the trial-side context, the diagnosis) needs no Ray;
everything that does lives in :mod:`orchestrator.engine.raytune`, loaded when a
sweep runs.

>>> from orchestrator.engine import run_sweep    # doctest: +SKIP
>>> result = run_sweep(load_spec("search_spaces/quick.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from orchestrator.engine._context import derive_seed
from orchestrator.engine._diagnosis import gradient_health
from orchestrator.engine._env import prepare_driver
from orchestrator.engine._ledger import REPEAT_KEY, Ledger, Listener
from orchestrator.engine._records import (
    OUTCOMES,
    USABLE,
    Resume,
    SweepResult,
    TrialRecord,
    best_record,
)

__all__ = ["OUTCOMES", "REPEAT_KEY", "USABLE", "Ledger", "Listener", "Resume", "SweepResult",
           "TrialRecord", "best_record", "derive_seed", "ensure_ray", "gradient_health",
           "prepare_driver", "run_sweep"]


def run_sweep(spec: Any, *, address: str | None = None, **kwargs: Any) -> SweepResult:
    """Run a sweep on Ray Tune; see :func:`orchestrator.engine.raytune.run_sweep`.

    A baseline given as a recorded run is checked first, before Ray starts.
    """
    if isinstance(spec.baseline, str) and spec.metric is not None and \
            kwargs.get("resume") is None:
        from orchestrator.tracking import check_baseline_run

        check_baseline_run(spec.baseline.strip(), tracking_uri=kwargs.get("tracking_uri"),
                           experiment=spec.experiment, metric=spec.metric.name)
    prepare_driver(address)
    from orchestrator.engine.raytune import run_sweep as run

    return run(spec, address=address, **kwargs)


def ensure_ray(address: str | None = None) -> None:
    """Start (or join) Ray as a sweep would; see :mod:`orchestrator.engine.raytune`."""
    prepare_driver(address)
    from orchestrator.engine.raytune import ensure_ray as start

    start(address)
