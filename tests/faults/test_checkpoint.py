"""Checkpoints without Ray: the state file, report/load_checkpoint under capture, and
fit_classifier resuming to exactly the reports of an uninterrupted run."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import orchestrator
from orchestrator import capture_reports, load_checkpoint, report
from orchestrator.engine._checkpoint import (
    PICKLE_STATE_FILE,
    STATE_FILE,
    CheckpointUnreadable,
    load_state,
    save_state,
)
from orchestrator.toolkit import fit_classifier
from trainables.digits import digits_cnn, digits_mlp, load_digits_arrays

CV3 = {"folds": 3, "stratify": True, "seed": 0}


def _without_tags(reports):
    return [{k: v for k, v in r.items() if k != "orch_tags"} for r in reports]


def _state():
    model = nn.Linear(3, 2)
    return {
        "epoch": 2,
        "model": model.state_dict(),
        "rng": {"numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        "array": np.arange(4.0),
        "history": [{"loss": 0.5}],
        "name": "x",
    }


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


# ----------------------------------------------------------------------------- the state file


def test_state_round_trips_through_a_folder(tmp_path):
    state = _state()
    path = save_state(state, tmp_path / "ckpt")
    assert path.name == STATE_FILE
    assert _same(load_state(tmp_path / "ckpt"), state)


def test_without_torch_the_state_is_pickled_and_read_back_restricted(tmp_path, monkeypatch):
    import orchestrator.engine._checkpoint as ckpt

    monkeypatch.setattr(ckpt, "_torch", lambda: None)
    state = {"epoch": 3, "array": np.arange(3), "set": {1, 2}, "nested": [(1, 2.5, None)]}
    assert save_state(state, tmp_path).name == PICKLE_STATE_FILE
    assert _same(load_state(tmp_path), state)
    # a pickle that would run code is refused, not executed
    (tmp_path / PICKLE_STATE_FILE).write_bytes(pickle.dumps({"evil": print}))
    with pytest.raises(CheckpointUnreadable, match=r"builtins\.print is not allowed"):
        load_state(tmp_path)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:40])


def _garbage(path):
    path.write_bytes(b"not a checkpoint at all")


def _code(path):
    import os

    torch.save({"f": os.system}, path)


@pytest.mark.parametrize("damage,fragment", [
    (_truncate, "cannot be read.*PytorchStreamReader"),
    (_garbage, "cannot be read.*UnpicklingError"),
    (_code, r"cannot be read.*posix\.system"),  # weights_only refuses it: nothing runs
    (lambda p: p.unlink(), "holds no orch_state.pt"),
    (lambda p: torch.save([1, 2], p), "holds a list, not a mapping"),
])
def test_a_damaged_state_is_unreadable_with_the_reason(tmp_path, damage, fragment):
    damage(save_state({"epoch": 1}, tmp_path))
    with pytest.raises(CheckpointUnreadable, match=fragment):
        load_state(tmp_path)


def test_a_missing_folder_is_unreadable(tmp_path):
    with pytest.raises(CheckpointUnreadable, match="does not exist"):
        load_state(tmp_path / "gone")


# ----------------------------------------------------------------------------- the API


def test_capture_keeps_every_checkpoint_as_a_copy():
    weights = torch.zeros(2)
    with capture_reports(metric="loss") as got:
        assert load_checkpoint() is None
        for epoch in (1, 2):
            weights += 1
            report({"epoch": epoch, "loss": 1.0 / epoch},
                   checkpoint={"epoch": epoch, "w": weights})
        report({"epoch": 3, "loss": 0.3})  # no checkpoint with this one
    assert [c["epoch"] for c in got.checkpoints] == [1, 2]
    assert got.checkpoints[0]["w"].tolist() == [1.0, 1.0]  # a copy, not the live tensor
    assert got.checkpoint["w"].tolist() == [2.0, 2.0]
    assert "checkpoint" not in got.reports[0]


def test_resume_from_is_what_load_checkpoint_returns():
    with capture_reports(resume_from={"epoch": 5}):
        assert load_checkpoint() == {"epoch": 5}
    with capture_reports():
        assert load_checkpoint() is None
    assert load_checkpoint() is None  # outside any trial


def test_a_checkpoint_must_be_a_mapping():
    with capture_reports(), pytest.raises(TypeError, match=r"mapping of state.*got list"):
        report({"epoch": 1}, checkpoint=[1, 2])


def test_the_metric_is_checked_before_anything_is_saved():
    with capture_reports(metric="loss") as got:
        with pytest.raises(orchestrator.MetricMissingError):
            report({"epoch": 1}, checkpoint={"epoch": 1})
    assert got.checkpoints == []


# ----------------------------------------------------------------------------- fit_classifier


@pytest.mark.parametrize("trainable,config,cv", [
    (digits_mlp, {"epochs": 4}, None),
    (digits_mlp, {"epochs": 4, "lr_schedule": "onecycle", "optimizer": "sgd"}, CV3),
    (digits_mlp, {"epochs": 4, "lr_schedule": "plateau", "warmup_epochs": 1,
                  "train_fraction": 0.5}, CV3),
    (digits_cnn, {"epochs": 4, "lr_schedule": "cosine", "batch_size": 128}, None),
], ids=["holdout", "kfold-onecycle-sgd", "kfold-plateau-warmup-subsample", "cnn-cosine"])
def test_resuming_gives_exactly_the_reports_of_an_uninterrupted_run(trainable, config, cv):
    with capture_reports(metric="val_loss", seed=7, cv=cv) as straight:
        first = trainable(config)
    assert [c["epoch"] for c in straight.checkpoints] == [1, 2, 3, 4]
    with capture_reports(metric="val_loss", seed=7, cv=cv,
                         resume_from=straight.checkpoints[1]) as resumed:
        trainable(config)
    assert [r["epoch"] for r in resumed.reports] == [3, 4]
    assert _without_tags(resumed.reports) == _without_tags(straight.reports[2:])
    assert resumed.reports[0]["orch_tags"]["resumed_from_epoch"] == "2"
    del first


def test_a_resumed_fit_returns_the_whole_history_and_the_same_models():
    X, y = load_digits_arrays()

    def model():
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))

    with capture_reports(metric="val_loss", seed=1, cv=CV3) as straight:
        full = fit_classifier(model, X, y, {"epochs": 3})
    with capture_reports(metric="val_loss", seed=1, cv=CV3,
                         resume_from=straight.checkpoints[0]):
        resumed = fit_classifier(model, X, y, {"epochs": 3})
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history == full.history
    for a, b in zip(full.models, resumed.models):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                    b.state_dict().values()))
    assert np.array_equal(full.confusion, resumed.confusion)


def test_a_checkpoint_of_the_last_epoch_trains_nothing_more():
    with capture_reports(metric="val_loss", seed=0) as straight:
        digits_mlp({"epochs": 2})
    with capture_reports(metric="val_loss", seed=0, resume_from=straight.checkpoint) as again:
        digits_mlp({"epochs": 2})
    assert again.reports == []


@pytest.mark.parametrize("change,fragment", [
    (lambda s: {**s, "folds": 5}, "5 fold"),
    (lambda s: {**s, "fingerprint": "0" * 16}, "split fingerprint"),
    (lambda s: {"epoch": 1}, "not a fit_classifier state"),
    (lambda s: {**s, "fold_states": [{"model": {}}]}, "does not fit this model"),
], ids=["fold-count", "other-split", "foreign-state", "broken-state"])
def test_an_unusable_checkpoint_restarts_from_scratch_with_a_warning(change, fragment):
    with capture_reports(metric="val_loss", seed=0, cv=CV3) as straight:
        digits_mlp({"epochs": 2})
    with capture_reports(metric="val_loss", seed=0, cv=CV3,
                         resume_from=change(straight.checkpoints[0])) as again:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            digits_mlp({"epochs": 2})
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any(fragment in m and "restarting from scratch" in m for m in messages), messages
    assert _without_tags(again.reports) == _without_tags(straight.reports)
    assert fragment in again.reports[0]["orch_tags"]["checkpoint_problem"]


def test_checkpointing_can_be_turned_off():
    X, y = load_digits_arrays()
    with capture_reports(metric="val_loss") as got:
        fit_classifier(lambda: nn.Linear(64, 10), X, y, {"epochs": 2}, checkpoint=False)
    assert len(got.reports) == 2 and got.checkpoints == []
