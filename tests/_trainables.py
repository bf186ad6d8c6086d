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


def hangs_above(config):
    """Reports once, then hangs (a deadlock, a stuck data loader) when x > 0.5."""
    import time

    orchestrator.report({"epoch": 1, "loss": config["x"]})
    if config["x"] > 0.5:
        while True:
            time.sleep(0.05)
    orchestrator.report({"epoch": 2, "loss": config["x"] / 2})


def counts_from_zero(config):
    """The usual loop: `for epoch in range(n)`, epoch 0 first."""
    for epoch in range(int(config.get("epochs", 5))):
        orchestrator.report({"epoch": epoch, "loss": config["x"] + 1.0 / (epoch + 1)})


def patterned(config):
    """Reports the way ``config["pattern"]`` says, deterministically (the value of each
    report depends only on x and the report's number), so that what the store holds can
    be checked point by point:

    start      the first epoch: 0, 1, or None (no `epoch` key at all)
    per_epoch  reports per epoch (epoch goes up by 1/per_epoch: fractional epochs)
    reports    how many reports in all
    numpy      report numpy scalars (np.float32 loss, np.int64 count)
    checkpoint report a checkpoint with every report
    fail_at    the first attempt raises after this report (0: never); Ray retries it
    """
    import os

    import numpy as np
    from ray import tune

    p, x = config["pattern"], float(config["x"])
    state = orchestrator.load_checkpoint()
    done = int(state["done"]) if state else 0
    marker = os.path.join(config["marks"], tune.get_context().get_trial_id())
    for i in range(done + 1, int(p["reports"]) + 1):
        loss = x + 1.0 / i
        metrics = {"loss": np.float32(loss) if p["numpy"] else loss}
        if p["numpy"]:
            metrics["count"] = np.int64(i)
        if p["start"] is not None:
            metrics["epoch"] = p["start"] + (i - 1) / p["per_epoch"]
        orchestrator.report(metrics, checkpoint={"done": i} if p["checkpoint"] else None)
        if i == p["fail_at"] and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError(f"flaky at report {i}")


def storage_down(config):
    """Writes its state where ``config["down"]`` says the disk refuses writes (EROFS)."""
    import errno
    import os
    import time

    for epoch in range(1, 4):
        time.sleep(0.2)
        if os.path.exists(config["down"]) and epoch == 2:
            raise OSError(errno.EROFS, "Read-only file system", "/data/checkpoints/state.pt")
        orchestrator.report({"epoch": epoch, "loss": config["x"] + 1.0 / epoch})


def two_objectives(config):
    """A trade-off: loss falls as x rises, size rises with x (Pareto front: every x)."""
    x = float(config["x"])
    for epoch in range(1, 3):
        orchestrator.report({"epoch": epoch, "loss": (1.0 - x) ** 2 + 0.1 / epoch,
                             "size": 10.0 * x})
