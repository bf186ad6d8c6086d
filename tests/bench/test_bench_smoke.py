"""Every benchmark of bench/run.py runs at its smallest size and returns its figures.

These check that the benchmarks work, never how fast anything is: speed is
measured by ``python bench/run.py`` as ratios (see bench/README.md).
"""

from __future__ import annotations

import math

import pytest

from bench import run as bench

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


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
    assert all(row["fold_epochs"] > 0 for row in out["early_stopping"])  # empty at smoke size


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


def test_memory(smoke):
    out = smoke("memory")
    systems = {row["system"] for row in out["rows"]}
    assert "orch (tracking on, SQLite)" in systems
    traced = [row for row in out["rows"] if row["traced"]]
    assert traced and all("by_package" in row and row["top_sites"] for row in traced)
    orch = next(row for row in traced if row["system"].startswith("orch"))
    assert orch["objects"]["records"] > 0 and orch["objects"]["record.total"] > 0


def test_startup(smoke):
    out = smoke("startup")
    assert {row["system"] for row in out["steady"]["rows"]} == {"orch, tracking on (SQLite)"}
    assert out["imports"]["stages"] and out["imports"]["packages"]
    run = out["timelines"][0]
    assert run["rc"] == 0, run["tail"]
    names = {m["name"] for m in run["marks"]}
    assert {"import orchestrator.cli", "ensure_ray (ray.init)", "Tuner.fit"} <= names
    assert run["first_trial_s"] > 0


def test_mf(smoke):
    out = smoke("mf")
    systems = {row["system"] for row in out["rows"]}
    assert "orch TPE+ASHA, stopped told as pruned (proposed)" in systems
    assert any(s.startswith("Optuna") for s in systems)
    assert all(row["regret@1"] >= 0 for row in out["rows"])  # never below the optimum


def test_parallel(smoke):
    out = smoke("parallel")
    systems = {row["system"] for row in out["rows"]}
    assert {"orch searcher, replayed", "orch sweep (Ray)", "optuna n_jobs"} <= systems
    assert all(row["best_median"] >= -3.32237 - 1e-6 for row in out["rows"])


def test_server(smoke):
    out = smoke("server")
    assert out["sweep"]["completed"] == out["trials"] and not out["sweep"]["problems"]
    assert out["sweep"]["per_trial"] > 0
    assert out["batched_matches_export"]


def test_mf_functions_have_their_published_optima():
    import math as m

    from bench import _trainables as T

    assert abs(T.branin_mf_value(m.pi, 2.275, 1.0) - 0.397887) < 1e-6
    h6 = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
    assert abs(T.hartmann6_mf_value(h6, 1.0) - (-3.32237)) < 1e-4
    assert T.hartmann6_mf_value(h6, 0.5) > T.hartmann6_mf_value(h6, 1.0)  # lower z, worse


def test_gpu_check_packing_trainable_runs_on_cpu():
    """The packing trainable of bench/gpu_check.py at its CPU size, outside Ray."""
    from bench import gpu_check
    from orchestrator import capture_reports

    with capture_reports(metric="loss") as got:
        gpu_check.packing_trainable({**gpu_check.CPU_SIZE, "lr": 0.01})
    last = got.reports[-1]
    assert last["steps_done"] == gpu_check.CPU_SIZE["steps"] and last["images_per_s"] >= 0
