"""`orch dashboard`: Optuna's dashboard over the study a sweep kept."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from orchestrator.cli._common import EXIT_ERROR, SweepArg, TrackingOpt, fail, out, say
from orchestrator.errors import OrchError, TrackingError

__all__ = ["dashboard"]


def dashboard(
    sweep_ref: SweepArg,
    tracking_uri: TrackingOpt = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 8080,
) -> None:
    """Serve Optuna's dashboard on 127.0.0.1 over the study the sweep kept (tpe, bayes, gp,
    cmaes, random sweeps): its history, importance, Pareto front and plots, live."""
    from orchestrator.cli._records import _exit_on_signal
    from orchestrator.tracking import find_sweep, resolve_tracking_uri
    from orchestrator.tracking._dashboard import STORAGE_TAG, serve_dashboard

    uri = resolve_tracking_uri(tracking_uri)
    try:
        sweep = find_sweep(sweep_ref, tracking_uri=uri)
        storage = sweep.tags.get(STORAGE_TAG, "")
        if not storage:
            raise TrackingError(
                f"sweep {sweep.sweep_id} kept no Optuna study: its search "
                f"({sweep.tags.get('orch.method', '?')}) does not use Optuna (grid, pbt, pb2 "
                "and ablations do not), or an older orch recorded it; its trials are in "
                "MLflow (orch ui)")
        server, page = serve_dashboard(storage, sweep.sweep_id, port=port)
    except OrchError as exc:
        raise fail(exc, EXIT_ERROR) from None
    say(out, f"Optuna dashboard: {page}")
    say(out, f"study {sweep.sweep_id} in {storage}")
    say(out, "(Ctrl-C to stop)")
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM,
                                                                     signal.SIGHUP)}
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
