"""What a sweep optimises: ``metric:`` or W&B's multi-objective ``metrics:`` list, and
``metric_constraints:``.

Rules, in order: ``metric`` and ``metrics`` exclude each other; ``metrics`` lists two or
more distinct objectives; a method that learns from results (bayes, tpe, gp, cmaes,
pbt, pb2) needs an objective, and so does early stopping, while grid and random run
without one (W&B's rule: every point runs, no best is named); several objectives need
a method with a multi-objective form (Optuna's TPE and GP samplers, random, grid).
A constraint is a rule in the grammar of ``expected:`` against a number
(``n_params <= 50000``), never the baseline; nothing is evaluated as code.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from orchestrator.sweepspec._issues import Issues, show
from orchestrator.sweepspec._model import (
    DEFAULT_GOAL,
    DEFAULT_IMPUTE,
    METRIC_OPTIONAL_METHODS,
    MULTI_OBJECTIVE_METHODS,
    Metric,
)
from orchestrator.sweepspec._rules import Rule, parse_rule
from orchestrator.sweepspec._shapes import MetricShape

__all__ = ["METRIC_RE", "Objectives", "check_objectives", "read_constraints", "read_objectives"]

METRIC_RE = re.compile(r"[A-Za-z_][\w.\-/]{0,249}")  # MLflow's metric-name characters
MAX_CONSTRAINTS = 50  # rules in metric_constraints: more is a mistake, not a search

Objectives = tuple[Metric, ...]


def read_objectives(metric: Any, metrics: Any, issues: Issues) -> Objectives | None:
    """The objectives, first one first: () for none; None when the section is wrong."""
    if metric is not None and metrics is not None:
        issues.add("metrics", "`metric` and `metrics` are both given; they exclude each other",
                   "keep `metric:` for one objective, or `metrics:` (a list) for several")
        return None
    if metrics is not None:
        return _read_list(metrics, issues)
    if metric is None:
        return ()
    one = _read_one(metric, "metric", issues)
    return None if one is None else (one,)


def _read_one(raw: Any, path: str, issues: Issues) -> Metric | None:
    if not isinstance(raw, dict):
        issues.add(path, f"a metric is a mapping, got {show(raw)}",
                   "write e.g. metric: {name: val_loss, goal: minimize}" if path == "metric"
                   else "write each as e.g. - {name: val_loss, goal: minimize}")
        return None
    try:
        m = MetricShape.model_validate(raw)
    except ValidationError as exc:
        issues.from_pydantic(exc, path, MetricShape)
        return None
    if not m.name.strip():
        issues.add(f"{path}.name", "must not be empty", "e.g. name: val_loss")
        return None
    if not METRIC_RE.fullmatch(m.name) or ".." in m.name:
        issues.add(f"{path}.name", f"{show(m.name)} is not a metric name (letters, digits, '_', "
                   "'-', '.', '/'; up to 250 characters; no '..')",
                   "use the key your trainable reports, e.g. val_loss")
        return None
    running = m.impute_while_running
    if running is True:
        issues.add(f"{path}.impute_while_running", "must be latest, best, worst or false, got "
                   "true", "write e.g. impute_while_running: latest")
        return None
    return Metric(name=m.name, goal=m.goal or DEFAULT_GOAL, target=m.target, impute=m.impute or DEFAULT_IMPUTE,
                  impute_while_running=None if running in (False, "false", None) else running)


def _read_list(raw: Any, issues: Issues) -> Objectives | None:
    if not isinstance(raw, list) or len(raw) < 2:
        issues.add("metrics", f"`metrics` lists two or more objectives, got {show(raw)}",
                   "for one objective write `metric: {name: val_loss, goal: minimize}`")
        return None
    n_before = len(issues)
    out = [_read_one(item, f"metrics[{i}]", issues) for i, item in enumerate(raw)]
    for i, m in enumerate(out):
        if m is not None and m.target is not None:
            issues.add(f"metrics[{i}].target", "a target ends the sweep when one metric reaches "
                       "it, which is not defined for several objectives",
                       "remove it; use `stop:` or `metric_constraints:` instead")
    names = [m.name for m in out if m is not None]
    for name in sorted({n for n in names if names.count(n) > 1}):
        issues.add("metrics", f"objective {name!r} is listed twice", "list each metric once")
    if len(issues) > n_before:
        return None
    return tuple(m for m in out if m is not None)


def check_objectives(objectives: Objectives, method: str | None, *, early: bool,
                     issues: Issues) -> None:
    """The rules that tie the objectives to the method and to early stopping."""
    if method is None:
        return
    if not objectives:
        if method not in METRIC_OPTIONAL_METHODS:
            issues.add("metric", f"method {method} learns from a metric, but none is given",
                       "add e.g. metric: {name: val_loss, goal: minimize}, or use method "
                       "random or grid")
        elif early:
            issues.add("metric", "early stopping compares trials on a metric, but none is given",
                       "add e.g. metric: {name: val_loss, goal: minimize}, or remove "
                       "early_terminate")
        else:
            issues.note("no metric: every trial runs its full course and no best trial is "
                        "named (W&B's rule for grid and random)")
        return
    if len(objectives) < 2:
        return
    if method not in MULTI_OBJECTIVE_METHODS:
        why = ("Optuna's CmaEsSampler is single-objective" if method == "cmaes"
               else f"{method} ranks trials by one metric")
        issues.add("metrics", f"method {method} cannot search several objectives: {why}",
                   "use method tpe (Optuna's multi-objective TPE), gp, random or grid")
        return
    listed = ", ".join(f"{m.name} ({m.goal})" for m in objectives)
    issues.note(f"multi-objective: the Pareto front over {listed}" +
                (f"; early stopping judges the first metric, {objectives[0].name}"
                 if early else ""))


def read_constraints(raw: Any, issues: Issues) -> tuple[Rule, ...]:
    """``metric_constraints:``: rules like ``n_params <= 50000`` (see :mod:`._rules`)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        issues.add("metric_constraints", f"must be a list of rules, got {show(raw)}",
                   'e.g. metric_constraints: ["n_params <= 50000", "latency_ms < 5"]')
        return ()
    if len(raw) > MAX_CONSTRAINTS:
        issues.add("metric_constraints", f"{len(raw)} rules (limit {MAX_CONSTRAINTS})",
                   "keep the constraints that matter")
        return ()
    rules = [_constraint(item, f"metric_constraints[{i}]", issues) for i, item in enumerate(raw)]
    return tuple(r for r in rules if r is not None)


def _constraint(item: Any, path: str, issues: Issues) -> Rule | None:
    rule = parse_rule(item) if isinstance(item, str) else None
    if rule is None:
        issues.add(path, f"{show(item)} is not a rule: write METRIC OP NUMBER with OP one of "
                   ">=, >, <=, <", 'e.g. "n_params <= 50000"')
        return None
    if rule.relative:
        issues.add(path, f"{rule.text!r} compares with the baseline; a constraint compares with "
                   "a number", 'write the threshold itself, e.g. "latency_ms < 5"')
        return None
    return rule

