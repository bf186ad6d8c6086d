"""The learning-rate range test ("LR finder", Smith 2017; fastai's ``lr_find``).

Train one fresh model for a few hundred mini-batches while the learning rate
grows exponentially from ``start_lr`` to ``end_lr``; record every batch's loss,
smooth it (exponentially weighted, bias-corrected), and stop as soon as the
smoothed loss exceeds ``diverge_factor`` times the best seen (or a loss is not
finite): past that point the curve only says "too large".

Reading the curve (pure functions, no torch, tested on synthetic curves):

* the **suggested LR** is where the smoothed loss falls fastest against
  ``log10(lr)`` (steepest descent) on the way down to its lowest point,
  ignoring the first ``SKIP_START`` and the last ``SKIP_END`` points (start-up
  noise, the blow-up);
* the **suggested range** for a log-uniform search is
  ``[suggested / 10, min(3 × suggested, lr_at_min)]``: a decade below the
  steepest point, up to 3× above it but never past the LR of the lowest
  smoothed loss (beyond it the loss rises); when the lowest loss lies at or
  below the suggestion the upper end is ``3 × suggested``.

The exponential smoothing lags: the smoothed curve is about
``smoothing / (1 - smoothing)`` batches late (19 with the default 0.95, i.e.
~0.5 decade over 300 batches from 1e-7 to 10), so the suggestion errs on the
large side by that much; the range's lower decade absorbs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "LRRangeResult",
    "lr_range_test",
    "smooth_losses",
    "suggest_lr",
    "suggest_range",
]

LR_START = 1e-7  # first learning rate tried
LR_END = 10.0  # last learning rate tried (reached only when the loss never explodes)
LR_STEPS = 300  # mini-batches, i.e. learning rates tried
SMOOTHING = 0.95  # weight of the past in the exponentially weighted loss
DIVERGE_FACTOR = 4.0  # stop once smoothed loss > this × the best smoothed loss
SKIP_START = 10  # first points ignored when picking the steepest descent
SKIP_END = 5  # last points ignored (they lead into the blow-up)
RANGE_BELOW = 10.0  # the range starts this factor below the suggestion
RANGE_ABOVE = 3.0  # ... and ends at most this factor above it


@dataclass(frozen=True)
class LRRangeResult:
    """What the range test measured and suggests. Arrays hold one entry per batch run."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested_lr: float
    lr_at_min: float
    range: tuple[float, float]
    stopped: str  # why it ended: "diverged", "non-finite loss" or "end_lr reached"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.lrs)

    @property
    def diverged(self) -> bool:
        return self.stopped != "end_lr reached"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and curve."""
        return {
            "suggested_lr": self.suggested_lr,
            "lr_at_min": self.lr_at_min,
            "range": list(self.range),
            "stopped": self.stopped,
            "steps": self.steps,
            "settings": self.settings,
            "lrs": self.lrs.tolist(),
            "losses": [x if math.isfinite(x) else None for x in self.losses.tolist()],
            "smoothed": [x if math.isfinite(x) else None for x in self.smoothed.tolist()],
        }


def smooth_losses(losses: Any, *, smoothing: float = SMOOTHING) -> np.ndarray:
    """Exponentially weighted mean of ``losses`` with bias correction (as Adam's moments).

    >>> smooth_losses([1.0, 1.0, 1.0]).round(6).tolist()
    [1.0, 1.0, 1.0]
    """
    if not 0 <= smoothing < 1:
        raise ValueError(f"`smoothing` must be in [0, 1), but got {smoothing!r}")
    out, avg = [], 0.0
    for i, loss in enumerate(np.asarray(losses, dtype=float), start=1):
        avg = smoothing * avg + (1 - smoothing) * loss
        out.append(avg / (1 - smoothing**i))
    return np.asarray(out)


def suggest_lr(lrs: Any, smoothed: Any, *, skip_start: int = SKIP_START,
               skip_end: int = SKIP_END) -> tuple[float, float]:
    """``(steepest-descent LR, LR at the lowest smoothed loss)`` of a range-test curve."""
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    if len(lrs) != len(smoothed) or len(lrs) < 3:
        raise ValueError(f"need at least 3 (lr, loss) points of equal count, but got "
                         f"{len(lrs)} and {len(smoothed)}")
    finite = np.isfinite(smoothed)
    lrs, smoothed = lrs[finite], smoothed[finite]
    lo, hi = skip_start, len(lrs) - skip_end
    if hi - lo < 3:  # too short to skip anything
        lo, hi = 0, len(lrs)
    x, y = np.log10(lrs[lo:hi]), smoothed[lo:hi]
    lowest = int(np.argmin(y))
    # The descent that matters leads to the lowest loss; what follows it is the
    # blow-up, whose wobbles can fall steeply too when the test never hit the stop.
    end = lowest + 1 if lowest >= 2 else len(y)
    slope = np.gradient(y[:end], x[:end])
    steepest = float(lrs[lo + int(np.argmin(slope))])
    return steepest, float(lrs[lo + lowest])


def suggest_range(suggested: float, lr_at_min: float) -> tuple[float, float]:
    """The log range to search: see the module's rule.

    >>> suggest_range(1e-3, 1e-2)
    (0.0001, 0.003)
    >>> suggest_range(1e-3, 2e-3)
    (0.0001, 0.002)
    """
    low = suggested / RANGE_BELOW
    high = RANGE_ABOVE * suggested
    if lr_at_min > suggested:
        high = min(high, lr_at_min)
    return (float(f"{low:.3g}"), float(f"{high:.3g}"))


def _ramp(model: Any, optimizer: Any, batches: Any, loss_fn: Any, s: Any, *, start_lr: float,
          end_lr: float, steps: int, smoothing: float, diverge_factor: float
          ) -> tuple[list[float], list[float], list[float], str]:
    """Raise the LR geometrically, one batch each, until `end_lr` or the loss diverges:
    ``(lrs, losses, smoothed losses, why it stopped)``."""
    from torch import nn

    factor = (end_lr / start_lr) ** (1 / (steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    for i, (xb, yb) in zip(range(steps), batches):
        lr = start_lr * factor**i
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch_loss = loss_fn(model(xb), yb)
        value = float(batch_loss.item())
        lrs.append(lr)
        losses.append(value)
        if not math.isfinite(value):
            smoothed.append(math.nan)
            return lrs, losses, smoothed, "non-finite loss"
        avg = smoothing * avg + (1 - smoothing) * value
        smooth = avg / (1 - smoothing ** (i + 1))  # bias-corrected running mean
        smoothed.append(smooth)
        if smooth > diverge_factor * best:
            return lrs, losses, smoothed, "diverged"
        best = min(best, smooth)
        optimizer.zero_grad(set_to_none=True)
        batch_loss.backward()
        if s.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        optimizer.step()
    return lrs, losses, smoothed, "end_lr reached"


def lr_range_test(
    model_factory: Callable[[], Any],
    X: Any,
    y: Any = None,
    config: Mapping[str, Any] | None = None,
    *,
    start_lr: float = LR_START,
    end_lr: float = LR_END,
    steps: int = LR_STEPS,
    smoothing: float = SMOOTHING,
    diverge_factor: float = DIVERGE_FACTOR,
    loss: Callable[[Any, Any], Any] | None = None,
    cv: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> LRRangeResult:
    """Run the LR range test on a fresh model; return the curve and the suggestions.

    >>> import torch
    >>> X, y = np.random.rand(256, 4).astype("float32"), np.arange(256) % 2
    >>> r = lr_range_test(lambda: torch.nn.Linear(4, 2), X, y, {"batch_size": 32}, steps=50)
    >>> r.steps <= 50 and r.range[0] < r.range[1]
    True

    ``model_factory``, ``X``, ``y`` and ``config`` are what :func:`fit_classifier` takes (the
    optimiser, momentum, weight decay, batch size and gradient clipping of
    :class:`TrainSettings` are used; ``lr`` and the schedule are not, the test sets the LR
    itself). Batches come from the training part of the same split :func:`fit_classifier` uses
    (fold 0 with ``cv``), reshuffled every pass; the validation part is never touched. ``seed``
    defaults to :func:`orchestrator.trial_seed`.
    """
    import torch
    from torch import nn

    from orchestrator.engine._context import trial_seed
    from orchestrator.toolkit._data import ClassificationData
    from orchestrator.toolkit._kfold import fold_indices
    from orchestrator.toolkit._loop import default_device, seed_everything
    from orchestrator.toolkit._optim import build_optimizer
    from orchestrator.toolkit._settings import TrainSettings

    if not 0 < start_lr < end_lr:
        raise ValueError(f"`0 < start_lr < end_lr` must hold, but got start_lr={start_lr!r}, "
                         f"end_lr={end_lr!r}")
    if steps < 3:
        raise ValueError(f"`steps` must be >= 3 mini-batches, but got {steps!r}")
    if diverge_factor <= 1:
        raise ValueError(f"`diverge_factor` must be > 1, but got {diverge_factor!r}")
    s = TrainSettings.from_config({**dict(config or {}), "lr": start_lr})
    data = ClassificationData(X, y)
    train = fold_indices(data.labels, cv=cv)[0][0]
    seed = trial_seed() if seed is None else seed
    device = default_device()
    loss_fn = loss if loss is not None else nn.CrossEntropyLoss()
    threads = torch.get_num_threads()
    torch.set_num_threads(s.torch_threads)
    try:
        seed_everything(seed)
        model = model_factory().to(device)
        model.train()
        optimizer = build_optimizer(model.parameters(), s)
        generator = torch.Generator().manual_seed(seed)

        def batches() -> Any:
            while True:  # as many passes over the training part as the test needs
                yield from data.batches(train, batch_size=s.batch_size, device=device,
                                        generator=generator)

        lrs, losses, smoothed, stopped = _ramp(model, optimizer, batches(), loss_fn, s,
                                               start_lr=start_lr, end_lr=end_lr, steps=steps,
                                               smoothing=smoothing,
                                               diverge_factor=diverge_factor)
    finally:
        torch.set_num_threads(threads)
    if sum(math.isfinite(v) for v in smoothed) < 3:
        raise ValueError(
            f"the LR range test diverged within {len(lrs)} batches (loss {losses[-1]!r} at "
            f"lr {lrs[-1]:.3g}); lower `start_lr` or check the model and data")
    suggested, at_min = suggest_lr(lrs, smoothed)
    return LRRangeResult(
        lrs=np.asarray(lrs), losses=np.asarray(losses), smoothed=np.asarray(smoothed),
        suggested_lr=suggested, lr_at_min=at_min, range=suggest_range(suggested, at_min),
        stopped=stopped,
        settings={"start_lr": start_lr, "end_lr": end_lr, "steps": steps,
                  "smoothing": smoothing, "diverge_factor": diverge_factor,
                  "optimizer": s.optimizer, "batch_size": s.batch_size, "seed": seed},
    )
