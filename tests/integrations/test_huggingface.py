"""Hugging Face's Trainer through OrchTrainerCallback: each evaluation reported, the
checkpoint folder kept by orch and resumed from, in a real sweep recorded in MLflow —
early-stopped by ASHA, and retried from its checkpoint after a failure."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

# Nothing here comes from the Hub; set before transformers is imported (and before Ray
# starts, so the workers inherit it too).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")

import orchestrator  # noqa: E402
from orchestrator.integrations.huggingface import STATE_KEY, OrchTrainerCallback  # noqa: E402
from search_spaces import hf_digits  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 3


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, as Ray gives a 1-CPU trial: on 2 shared cores a small model
    trains several times faster than with two threads fighting the other processes."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(config, **capture):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with orchestrator.capture_reports(metric="val_loss", seed=1, **capture) as got:
            hf_digits.train(config)
    return got


def test_each_evaluation_is_reported_from_one_and_the_trainer_resumes():
    got = _train({"epochs": EPOCHS, "lr": 0.01})
    assert [r["epoch"] for r in got.reports] == [1, 2, 3]
    names = {"epoch", "val_loss", "val_acc", "train_loss", "grad_norm"}
    assert all(set(r) == names for r in got.reports)
    assert got.reports[-1]["val_acc"] > 0.8
    assert len(got.checkpoints) == EPOCHS
    saved = got.checkpoints[1][STATE_KEY]
    assert {"model.safetensors", "optimizer.pt", "trainer_state.json"} <= set(saved)
    # Restarted from the second evaluation's checkpoint, the Trainer runs the third epoch
    # only, and (optimizer, schedule and RNG restored) lands where the first run did.
    again = _train({"epochs": EPOCHS, "lr": 0.01}, resume_from=got.checkpoints[1])
    assert [r["epoch"] for r in again.reports] == [3]
    assert again.reports[0]["val_loss"] == pytest.approx(got.reports[2]["val_loss"], rel=1e-4)


def test_the_callbacks_own_saves_are_removed_and_the_trainers_kept(tmp_path):
    for strategy, left in (("no", []), ("epoch", ["checkpoint-23", "checkpoint-46"])):
        folder = tmp_path / strategy
        callback = OrchTrainerCallback(metrics=hf_digits.METRICS)
        with orchestrator.capture_reports() as got, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = hf_digits.make_trainer({"epochs": 2}, str(folder), [callback],
                                             save_strategy=strategy)
            trainer.train()
            trainer.evaluate()  # outside train(): not an epoch, not reported
        assert [r["epoch"] for r in got.reports] == [1, 2] and len(got.checkpoints) == 2
        assert sorted(p.name for p in folder.glob("checkpoint-*")) == left, strategy


def test_a_metric_never_logged_is_named(tmp_path):
    callback = OrchTrainerCallback(metrics={"val_loss": "eval_loss", "acc": "accuracy"})
    trainer = hf_digits.make_trainer({"epochs": 1}, str(tmp_path), [callback])
    with orchestrator.capture_reports(), warnings.catch_warnings(), pytest.raises(
            KeyError, match=r"accuracy not logged; logged: epoch, eval_accuracy, eval_loss, "
                            r".*named eval_<name>: accuracy -> eval_accuracy"):
        warnings.simplefilter("ignore")
        trainer.train()


@pytest.mark.e2e
def test_a_trainer_sweep_is_recorded_stopped_early_and_retried(ray_session, store, tmp_path):
    from mlflow import MlflowClient

    def fails_once(config):
        """hf_digits.train, but the baseline's first attempt fails as its third epoch
        begins (after the second was reported and checkpointed). Local, so Ray ships it
        whole to the workers."""
        import tempfile

        import transformers

        from orchestrator.integrations.huggingface import OrchTrainerCallback
        from search_spaces import hf_digits

        baseline = config["lr"] == 0.003

        class FailOnce(transformers.TrainerCallback):
            def on_epoch_begin(self, args, state, control, **kwargs):
                if baseline and round(state.epoch) == 2 and not (tmp_path / "failed").exists():
                    (tmp_path / "failed").touch()
                    raise RuntimeError("injected failure")

        transformers.utils.logging.disable_progress_bar()
        callback = OrchTrainerCallback(metrics=hf_digits.METRICS)
        with tempfile.TemporaryDirectory() as folder:
            trainer = hf_digits.make_trainer(config, folder, [callback, FailOnce()])
            resume = callback.resume_path()
            if resume and baseline:
                (tmp_path / "resumed").touch()
            trainer.train(resume_from_checkpoint=resume)

    spec = orchestrator.load_spec(ROOT / "search_spaces" / "huggingface.yaml")
    # A grid run one trial at a time: the baseline first (never early-stopped, and in no
    # rung), then a good learning rate, then one too small (behind it at epoch 2: stopped).
    raw = {**spec.raw, "method": "grid", "run_cap": 2, "max_concurrent": 1,
           "max_failures": 1, "expected": None,
           "parameters": {"lr": {"values": [0.01, 0.0003]}, "width": {"value": 64},
                          "weight_decay": {"value": 0.0}, "epochs": {"value": 4}},
           "early_terminate": {"type": "asha", "grace_period": 2, "max_t": 4,
                               "reduction_factor": 2}}
    result = orchestrator.sweep(raw, trainable=fails_once, tracking_uri=store)
    assert result.counts["failed"] == 0 and len(result.records) == 3, result.counts
    outcomes = {r.config["lr"]: r.outcome for r in result.records}
    assert outcomes == {0.003: "completed", 0.0003: "early_stopped", 0.01: "completed"}
    assert (tmp_path / "failed").exists() and (tmp_path / "resumed").exists()
    by_lr = {r.config["lr"]: r for r in result.records}
    assert [h["epoch"] for h in by_lr[0.003].history] == [1, 2, 3, 4]  # resumed, not redone

    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.role` != 'sweep'")
    assert len(runs) == 3
    for run in runs:
        history = sorted(client.get_metric_history(run.info.run_id, "val_loss"),
                         key=lambda m: (m.step, m.timestamp))
        steps = [m.step for m in history]
        expected = 2 if run.data.tags["orch.outcome"] == "early_stopped" else 4
        assert steps == list(range(1, expected + 1)), (run.data.params, steps)
        assert run.info.status == "FINISHED"
