"""Trainables for the fault tests: each fails once on purpose, then behaves.

Only the trial whose ``x`` equals ``config["fail_x"]`` fails, and only once:
its first attempt creates a marker file in ``config["marker_dir"]`` (the
test's temp folder) and fails; Ray's retry finds the marker and runs on.
Workers import this module as ``faults._faulty`` (tests/ is on their PYTHONPATH).
"""

from __future__ import annotations

import os
from pathlib import Path

import orchestrator


def _first_attempt(config) -> bool:
    """True for the failing trial's first attempt (and creates its marker)."""
    if "fail_x" not in config or float(config["x"]) != float(config["fail_x"]):
        return False
    marker = Path(config["marker_dir"]) / f"failed-{config['x']}-{config.get('sabotage')}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _sabotage(how: str, results: str) -> None:
    """Delete or corrupt every checkpoint this trial has saved so far under `results`.

    (The sweep's storage folder: Ray copies checkpoints there, not into the
    trial's working folder; the engine names trial folders by trial id.)
    """
    import ray.tune

    trial_id = ray.tune.get_context().get_trial_id()
    folders = sorted(Path(results).glob(f"*/{trial_id}/checkpoint_*"))
    if not folders:
        raise AssertionError(f"no checkpoints of {trial_id} under {results} to sabotage")
    for folder in folders:
        if how == "delete_folder":
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
        elif how == "delete_file":
            for f in folder.iterdir():
                f.unlink()
        elif how == "truncate":
            for f in folder.iterdir():
                if f.is_file():
                    data = f.read_bytes()
                    f.write_bytes(data[: len(data) // 3])
        elif how == "garbage":
            for f in folder.iterdir():
                if f.is_file():
                    f.write_bytes(b"not a checkpoint")


def resumable(config):
    """loss = x + 1/epoch for `epochs` epochs, checkpointing each; raises once at `fail_at`.

    Reports ``resumed_from``: the epoch of the checkpoint it started from (0: fresh).
    """
    x, epochs = float(config["x"]), int(config.get("epochs", 5))
    fail_at = int(config.get("fail_at", 0))
    state = orchestrator.load_checkpoint()
    start = state["epoch"] + 1 if state else 1
    resumed_from = state["epoch"] if state else 0
    for epoch in range(start, epochs + 1):
        if epoch == fail_at and _first_attempt(config):
            if config.get("sabotage"):
                _sabotage(config["sabotage"], config["results"])
            raise RuntimeError(f"injected failure at epoch {epoch}")
        orchestrator.report(
            {"epoch": epoch, "loss": x + 1.0 / epoch, "resumed_from": resumed_from},
            checkpoint={"epoch": epoch, "x": x},
        )


class _FailingLoss:
    """Cross-entropy that raises after `after` calls on the first attempt only."""

    def __init__(self, after: int, config) -> None:
        import torch

        self.inner = torch.nn.CrossEntropyLoss()
        self.after, self.calls, self.config = after, 0, config

    def __call__(self, logits, labels):
        self.calls += 1
        if self.calls == self.after and _first_attempt(self.config):
            raise RuntimeError(f"injected failure at loss call {self.calls}")
        return self.inner(logits, labels)


def digits_fails_once(config):
    """fit_classifier on the digits (holdout) that fails once inside epoch `fail_epoch`."""
    import math

    from torch import nn

    from orchestrator.toolkit import fit_classifier
    from trainables.digits import load_digits_arrays

    X, y = load_digits_arrays()
    batch = int(config.get("batch_size", 64))
    train_steps = math.ceil(round(len(y) * 0.8) / batch)  # the holdout trains on 80%
    # training calls per epoch, plus validation calls (one per EVAL_BATCH_SIZE batch)
    per_epoch = train_steps + 1
    after = per_epoch * (int(config.get("fail_epoch", 3)) - 1) + 2
    state = orchestrator.load_checkpoint()
    orchestrator.set_tag("started_from_epoch", state["epoch"] if state else 0)
    fit_classifier(
        lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
        X, y, config, loss=_FailingLoss(after, config),
    )
