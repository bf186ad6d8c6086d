"""The public API is exactly what is intended, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orchestrator

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = {
    # errors
    "Issue", "MetricMissingError", "NonFiniteMetricError", "OrchError", "ResourceError",
    "SpecError", "TrackingError", "TrainableImportError", "TrialError",
    # the spec
    "SweepSpec", "load_spec",
    # running a sweep
    "sweep",
    # inside a trial
    "artifact_dir", "capture_reports", "cv_settings", "load_checkpoint", "report", "set_tag",
    "split_seed", "trial_seed",
}


def test_all_is_exactly_the_intended_names_sorted():
    assert set(orchestrator.__all__) == EXPECTED
    assert len(orchestrator.__all__) == len(EXPECTED)  # no duplicates
    assert orchestrator.__all__ == sorted(orchestrator.__all__)


def test_every_exported_name_is_importable_and_documented():
    for name in orchestrator.__all__:
        obj = getattr(orchestrator, name)
        assert obj.__doc__, name
    namespace: dict = {}
    exec("from orchestrator import *", namespace)  # noqa: S102 - a fixed statement
    assert EXPECTED <= set(namespace)


def test_importing_orchestrator_imports_neither_ray_mlflow_nor_torch():
    code = ("import sys, orchestrator; "
            "print([m for m in ('ray', 'mlflow', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60).stdout.strip()
    assert out == "[]"
