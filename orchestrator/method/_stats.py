"""How a trial compares with its baseline: mean difference, 95% CI and p-value.

One sign convention everywhere: ``diff = trial − baseline`` (for a loss a negative
difference is an improvement, for an accuracy a positive one). Three designs, all
Student's t from ``scipy.stats`` (intervals from ``.confidence_interval()``):

* **paired** — the trial and the baseline were measured on the same units (the
  same K folds): ``scipy.stats.ttest_rel`` on the per-fold differences, which
  removes the fold-to-fold variation both share;
* **one-sample** — a single-seed trial against a baseline repeated with N seeds:
  ``scipy.stats.ttest_1samp`` of the baseline's N values against the trial's one
  value; the interval is the baseline mean's, mirrored;
* **independent** — N seeds of the trial against M seeds of the baseline (the
  confirmation runs without K-fold): Welch's ``scipy.stats.ttest_ind``.

The **noise floor** is the baseline's own standard deviation (ddof=1) over its
folds or seeds: how much the baseline's metric moves from one fold (or seed) to
the next. "Significantly better than the baseline" needs the whole interval on
the better side of zero for the metric's goal; a difference whose interval
contains 0 is *not significant*, whatever the two means say.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CONFIDENCE", "Comparison", "compare_independent", "compare_one_sample",
           "compare_paired", "noise_floor", "t_interval"]

CONFIDENCE = 0.95  # two-sided confidence level of every interval


@dataclass(frozen=True)
class Comparison:
    """Trial minus baseline on one metric.

    ``diff`` is ``mean(trial) - mean(baseline)``; ``ci`` its confidence interval;
    ``p_value`` the two-sided p of "no difference"; ``n`` the number of pairs
    (paired) or baseline repeats (one-sample, independent); ``noise`` the
    baseline's standard deviation over ``unit`` (its noise floor); ``test`` says
    in words which test gave the numbers.
    """

    metric: str
    goal: str
    trial_mean: float
    baseline_mean: float
    diff: float
    ci: tuple[float, float]
    p_value: float
    n: int
    noise: float
    test: str
    confidence: float = CONFIDENCE
    unit: str = "folds"

    @property
    def better(self) -> bool:
        """Significantly better: the whole interval lies on the goal's side of 0."""
        lo, hi = self.ci
        return hi < 0 if self.goal == "minimize" else lo > 0

    @property
    def worse(self) -> bool:
        """Significantly worse: the whole interval lies on the other side of 0."""
        lo, hi = self.ci
        return lo > 0 if self.goal == "minimize" else hi < 0

    @property
    def standing(self) -> str:
        """``significantly better than``, ``significantly worse than`` or ``not
        significantly different from`` (the interval contains 0)."""
        if self.better:
            return "significantly better than"
        if self.worse:
            return "significantly worse than"
        return "not significantly different from"

    @property
    def noise_text(self) -> str:
        """The noise floor in words: what it is and how large."""
        if not math.isfinite(self.noise):
            return "no noise floor (the baseline has one value)"
        return (f"noise floor = the baseline's standard deviation over its {self.n} "
                f"{self.unit}, ±{self.noise:.3g}")

    def describe(self) -> str:
        lo, hi = self.ci
        return (f"{self.metric}: trial − baseline = {self.diff:+.4g} "
                f"({self.confidence:.0%} CI [{lo:+.4g}, {hi:+.4g}], p = {self.p_value:.3g}, "
                f"{self.test}); {self.noise_text}")


def _values(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite numbers, but got {list(values)!r}")
    return arr


def noise_floor(baseline: Sequence[float]) -> float:
    """The baseline's sample standard deviation (ddof=1); NaN for fewer than 2 values."""
    arr = _values(baseline, "baseline values")
    return float(arr.std(ddof=1)) if len(arr) >= 2 else math.nan


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (``scipy.stats.t.interval``).

    >>> lo, hi = t_interval([1.0, 2.0, 3.0])
    >>> round(lo, 3), round(hi, 3)
    (-0.484, 4.484)
    """
    from scipy import stats

    arr = _values(values, "values")
    if len(arr) < 2:
        raise ValueError(f"an interval needs at least 2 values, but got {len(arr)}")
    mean, sd = float(arr.mean()), float(arr.std(ddof=1))
    if sd == 0:
        return (mean, mean)
    lo, hi = stats.t.interval(confidence, len(arr) - 1, loc=mean, scale=sd / math.sqrt(len(arr)))
    return (float(lo), float(hi))


def _p(t_p: float, diff: float) -> float:
    # scipy gives NaN when every difference is 0 (sd 0, t = 0/0): no difference at all.
    if math.isnan(t_p):
        return 1.0 if diff == 0 else 0.0
    return float(t_p)


def _ci(found: object, confidence: float, fallback: float) -> tuple[float, float]:
    """scipy's interval, or the exact point when the spread is zero (scipy gives NaN)."""
    ci = found.confidence_interval(confidence)  # type: ignore[attr-defined]
    lo, hi = float(ci.low), float(ci.high)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else (fallback, fallback)


def compare_paired(trial: Sequence[float], baseline: Sequence[float], *, metric: str,
                   goal: str = "minimize", confidence: float = CONFIDENCE,
                   unit: str = "folds") -> Comparison:
    """Paired t-test of ``trial[i] - baseline[i]`` (same fold ``i``).

    >>> c = compare_paired([0.9, 0.92, 0.94], [0.88, 0.89, 0.93], metric="val_acc",
    ...                    goal="maximize")
    >>> round(c.diff, 4), c.n
    (0.02, 3)
    """
    from scipy import stats

    t, b = _values(trial, "trial values"), _values(baseline, "baseline values")
    if len(t) != len(b) or len(t) < 2:
        raise ValueError(f"a paired test needs two equally long lists of at least 2 values, "
                         f"but got {len(t)} trial and {len(b)} baseline values")
    diff = float((t - b).mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical differences: scipy warns, the answer is exact
        found = stats.ttest_rel(t, b)
        ci = _ci(found, confidence, diff)
    return Comparison(metric=metric, goal=goal, trial_mean=float(t.mean()),
                      baseline_mean=float(b.mean()), diff=diff, ci=ci,
                      p_value=_p(float(found.pvalue), diff), n=len(t), noise=noise_floor(b),
                      test=f"paired t-test over {len(t)} {unit}", confidence=confidence,
                      unit=unit)


def compare_one_sample(trial: float, baseline: Sequence[float], *, metric: str,
                       goal: str = "minimize", confidence: float = CONFIDENCE,
                       unit: str = "seeds") -> Comparison:
    """One-sample t-test: a single trial value against ``len(baseline)`` baseline repeats.

    The interval is ``trial - (baseline mean ± t·s/√n)``: the uncertainty is the
    baseline's only, since the trial ran once.
    """
    from scipy import stats

    b = _values(baseline, "baseline values")
    if len(b) < 2 or not math.isfinite(trial):
        raise ValueError(f"a one-sample test needs a finite trial value and at least 2 "
                         f"baseline values, but got {trial!r} and {len(b)}")
    diff = float(trial - b.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = stats.ttest_1samp(b, popmean=trial)
        lo, hi = _ci(found, confidence, float(b.mean()))
    return Comparison(metric=metric, goal=goal, trial_mean=float(trial),
                      baseline_mean=float(b.mean()), diff=diff, ci=(trial - hi, trial - lo),
                      p_value=_p(float(found.pvalue), diff), n=len(b), noise=noise_floor(b),
                      test=f"one-sample t-test: a single-seed trial against {len(b)} baseline "
                           f"{unit}", confidence=confidence, unit=unit)


def compare_independent(trial: Sequence[float], baseline: Sequence[float], *, metric: str,
                        goal: str = "minimize", confidence: float = CONFIDENCE,
                        unit: str = "seeds") -> Comparison:
    """Welch's t-test: ``len(trial)`` seeds of the trial against ``len(baseline)`` of the
    baseline, no pairing between them.

    >>> c = compare_independent([0.95, 0.96, 0.97], [0.90, 0.91, 0.92], metric="val_acc",
    ...                         goal="maximize")
    >>> round(c.diff, 3), c.better
    (0.05, True)
    """
    from scipy import stats

    t, b = _values(trial, "trial values"), _values(baseline, "baseline values")
    if len(t) < 2 or len(b) < 2:
        raise ValueError(f"a two-sample test needs at least 2 values on each side, but got "
                         f"{len(t)} trial and {len(b)} baseline values")
    diff = float(t.mean() - b.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = stats.ttest_ind(t, b, equal_var=False)
        ci = _ci(found, confidence, diff)
    return Comparison(metric=metric, goal=goal, trial_mean=float(t.mean()),
                      baseline_mean=float(b.mean()), diff=diff, ci=ci,
                      p_value=_p(float(found.pvalue), diff), n=len(b), noise=noise_floor(b),
                      test=f"Welch's t-test: {len(t)} trial {unit} against {len(b)} baseline "
                           f"{unit}", confidence=confidence, unit=unit)
