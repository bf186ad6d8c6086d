"""Name what a trial's curves show: healthy, over-/under-fitting, gradient trouble, divergence.

Pure Python (no numpy, no Ray): the engine, the reports and the toolkit all call
:func:`diagnose` on a trial's reported history (one dict per epoch).

>>> history = [{"epoch": 1, "train_loss": 2.0, "val_loss": float("nan")}]
>>> diagnose(history).label
'diverged'

The checks run in order of precedence and the first that fires wins::

    diverged             any train_loss / val_loss is NaN or infinite
    exploding_gradients  grad_norm (or a layer's) above `explode_grad_norm`
    vanishing_gradients  grad_norm_first / grad_norm_last below `vanish_ratio`,
                         or grad_norm below `vanish_grad_norm`
    overfitting          over the last `overfit_patience` epochs (the window) val_loss
                         stays above its best by more than `overfit_rise` of it and
                         more than `overfit_noise` x its noise (the fold spread
                         `val_loss_std`, else the curve's own epoch-to-epoch jitter),
                         still rising, while train_loss kept falling over the window
    underfitting         the best train_loss stays above `underfit_loss` x the
                         loss of a uniform guess, log(n_classes) (n_classes from
                         the argument or the history; or `underfit_loss_abs`)
    too_short            fewer than `min_epochs` epochs: too few to call it healthy
    healthy              none of the above

A check whose metrics are missing from the history is skipped, so any subset
of the toolkit's metric names works.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


__all__ = ["LABELS", "Diagnosis", "Thresholds", "diagnose", "gradient_health"]

HEALTHY = "healthy"
OVERFITTING = "overfitting"
UNDERFITTING = "underfitting"
EXPLODING = "exploding_gradients"
VANISHING = "vanishing_gradients"
DIVERGED = "diverged"
TOO_SHORT = "too_short"
LABELS = (HEALTHY, OVERFITTING, UNDERFITTING, EXPLODING, VANISHING, DIVERGED, TOO_SHORT)

ADVICE = {
    HEALTHY: "",
    OVERFITTING: "reduce capacity or add regularisation (weight decay, dropout, more data)",
    UNDERFITTING: "add capacity, train longer, or try another learning rate",
    EXPLODING: "lower the learning rate or clip gradients (`grad_clip`)",
    VANISHING: "use ReLU-type activations, better initialisation, or normalisation layers",
    DIVERGED: "lower the learning rate, clip gradients (`grad_clip`), or check the data",
    TOO_SHORT: "",
}


@dataclass(frozen=True)
class Thresholds:
    """The numbers :func:`diagnose` compares a history with. Every field can be set.

    >>> Thresholds(overfit_patience=5).overfit_patience
    5
    """

    min_epochs: int = 3
    """Epochs needed before over- or under-fitting is judged."""
    overfit_patience: int = 3
    """Epochs since the best val_loss after which a rise counts as over-fitting."""
    overfit_rise: float = 0.05
    """Relative rise of val_loss (the window's mean) above its best (0.05 = 5%) that counts."""
    overfit_noise: float = 1.0
    """Multiples of val_loss's noise (fold spread, else its jitter) the rise must also exceed."""
    underfit_loss: float = 0.5
    """Best train_loss above this fraction of log(n_classes) is under-fitting."""
    underfit_loss_abs: float | None = None
    """An absolute train_loss bound for under-fitting; used instead of `underfit_loss` when set."""
    explode_grad_norm: float = 1e3
    """Gradient L2 norm (global or one layer's) above which gradients explode."""
    vanish_ratio: float = 1e-3
    """Median grad_norm_first / grad_norm_last below which gradients vanish."""
    vanish_grad_norm: float = 1e-7
    """Median global grad_norm below which gradients vanish."""

    def __post_init__(self) -> None:
        problems = []
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None and item.name == "underfit_loss_abs":
                continue
            whole = item.name in ("min_epochs", "overfit_patience")
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and (value >= 1 if whole else value > 0)
            if ok and whole and int(value) != value:
                ok = False
            if not ok:
                rule = "a whole number >= 1" if whole else "a finite number > 0"
                problems.append(f"`{item.name}` must be {rule}, but got {value!r}")
        if problems:
            raise ValueError("invalid diagnosis thresholds: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Thresholds:
        """Thresholds from a mapping (e.g. a spec's ``diagnosis:`` section); unknown keys fail.

        >>> Thresholds.from_mapping({"vanish_ratio": 0.01}).vanish_ratio
        0.01
        """
        names = [item.name for item in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"unknown diagnosis threshold {key!r}: {hint}valid keys are {', '.join(names)}"
                )
        return cls(**dict(values))


@dataclass(frozen=True)
class Diagnosis:
    """What a history shows: a ``label`` from :data:`LABELS`, a ``reason`` with the numbers."""

    label: str
    reason: str
    advice: str = ""

    def __str__(self) -> str:
        advice = f" ({self.advice})" if self.advice else ""
        return f"{self.label}: {self.reason}{advice}"


def _found(label: str, reason: str) -> Diagnosis:
    return Diagnosis(label=label, reason=reason, advice=ADVICE[label])


def _values(history: Sequence[Mapping[str, Any]], key: str) -> list[tuple[int, float]]:
    """(epoch, value) for every record that has a numeric ``key``."""
    found = []
    for position, record in enumerate(history, start=1):
        value = record.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        epoch = record.get("epoch", position)
        found.append((int(epoch) if isinstance(epoch, (int, float)) else position, number))
    return found


def _finite(pairs: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(epoch, value) for epoch, value in pairs if math.isfinite(value)]


def _diverged(history: Sequence[Mapping[str, Any]]) -> Diagnosis | None:
    for key in ("train_loss", "val_loss"):
        for epoch, value in _values(history, key):
            if not math.isfinite(value):
                return _found(DIVERGED, f"{key} is {value} at epoch {epoch}")
    return None


def _exploding(history: Sequence[Mapping[str, Any]], limit: float) -> Diagnosis | None:
    for key in ("grad_norm", "grad_norm_layer_max"):
        for epoch, value in _values(history, key):
            if value > limit:  # NaN compares False: a NaN norm alone is not "exploding"
                return _found(
                    EXPLODING, f"{key} reached {value:.3g} at epoch {epoch} (limit {limit:g})"
                )
    return None


def _vanishing(history: Sequence[Mapping[str, Any]], t: Thresholds) -> Diagnosis | None:
    first = dict(_finite(_values(history, "grad_norm_first")))
    last = dict(_finite(_values(history, "grad_norm_last")))
    ratios = [first[e] / last[e] for e in first if e in last and last[e] > 0]
    if ratios:
        ratio = float(statistics.median(ratios))
        if ratio < t.vanish_ratio:
            return _found(
                VANISHING,
                f"the first weight layer's gradient norm is {ratio:.2g} x the last layer's "
                f"(median over {len(ratios)} epochs; limit {t.vanish_ratio:g})",
            )
    norms = [value for _, value in _finite(_values(history, "grad_norm"))]
    if norms:
        norm = float(statistics.median(norms))
        if norm < t.vanish_grad_norm:
            return _found(
                VANISHING,
                f"the median gradient norm is {norm:.2g} (limit {t.vanish_grad_norm:g})",
            )
    return None


def _slope(pairs: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of value against epoch (0 for fewer than two points)."""
    if len(pairs) < 2:
        return 0.0
    xs, ys = [float(e) for e, _ in pairs], [v for _, v in pairs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def _noise(history: Sequence[Mapping[str, Any]], key: str, epochs: set[int],
           curve: Sequence[tuple[int, float]]) -> tuple[float, str]:
    """How much ``key`` moves by chance over ``epochs``: its fold spread when reported
    (``<key>_std``), else the median epoch-to-epoch change of ``curve``."""
    spread = [v for e, v in _finite(_values(history, f"{key}_std")) if e in epochs]
    if spread:
        return sum(spread) / len(spread), "the fold spread"
    steps = sorted(abs(b[1] - a[1]) for a, b in zip(curve, curve[1:]))
    if not steps:
        return 0.0, "no noise estimate"
    return float(statistics.median(steps)), "its epoch-to-epoch jitter"


def _overfitting(history: Sequence[Mapping[str, Any]], t: Thresholds) -> Diagnosis | None:
    val = _finite(_values(history, "val_loss"))
    train = dict(_finite(_values(history, "train_loss")))
    if len(val) < t.min_epochs or not train:
        return None
    best_epoch, best = min(val, key=lambda pair: pair[1])
    since = [(e, v) for e, v in val if e >= best_epoch]
    window = since[-t.overfit_patience:]
    if len(since) - 1 < t.overfit_patience or best_epoch not in train:
        return None
    last_epoch, last = val[-1]
    mean = sum(v for _, v in window) / len(window)
    noise, basis = _noise(history, "val_loss", {e for e, _ in window}, since)
    need = max(best * t.overfit_rise, t.overfit_noise * noise)
    if mean - best <= need or _slope(since) <= 0:
        return None
    train_window = [(e, train[e]) for e, _ in window if e in train]
    if not train_window or _slope(train_window) > 0 or \
            sum(v for _, v in train_window) / len(train_window) >= train[best_epoch]:
        return None
    rise = (last / best - 1) * 100 if best > 0 else math.inf
    return _found(
        OVERFITTING,
        f"val_loss rose from its best {best:.3g} (epoch {best_epoch}) to {last:.3g} "
        f"(epoch {last_epoch}, +{rise:.0f}%) while train_loss fell from "
        f"{train[best_epoch]:.3g} to {train_window[-1][1]:.3g}; over the last "
        f"{len(window)} epochs val_loss averaged {mean:.3g}, {mean - best:.3g} above its "
        f"best, more than the allowance {need:.3g} (noise: {basis} {noise:.3g})",
    )


def _underfitting(
    history: Sequence[Mapping[str, Any]], t: Thresholds, n_classes: int | None
) -> Diagnosis | None:
    train = _finite(_values(history, "train_loss"))
    if len(train) < t.min_epochs:
        return None
    if t.underfit_loss_abs is not None:
        bound, basis = t.underfit_loss_abs, "the absolute limit"
    elif n_classes is not None and n_classes >= 2:
        chance = math.log(n_classes)
        bound = t.underfit_loss * chance
        basis = f"{t.underfit_loss:g} x log({n_classes}); a uniform guess scores {chance:.3g}"
    else:
        return None
    best_epoch, best = min(train, key=lambda pair: pair[1])
    if best <= bound:
        return None
    return _found(
        UNDERFITTING,
        f"the best train_loss is {best:.3g} (epoch {best_epoch}), above {bound:.3g} ({basis})",
    )


def gradient_health(
    history: Sequence[Mapping[str, Any]], *, thresholds: Thresholds = Thresholds()
) -> Diagnosis:
    """The gradients alone: ``exploding_gradients``, ``vanishing_gradients`` or
    ``healthy``, with the numbers; ``too_short`` when no gradient norm was recorded.

    >>> gradient_health([{"epoch": 1, "grad_norm": 2.0, "grad_norm_first": 0.4,
    ...                   "grad_norm_last": 0.5}]).label
    'healthy'
    """
    found = _exploding(history, thresholds.explode_grad_norm) or _vanishing(history, thresholds)
    if found is not None:
        return found
    norms = [v for _, v in _finite(_values(history, "grad_norm"))]
    if not norms:
        return _found(TOO_SHORT, "no gradient norm was recorded (grad_norm)")
    first = dict(_finite(_values(history, "grad_norm_first")))
    last = dict(_finite(_values(history, "grad_norm_last")))
    ratios = [first[e] / last[e] for e in first if e in last and last[e] > 0]
    ratio = f"; first/last layer gradient ratio median {statistics.median(ratios):.2g}" \
        if ratios else ""
    return _found(HEALTHY, f"gradient norm between {min(norms):.3g} and {max(norms):.3g} "
                  f"(limits {thresholds.vanish_grad_norm:g} and "
                  f"{thresholds.explode_grad_norm:g}){ratio}")


def diagnose(
    history: Sequence[Mapping[str, Any]],
    *,
    thresholds: Thresholds = Thresholds(),
    n_classes: int | None = None,
) -> Diagnosis:
    """Diagnose a trial from its reported history, one mapping per epoch.

    ``n_classes`` sets the under-fitting bound (a fraction of log(n_classes));
    by default it is read from the history's ``n_classes`` entries (the
    toolkit reports one every epoch). Without it, and without
    ``thresholds.underfit_loss_abs``, under-fitting is not judged. See the
    module docstring for the checks and their order.
    """
    t = thresholds
    if n_classes is None:
        known = _finite(_values(history, "n_classes"))
        n_classes = int(known[-1][1]) if known else None
    found = (
        _diverged(history)
        or _exploding(history, t.explode_grad_norm)
        or _vanishing(history, t)
        or _overfitting(history, t)
        or _underfitting(history, t, n_classes)
    )
    if found is not None:
        return found
    if len(history) < t.min_epochs:
        return _found(TOO_SHORT, f"{len(history)} epoch(s) reported: too few to judge the "
                      f"curves (needs {t.min_epochs})")
    val = _finite(_values(history, "val_loss"))
    detail = f"; final val_loss {val[-1][1]:.3g}" if val else ""
    return _found(HEALTHY, f"no problem found over {len(history)} epochs{detail}")
