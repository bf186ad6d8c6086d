"""``orch dashboard``: Optuna's dashboard over the study a sweep kept.

The sweep's parent run names its study's storage (``orch.optuna_storage``); the study is
named after the sweep id. optuna-dashboard is started through its public
``run_server`` on 127.0.0.1, in its own session, like the MLflow UI.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from orchestrator.errors import TrackingError
from orchestrator.tracking._server import LocalServer, free_port, port_taken, start_server

__all__ = ["STORAGE_TAG", "serve_dashboard"]

STORAGE_TAG = "orch.optuna_storage"
_RUN = ("import sys, optuna_dashboard; from orchestrator.engine._study import open_storage; "
        "optuna_dashboard.run_server(open_storage(sys.argv[1]), host=sys.argv[2], "
        "port=int(sys.argv[3]))")


def serve_dashboard(storage_url: str, sweep_id: str, *, host: str = "127.0.0.1",
                    port: int = 8080, timeout_s: float = 60.0) -> tuple[LocalServer, str]:
    """Serve the study ``sweep_id`` kept in ``storage_url``; returns the server and the
    address of the study's own page."""
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise TrackingError("optuna-dashboard is not installed in this Python "
                            f"({sys.executable}); install it with: "
                            f"{sys.executable} -m pip install optuna-dashboard")
    study_id = _study_id(storage_url, sweep_id)
    if port and port_taken(host, port):
        raise TrackingError(f"cannot start Optuna's dashboard on {host}:{port}: something "
                            "already listens there; pass --port 0 to pick a free port")
    port = port or free_port(host)
    argv = [sys.executable, "-c", _RUN, storage_url, host, str(port)]
    env = {**os.environ, "DO_NOT_TRACK": "true"}
    server = start_server(argv, what=f"Optuna's dashboard over {storage_url}", host=host,
                          port=port, ready_paths=("/api/studies",), timeout_s=timeout_s,
                          env=env)
    return server, f"{server.url}/dashboard/studies/{study_id}"


def _study_id(storage_url: str, sweep_id: str) -> int:
    """The study's id in its storage, or a TrackingError saying what is missing."""
    import optuna

    from orchestrator.engine._study import open_storage

    path = Path(storage_url[len("sqlite:///"):] if storage_url.startswith("sqlite:///")
                else storage_url)
    if "://" not in storage_url or storage_url.startswith("sqlite:///"):
        if not path.is_file():
            raise TrackingError(f"the sweep's Optuna study was kept in {path}, which no longer "
                                "exists; the sweep's trials are still in MLflow (orch ui)")
    try:
        return open_storage(storage_url).get_study_id_from_name(sweep_id)
    except KeyError:
        raise TrackingError(f"{storage_url} holds no study named {sweep_id}") from None
    except optuna.exceptions.OptunaError as exc:
        raise TrackingError(f"cannot read the Optuna storage {storage_url}: {exc}") from exc
