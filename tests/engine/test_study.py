"""The Optuna study a sweep keeps: where it lives, what it holds, and Optuna's dashboard
over it (Ray's OptunaSearch alone keeps it in memory: Ray issue 48500)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from _trainables import quadratic

import orchestrator
from orchestrator.engine._study import load_study, open_storage, study_url

SPEC = {"name": "kept", "method": "tpe", "metric": {"name": "loss"}, "run_cap": 5, "seed": 4,
        "max_concurrent": 2, "baseline": {"x": 0.0}, "points_to_evaluate": [{"x": 0.3}, {"x": -0.5}],
        "parameters": {"x": {"min": -1.0, "max": 1.0}, "epochs": {"value": 2}}}


def test_the_study_sits_beside_a_sqlite_store_else_in_the_sweep_folder(tmp_path):
    assert study_url(f"sqlite:///{tmp_path}/a/mlflow.db", tmp_path / "sweep") == \
        f"{tmp_path}/a/optuna.journal"
    for elsewhere in ("http://127.0.0.1:5000", None, "sqlite:///:memory:"):
        assert study_url(elsewhere, tmp_path / "sweep") == f"{tmp_path}/sweep/optuna.journal"


def test_a_journal_or_an_rdb_url_opens_and_a_missing_study_is_a_key_error(tmp_path):
    import optuna

    for where in (str(tmp_path / "j" / "optuna.journal"), f"sqlite:///{tmp_path / 'o.db'}"):
        with pytest.raises(KeyError):
            load_study(where, "nothing-here")
        optuna.create_study(storage=open_storage(where), study_name="s1")
        assert load_study(where, "s1").study_name == "s1"


@pytest.mark.e2e
def test_a_tpe_sweep_keeps_its_study_and_the_dashboard_serves_it(ray_session, store):
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from orchestrator.tracking._dashboard import serve_dashboard

    result = orchestrator.sweep(SPEC, trainable=quadratic, tracking_uri=store)
    client = MlflowClient(store)
    parent = client.get_run(result.parent_run_id)
    url = parent.data.tags["orch.optuna_storage"]
    assert url == study_url(store, Path("unused"))
    study = load_study(url, result.sweep_id)
    trials = study.get_trials()
    # The search's trials, each once, finished; the baseline (outside the search) is not told.
    assert [t.state for t in trials] == [TrialState.COMPLETE] * SPEC["run_cap"]
    runs = client.search_runs([result.experiment_id], "tags.`orch.role` = 'trial'")
    final = {r.data.tags["orch.trial_id"]: r.data.metrics["loss"] for r in runs
             if r.data.tags.get("orch.baseline") != "true"}
    assert {t.user_attrs["orch.trial_id"]: t.value for t in trials} == pytest.approx(final)
    assert study.best_value == pytest.approx(result.best.value("loss"))
    # points_to_evaluate were the search's first trials, in order (Optuna's enqueue_trial).
    assert [t.params["x"] for t in trials[:2]] == [0.3, -0.5]
    assert trials[0].system_attrs.get("fixed_params") == {"x": 0.3}

    server, page = serve_dashboard(url, result.sweep_id, port=0)
    with server:
        with urllib.request.urlopen(f"{server.url}/api/studies", timeout=10) as resp:
            listed = json.load(resp)["study_summaries"]
        assert result.sweep_id in {s["study_name"] for s in listed}
        assert page.startswith("http://127.0.0.1:") and page.endswith(
            f"/dashboard/studies/{study._study_id}")
    assert not server.running


@pytest.mark.e2e
def test_trials_asha_cut_are_pruned_in_the_study_with_their_intermediate_values(ray_session,
                                                                               store):
    """As Optuna's own pruners leave them: a cut trial is PRUNED with what it reported,
    never COMPLETE with its value at the rung (TPE would take it for a final value)."""
    from optuna.trial import TrialState

    spec = {**SPEC, "run_cap": 8, "seed": 1, "baseline": None, "points_to_evaluate": None,
            "parameters": {"x": {"min": -1.0, "max": 1.0}, "epochs": {"value": 4}},
            "early_terminate": {"type": "asha", "grace_period": 1, "max_t": 4,
                                "reduction_factor": 2}}
    result = orchestrator.sweep(spec, trainable=quadratic, tracking_uri=store)
    outcome = {r.trial_id: r.outcome for r in result.records}
    assert "early_stopped" in outcome.values() and "completed" in outcome.values(), outcome
    trials = load_study(study_url(store, Path("unused")), result.sweep_id).get_trials()
    assert len(trials) == spec["run_cap"]
    for t in trials:
        tid = t.user_attrs["orch.trial_id"]
        if outcome[tid] == "early_stopped":
            assert t.state == TrialState.PRUNED, (tid, t.state)
            rec = next(r for r in result.records if r.trial_id == tid)
            assert sorted(t.intermediate_values) == list(range(1, rec.stopped_at + 1))
            # Optuna's rule for a pruned trial: its value is its last intermediate one
            assert t.value == pytest.approx(t.intermediate_values[rec.stopped_at])
        else:  # its final value (Ray gives the searcher no intermediate for the last step)
            rec = next(r for r in result.records if r.trial_id == tid)
            assert t.state == TrialState.COMPLETE and t.value == pytest.approx(rec.value("loss"))


@pytest.mark.e2e
def test_dashboard_on_a_sweep_without_a_study_says_why(ray_session, store, tmp_path):
    result = orchestrator.sweep({**SPEC, "method": "grid", "baseline": None,
                                 "points_to_evaluate": None,
                                 "parameters": {"x": {"values": [0.1, 0.2]},
                                                "epochs": {"value": 1}}},
                                trainable=quadratic, tracking_uri=store)
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "dashboard", result.sweep_id,
                           "--tracking-uri", store], capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    assert "kept no Optuna study" in done.stderr and "grid" in done.stderr, done.stderr


@pytest.mark.e2e
def test_the_review_searches_the_space_the_sampler_drew_from(ray_session, store):
    """Importance and the plots use the kept study's distributions (x in [-1, 1] as the
    spec says), not the range the few trials happened to reach."""
    from optuna.distributions import FloatDistribution

    from orchestrator.method._report._data import load
    from orchestrator.method._report._importance import kept_study, studies

    result = orchestrator.sweep({**SPEC, "run_cap": 3, "points_to_evaluate": [{"x": 0.2}]},
                                trainable=quadratic, tracking_uri=store, confirm=False)
    data = load(result.sweep_id, tracking_uri=store)
    assert kept_study(data) is not None
    _, _, dists, _ = studies(data)
    assert dists["x"] == FloatDistribution(-1.0, 1.0)
