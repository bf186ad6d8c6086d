"""The verdict on a sweep's hypothesis: confirmed, refuted or inconclusive, with its numbers.

The best trial (by the sweep's metric) is compared with the baseline (see
:mod:`._stats`): over the K folds when the spec has ``cv:`` (paired), else over
the baseline's repeated seeds (one-sample). The spec's ``expected`` is then
checked when it is a rule (see :mod:`._rules`):

* ``metric op baseline ± margin`` — **confirmed** when the whole 95% interval of
  ``trial − baseline`` lies beyond the margin on the rule's side, **refuted**
  when it lies wholly on the other side, else **inconclusive**;
* ``metric op number`` — the same with the interval of the trial's own mean
  over folds; with one value and no folds the value itself decides.

No rule, a rule that cannot be parsed, no baseline or no noise estimate
(neither ``cv`` nor ``baseline_repeats >= 2``) give **inconclusive**, with the
reason. :func:`verdict_for` judges a :class:`~orchestrator.engine.SweepResult`;
:func:`judge` does the same from plain last-epoch metric rows (what the report
reads back from MLflow).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.sweepspec import Rule, parse_rule
from orchestrator.method._stats import (
    CONFIDENCE,
    Comparison,
    compare_one_sample,
    compare_paired,
    noise_floor,
)

if TYPE_CHECKING:
    from orchestrator.engine import SweepResult

__all__ = ["VERDICTS", "Verdict", "judge", "verdict_for"]

VERDICTS = ("confirmed", "refuted", "inconclusive")
USABLE = ("completed", "early_stopped")  # outcomes whose last metric counts


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking ``expected`` against the sweep's results."""

    status: str  # one of VERDICTS
    reason: str
    expected: str = ""
    rule: Rule | None = None
    trial_id: str = ""
    comparison: Comparison | None = None  # best trial vs baseline on the sweep's metric
    rule_comparison: Comparison | None = None  # on the rule's metric, when it differs
    numbers: dict[str, float] = field(default_factory=dict)

    @property
    def beats_baseline(self) -> bool | None:
        """Whether the best trial beats the baseline (None: no interval to tell)."""
        return None if self.comparison is None else self.comparison.better

    def tags(self) -> dict[str, str]:
        """The parent-run tags: ``orch.verdict`` and ``orch.verdict_reason``."""
        return {"orch.verdict": self.status, "orch.verdict_reason": self.reason}

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


def _fold_values(row: Mapping[str, float], name: str, folds: int) -> list[float] | None:
    keys = [f"{name}_fold{k}" for k in range(folds)]
    if not all(k in row and math.isfinite(float(row[k])) for k in keys):
        return None
    return [float(row[k]) for k in keys]


def _compare(name: str, goal: str, trial: Mapping[str, float],
             baselines: Sequence[Mapping[str, float]], folds: int | None) -> tuple[
                 Comparison | None, str]:
    """Trial vs baseline on ``name``; (None, why) when no interval can be had."""
    if not baselines:
        return None, "the sweep has no baseline"
    if folds:
        t = _fold_values(trial, name, folds)
        per_repeat = [_fold_values(b, name, folds) for b in baselines]
        if t is not None and all(v is not None for v in per_repeat):
            base = [sum(v[k] for v in per_repeat) / len(per_repeat)  # type: ignore[index]
                    for k in range(folds)]
            return compare_paired(t, base, metric=name, goal=goal), ""
    values = [float(b[name]) for b in baselines if name in b and math.isfinite(float(b[name]))]
    if name in trial and math.isfinite(float(trial[name])) and len(values) >= 2:
        return compare_one_sample(float(trial[name]), values, metric=name, goal=goal), ""
    if name not in trial:
        return None, f"the best trial has no metric {name!r}"
    return None, (f"no noise estimate for {name}: the baseline ran once without K-fold "
                  "(add `cv:` or `baseline_repeats: 3`)")


def _absolute(rule: Rule, trial: Mapping[str, float], folds: int | None) -> tuple[str, str,
                                                                                dict[str, float]]:
    from scipy import stats

    values = _fold_values(trial, rule.metric, folds) if folds else None
    if values is not None and len(values) >= 2:
        n = len(values)
        mean = sum(values) / n
        sd = float(math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)))
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
        nums = {"value": mean, "ci_low": lo, "ci_high": hi, "threshold": rule.value}
        where = (f"the best trial's {rule.metric} is {mean:.4g} ({CONFIDENCE:.0%} CI over {n} "
                 f"folds [{lo:.4g}, {hi:.4g}])")
        if rule.holds(lo) and rule.holds(hi):
            return "confirmed", f"{where}: all of it satisfies `{rule.text}`", nums
        if not rule.holds(lo) and not rule.holds(hi):
            return "refuted", f"{where}: none of it satisfies `{rule.text}`", nums
        return "inconclusive", f"{where} straddles {rule.value:g} (`{rule.text}`)", nums
    if rule.metric not in trial or not math.isfinite(float(trial[rule.metric])):
        return "inconclusive", f"the best trial has no metric {rule.metric!r} to check " \
                               f"`{rule.text}` against", {}
    value = float(trial[rule.metric])
    nums = {"value": value, "threshold": rule.value}
    status = "confirmed" if rule.holds(value) else "refuted"
    return status, (f"the best trial's {rule.metric} is {value:.4g}, which "
                    f"{'satisfies' if status == 'confirmed' else 'does not satisfy'} "
                    f"`{rule.text}` (a single value, no interval)"), nums


def _relative(rule: Rule, comp: Comparison) -> tuple[str, str, dict[str, float]]:
    need = rule.margin_over(comp.baseline_mean)
    lo, hi = comp.ci
    nums = {"diff": comp.diff, "ci_low": lo, "ci_high": hi, "p_value": comp.p_value,
            "required_diff": need, "noise": comp.noise}
    where = (f"{rule.metric} trial − baseline = {comp.diff:+.4g}, {comp.confidence:.0%} CI "
             f"[{lo:+.4g}, {hi:+.4g}], p = {comp.p_value:.3g} ({comp.test}); `{rule.text}` "
             f"needs {need:+.4g}")
    if rule.wants_higher:
        ok, bad = lo > need, hi < need
    else:
        ok, bad = hi < need, lo > need
    if ok:
        return "confirmed", f"{where}: the whole interval is beyond it", nums
    if bad:
        return "refuted", f"{where}: the whole interval falls short of it", nums
    return "inconclusive", f"{where}: the interval contains it", nums


def judge(*, metric: str, goal: str, expected: str, trial: Mapping[str, float] | None,
          baselines: Sequence[Mapping[str, float]], folds: int | None = None,
          trial_id: str = "") -> Verdict:
    """The verdict from last-epoch metric rows of the best trial and the baseline repeats.

    ``trial`` and each of ``baselines`` map metric names (``val_loss``,
    ``val_loss_fold0`` ...) to their values at the run's last epoch; ``folds``
    is the spec's ``cv.folds`` (None without K-fold).
    """
    expected = (expected or "").strip()
    rule = parse_rule(expected)
    common: dict[str, Any] = {"expected": expected, "rule": rule, "trial_id": trial_id}
    if trial is None:
        return Verdict("inconclusive", f"no trial finished with a finite {metric}", **common)
    comp, why = _compare(metric, goal, trial, baselines, folds)
    common["comparison"] = comp
    beat = ""
    if comp is not None:
        beat = (f" The best trial {'beats' if comp.better else 'does not beat'} the baseline: "
                f"{comp.describe()}.")
    elif baselines:
        beat = f" Baseline comparison: {why}."
    if not expected:
        return Verdict("inconclusive", "no `expected` result was written down before the "
                       "sweep." + beat, **common)
    if rule is None:
        return Verdict("inconclusive", f"`expected` is not a machine-checkable rule (e.g. "
                       f"`val_acc >= baseline + 0.005`); judge it by hand: {expected!r}."
                       + beat, **common)
    if not rule.relative:
        status, reason, nums = _absolute(rule, trial, folds)
        return Verdict(status, reason + "." + beat, numbers=nums, **common)
    rule_goal = "maximize" if rule.wants_higher else "minimize"
    rcomp = comp if rule.metric == metric and comp is not None else None
    if rcomp is None or rcomp.goal != rule_goal:
        rcomp, why = _compare(rule.metric, rule_goal, trial, baselines, folds)
    if rcomp is None:
        return Verdict("inconclusive", f"`{rule.text}` needs an interval: {why}." + beat,
                       rule_comparison=None, **common)
    status, reason, nums = _relative(rule, rcomp)
    return Verdict(status, reason + "." + beat, rule_comparison=rcomp, numbers=nums, **common)


def _baseline_run_rows(result: SweepResult) -> list[dict[str, float]]:
    """The metrics of a baseline given as an MLflow run id (best effort)."""
    if not isinstance(result.spec.baseline, str) or not result.tracking_uri:
        return []
    from orchestrator.tracking import check_baseline_run

    try:
        found = check_baseline_run(result.spec.baseline.strip(),
                                   tracking_uri=result.tracking_uri,
                                   experiment=result.spec.experiment, metric=result.metric)
    except Exception:  # noqa: BLE001 - the verdict then says there is no baseline
        return []
    return [dict(found.metrics)]


def verdict_for(result: SweepResult) -> Verdict:
    """Judge a finished sweep (the hook for the CLI summary and the recorder).

    >>> v = verdict_for(result)                 # doctest: +SKIP
    >>> v.status, v.tags()["orch.verdict_reason"]  # doctest: +SKIP
    """
    spec = result.spec
    best = result.best
    trial = best.history[-1] if best is not None and best.history else None
    baselines = [r.history[-1] for r in result.records
                 if r.role == "baseline" and r.history and r.outcome in USABLE]
    if not baselines:
        baselines = _baseline_run_rows(result)
    return judge(metric=spec.metric.name, goal=spec.metric.goal, expected=spec.expected,
                 trial=trial, baselines=baselines, folds=spec.cv.folds if spec.cv else None,
                 trial_id=best.trial_id if best is not None else "")


def spread(values: Sequence[float]) -> float:
    """Sample standard deviation, NaN under two values (re-exported for the ablation)."""
    return noise_floor(values) if len(values) >= 2 else math.nan
