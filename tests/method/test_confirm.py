"""The confirmation step: the judged configuration and the baseline again on fresh seeds,
judged on those runs only (the winner's curse), run through the engine like the ablation."""

from __future__ import annotations

import pytest

from orchestrator.engine import SweepResult, TrialRecord
from orchestrator.method import confirm, confirmation_seeds
from orchestrator.sweepspec import load_spec

SPEC = {
    "name": "conf", "trainable": "digits_mlp", "method": "random", "seed": 7,
    "hypothesis": "Dropout improves accuracy", "expected": "val_acc >= baseline + 0.005",
    "metric": {"name": "val_acc", "goal": "maximize"}, "run_cap": 2, "cv": {"folds": 3},
    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 0.1},
                   "dropout": {"min": 0.0, "max": 0.5}, "epochs": {"value": 2}},
    "baseline": {"lr": 0.01, "dropout": 0.0},
    "early_terminate": {"type": "asha", "max_t": 2},
}


def record(tid, config, folds, role="trial", repeat=0):
    rec = TrialRecord(trial_id=tid, config=config, role=role, repeat=repeat, outcome="completed")
    for step in (1, 2):
        row = {"epoch": step, **{f"val_acc_fold{k}": v - 0.1 * (2 - step)
                                 for k, v in enumerate(folds)}}
        row["val_acc"] = sum(folds) / len(folds) - 0.1 * (2 - step)
        rec.add(step, row)
    return rec


def swept(spec):
    # the best trial changed lr and dropout; it looks much better on its own folds
    return SweepResult(sweep_id="s1", spec=spec, storage="/tmp", records=[
        record("b", {"lr": 0.01, "dropout": 0.0, "epochs": 2}, [0.90, 0.91, 0.92], "baseline"),
        record("t", {"lr": 0.05, "dropout": 0.3, "epochs": 2}, [0.99, 0.99, 0.995])])


def test_seeds_default_on_with_expected_and_off_without() -> None:
    spec = load_spec(SPEC)
    assert confirmation_seeds(spec) == 3
    assert confirmation_seeds(load_spec({**SPEC, "expected": ""})) == 0


def test_confirm_reruns_the_one_factor_config_on_fresh_seeds_and_judges_on_those(monkeypatch):
    import orchestrator.engine as engine

    spec = load_spec(SPEC)
    calls = {}

    def fake_run_sweep(cspec, *, configs, **kwargs):
        calls.update(spec=cspec, configs=configs, kwargs=kwargs)
        # on fresh seeds the one-factor config is only a little better: the sweep's
        # +0.08 was largely the winner's curse
        recs = [record(f"c{i}", {"lr": 0.01, "dropout": 0.3, "epochs": 2},
                       [0.91 + 0.002 * i, 0.92, 0.93]) for i in range(2)]
        recs += [record(f"b{i}", {"lr": 0.01, "dropout": 0.0, "epochs": 2},
                        [0.90, 0.91 + 0.002 * i, 0.92], "baseline", i) for i in range(2)]
        return SweepResult(sweep_id="c1", spec=cspec, storage="/tmp", records=recs)

    monkeypatch.setattr(engine, "run_sweep", fake_run_sweep)
    verdict = confirm(swept(spec), seeds=2, tracking=False)
    cspec = calls["spec"]
    assert cspec.seed != spec.seed and cspec.early_terminate is None
    assert cspec.baseline_repeats == 2 and cspec.name == "conf-confirm"
    # the baseline with dropout at the best trial's value: one factor, two seeds
    assert [c.get("__orch_repeat", 0) for c in calls["configs"]] == [0, 1]
    assert all(c["dropout"] == 0.3 and c["lr"] == 0.01 for c in calls["configs"])
    assert verdict.reason.startswith("Confirmed on fresh seeds (sweep c1")
    assert "paired t-test over 3 folds (each the mean of 2 seeds)" in verdict.reason
    assert verdict.status in ("inconclusive", "refuted", "confirmed")
    assert verdict.rule_comparison.diff == pytest.approx(0.01, abs=0.005)
    assert "The sweep's own verdict" in verdict.reason


def test_confirm_off_returns_the_sweep_verdict_and_says_why() -> None:
    spec = load_spec(SPEC)
    verdict = confirm(swept(spec), seeds=0, tracking=False)
    assert "Not confirmed on fresh seeds: confirmation off" in verdict.reason


def test_the_confirmed_verdict_is_recorded_on_the_sweep(monkeypatch, tmp_path):
    from mlflow import MlflowClient

    import orchestrator.engine as engine

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("conf")
    parent = client.create_run(exp, tags={"orch.role": "sweep", "orch.verdict": "confirmed"})
    spec = load_spec(SPEC)
    result = swept(spec)
    result.tracking_uri, result.parent_run_id = uri, parent.info.run_id

    def fake_run_sweep(cspec, *, configs, **kwargs):
        recs = [record(f"c{i}", configs[i], [0.90, 0.91, 0.92]) for i in range(2)]
        recs += [record(f"b{i}", {}, [0.90, 0.91, 0.92], "baseline", i) for i in range(2)]
        return SweepResult(sweep_id="c2", spec=cspec, storage="/tmp", records=recs)

    monkeypatch.setattr(engine, "run_sweep", fake_run_sweep)
    verdict = confirm(result, seeds=2)
    tags = client.get_run(parent.info.run_id).data.tags
    assert tags["orch.verdict"] == verdict.status == "refuted"  # no gain at all on fresh seeds
    assert tags["orch.confirmation_sweep_id"] == "c2"
    assert tags["orch.verdict_before_confirmation"] == "inconclusive"


def test_a_spec_without_a_baseline_is_not_confirmed_and_says_so_at_validate() -> None:
    from orchestrator.cli._sweep import _method_notes as notes

    spec = load_spec({**SPEC, "baseline": None, "expected": "val_acc >= 0.9"})
    result = SweepResult(sweep_id="s1", spec=spec, storage="/tmp", records=[
        record("t", {"lr": 0.05, "dropout": 0.3, "epochs": 2}, [0.99, 0.99, 0.995])])
    verdict = confirm(result, tracking=False)
    assert "Not confirmed on fresh seeds: the spec has no baseline" in verdict.reason
    assert any("no confirmation" in n and "add `baseline:`" in n for n in notes(spec))
    assert any("the baseline run again on 3" in n for n in notes(load_spec(SPEC)))
