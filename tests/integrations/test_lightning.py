"""PyTorch Lightning through OrchCallback: each validation epoch reported, the trainer
checkpointed through orch and resumed from it, in a real sweep recorded in MLflow."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("lightning")

import orchestrator  # noqa: E402
from orchestrator.integrations.lightning import STATE_KEY, OrchCallback  # noqa: E402
from search_spaces.lightning_digits import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_each_validation_epoch_is_reported_from_one_and_the_trainer_resumes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with orchestrator.capture_reports(metric="val_loss", seed=1) as got:
            train({"epochs": 3, "lr": 0.01})
    assert [r["epoch"] for r in got.reports] == [1, 2, 3]  # not the sanity check, from 1
    assert all(set(r) >= {"val_loss", "val_acc"} for r in got.reports)
    assert got.reports[-1]["val_acc"] > 0.8
    assert STATE_KEY in got.checkpoints[1]
    # Restarted from the second epoch's checkpoint, Lightning continues at the third.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with orchestrator.capture_reports(metric="val_loss", seed=1,
                                          resume_from=got.checkpoints[1]) as again:
            train({"epochs": 3, "lr": 0.01})
    assert [r["epoch"] for r in again.reports] == [3]


def test_a_metric_never_logged_is_named():
    import lightning.pytorch as L

    from search_spaces.lightning_digits import DigitsNet, loaders

    callback = OrchCallback(metrics={"loss": "validation_loss"})
    trainer = L.Trainer(max_epochs=1, callbacks=[callback], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_train_batches=2, limit_val_batches=2)
    with orchestrator.capture_reports(), pytest.raises(KeyError, match="validation_loss not "
                                                                        "logged; logged: "
                                                                        "val_acc, val_loss"):
        trainer.fit(DigitsNet(lr=0.01, width=8), *loaders(0))


@pytest.mark.e2e
def test_a_lightning_sweep_is_recorded_epoch_by_epoch(ray_session, store):
    from mlflow import MlflowClient

    spec = orchestrator.load_spec(ROOT / "search_spaces" / "lightning.yaml")
    raw = {**spec.raw, "run_cap": 3, "baseline": None,
           "parameters": {**spec.raw["parameters"], "epochs": {"value": 4}},
           "early_terminate": {"type": "asha", "grace_period": 2, "max_t": 4,
                               "reduction_factor": 2}}
    result = orchestrator.sweep(raw, tracking_uri=store)
    assert result.counts["failed"] == 0 and len(result.records) == 3
    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.role` = 'trial'")
    assert len(runs) == 3
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        outcome = run.data.tags["orch.outcome"]
        assert steps == list(range(1, len(steps) + 1)), steps
        assert len(steps) == 4 if outcome == "completed" else len(steps) in (2, 4), (outcome,
                                                                                   steps)
        assert run.info.status == "FINISHED"
