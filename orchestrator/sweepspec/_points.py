"""``points_to_evaluate:`` (Ray Tune's name): configs the search tries first, after the
baseline, e.g. the best ones of the previous sweep (``orch next`` writes them).

Each point names some of the searched parameters (dotted names for nested ones); the
rest are sampled. A value must be one the parameter can take: one of its ``values``,
inside its range, a whole number for ``int_uniform``. Optuna-sampled methods only
(random, tpe, bayes, gp, cmaes): a grid runs every point anyway, PBT starts from its own.
The points count in ``run_cap``.
"""

from __future__ import annotations

import math
from typing import Any

from orchestrator.sweepspec._issues import Issues, show
from orchestrator.sweepspec._model import Parameter

__all__ = ["SAMPLED_METHODS", "read_confirm_seeds", "read_points"]

SAMPLED_METHODS = ("random", "bayes", "tpe", "gp", "cmaes")
MAX_POINTS = 1000


def read_points(raw: Any, method: str | None, params: dict[str, Parameter], run_cap: int,
                issues: Issues) -> tuple[dict[str, Any], ...]:
    """The points, each a flat ``{dotted name: value}``; issues for every bad one."""
    if raw is None:
        return ()
    key = "points_to_evaluate"
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        issues.add(key, f"must be a list of configs (mappings), got {show(raw)}",
                   "e.g. points_to_evaluate: [{lr: 0.01, width: 64}]")
        return ()
    if method is not None and method not in SAMPLED_METHODS:
        issues.add(key, f"method {method} does not take points to try first (only "
                   f"{', '.join(SAMPLED_METHODS)} do)", "remove it, or use method tpe")
        return ()
    if len(raw) > min(run_cap, MAX_POINTS):
        issues.add(key, f"{len(raw)} points but the budget is {run_cap} trial(s): the rest "
                   "would never run", f"keep at most {min(run_cap, MAX_POINTS)} or raise run_cap")
    points = []
    for i, point in enumerate(raw):
        flat = _flat(point)
        for name, value in flat.items():
            where = f"{key}[{i}].{name}"
            p = params.get(name)
            if p is None:
                issues.add(where, f"{name!r} is not a parameter of this spec",
                           f"use one of: {', '.join(sorted(params)) or '(none)'}")
                continue
            problem = value_problem(p, value)
            if problem:
                issues.add(where, problem, "use a value the parameter can take, or leave it "
                           "out to have it sampled")
        points.append(flat)
    return tuple(points)


def _flat(point: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{a: {b: 1}}`` and ``{"a.b": 1}`` alike become ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in point.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, f"{name}."))
        else:
            out[name] = v
    return out


def _bounds(p: Parameter) -> tuple[float, float] | None:
    d, lo, hi = p.distribution, p.min, p.max
    if d in ("uniform", "q_uniform", "int_uniform", "log_uniform_values",
             "q_log_uniform_values", "inv_log_uniform_values"):
        return float(lo), float(hi)  # type: ignore[arg-type]
    if d in ("log_uniform", "q_log_uniform"):
        return math.exp(lo), math.exp(hi)  # type: ignore[arg-type]
    if d == "inv_log_uniform":
        return math.exp(-hi), math.exp(-lo)  # type: ignore[operator]
    if d in ("beta", "q_beta"):
        return 0.0, 1.0
    if d in ("log_normal", "q_log_normal"):
        return 0.0, math.inf
    return None  # the normal family: any number


def value_problem(p: Parameter, value: Any) -> str:
    """Why ``value`` is not one ``p`` can take (empty when it is)."""
    d = p.distribution
    if d == "constant":
        return "" if value == p.value else (f"{p.name} is fixed at {show(p.value)}, "
                                            f"got {show(value)}")
    if d == "categorical":
        return "" if value in p.values else (f"must be one of {show(list(p.values))}, "
                                             f"got {show(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number ({d}), got {show(value)}"
    if d == "int_uniform" and not float(value).is_integer():
        return f"must be a whole number (int_uniform), got {show(value)}"
    bounds = _bounds(p)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        return f"must lie in [{bounds[0]:g}, {bounds[1]:g}] ({d}), got {show(value)}"
    return ""


def read_confirm_seeds(raw: Any, issues: Issues) -> int | None:
    """``confirm_seeds:`` — seeds the winner and the baseline are rerun on after the sweep
    (0: no confirmation; unset: 3 when ``expected:`` is written)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        issues.add("confirm_seeds", f"must be a whole number >= 0, got {show(raw)}",
                   "e.g. confirm_seeds: 3, or 0 for no confirmation run")
        return None
    return raw
