"""Optimisers and learning-rate schedules, built from :class:`TrainSettings`.

Everything here is torch's own (``torch.optim``, ``torch.optim.lr_scheduler``);
this module only picks the class and steps it at the right moment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import lr_scheduler

from orchestrator.toolkit._settings import LR_SCHEDULES, OPTIMIZERS, TrainSettings

__all__ = ["LRSchedule", "build_optimizer"]

ONECYCLE_PCT_START = 0.3  # share of onecycle's steps spent rising, without `warmup_epochs`


def build_optimizer(
    params: Iterable[torch.nn.Parameter], settings: TrainSettings
) -> torch.optim.Optimizer:
    """The optimiser named by ``settings.optimizer``, with its ``lr`` and ``weight_decay``.

    >>> model = torch.nn.Linear(2, 2)
    >>> build_optimizer(model.parameters(), TrainSettings(optimizer="sgd")).defaults["momentum"]
    0.9
    """
    name = settings.optimizer
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    raise ValueError(
        f"`optimizer` must be one of {', '.join(map(repr, OPTIMIZERS))}, but got {name!r}"
    )


class LRSchedule:
    """The configured LR schedule, with optional linear warm-up, stepped at the right moment.

    Call :meth:`after_batch` after every optimiser step and :meth:`after_epoch`
    after every epoch's validation. ``onecycle`` moves the LR every batch (its
    own rise phase is the warm-up: it lasts ``warmup_epochs`` when set); every
    other schedule moves it once per epoch, after ``warmup_epochs`` epochs of
    linear warm-up from ``lr / (warmup_epochs + 1)`` to ``lr``. ``plateau``
    watches the fold's ``val_loss``.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, settings: TrainSettings, *, steps_per_epoch: int
    ) -> None:
        self.optimizer = optimizer
        self.per_batch = settings.lr_schedule == "onecycle"
        self.plateau: lr_scheduler.ReduceLROnPlateau | None = None
        self.warmup_epochs = settings.warmup_epochs
        self.epochs_done = 0
        self.scheduler = self._build(optimizer, settings, steps_per_epoch=steps_per_epoch)

    def _build(
        self, optimizer: torch.optim.Optimizer, settings: TrainSettings, *, steps_per_epoch: int
    ) -> lr_scheduler.LRScheduler | None:
        name, warmup, epochs = settings.lr_schedule, settings.warmup_epochs, settings.epochs
        if name == "onecycle":
            return lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=settings.lr,
                total_steps=epochs * steps_per_epoch,
                pct_start=warmup / epochs if warmup else ONECYCLE_PCT_START,
            )
        warm = (
            lr_scheduler.LinearLR(optimizer, start_factor=1 / (warmup + 1), total_iters=warmup)
            if warmup
            else None
        )
        if name == "plateau":
            # SequentialLR cannot hold ReduceLROnPlateau (it needs the metric), so the
            # warm-up runs first and after_epoch() hands over to the plateau by hand.
            self.plateau = lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=settings.gamma(), patience=settings.lr_patience
            )
            return warm
        main: lr_scheduler.LRScheduler | None
        if name == "none":
            main = None
        elif name == "step":
            main = lr_scheduler.StepLR(
                optimizer, step_size=settings.lr_step_size, gamma=settings.gamma()
            )
        elif name == "exponential":
            main = lr_scheduler.ExponentialLR(optimizer, gamma=settings.gamma())
        elif name == "cosine":
            main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs - warmup))
        else:
            raise ValueError(
                f"`lr_schedule` must be one of {', '.join(map(repr, LR_SCHEDULES))}, "
                f"but got {name!r}"
            )
        if warm is None or main is None:
            return warm or main
        return lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[warmup])

    @property
    def lr(self) -> float:
        """The learning rate of the first parameter group, now."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        """Where the schedule stands (for a checkpoint); the optimiser's own state is separate."""
        return {
            "epochs_done": self.epochs_done,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (load the optimiser's state first)."""
        self.epochs_done = int(state["epochs_done"])
        for mine, saved in ((self.scheduler, state["scheduler"]), (self.plateau, state["plateau"])):
            if (mine is None) != (saved is None):
                raise ValueError("the saved LR schedule is not the configured one")
            if mine is not None:
                mine.load_state_dict(saved)

    def after_batch(self) -> None:
        if self.per_batch and self.scheduler is not None:
            self.scheduler.step()

    def after_epoch(self, val_loss: float) -> None:
        self.epochs_done += 1
        if self.per_batch:
            return
        if self.plateau is not None and self.epochs_done > self.warmup_epochs:
            self.plateau.step(val_loss)
        elif self.scheduler is not None:
            self.scheduler.step()
