"""fit_classifier: the reports, the splits, determinism, divergence and artifacts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import orchestrator.toolkit as toolkit
from orchestrator import capture_reports
from orchestrator.errors import NonFiniteMetricError
from orchestrator.toolkit import EPOCH_METRICS, fit_classifier, labels_of
from trainables.digits import digits_mlp, load_digits_arrays

ROOT = Path(__file__).resolve().parents[2]
CV3 = {"folds": 3, "stratify": True, "seed": 0}
N_DIGITS = 1797


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _without_tags(reports: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "orch_tags"} for r in reports]


def test_kfold_reports_every_metric_each_epoch() -> None:
    with capture_reports(metric="val_loss", seed=0, cv=CV3) as got:
        digits_mlp({"epochs": 2})
    assert [r["epoch"] for r in got.reports] == [1, 2]
    for r in got.reports:
        for name in EPOCH_METRICS:
            assert np.isfinite(r[name]), name
            if name != "epoch":
                assert f"{name}_std" in r, name
        for k in range(3):
            assert {f"val_loss_fold{k}", f"val_acc_fold{k}"} <= set(r)
        folds = [r[f"val_loss_fold{k}"] for k in range(3)]
        assert r["val_loss"] == pytest.approx(np.mean(folds))
        assert r["val_loss_std"] == pytest.approx(np.std(folds))
        assert r["n_classes"] == 10
    assert len(got.reports[0]["orch_tags"]["split_fingerprint"]) == 16  # before the first report


def test_holdout_reports_plain_metrics_and_the_same_split_for_every_trial() -> None:
    fingerprints = []
    for seed in (0, 1):
        with capture_reports(metric="val_acc", seed=seed, split_seed=3) as got:
            digits_mlp({"epochs": 1})
        assert set(EPOCH_METRICS) <= set(got.reports[0])
        assert not any(k.endswith("_std") or "_fold" in k for k in got.reports[0])
        fingerprints.append(got.reports[0]["orch_tags"]["split_fingerprint"])
    assert fingerprints[0] == fingerprints[1]


def test_same_seed_same_metrics_and_another_seed_differs() -> None:
    runs = []
    for seed in (5, 5, 6):
        with capture_reports(metric="val_loss", seed=seed, cv=CV3) as got:
            digits_mlp({"epochs": 2, "dropout": 0.2})
        runs.append(_without_tags(got.reports))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_artifacts_hold_confusion_matrix_and_curves(tmp_path: Path) -> None:
    with capture_reports(metric="val_loss", cv=CV3, artifacts=tmp_path / "kfold"):
        digits_mlp({"epochs": 2})
    table = json.loads((tmp_path / "kfold" / "confusion_matrix.json").read_text())
    assert table["labels"] == list(range(10))
    assert np.array(table["matrix"]).sum() == N_DIGITS == table["samples"]  # every sample once
    assert table["folds"] == 3 and table["epoch"] == 2
    for name in ("confusion_matrix.png", "curves.png"):
        assert (tmp_path / "kfold" / name).stat().st_size > 1000

    with capture_reports(metric="val_loss", artifacts=tmp_path / "holdout"):
        digits_mlp({"epochs": 1})
    table = json.loads((tmp_path / "holdout" / "confusion_matrix.json").read_text())
    assert table["samples"] == int(np.ceil(0.2 * N_DIGITS))


def test_divergence_stops_at_once_and_fails_the_trial() -> None:
    config = {"optimizer": "sgd", "lr": 1e6, "epochs": 20}
    with capture_reports(metric="val_loss") as got, pytest.raises(NonFiniteMetricError):
        digits_mlp(config)
    assert got.reports == []  # report() refused the NaN epoch itself
    with (
        capture_reports(metric=None, cv=CV3) as got,
        pytest.raises(
            NonFiniteMetricError, match=r"at epoch 1 \(fold 0, step \d+ of 19\): the trial diverged"
        ),
    ):
        digits_mlp(config)
    (last,) = got.reports  # the first epoch, reported with its bad loss, and nothing after
    assert not np.isfinite(last["train_loss"]) and np.isnan(last["val_loss"])
    assert (got.artifacts / "curves.png").exists()
    assert not (got.artifacts / "confusion_matrix.json").exists()


def test_grad_clip_bounds_the_update() -> None:
    X, y = load_digits_arrays()
    with capture_reports():
        free = fit_classifier(_mlp, X, y, {"epochs": 1, "optimizer": "sgd", "lr": 0.5})
        clipped = fit_classifier(
            _mlp, X, y, {"epochs": 1, "optimizer": "sgd", "lr": 0.5, "grad_clip": 1e-3}
        )
    assert clipped.history[0]["update_ratio"] < free.history[0]["update_ratio"] / 10


class _Digits(torch.utils.data.Dataset):
    def __init__(self, with_targets: bool) -> None:
        X, y = load_digits_arrays()
        self.X, self.y = torch.tensor(X), torch.tensor(y)
        if with_targets:
            self.targets = self.y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.X[i], int(self.y[i])


def test_a_torch_dataset_trains_on_the_same_splits_as_arrays() -> None:
    X, y = load_digits_arrays()
    assert np.array_equal(labels_of(_Digits(with_targets=False)), y)
    with capture_reports(metric="val_loss", cv=CV3):
        from_dataset = fit_classifier(_mlp, _Digits(with_targets=True), config={"epochs": 2})
        from_arrays = fit_classifier(_mlp, X, y, {"epochs": 2})
    for (a_train, a_val), (b_train, b_val) in zip(
        from_dataset.splits, from_arrays.splits, strict=True
    ):
        assert np.array_equal(a_train, b_train) and np.array_equal(a_val, b_val)
    assert from_dataset.history[-1]["val_acc"] > 0.8


def test_labels_must_be_class_indices() -> None:
    X, y = load_digits_arrays()
    with capture_reports(), pytest.raises(ValueError, match="np.unique"):
        fit_classifier(_mlp, X, np.array([str(v) for v in y]), {"epochs": 1})


def test_threads_are_restored_and_the_result_is_returned() -> None:
    X, y = load_digits_arrays()
    before = torch.get_num_threads()
    with capture_reports():
        result = fit_classifier(_mlp, X, y, {"epochs": 1, "torch_threads": 1})
    assert torch.get_num_threads() == before
    assert len(result.models) == 1 and result.confusion.sum() == len(result.splits[0][1])


def test_own_data_example_runs_with_kfold() -> None:
    spec = importlib.util.spec_from_file_location(
        "own_data", ROOT / "search_spaces" / "own_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with capture_reports(metric="val_loss", cv=CV3) as got:
        module.train({"epochs": 3})  # 569 samples: a second or so
    assert got.reports[-1]["val_acc"] > 0.85 and "val_acc_fold2" in got.reports[-1]


def test_public_names_are_exactly_these() -> None:
    assert set(toolkit.__all__) == {
        "EPOCH_METRICS",
        "LR_SCHEDULES",
        "OPTIMIZERS",
        "ClassificationData",
        "EpochStats",
        "FitResult",
        "LRRangeResult",
        "LRSchedule",
        "TrainSettings",
        "build_optimizer",
        "cv_folds",
        "default_device",
        "fit_classifier",
        "fold_indices",
        "holdout_split",
        "labels_of",
        "lr_range_test",
        "save_confusion_matrix",
        "save_curves",
        "seed_everything",
        "split_fingerprint",
    }
    assert all(hasattr(toolkit, name) for name in toolkit.__all__)


def test_importing_orchestrator_does_not_import_torch() -> None:
    code = (
        "import sys, orchestrator, orchestrator.engine._diagnosis; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_a_trial_stopped_early_keeps_the_matrix_of_its_last_epoch(monkeypatch) -> None:
    """The matrix's table is written before every report (a scheduler may end the trial
    inside any of them); the picture only at the last epoch."""
    import orchestrator.toolkit._loop as loop

    seen = []
    real = loop.report

    def report(record, **kwargs):
        table = got.artifacts / "confusion_matrix.json"
        seen.append((record["epoch"], json.loads(table.read_text())["epoch"],
                     (got.artifacts / "confusion_matrix.png").exists()))
        return real(record, **kwargs)

    monkeypatch.setattr(loop, "report", report)
    with capture_reports(metric="val_loss", seed=0) as got:
        digits_mlp({"epochs": 3, "width": 16})
    assert seen == [(1, 1, False), (2, 2, False), (3, 3, True)]
    matrix = json.loads((got.artifacts / "confusion_matrix.json").read_text())
    assert matrix["samples"] == sum(map(sum, matrix["matrix"])) > 0
