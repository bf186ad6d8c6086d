"""Tiny trainables for engine tests: fast, deterministic, each misbehaving on purpose."""

from __future__ import annotations

import math

import orchestrator


def quadratic(config):
    """loss = (x - 0.3)^2 + 1/epoch: the best config is x = 0.3."""
    x = float(config.get("x", 0.0))
    for epoch in range(1, int(config.get("epochs", 4)) + 1):
        orchestrator.report({"epoch": epoch, "loss": (x - 0.3) ** 2 + 1.0 / epoch,
                             "x_seen": x})


def diverges_above(config):
    """Reports NaN when x > 0.5 (a diverged trial)."""
    x = float(config["x"])
    for epoch in range(1, 4):
        loss = math.nan if x > 0.5 and epoch == 2 else x + 1.0 / epoch
        orchestrator.report({"epoch": epoch, "loss": loss})


def raises_above(config):
    """Raises when x > 0.5 (a failing trial)."""
    x = float(config["x"])
    if x > 0.5:
        raise RuntimeError(f"boom at x={x:.3f}")
    for epoch in range(1, 3):
        orchestrator.report({"epoch": epoch, "loss": x})


def ray_style(config):
    """Written for Ray Tune: calls ray.tune.report directly."""
    from ray import tune

    for epoch in range(1, 3):
        tune.report({"epoch": epoch, "loss": (config["x"] - 0.3) ** 2})


def wrong_metric(config):
    """Reports `val_loss`, never `loss`, through Ray's own report."""
    from ray import tune

    tune.report({"epoch": 1, "val_loss": 1.0, "acc": 0.5})


def seeded(config):
    """loss depends on the trial seed: shows which seed a trial got."""
    seed = orchestrator.trial_seed()
    orchestrator.report({"epoch": 1, "loss": float(config["x"]) + (seed % 1000) / 1e6})


def chatty(config):
    """Many quick reports with several metrics: exercises batching."""
    for epoch in range(1, int(config.get("epochs", 50)) + 1):
        orchestrator.report({"epoch": epoch, "loss": 1.0 / epoch + config["x"],
                             "a": epoch * 0.5, "b": config["x"] * epoch})


def slow(config):
    """One report per `pause` seconds: keeps trials running while a test interferes."""
    import time

    for epoch in range(1, int(config.get("epochs", 5)) + 1):
        time.sleep(float(config.get("pause", 0.5)))
        orchestrator.report({"epoch": epoch, "loss": config["x"] + 1.0 / epoch})
