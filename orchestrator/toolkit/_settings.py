"""The training config keys the toolkit reads, their defaults, and their validation.

Every key is optional. A trial's ``config`` may hold other keys too (``width``,
``depth``, ...): the toolkit ignores what it does not know, because the same
mapping also configures the user's model.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LR_SCHEDULES", "OPTIMIZERS", "TrainSettings"]

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("none", "step", "exponential", "cosine", "onecycle", "plateau")

DEFAULT_OPTIMIZER = "adam"
DEFAULT_LR = 3e-3  # step size (peak LR for onecycle); suits Adam on small nets
DEFAULT_MOMENTUM = 0.9  # SGD only
DEFAULT_WEIGHT_DECAY = 0.0  # L2 penalty coefficient (decoupled for AdamW)
DEFAULT_BATCH_SIZE = 64  # samples per optimisation step
DEFAULT_EPOCHS = 10  # passes over the training data
DEFAULT_DROPOUT = 0.0  # drop probability; read by model factories, not by the loop
DEFAULT_GRAD_CLIP = 0.0  # max global L2 norm of the gradients; 0 = no clipping
DEFAULT_LR_SCHEDULE = "none"
DEFAULT_LR_STEP_SIZE = 5  # epochs between two drops of the `step` schedule
DEFAULT_LR_GAMMA = {  # multiplicative LR factor, per schedule, when `lr_gamma` is not set
    "step": 0.1,  # per drop
    "exponential": 0.9,  # per epoch
    "plateau": 0.5,  # per plateau
}
DEFAULT_LR_PATIENCE = 2  # epochs without a val_loss improvement before `plateau` decays
DEFAULT_WARMUP_EPOCHS = 0  # epochs of linear warm-up before the schedule starts
DEFAULT_TRAIN_FRACTION = 1.0  # share of each fold's training samples actually used
DEFAULT_TORCH_THREADS = 1  # intra-op CPU threads; parallel trials share the cores


def _nearest(value: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    """Reads keys from a config, collecting every problem instead of stopping at the first."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.problems: list[str] = []

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.config.get(key, default)
        text = str(value).lower() if value is not None else default
        if text not in allowed:
            self.problems.append(
                f"`{key}` must be one of {', '.join(map(repr, allowed))}, "
                f"but got {value!r}{_nearest(text, allowed)}"
            )
            return default
        return text

    def number(
        self,
        key: str,
        default: float | None,
        *,
        low: float,
        high: float = math.inf,
        low_open: bool = False,
        high_open: bool = False,
        integer: bool = False,
    ) -> Any:
        value = self.config.get(key, default)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        too_low = number <= low if low_open else number < low
        too_high = number >= high if high_open else number > high
        not_whole = integer and math.isfinite(number) and number != int(number)
        if isinstance(value, bool) or not math.isfinite(number) or too_low or too_high or not_whole:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            kind = "a whole number" if integer else "a number"
            self.problems.append(
                f"`{key}` must be {kind} in {left}{low:g}, {high:g}{right}, but got {value!r}"
            )
            return default
        return int(number) if integer else number


@dataclass(frozen=True)
class TrainSettings:
    """The toolkit's training settings, read from a trial's ``config``.

    >>> TrainSettings.from_config({"optimizer": "sgd", "lr": 0.1}).momentum
    0.9

    Each field is the config key of the same name; a missing key takes the
    ``DEFAULT_*`` constant of this module. ``lr_gamma`` is None until a
    schedule needs it, then it takes that schedule's default.
    """

    optimizer: str = DEFAULT_OPTIMIZER
    lr: float = DEFAULT_LR
    momentum: float = DEFAULT_MOMENTUM
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    batch_size: int = DEFAULT_BATCH_SIZE
    epochs: int = DEFAULT_EPOCHS
    dropout: float = DEFAULT_DROPOUT
    grad_clip: float = DEFAULT_GRAD_CLIP
    lr_schedule: str = DEFAULT_LR_SCHEDULE
    lr_step_size: int = DEFAULT_LR_STEP_SIZE
    lr_gamma: float | None = None
    lr_patience: int = DEFAULT_LR_PATIENCE
    warmup_epochs: int = DEFAULT_WARMUP_EPOCHS
    train_fraction: float = DEFAULT_TRAIN_FRACTION
    torch_threads: int = DEFAULT_TORCH_THREADS

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> TrainSettings:
        """Read and validate the toolkit's keys; raise one ValueError listing every bad one."""
        config = dict(config or {})
        read = _Reader(config)
        settings = cls(
            optimizer=read.choice("optimizer", DEFAULT_OPTIMIZER, OPTIMIZERS),
            lr=read.number("lr", DEFAULT_LR, low=0, low_open=True),
            momentum=read.number("momentum", DEFAULT_MOMENTUM, low=0, high=1, high_open=True),
            weight_decay=read.number("weight_decay", DEFAULT_WEIGHT_DECAY, low=0),
            batch_size=read.number("batch_size", DEFAULT_BATCH_SIZE, low=1, integer=True),
            epochs=read.number("epochs", DEFAULT_EPOCHS, low=1, integer=True),
            dropout=read.number("dropout", DEFAULT_DROPOUT, low=0, high=1, high_open=True),
            grad_clip=read.number("grad_clip", DEFAULT_GRAD_CLIP, low=0) or 0.0,
            lr_schedule=read.choice("lr_schedule", DEFAULT_LR_SCHEDULE, LR_SCHEDULES),
            lr_step_size=read.number("lr_step_size", DEFAULT_LR_STEP_SIZE, low=1, integer=True),
            lr_gamma=read.number("lr_gamma", None, low=0, high=1, low_open=True),
            lr_patience=read.number("lr_patience", DEFAULT_LR_PATIENCE, low=0, integer=True),
            warmup_epochs=read.number("warmup_epochs", DEFAULT_WARMUP_EPOCHS, low=0, integer=True),
            train_fraction=read.number(
                "train_fraction", DEFAULT_TRAIN_FRACTION, low=0, high=1, low_open=True
            ),
            torch_threads=read.number("torch_threads", DEFAULT_TORCH_THREADS, low=1, integer=True),
        )
        if not read.problems and settings.warmup_epochs >= settings.epochs:
            read.problems.append(
                f"`warmup_epochs` must be smaller than `epochs` ({settings.epochs}), "
                f"but got {settings.warmup_epochs}"
            )
        if read.problems:
            listed = "\n".join(f"  - {problem}" for problem in read.problems)
            raise ValueError(
                f"invalid training config: {len(read.problems)} problem(s)\n{listed}\n"
                "Fix these keys in the trial's config (or in the spec's parameters)."
            )
        return settings

    def gamma(self) -> float:
        """``lr_gamma``, or the default factor of the configured schedule."""
        if self.lr_gamma is not None:
            return self.lr_gamma
        return DEFAULT_LR_GAMMA.get(self.lr_schedule, 1.0)
