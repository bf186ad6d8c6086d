"""The GPU code path of the training loop (loss read every few steps), run on the CPU."""

from __future__ import annotations

import pytest

import orchestrator
from orchestrator.errors import NonFiniteMetricError
from orchestrator.toolkit import _loop
from trainables.digits import digits_mlp

CONFIG = {"epochs": 2, "width": 32, "lr": 0.003}


def run(config):
    with orchestrator.capture_reports(metric="val_loss", seed=1) as got:
        digits_mlp(config)
    return got.reports


def test_reading_the_loss_every_few_steps_gives_the_same_training(monkeypatch):
    every_step = run(CONFIG)
    monkeypatch.setattr(_loop, "_check_every", lambda device: _loop.GPU_CHECK_EVERY)
    batched = run(CONFIG)
    for a, b in zip(every_step, batched):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == a["val_loss"]  # the same steps were taken


def test_divergence_is_still_caught_when_the_loss_is_read_every_few_steps(monkeypatch):
    monkeypatch.setattr(_loop, "_check_every", lambda device: _loop.GPU_CHECK_EVERY)
    with pytest.raises(NonFiniteMetricError):
        run({**CONFIG, "lr": 1e6, "optimizer": "sgd"})
