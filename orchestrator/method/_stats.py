"""How a trial compares with its baseline: mean difference, 95% CI and p-value.

Two designs, both Student's t (``scipy.stats``):

* **paired** — the trial and the baseline were measured on the same units
  (the same K folds): the test runs on the per-fold differences
  (``scipy.stats.ttest_rel``), which removes the fold-to-fold variation both share;
* **one-sample** — a single-seed trial against a baseline repeated with N seeds:
  the trial's one value is tested against the baseline's N values
  (``scipy.stats.ttest_1samp``); the interval is the baseline mean's, shifted.

The baseline's own spread (sample standard deviation over its folds or seeds)
is the *noise floor*: a difference smaller than it is not worth a claim even
when a test says otherwise. "Beats the baseline" needs the whole interval on
the better side of zero for the metric's goal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CONFIDENCE", "Comparison", "compare_one_sample", "compare_paired", "noise_floor"]

CONFIDENCE = 0.95  # two-sided confidence level of every interval


@dataclass(frozen=True)
class Comparison:
    """Trial minus baseline on one metric.

    ``diff`` is ``mean(trial) - mean(baseline)``; ``ci`` its confidence interval;
    ``p_value`` the two-sided p of "no difference"; ``n`` the number of pairs
    (paired) or baseline repeats (one-sample); ``noise`` the baseline's spread;
    ``test`` says in words which test gave the numbers.
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

    @property
    def better(self) -> bool:
        """The trial beats the baseline: the whole interval lies on the goal's side of 0."""
        lo, hi = self.ci
        return hi < 0 if self.goal == "minimize" else lo > 0

    @property
    def worse(self) -> bool:
        """The trial is worse than the baseline: the whole interval lies on the other side."""
        lo, hi = self.ci
        return lo > 0 if self.goal == "minimize" else hi < 0

    @property
    def above_noise(self) -> bool:
        """``|diff|`` exceeds the baseline's own spread."""
        return not math.isfinite(self.noise) or abs(self.diff) > self.noise

    def describe(self) -> str:
        lo, hi = self.ci
        return (f"{self.metric}: trial − baseline = {self.diff:+.4g} "
                f"({self.confidence:.0%} CI [{lo:+.4g}, {hi:+.4g}], p = {self.p_value:.3g}, "
                f"{self.test}); baseline noise floor ±{self.noise:.3g}")


def _values(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite numbers, but got {list(values)!r}")
    return arr


def noise_floor(baseline: Sequence[float]) -> float:
    """The baseline's sample standard deviation (ddof=1); NaN for fewer than 2 values."""
    arr = _values(baseline, "baseline values")
    return float(arr.std(ddof=1)) if len(arr) >= 2 else math.nan


def _interval(mean: float, sd: float, n: int, confidence: float) -> tuple[float, float]:
    from scipy import stats

    if sd == 0:
        return (mean, mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half)


def _p(t_p: float, diff: float) -> float:
    # scipy gives NaN when every difference is the same number (sd 0): then the
    # difference is exact — p is 0 unless the difference itself is 0.
    if math.isnan(t_p):
        return 1.0 if diff == 0 else 0.0
    return float(t_p)


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
    d = t - b
    sd = float(d.std(ddof=1))
    diff = float(d.mean())
    p = _p(float(stats.ttest_rel(t, b).pvalue), diff) if sd > 0 else _p(math.nan, diff)
    return Comparison(metric=metric, goal=goal, trial_mean=float(t.mean()),
                      baseline_mean=float(b.mean()), diff=diff,
                      ci=_interval(diff, sd, len(d), confidence), p_value=p, n=len(d),
                      noise=noise_floor(b), test=f"paired t-test over {len(d)} {unit}",
                      confidence=confidence)


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
    sd = float(b.std(ddof=1))
    diff = float(trial - b.mean())
    p = _p(float(stats.ttest_1samp(b, popmean=trial).pvalue), diff) if sd > 0 else \
        _p(math.nan, diff)
    lo, hi = _interval(float(b.mean()), sd, len(b), confidence)
    return Comparison(metric=metric, goal=goal, trial_mean=float(trial),
                      baseline_mean=float(b.mean()), diff=diff, ci=(trial - hi, trial - lo),
                      p_value=p, n=len(b), noise=sd,
                      test=f"one-sample t-test: a single-seed trial against {len(b)} baseline "
                           f"{unit}", confidence=confidence)
