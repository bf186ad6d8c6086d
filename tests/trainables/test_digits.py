"""The built-in digits trainables: they learn, they are reproducible, and each
diagnosis label can be provoked by a real training run (a few seconds each)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from orchestrator import capture_reports
from orchestrator.engine._diagnosis import diagnose
from orchestrator.errors import NonFiniteMetricError
from trainables.digits import digits_cnn, digits_mlp, load_digits_arrays

CV3 = {"folds": 3, "stratify": True, "seed": 0}


def _run(trainable, config: dict, **context) -> list[dict]:
    with capture_reports(metric="val_loss", **context) as got:
        trainable(config)
    return got.reports


def test_digits_are_bundled_and_scaled() -> None:
    X, y = load_digits_arrays()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert 0 <= X.min() and X.max() == 1 and set(np.unique(y)) == set(range(10))


def test_mlp_defaults_learn_quickly() -> None:
    start = time.perf_counter()
    reports = _run(digits_mlp, {}, seed=0)
    assert len(reports) == 10
    assert reports[-1]["val_acc"] > 0.9
    assert time.perf_counter() - start < 20  # "a couple of seconds"; generous for slow CI


def test_cnn_learns_with_kfold() -> None:
    reports = _run(digits_cnn, {"epochs": 3, "channels": 8}, seed=0, cv=CV3)
    assert reports[-1]["val_acc"] > 0.85
    assert "val_acc_fold2" in reports[-1]


@pytest.mark.parametrize("trainable", [digits_mlp, digits_cnn])
def test_same_config_and_seed_give_identical_metrics(trainable) -> None:
    config = {"epochs": 2, "dropout": 0.1, "lr_schedule": "cosine"}
    first = _run(trainable, config, seed=3)
    second = _run(trainable, config, seed=3)
    assert first == second


def test_bad_model_keys_fail_clearly() -> None:
    with pytest.raises(
        ValueError, match=r"`activation` must be one of 'relu', 'tanh', 'sigmoid', but got 'gelu'"
    ):
        digits_mlp({"activation": "gelu"})
    with pytest.raises(ValueError, match=r"`width` must be a whole number >= 1, but got 0"):
        digits_mlp({"width": 0})


# -- one real run per diagnosis -------------------------------------------------------------


def _history(config: dict) -> list[dict]:
    """All reports, the failing one included (no sweep metric, so report() accepts NaN)."""
    with capture_reports(metric=None, seed=0) as got:
        try:
            digits_mlp(config)
        except NonFiniteMetricError:
            pass
    return got.reports


def test_huge_learning_rate_diverges() -> None:
    history = _history({"optimizer": "sgd", "lr": 1e6, "epochs": 5})
    assert len(history) == 1  # stopped in the first epoch
    assert diagnose(history).label in ("diverged", "exploding_gradients")


def test_large_adam_steps_explode_the_gradients() -> None:
    history = _history({"optimizer": "adam", "lr": 1e4, "epochs": 3})
    assert diagnose(history).label in ("diverged", "exploding_gradients")


def test_a_one_unit_network_underfits() -> None:
    history = _history({"width": 1, "depth": 1, "epochs": 10})
    assert diagnose(history).label == "underfitting"


def test_a_large_unregularised_network_on_little_data_overfits() -> None:
    history = _history({"width": 512, "depth": 2, "train_fraction": 0.05, "epochs": 60})
    assert diagnose(history).label == "overfitting"


def test_a_deep_sigmoid_network_has_vanishing_gradients() -> None:
    history = _history({"width": 32, "depth": 10, "activation": "sigmoid", "epochs": 4})
    assert diagnose(history).label == "vanishing_gradients"


def test_the_defaults_are_healthy() -> None:
    assert diagnose(_history({})).label == "healthy"
