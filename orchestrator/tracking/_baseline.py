"""A baseline given as a recorded run (``baseline: <run id>``), checked before anything runs.

Read through ``MlflowClient`` from the store the sweep records to. Problems are
refused with what is wrong and what to do; a run that can be used but may not
compare well (another experiment, another metric goal) is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import TrackingError

__all__ = ["BaselineRun", "check_baseline_run"]


@dataclass(frozen=True)
class BaselineRun:
    run_id: str
    value: float
    fingerprint: str
    metrics: dict[str, float]
    warnings: list[str] = field(default_factory=list)


def check_baseline_run(run_id: str, *, tracking_uri: str, experiment: str,
                       metric: str) -> BaselineRun:
    """The baseline run's metric, or :class:`TrackingError` saying what is wrong with it."""
    from orchestrator.tracking._recorder import resolve_tracking_uri
    from orchestrator.tracking._review import _client

    uri = resolve_tracking_uri(tracking_uri)
    try:
        client: Any = _client(uri)
    except TrackingError as exc:
        raise TrackingError(f"`baseline: {run_id}` names a recorded run, but {exc}; point "
                            "--tracking-uri at the store that run is in") from None
    try:
        run = client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001 - MlflowException, connection errors
        raise TrackingError(f"`baseline: {run_id}`: no such run in {uri} "
                            f"({type(exc).__name__}); copy the run id from `orch ls` or the "
                            "MLflow UI of this store") from None
    if run.info.lifecycle_stage == "deleted":
        raise TrackingError(f"`baseline: {run_id}` is a deleted run; restore it (mlflow runs "
                            "restore --run-id ...) or name another baseline")
    value = run.data.metrics.get(metric)
    if value is None:
        raise TrackingError(f"`baseline: {run_id}` has no metric {metric!r} to compare with; "
                            f"it has: {', '.join(sorted(run.data.metrics)) or 'no metrics'}")
    warnings = []
    exp = client.get_experiment(run.info.experiment_id)
    if exp is not None and exp.name != experiment:
        warnings.append(f"the baseline run {run_id} belongs to experiment {exp.name!r}, not this "
                        f"sweep's {experiment!r}: make sure it ran on the same data and budget")
    if run.info.status != "FINISHED":
        warnings.append(f"the baseline run {run_id} is {run.info.status}, not FINISHED: its "
                        f"{metric} may be from before its last epoch")
    return BaselineRun(run_id=run_id, value=float(value),
                       fingerprint=run.data.tags.get("orch.split_fingerprint", ""),
                       metrics=dict(run.data.metrics), warnings=warnings)
