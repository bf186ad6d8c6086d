"""Many trials with tracking on: the sweep finishes, every trial is recorded, and the
driver's memory grows by a bounded amount per trial. (2000 trials: bench/.)"""

from __future__ import annotations

import gc
import sys
import time

import pytest
from _trainables import quadratic

import orchestrator

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

TRIALS = 200
MAX_GROWTH_PER_TRIAL_KIB = 200  # a trial's record + its MLflow bookkeeping, generously


def _rss_kib(field="VmRSS"):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def test_a_200_trial_sweep_finishes_with_bounded_driver_memory(ray_session, store):
    spec = {"name": "load", "method": "random", "metric": {"name": "loss"}, "run_cap": TRIALS,
            "seed": 0, "parameters": {"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": 1}}}
    # a small sweep first, so one-off imports and caches are not counted as growth
    orchestrator.sweep({**spec, "run_cap": 4}, trainable=quadratic, tracking_uri=store)
    gc.collect()
    before = _rss_kib()
    started = time.perf_counter()
    result = orchestrator.sweep(spec, trainable=quadratic, tracking_uri=store)
    wall = time.perf_counter() - started
    gc.collect()
    growth = _rss_kib() - before
    assert result.ok and result.counts["completed"] == TRIALS
    assert not result.tracking_problems

    from mlflow import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id],
                              f"tags.`orch.sweep_id` = '{result.sweep_id}'", max_results=1000)
    assert len(runs) == TRIALS + 1
    per_trial = growth / TRIALS
    print(f"\n{TRIALS} trials: {wall:.1f} s ({wall / TRIALS * 1000:.0f} ms/trial), driver RSS "
          f"{before / 1024:.0f} -> {(before + growth) / 1024:.0f} MiB "
          f"(+{per_trial:.1f} KiB/trial), peak {_rss_kib('VmHWM') / 1024:.0f} MiB")
    assert per_trial < MAX_GROWTH_PER_TRIAL_KIB
