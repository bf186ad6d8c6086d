"""The LR range test: curve analysis on synthetic curves, real torch, MLflow, placeholders."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import SpecError, TrainableImportError
from orchestrator.sweepspec import load_spec
from orchestrator.toolkit import lr_range_test
from orchestrator.toolkit._lr_range import smooth_losses, suggest_lr, suggest_range


def synthetic_curve(center: float = 1e-3, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """A loss that falls as a sigmoid in log10(lr), steepest at `center`, then explodes."""
    lrs = np.logspace(-7, 1, n)
    x = np.log10(lrs)
    loss = 2.3 - 2.0 / (1 + np.exp(-3 * (x - np.log10(center))))
    loss += np.where(x > -0.5, 10 ** (2 * (x + 0.5)) - 1, 0)
    return lrs, loss


@pytest.mark.parametrize("center", [1e-4, 1e-3, 3e-2])
def test_steepest_descent_is_found_on_a_known_curve(center) -> None:
    lrs, loss = synthetic_curve(center)
    steepest, at_min = suggest_lr(lrs, loss)  # unsmoothed: exact up to the grid
    assert steepest == pytest.approx(center, rel=0.1)
    # smoothed, the suggestion lags by about smoothing/(1-smoothing) steps: within half a decade
    smoothed_steepest, _ = suggest_lr(lrs, smooth_losses(loss))
    assert center <= smoothed_steepest <= center * 10**0.75
    lo, hi = suggest_range(steepest, at_min)
    assert lo == pytest.approx(steepest / 10, rel=0.01) and lo < center < hi


def test_smoothing_is_bias_corrected() -> None:
    assert smooth_losses([2.0] * 5).tolist() == pytest.approx([2.0] * 5)
    with pytest.raises(ValueError):
        smooth_losses([1.0], smoothing=1.0)


def test_real_torch_stops_when_the_loss_explodes() -> None:
    import torch

    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 8)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype("int64")
    r = lr_range_test(lambda: torch.nn.Linear(8, 2), X, y,
                      {"optimizer": "sgd", "momentum": 0.9, "batch_size": 32},
                      start_lr=1e-5, end_lr=1e3, steps=200, seed=0)
    assert r.diverged and r.steps < 200  # stopped, not run to end_lr
    assert r.smoothed[-1] > 4 * np.nanmin(r.smoothed[:-1]) or not np.isfinite(r.losses[-1])
    assert 1e-3 < r.suggested_lr < 10 and r.range[0] < r.suggested_lr < r.range[1] * 1.0001
    again = lr_range_test(lambda: torch.nn.Linear(8, 2), X, y,
                          {"optimizer": "sgd", "batch_size": 32}, start_lr=1e-5, end_lr=1e3,
                          steps=200, seed=0, smoothing=0.95)
    assert again.steps == r.steps or again.suggested_lr > 0  # same seed: runs again


def test_bad_settings_are_refused() -> None:
    import torch

    X, y = np.zeros((8, 2), "float32"), np.arange(8) % 2
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        lr_range_test(lambda: torch.nn.Linear(2, 2), X, y, start_lr=1.0, end_lr=0.1)


SPEC = {"name": "lrf", "trainable": "digits_mlp", "method": "random",
        "metric": {"name": "val_loss"}, "run_cap": 2,
        "parameters": {"lr": {"from": "lr_find"}, "width": {"values": [16, 32]},
                       "epochs": {"value": 1}},
        "baseline": {"width": 16, "optimizer": "adam"}}


def test_digits_lr_find_is_recorded_in_mlflow(store, tmp_path) -> None:
    from mlflow import MlflowClient

    from orchestrator.method import lr_find

    found = lr_find(load_spec(SPEC), tracking_uri=store, steps=150,
                    plot_path=tmp_path / "lr.png")
    r = found.result
    assert 1e-4 < r.suggested_lr < 1 and r.range[0] < r.range[1]
    assert found.plot.stat().st_size > 5000 and not found.problems
    client = MlflowClient(store)
    run = client.get_run(found.run_id)
    assert run.data.tags["orch.role"] == "lr_find"
    assert run.data.metrics["suggested_lr"] == pytest.approx(r.suggested_lr)
    assert run.data.params["config.width"] == "16"
    assert len(client.get_metric_history(found.run_id, "lr_find_loss")) == r.steps
    assert {a.path for a in client.list_artifacts(found.run_id)} >= {"lr_find.png",
                                                                     "lr_find.json"}


def test_placeholders_resolve_to_the_suggested_log_range(store) -> None:
    from orchestrator.method import resolve_placeholders

    spec = load_spec(SPEC)
    assert [p.name for p in spec.placeholders] == ["lr"]
    preview = resolve_placeholders(spec, preview=True)
    assert preview.parameter("lr").value == "<from lr_find>"
    resolved = resolve_placeholders(spec, tracking=False, steps=120)
    lr = resolved.parameter("lr")
    assert lr.distribution == "log_uniform_values" and 0 < lr.min < lr.max
    assert resolved.name == "lrf" and any("from lr_find" in n for n in resolved.notes)
    plain = load_spec({**SPEC, "parameters": {"lr": {"value": 0.01}}})
    assert resolve_placeholders(plain) is plain  # nothing to do, nothing run


def test_a_trainable_without_the_hook_is_told_how_to_add_it() -> None:
    from orchestrator.method import find_lr_setup

    with pytest.raises(TrainableImportError, match="lr_find_setup"):
        find_lr_setup("_trainables:quadratic")
    assert find_lr_setup("digits_cnn").__name__ == "digits_cnn_lr_find_setup"


def test_from_placeholder_spec_rules() -> None:
    for bad, words in (({"from": "lr_fnd"}, "did you mean"),
                       ({"from": "lr_find", "min": 0.1}, "stands alone")):
        with pytest.raises(SpecError, match=words):
            load_spec({**SPEC, "parameters": {"lr": bad}})
    with pytest.raises(SpecError, match="grid cannot enumerate"):
        load_spec({**SPEC, "method": "grid"})
