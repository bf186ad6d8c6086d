"""Shared fixtures: one local Ray instance for the whole session, temp MLflow stores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

RAY_CPUS = 2  # the machine's cores; trials ask for 1 CPU each


@pytest.fixture(scope="session")
def ray_session():
    """Start Ray once (about 3 s) and share it; the engine sees it already running."""
    import ray

    from orchestrator.engine import ensure_ray

    if not ray.is_initialized():
        # Workers import test trainables (tests/_trainables.py) by module name.
        path = os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")])
        # address="local": a Ray of the tests' own, never a cluster some `ray start` left
        # (Ray would otherwise connect to the address in /tmp/ray/ray_current_cluster).
        ray.init(address="local", num_cpus=RAY_CPUS, include_dashboard=False, logging_level="ERROR",
                 _node_ip_address="127.0.0.1", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    ensure_ray(None)
    yield ray
    ray.shutdown()


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store and a working directory of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def pytest_configure(config):
    os.environ.setdefault("PYTHONHASHSEED", "0")
    # Test traffic stays on this machine: MLflow 3's client otherwise fetches its telemetry
    # config from config.mlflow-telemetry.io (seen in bench/README.md's server case).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
