"""The verdict on a sweep's hypothesis: confirmed, refuted or inconclusive, with its numbers.

What is judged
--------------
* When the hypothesis or ``expected`` names searched parameters (``dropout``,
  ``weight decay`` for ``weight_decay``, "learning rate" for ``lr``), the verdict
  tests **that factor**: the best trial that changed only those parameters from
  the baseline (the one-factor comparison the method asks for). A sweep with no
  such trial is inconclusive and says which configuration would answer it (the
  baseline with the factor at the best trial's value: what :func:`confirm` and
  ``orch ablate`` run).
* Otherwise it judges **the best configuration** (the best trial among those that
  ran deepest) and says so plainly: that trial may have changed several things.

How
---
The chosen trial is compared with the baseline **at the step both reached** (see
:mod:`._budget`), ``trial − baseline`` (see :mod:`._stats`): over the K folds
when the spec has ``cv:`` (paired), else over the baseline's repeated seeds
(one-sample). The spec's ``expected`` is then checked when it is a rule (see
:mod:`orchestrator.sweepspec._rules`):

* ``metric op baseline ± margin`` — **confirmed** when the whole 95% interval of
  ``trial − baseline`` lies beyond the margin on the rule's side, **refuted**
  when it lies wholly on the other side, else **inconclusive**;
* ``metric op number`` — the same with the interval of the trial's own mean
  over folds; with one value and no folds the value itself decides.

No rule, a rule that cannot be parsed, no baseline or no noise estimate
(neither ``cv`` nor ``baseline_repeats >= 2``) give **inconclusive**, with the
reason. The trial was chosen on the very folds it is judged on, so its interval
is optimistic (the winner's curse): :func:`orchestrator.method.confirm` runs the
chosen configuration and the baseline again on fresh seeds and judges on those.

:func:`verdict_for` judges a :class:`~orchestrator.engine.SweepResult`;
:func:`assess` the same from :class:`~._budget.RunView` s (what the report reads
back from MLflow); :func:`judge` from plain metric rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.method._budget import RunView, common_step, rank
from orchestrator.method._stats import (
    CONFIDENCE,
    Comparison,
    compare_one_sample,
    compare_paired,
    t_interval,
)
from orchestrator.sweepspec import Rule, parse_rule

if TYPE_CHECKING:
    from orchestrator.engine import SweepResult

__all__ = ["VERDICTS", "Verdict", "against_baseline", "assess", "judge", "named_factors",
           "verdict_for"]

VERDICTS = ("confirmed", "refuted", "inconclusive")
ALIASES = {"lr": ("learning rate",), "optimizer": ("optimiser",)}  # other words for a name
RECORDED_BASELINE = "recorded_baseline"  # role of a baseline given as an MLflow run id


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking ``expected`` against the sweep's results."""

    status: str  # one of VERDICTS
    reason: str
    expected: str = ""
    rule: Rule | None = None
    trial_id: str = ""
    comparison: Comparison | None = None  # the judged trial vs baseline, sweep's metric
    rule_comparison: Comparison | None = None  # on the rule's metric, when it differs
    numbers: dict[str, float] = field(default_factory=dict)
    subject: str = ""  # what was judged, in words
    factors: tuple[str, ...] = ()  # the parameters the hypothesis names
    config: dict[str, Any] = field(default_factory=dict)  # flat: what a confirmation re-runs
    step: int | None = None  # the budget (report number) the comparison was made at

    @property
    def beats_baseline(self) -> bool | None:
        """Whether the judged trial is significantly better (None: no interval to tell)."""
        return None if self.comparison is None else self.comparison.better

    def tags(self) -> dict[str, str]:
        """The parent-run tags: ``orch.verdict`` and ``orch.verdict_reason``."""
        return {"orch.verdict": self.status, "orch.verdict_reason": self.reason}

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


# --------------------------------------------------------------------------- factors


def _words(name: str) -> list[str]:
    last = name.rsplit(".", 1)[-1]
    found = {name, last, last.replace("_", " "), *ALIASES.get(last, ())}
    return sorted(found, key=len, reverse=True)


def named_factors(text: str, parameters: Sequence[Any]) -> tuple[str, ...]:
    """The searched parameters ``text`` names, as whole words (case-insensitive).

    >>> from orchestrator.sweepspec import Parameter
    >>> ps = [Parameter("dropout", "uniform", min=0, max=0.5),
    ...       Parameter("lr", "log_uniform_values", min=1e-4, max=0.1)]
    >>> named_factors("Dropout improves accuracy", ps)
    ('dropout',)
    >>> named_factors("a tuned learning rate helps", ps)
    ('lr',)
    """
    low = (text or "").lower()
    out = []
    for p in parameters:
        if getattr(p, "is_constant", False) or getattr(p, "is_placeholder", False):
            continue
        words = _words(p.name)
        if any(re.search(rf"(?<![\w.]){re.escape(w.lower())}(?![\w])", low) for w in words):
            out.append(p.name)
    return tuple(out)


def _factors(expected: str, hypothesis: str, parameters: Sequence[Any]) -> tuple[str, ...]:
    return named_factors(expected, parameters) or named_factors(hypothesis, parameters)


def _same(a: Any, b: Any) -> bool:
    from orchestrator.sweepspec import same

    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return same(a, b) or str(a) == str(b)


def changed(config: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (baseline value, config value)}`` for every key that differs."""
    keys = sorted(set(config) | set(baseline))
    return {k: (baseline.get(k), config.get(k)) for k in keys
            if k not in config or k not in baseline or not _same(config[k], baseline[k])}


def _dependants(factors: Sequence[str], parameters: Sequence[Any]) -> set[str]:
    """Parameters switched on or off by a factor (``when:`` on it): they change with it."""
    out = set(factors)
    for p in parameters:
        if any(dep in out for dep, _ in getattr(p, "when", ())):
            out.add(p.name)
    return out


# --------------------------------------------------------------------------- comparisons


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
        return None, f"the judged trial has no metric {name!r}"
    return None, (f"no noise estimate for {name}: the baseline ran once without K-fold "
                  "(add `cv:` or `baseline_repeats: 3`)")


def _absolute(rule: Rule, values: list[float] | None, single: float | None,
              of: str = "folds") -> tuple[str, str, dict[str, float]]:
    """An absolute rule against the interval of ``values`` (folds or seeds), else one value."""
    if values is not None and len(values) >= 2:
        n, mean = len(values), sum(values) / len(values)
        lo, hi = t_interval(values)
        nums = {"value": mean, "ci_low": lo, "ci_high": hi, "threshold": rule.value}
        where = (f"{rule.metric} is {mean:.4g} ({CONFIDENCE:.0%} CI over {n} {of} "
                 f"[{lo:.4g}, {hi:.4g}])")
        if rule.holds(lo) and rule.holds(hi):
            return "confirmed", f"{where}: all of it satisfies `{rule.text}`", nums
        if not rule.holds(lo) and not rule.holds(hi):
            return "refuted", f"{where}: none of it satisfies `{rule.text}`", nums
        return "inconclusive", f"{where} straddles {rule.value:g} (`{rule.text}`)", nums
    if single is None or not math.isfinite(single):
        return "inconclusive", f"there is no {rule.metric!r} to check `{rule.text}` against", {}
    nums = {"value": single, "threshold": rule.value}
    status = "confirmed" if rule.holds(single) else "refuted"
    return status, (f"{rule.metric} is {single:.4g}, which "
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


def standing_text(comp: Comparison, who: str = "The judged trial") -> str:
    """``<who> is not significantly different from the baseline: <numbers>.``"""
    return f"{who} is {comp.standing} the baseline: {comp.describe()}."


# --------------------------------------------------------------------------- judge


def judge(*, metric: str, goal: str, expected: str, trial: Mapping[str, float] | None,
          baselines: Sequence[Mapping[str, float]], folds: int | None = None,
          trial_id: str = "", subject: str = "", who: str = "The best trial",
          **extra: Any) -> Verdict:
    """The verdict from the metric rows of the judged trial and the baseline repeats.

    ``trial`` and each of ``baselines`` map metric names (``val_loss``,
    ``val_loss_fold0`` ...) to their values at the step compared (the one both
    reached); ``folds`` is the spec's ``cv.folds`` (None without K-fold).
    ``subject`` opens the reason (what is judged); ``extra`` goes to the
    :class:`Verdict` (``factors``, ``config``, ``step``).
    """
    expected = (expected or "").strip()
    rule = parse_rule(expected)
    common: dict[str, Any] = {"expected": expected, "rule": rule, "trial_id": trial_id,
                              "subject": subject, **extra}
    lead = f"{subject} " if subject else ""
    if trial is None:
        return Verdict("inconclusive", f"{lead}no trial finished with a finite {metric}",
                       **common)
    comp, why = _compare(metric, goal, trial, baselines, folds)
    common["comparison"] = comp
    beat = f" {standing_text(comp, who)}" if comp is not None else \
        (f" Baseline comparison: {why}." if baselines else "")
    if not expected:
        return Verdict("inconclusive", f"{lead}no `expected` result was written down before "
                       "the sweep." + beat, **common)
    if rule is None:
        return Verdict("inconclusive", f"{lead}`expected` is not a machine-checkable rule "
                       f"(e.g. `val_acc >= baseline + 0.005`); judge it by hand: {expected!r}."
                       + beat, **common)
    if not rule.relative:
        values = _fold_values(trial, rule.metric, folds) if folds else None
        single = trial.get(rule.metric)
        status, reason, nums = _absolute(rule, values, None if single is None else float(single))
        return Verdict(status, lead + reason + "." + beat, numbers=nums, **common)
    rule_goal = "maximize" if rule.wants_higher else "minimize"
    rcomp = comp if rule.metric == metric and comp is not None else None
    if rcomp is None or rcomp.goal != rule_goal:
        rcomp, why = _compare(rule.metric, rule_goal, trial, baselines, folds)
    if rcomp is None:
        return Verdict("inconclusive", f"{lead}`{rule.text}` needs an interval: {why}." + beat,
                       rule_comparison=None, **common)
    status, reason, nums = _relative(rule, rcomp)
    return Verdict(status, lead + reason + "." + beat, rule_comparison=rcomp, numbers=nums,
                   **common)


# --------------------------------------------------------------------------- assess


def _shown(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _diff_text(diff: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {_shown(a)} → {_shown(b)}" for k, (a, b) in diff.items())


def when(row: Mapping[str, Any], step: int) -> str:
    """``epoch 6`` when the report carries its epoch, else ``report 6``."""
    epoch = row.get("epoch")
    if isinstance(epoch, (int, float)) and math.isfinite(epoch):
        return f"epoch {epoch:g}"
    return f"report {step}"


def _base_rows(bases: Sequence[RunView], step: int | None) -> list[dict[str, float]]:
    out = []
    for b in bases:
        if b.role == RECORDED_BASELINE:  # a recorded run: its last values only
            out.append(b.row(max(b.rows)))
        elif step is not None:
            out.append(b.row(step))
    return out


def _choose(metric: str, goal: str, factors: tuple[str, ...], trials: list[RunView],
            base_cfg: Mapping[str, Any], parameters: Sequence[Any]
            ) -> tuple[RunView | None, str, dict[str, Any]]:
    """The trial to judge, the subject in words, and the flat config a confirmation runs."""
    ranked = rank(trials, metric, goal)
    if not ranked:
        return None, "", {}
    if not factors or not base_cfg:
        best = ranked[0]
        diff = changed(best.config, base_cfg) if base_cfg else {}
        what = f", which changed {_diff_text(diff)}" if diff else ""
        return best, (f"Judges the best configuration (trial {best.trial_id}{what}), not a "
                      "single factor:"), dict(best.config)
    allowed = _dependants(factors, parameters)
    names = ", ".join(factors)
    one = [t for t in ranked if changed(t.config, base_cfg)
           and set(changed(t.config, base_cfg)) <= allowed]
    if one:
        best = one[0]
        what = "one factor" if len(factors) == 1 else "these factors together"
        return best, (f"Tests {names} ({what}, everything else at the baseline): trial "
                      f"{best.trial_id} changed only {_diff_text(changed(best.config, base_cfg))}:"
                      ), dict(best.config)
    moved = [t for t in ranked if any(f in changed(t.config, base_cfg) for f in factors)]
    source = moved[0] if moved else ranked[0]
    target = {**base_cfg, **{f: source.config[f] for f in factors if f in source.config}}
    return None, (f"Tests {names}, but no trial changed only {names} from the baseline "
                  f"(the best, {ranked[0].trial_id}, changed "
                  f"{_diff_text(changed(ranked[0].config, base_cfg)) or 'nothing'}); the "
                  f"one-factor configuration to run is the baseline with "
                  f"{_diff_text(changed(target, base_cfg)) or names}:"), target


def assess(*, metric: str, goal: str, expected: str, runs: Sequence[RunView],
           hypothesis: str = "", folds: int | None = None, parameters: Sequence[Any] = (),
           baseline: Mapping[str, Any] | None = None) -> Verdict:
    """The verdict from a sweep's runs (see the module docstring for what is judged).

    ``baseline`` is the flat baseline config (default: the first baseline run's);
    ``parameters`` the spec's (to find the factors the hypothesis names).
    """
    bases = [r for r in runs if r.role in ("baseline", RECORDED_BASELINE) and r.usable]
    trials = [r for r in runs if r.role == "trial"]
    base_cfg = dict(baseline) if baseline is not None else \
        (dict(bases[0].config) if bases and bases[0].role == "baseline" else {})
    factors = _factors(expected, hypothesis, parameters)
    chosen, subject, config = _choose(metric, goal, factors, trials, base_cfg, parameters)
    extra = {"factors": factors, "config": config}
    if chosen is None:
        if not subject:
            return judge(metric=metric, goal=goal, expected=expected, trial=None,
                         baselines=[], **extra)
        return Verdict("inconclusive", subject[:-1] + ".", expected=(expected or "").strip(),
                       rule=parse_rule(expected), subject=subject, **extra)
    live = [b for b in bases if b.role == "baseline"]
    step = common_step(chosen, live, metric) if live else chosen.last_step(metric)
    row = chosen.row(step) if step is not None else None
    who = f"Trial {chosen.trial_id}"
    if live and step is not None:
        who = f"At {when(chosen.row(step), step)} (reached by both), trial {chosen.trial_id}"
    return judge(metric=metric, goal=goal, expected=expected, trial=row,
                 baselines=_base_rows(bases, step), folds=folds, trial_id=chosen.trial_id,
                 subject=subject, who=who, step=step, **extra)


def _baseline_run_rows(result: SweepResult) -> list[RunView]:
    """A baseline given as an MLflow run id, as a run view of its last values (best effort)."""
    if not isinstance(result.spec.baseline, str) or not result.tracking_uri:
        return []
    from orchestrator.tracking import check_baseline_run

    try:
        found = check_baseline_run(result.spec.baseline.strip(),
                                   tracking_uri=result.tracking_uri,
                                   experiment=result.spec.experiment, metric=result.metric)
    except Exception:  # noqa: BLE001 - the verdict then says there is no baseline
        return []
    return [RunView(trial_id=result.spec.baseline.strip(), role=RECORDED_BASELINE,
                    outcome="completed", config={}, rows={0: dict(found.metrics)})]


def verdict_for(result: SweepResult) -> Verdict:
    """Judge a finished sweep (the hook for the CLI summary and the recorder).

    >>> v = verdict_for(result)                 # doctest: +SKIP
    >>> v.status, v.tags()["orch.verdict_reason"]  # doctest: +SKIP
    """
    from orchestrator.sweepspec import baseline_config, flatten

    spec = result.spec
    if getattr(spec, "metric", None) is None:  # grid/random may run without a metric
        return Verdict("inconclusive", "the sweep names no metric to judge it by",
                       expected=spec.expected)
    runs = [RunView.from_record(r) for r in result.records]
    if not any(r.role == "baseline" and r.usable for r in runs):
        runs += _baseline_run_rows(result)
    base = baseline_config(spec)
    return assess(metric=spec.metric.name, goal=spec.metric.goal, expected=spec.expected,
                  hypothesis=spec.hypothesis, runs=runs,
                  folds=spec.cv.folds if spec.cv else None, parameters=spec.parameters,
                  baseline=flatten(base) if base is not None else None)


def against_baseline(result: SweepResult) -> str:
    """One line: the best trial against the baseline at the epoch both reached, as
    ``trial − baseline`` with its interval (what the end-of-sweep summary prints)."""
    spec = result.spec
    if getattr(spec, "metric", None) is None:
        return ""
    metric = spec.metric.name
    base = [b for b in (RunView.from_record(r) for r in result.records if r.role == "baseline")
            if b.usable]
    if not base:
        return ""
    shown = (lambda x: "–" if x is None else f"{x:.5g}")
    if result.best is None:
        return f"baseline {metric}: {shown(base[0].value(metric))}"
    best = RunView.from_record(result.best)
    step = common_step(best, base, metric)
    if step is None:
        return (f"baseline {metric}: {shown(base[0].value(metric))} (no epoch in common with "
                "the best)")
    comp, why = _compare(metric, spec.metric.goal, best.row(step), [b.row(step) for b in base],
                         spec.cv.folds if spec.cv else None)
    at = when(best.row(step), step)
    if comp is None:
        diff = (best.value(metric, step) or 0.0) - (base[0].value(metric, step) or 0.0)
        return (f"baseline {metric} at {at}: {shown(base[0].value(metric, step))} (best − "
                f"baseline = {diff:+.4g}; no interval: {why})")
    return (f"baseline {metric} at {at}: {comp.baseline_mean:.5g}; best − baseline = "
            f"{comp.diff:+.4g} (95% CI [{comp.ci[0]:+.3g}, {comp.ci[1]:+.3g}], p = "
            f"{comp.p_value:.2g}): the best trial is {comp.standing} the baseline")
