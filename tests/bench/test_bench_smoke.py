"""Every benchmark of bench/run.py runs at its smallest size and returns its figures.

These check that the benchmarks work, never how fast anything is: speed is
measured by ``python bench/run.py`` as ratios (see bench/README.md).
"""

from __future__ import annotations

import math

import pytest

from bench import run as bench

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smoke(ray_session, tmp_path_factory):
    """Run one case at the smoke size in a folder of its own."""

    def go(name):
        return bench.run_case(name, "smoke", work=tmp_path_factory.mktemp(name))

    return go


def test_overhead(smoke):
    out = smoke("overhead")
    systems = {row["system"]: row for row in out["rows"]}
    assert systems["orch (tracking on, SQLite)"]["completed"] == 4
    assert systems["Ray Tune reuse_actors=True"]["completed"] == 4
    assert all(row["ms_per_trial"] > 0 for row in out["rows"])
    assert out["cli"]["rc"] == 0, out["cli"]["tail"]
    assert out["cli"]["to_first_trial_s"] > 0


def test_bookkeeping(smoke):
    out = smoke("bookkeeping")
    assert [row["completed"] for row in out["rows"]] == [2, 2]  # orch, Ray Tune reuse_actors
    assert all(row["ratio"] >= 1.0 for row in out["rows"])  # never under the ideal


def test_throughput(smoke):
    out = smoke("throughput")
    orch = [row for row in out["rows"] if row["system"].startswith("orch")]
    assert orch and all(row["received"] == row["sent"] for row in orch)
    assert all(row["stored_ratio"] == 1.0 for row in orch)


def test_tracking(smoke):
    out = smoke("tracking")
    assert out["order"] == ["on", "off"]
    assert out["ratio"] > 0


def test_kfold(smoke):
    out = smoke("kfold")
    assert [row["ratio"] > 0 for row in out["overhead"]] == [True] * 3
    assert all(row["fold_epochs"] > 0 for row in out["early_stopping"])


def test_target(smoke):
    out = smoke("target")
    assert out["digits"] and out["analytic"]
    assert all(math.isfinite(row["gap_median"]) and row["gap_median"] >= 0
               for row in out["analytic"])


def test_scale(smoke):
    out = smoke("scale")
    assert {row["sampler"] for row in out["ask"]} == {"tpe", "gp"}
    assert all(row["ask_ms_median"] > 0 for row in out["ask"])
    assert all(row["rss_peak_mb"] > 0 for row in out["memory"])
