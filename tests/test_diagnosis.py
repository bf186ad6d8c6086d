"""diagnose() on synthetic curves: every label, the precedence, missing metrics, thresholds."""

from __future__ import annotations

import math

import pytest

from orchestrator.engine._diagnosis import LABELS, Diagnosis, Thresholds, diagnose

EPOCHS = 10


def _history(**series: list[float]) -> list[dict[str, float]]:
    length = len(next(iter(series.values())))
    return [
        {"epoch": i + 1, **{key: values[i] for key, values in series.items()}}
        for i in range(length)
    ]


def _falling(start: float, end: float, n: int = EPOCHS) -> list[float]:
    return [start * (end / start) ** (i / (n - 1)) for i in range(n)]


HEALTHY_GRADS = {
    "grad_norm": [1.0] * EPOCHS,
    "grad_norm_layer_max": [0.8] * EPOCHS,
    "grad_norm_first": [0.3] * EPOCHS,
    "grad_norm_last": [0.5] * EPOCHS,
}

CASES = {
    "healthy": _history(
        train_loss=_falling(2.0, 0.1),
        val_loss=_falling(2.0, 0.2),
        n_classes=[10] * EPOCHS,
        **HEALTHY_GRADS,
    ),
    "overfitting": _history(
        train_loss=_falling(2.0, 0.01),
        val_loss=[2.0, 1.2, 0.8, 0.6, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0],
        n_classes=[10] * EPOCHS,
        **HEALTHY_GRADS,
    ),
    "underfitting": _history(
        train_loss=_falling(2.3, 2.0),
        val_loss=_falling(2.3, 2.05),
        n_classes=[10] * EPOCHS,
        **HEALTHY_GRADS,
    ),
    "exploding_gradients": _history(
        train_loss=_falling(2.0, 1.0),
        val_loss=_falling(2.0, 1.0),
        grad_norm=[1.0, 10.0, 1e2, 1e4, 1e5, 1e5, 1e5, 1e5, 1e5, 1e5],
    ),
    "vanishing_gradients": _history(
        train_loss=[2.3] * EPOCHS,
        val_loss=[2.3] * EPOCHS,
        grad_norm_first=[1e-8] * EPOCHS,
        grad_norm_last=[0.3] * EPOCHS,
    ),
    "diverged": _history(
        train_loss=[2.0, 1.5, math.inf], val_loss=[2.0, 1.4, math.nan], grad_norm=[1.0, 1e6, 1e9]
    ),
}


@pytest.mark.parametrize("label", sorted(CASES))
def test_every_label_is_found_on_its_curve(label: str) -> None:
    found = diagnose(CASES[label])
    assert isinstance(found, Diagnosis)
    assert found.label == label, found
    assert found.reason
    assert (found.advice == "") == (label == "healthy")


def test_every_label_is_tested() -> None:
    assert set(CASES) | {"too_short"} == set(LABELS)


def test_reasons_carry_the_numbers() -> None:
    assert diagnose(CASES["overfitting"]).reason.startswith(
        "val_loss rose from its best 0.55 (epoch 5) to 1 (epoch 10, +82%)"
    )
    assert "inf at epoch 3" in diagnose(CASES["diverged"]).reason
    assert "1e+04 at epoch 4" in diagnose(CASES["exploding_gradients"]).reason


def test_precedence_diverged_over_exploding_over_vanishing_over_fitting() -> None:
    both = [dict(r) for r in CASES["vanishing_gradients"]]
    both[2]["grad_norm"] = 1e6
    assert diagnose(both).label == "exploding_gradients"
    both[5]["val_loss"] = math.nan
    assert diagnose(both).label == "diverged"
    vanishing_and_overfit = [{**r, "grad_norm_first": 1e-9} for r in CASES["overfitting"]]
    assert diagnose(vanishing_and_overfit).label == "vanishing_gradients"
    strict = Thresholds(underfit_loss_abs=1e-3)  # every train_loss here counts as too high
    assert diagnose(CASES["healthy"], thresholds=strict).label == "underfitting"
    assert diagnose(CASES["overfitting"], thresholds=strict).label == "overfitting"


def test_missing_metrics_skip_their_checks() -> None:
    assert diagnose([]).label == "too_short"
    assert diagnose([{"epoch": e} for e in range(1, 5)]).label == "healthy"
    only_val = [{"val_loss": r["val_loss"]} for r in CASES["overfitting"]]
    assert diagnose(only_val).label == "healthy"  # no train_loss: over-fitting not judged
    no_classes = [{k: v for k, v in r.items() if k != "n_classes"} for r in CASES["underfitting"]]
    assert diagnose(no_classes).label == "healthy"
    assert diagnose(no_classes, n_classes=10).label == "underfitting"
    absolute = Thresholds(underfit_loss_abs=1.0)
    assert diagnose(no_classes, thresholds=absolute).label == "underfitting"


def test_too_few_epochs_are_not_judged_for_fit() -> None:
    short = CASES["underfitting"][:2]
    assert diagnose(short).label == "too_short"  # never "healthy" for two epochs
    assert "2 epoch(s) reported" in diagnose(short).reason
    assert diagnose(short, thresholds=Thresholds(min_epochs=2)).label == "underfitting"


def test_thresholds_move_the_verdict() -> None:
    assert diagnose(CASES["overfitting"], thresholds=Thresholds(overfit_patience=6)).label == (
        "healthy"
    )
    assert (
        diagnose(CASES["exploding_gradients"], thresholds=Thresholds(explode_grad_norm=1e6)).label
        == "healthy"
    )


def test_from_mapping_rejects_unknown_keys_with_the_nearest() -> None:
    assert Thresholds.from_mapping({"overfit_patience": 5}) == Thresholds(overfit_patience=5)
    with pytest.raises(ValueError, match=r"'overfit_patiense': did you mean 'overfit_patience'\?"):
        Thresholds.from_mapping({"overfit_patiense": 5})
    with pytest.raises(ValueError, match=r"`vanish_ratio` must be a finite number > 0, but got -1"):
        Thresholds.from_mapping({"vanish_ratio": -1})
    with pytest.raises(ValueError, match=r"`min_epochs` must be a whole number >= 1, but got 1.5"):
        Thresholds(min_epochs=1.5)


def test_thresholds_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Thresholds().vanish_ratio = 1.0  # type: ignore[misc]


# ------------------------------------------------------------------ trends over a window


def test_a_one_epoch_rise_with_train_loss_rising_too_is_not_overfitting() -> None:
    # lr noise: val_loss jumps at the end while train_loss also went up over the last
    # two epochs; the old two-point rule called it over-fitting ("add regularisation").
    noisy = _history(train_loss=[2.0, 1.2, 0.8, 0.6, 0.5, 0.40, 0.35, 0.42, 0.45],
                     val_loss=[2.0, 1.1, 0.7, 0.55, 0.50, 0.52, 0.51, 0.53, 0.60],
                     n_classes=[10] * 9)
    assert diagnose(noisy).label == "healthy", diagnose(noisy)


def test_a_rise_within_the_fold_spread_is_noise_not_overfitting() -> None:
    val = [2.0, 1.0, 0.6, 0.40, 0.42, 0.43, 0.44, 0.45]
    train = _falling(2.0, 0.05, n=8)
    plain = _history(train_loss=train, val_loss=val, n_classes=[10] * 8)
    assert diagnose(plain).label == "overfitting"  # a steady rise beyond the curve's jitter
    spread = _history(train_loss=train, val_loss=val, val_loss_std=[0.06] * 8,
                      n_classes=[10] * 8)
    found = diagnose(spread)
    assert found.label == "healthy", found  # +0.04 is inside the folds' ±0.06
    assert "fold spread" in diagnose(spread, thresholds=Thresholds(overfit_noise=0.5)).reason


def test_gradient_health_says_why() -> None:
    from orchestrator.engine._diagnosis import gradient_health

    ok = gradient_health(CASES["healthy"])
    assert ok.label == "healthy" and "gradient norm between 1 and 1" in ok.reason
    assert gradient_health(CASES["exploding_gradients"]).label == "exploding_gradients"
    assert gradient_health(CASES["vanishing_gradients"]).label == "vanishing_gradients"
    assert gradient_health([{"epoch": 1, "train_loss": 1.0}]).label == "too_short"
