"""The confirmation step: the chosen configuration and the baseline again, on fresh seeds.

A sweep picks its best trial on the same folds it then tests it on, so the
interval the sweep's verdict gives is optimistic: the winner's curse. Before a
verdict is final, :func:`confirm` runs the configuration the verdict judged (the
one-factor configuration when the hypothesis names a parameter, else the best
configuration) and the baseline ``n`` times each, in one sweep of their own:

* a fresh sweep seed (derived from the sweep's, ``"confirm"``), so new model
  initialisations and, unless ``cv.seed`` pins it, a new data split;
* seeds ``0 … n-1`` per configuration (distinct trial seeds), no early stopping:
  every run trains its full budget;
* judged on those runs only: with K-fold, per-fold means over the ``n`` seeds,
  paired over the folds; without, Welch's t-test over the seeds.

On by default when the spec has ``expected:`` (``DEFAULT_SEEDS`` seeds); the spec
field ``confirm_seeds`` sets how many, ``0`` turns it off. The result is written
to the original sweep's parent run (``orch.verdict``, ``orch.verdict_reason``,
``orch.confirmation_sweep_id``, ``orch.verdict_before_confirmation``), so
``orch ls`` and ``orch report`` show the confirmed verdict.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.method._stats import Comparison, compare_independent, compare_paired
from orchestrator.method._verdict import (
    Verdict,
    _absolute,
    _fold_values,
    _relative,
    standing_text,
    verdict_for,
)
from orchestrator.sweepspec import parse_rule

if TYPE_CHECKING:
    from orchestrator.engine import SweepResult, TrialRecord

__all__ = ["CONFIRM_FIELD", "DEFAULT_SEEDS", "confirm", "confirmation_seeds"]

DEFAULT_SEEDS = 3  # seeds per configuration when the spec has `expected:` and says nothing
CONFIRM_FIELD = "confirm_seeds"  # the spec field: how many seeds, 0 = off


def confirmation_seeds(spec: Any) -> int:
    """How many seeds the confirmation runs: the spec's ``confirm_seeds``, else
    ``DEFAULT_SEEDS`` when the spec's ``expected:`` is a rule (free text can only end
    inconclusive), else 0 (off)."""
    n = getattr(spec, CONFIRM_FIELD, None)
    if n is None:  # on by default for an expectation a rule can check (free text cannot)
        expected = (getattr(spec, "expected", "") or "").strip()
        return DEFAULT_SEEDS if expected and parse_rule(expected) is not None else 0
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"`{CONFIRM_FIELD}` must be a whole number >= 0, but got {n!r}")
    return n


def _confirm_spec(spec: Any, seeds: int) -> Any:
    from orchestrator.engine import derive_seed

    return dataclasses.replace(
        spec, name=f"{spec.name}-confirm", slug=f"{spec.slug}-confirm", method="grid",
        seed=derive_seed(spec.seed, "confirm"), run_cap=seeds, early_terminate=None,
        baseline_repeats=seeds, run_cap_defaulted=False, max_concurrent=spec.max_concurrent)


def _configs(config: Mapping[str, Any], seeds: int) -> list[dict[str, Any]]:
    from orchestrator.engine import REPEAT_KEY

    return [{**config, **({REPEAT_KEY: i} if i else {})} for i in range(seeds)]


def _last_rows(records: Sequence[TrialRecord], role: str) -> list[dict[str, float]]:
    return [dict(r.history[-1]) for r in records
            if r.role == role and r.outcome == "completed" and r.history]


def _seed_compare(name: str, goal: str, trials: list[dict[str, float]],
                  bases: list[dict[str, float]], folds: int | None
                  ) -> tuple[Comparison | None, str]:
    """The confirmation's comparison: per-fold means over seeds, paired over folds (K-fold);
    else Welch over seeds."""
    n = f"{len(trials)} seeds"
    if folds:
        t = [_fold_values(r, name, folds) for r in trials]
        b = [_fold_values(r, name, folds) for r in bases]
        if t and b and all(v is not None for v in (*t, *b)):
            tm = [sum(v[k] for v in t) / len(t) for k in range(folds)]  # type: ignore[index]
            bm = [sum(v[k] for v in b) / len(b) for k in range(folds)]  # type: ignore[index]
            return compare_paired(tm, bm, metric=name, goal=goal,
                                  unit=f"folds (each the mean of {n})"), ""
    tv = [float(r[name]) for r in trials if name in r and math.isfinite(float(r[name]))]
    bv = [float(r[name]) for r in bases if name in r and math.isfinite(float(r[name]))]
    if len(tv) >= 2 and len(bv) >= 2:
        return compare_independent(tv, bv, metric=name, goal=goal), ""
    return None, (f"the confirmation has {len(tv)} trial and {len(bv)} baseline runs with a "
                  f"finite {name}; it needs at least 2 of each")


def _judge_runs(spec: Any, before: Verdict, result: SweepResult) -> Verdict:
    """The verdict on the confirmation sweep's own runs."""
    metric, goal = spec.metric.name, spec.metric.goal
    folds = spec.cv.folds if spec.cv else None
    trials, bases = _last_rows(result.records, "trial"), _last_rows(result.records, "baseline")
    seeds = len(trials)
    lead = (f"Confirmed on fresh seeds (sweep {result.sweep_id}: {seeds} run(s) of the judged "
            f"configuration, {len(bases)} of the baseline, seed {result.spec.seed}, no early "
            f"stopping). {before.subject}")
    common: dict[str, Any] = {"expected": before.expected, "rule": before.rule,
                              "trial_id": before.trial_id, "subject": before.subject,
                              "factors": before.factors, "config": before.config}
    comp, why = _seed_compare(metric, goal, trials, bases, folds)
    beat = f" {standing_text(comp, 'On fresh seeds the configuration')}" if comp else \
        f" Comparison: {why}."
    after = f" (The sweep's own verdict, on the folds it chose the trial on: {before.status}.)"
    rule = before.rule if before.rule is not None else parse_rule(before.expected)
    if rule is None:
        return Verdict("inconclusive", f"{lead} `expected` is not a machine-checkable rule."
                       + beat + after, comparison=comp, **common)
    if not rule.relative:
        values = [float(r[rule.metric]) for r in trials if rule.metric in r]
        status, reason, nums = _absolute(rule, values, values[0] if values else None, "seeds")
        return Verdict(status, f"{lead} {reason}." + beat + after, comparison=comp,
                       numbers=nums, **common)
    rule_goal = "maximize" if rule.wants_higher else "minimize"
    rcomp, why = _seed_compare(rule.metric, rule_goal, trials, bases, folds)
    if rcomp is None:
        return Verdict("inconclusive", f"{lead} `{rule.text}` needs an interval: {why}."
                       + beat + after, comparison=comp, **common)
    status, reason, nums = _relative(rule, rcomp)
    return Verdict(status, f"{lead} {reason}." + beat + after, comparison=comp,
                   rule_comparison=rcomp, numbers=nums, **common)


def _record(result: SweepResult, confirmation: SweepResult, before: Verdict,
            after: Verdict) -> list[str]:
    """The confirmed verdict on both parent runs; problems in words (never raised)."""
    if not result.tracking_uri or not result.parent_run_id:
        return []
    try:
        from orchestrator.tracking import Store

        store = Store(result.tracking_uri)
        store.set_tags(result.parent_run_id, {
            **after.tags(), "orch.verdict_before_confirmation": before.status,
            "orch.confirmation_sweep_id": confirmation.sweep_id})
        if confirmation.parent_run_id:
            store.set_tags(confirmation.parent_run_id, {**after.tags(),
                                                        "orch.confirms": result.sweep_id})
    except Exception as exc:  # noqa: BLE001 - the verdict stands without its record
        return [f"the confirmed verdict was not recorded: {type(exc).__name__}: {exc}"]
    return []


def confirm(result: SweepResult, *, seeds: int | None = None,
            trainable: Callable[..., Any] | None = None, address: str | None = None,
            tracking_uri: str | None = None, tracking: bool = True,
            storage_path: str | None = None, live: bool | None = False) -> Verdict:
    """The sweep's verdict, confirmed on fresh seeds (see the module docstring).

    ``seeds`` overrides the spec's ``confirm_seeds``; with 0 seeds (or no
    ``expected:`` and no setting), or nothing to re-run (no judged configuration,
    a baseline given as a recorded run), the sweep's own verdict comes back with
    the reason saying why it was not confirmed. Call it after ``run_sweep``::

        result = run_sweep(spec, verdict=verdict_for)
        verdict = confirm(result)            # prints nothing; records the verdict

    An interrupted confirmation sweep raises ``KeyboardInterrupt`` (its runs are closed;
    the sweep's own verdict stands, unconfirmed).
    """
    from orchestrator.engine import run_sweep
    from orchestrator.sweepspec import baseline_config

    spec = result.spec
    before = verdict_for(result)
    n = confirmation_seeds(spec) if seeds is None else int(seeds)
    why = ""
    if n == 0:
        why = f"confirmation off (`{CONFIRM_FIELD}: 0`, or no `expected:`)"
    elif n < 2:
        why = f"a confirmation needs at least 2 seeds, but `{CONFIRM_FIELD}` is {n}"
    elif not before.config:
        why = "there is no configuration to confirm"
    elif spec.baseline is None:
        why = "the spec has no baseline to run again beside the judged configuration"
    elif baseline_config(spec) is None:
        why = "the baseline is a recorded run, which cannot be run again on fresh seeds"
    if why:
        return dataclasses.replace(before, reason=f"{before.reason} (Not confirmed on fresh "
                                   f"seeds: {why}.)")
    cspec = _confirm_spec(spec, n)
    found = run_sweep(cspec, trainable=trainable, address=address,
                      tracking_uri=tracking_uri or result.tracking_uri, tracking=tracking,
                      storage_path=storage_path, live=live, configs=_configs(before.config, n))
    if found.interrupted:  # judged on part of its runs it would say too much: stop here
        raise KeyboardInterrupt(f"the confirmation sweep {found.sweep_id} was interrupted")
    after = _judge_runs(cspec, before, found)
    problems = _record(result, found, before, after) if tracking else []
    if problems:
        after = dataclasses.replace(after, reason=after.reason + " " + " ".join(problems))
    return after
