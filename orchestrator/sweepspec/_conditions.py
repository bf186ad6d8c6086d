"""``when:``: conditional parameters, checked against the parameters they name.

A clause names another parameter (by its full dotted name, or by a name in the same
group) and the values under which this one exists. Refused: a name that does not
exist, a parameter depending on itself, a value the other parameter can never take,
a condition on a continuous parameter, and cycles. Sampling order and grids over
conditional spaces are :mod:`orchestrator.sweepspec._space`'s.
"""

from __future__ import annotations

from typing import Any

from orchestrator.sweepspec._issues import Issues, show, suggest
from orchestrator.sweepspec._model import Parameter
from orchestrator.sweepspec._parameters import RawParameters

__all__ = ["resolve_when"]


def resolve_when(params: dict[str, Parameter], raw: RawParameters, method: str | None,
                 issues: Issues) -> dict[str, Parameter]:
    """``params`` with each ``when:`` resolved to full names and checked."""
    out = dict(params)
    for name, p in params.items():
        ppath, body = raw[name]
        cond = body.get("when")
        if cond is None:
            continue
        if not isinstance(cond, dict) or not cond:
            issues.add(f"{ppath}.when", f"`when` must map parameter names to values, got "
                       f"{show(cond)}", "e.g. when: {optimizer: sgd}")
            continue
        clauses = _clauses(name, ppath, cond, params, raw, issues)
        if clauses:
            out[name] = Parameter(**{**p.__dict__, "when": tuple(clauses)})
    _check_cycles(out, raw, issues)
    if method in ("gp", "cmaes"):
        conditional = [n for n, p in out.items() if p.when]
        if conditional:
            issues.note(f"method {method} models only parameters present in every trial; "
                        f"conditional parameters {', '.join(conditional)} are sampled at random "
                        "(use tpe or random to model them)")
    return out


def _clauses(name: str, ppath: str, cond: dict[Any, Any], params: dict[str, Parameter],
             raw: RawParameters, issues: Issues) -> list[tuple[str, tuple[Any, ...]]]:
    clauses = []
    prefix = name.rsplit(".", 1)[0] + "." if "." in name else ""
    for other, allowed in cond.items():
        other = str(other)
        target = other if other in raw else f"{prefix}{other}"
        wpath = f"{ppath}.when.{other}"
        if target not in raw:
            issues.add(wpath, f"`when` names parameter {other!r}, which does not exist",
                       suggest(other, list(raw), what="parameters"))
            continue
        if target == name:
            issues.add(wpath, "a parameter cannot depend on itself", "remove this clause")
            continue
        choices = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        if not choices:
            issues.add(wpath, "`when` needs at least one value", "give a value or a list")
            continue
        dep = params.get(target)
        if dep is not None:
            _check_values(target, dep, choices, wpath, issues)
        clauses.append((target, choices))
    return clauses


def _check_values(target: str, dep: Parameter, choices: tuple[Any, ...], wpath: str,
                  issues: Issues) -> None:
    for v in choices:
        ok = _possible(dep, v)
        if ok is False:
            issues.add(wpath, f"{target!r} can never be {v!r}; its values are "
                       f"{show(list(dep.grid_values() or ()))}", "use one of those values")
        elif ok is None:
            issues.add(wpath, f"{target!r} is continuous ({dep.distribution}), so it is never "
                       f"exactly {v!r}", "condition on a categorical or integer parameter")


def _possible(p: Parameter, value: Any) -> bool | None:
    """Can parameter `p` take `value`? None when it cannot be told (continuous)."""
    grid = p.grid_values()
    if grid is None:
        return None
    return any(value == g and type(value) is type(g) or
               (isinstance(value, (int, float)) and isinstance(g, (int, float))
                and not isinstance(value, bool) and not isinstance(g, bool) and value == g)
               for g in grid)


def _check_cycles(params: dict[str, Parameter], raw: RawParameters, issues: Issues) -> None:
    """a -> b -> a can never be sampled."""
    graph = {n: [t for t, _ in p.when] for n, p in params.items()}
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for t in graph.get(n, ()):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t] if t in stack else [n, t]
                issues.add(f"{raw[n][0]}.when", "conditions form a cycle: " + " -> ".join(cycle),
                           "make the dependency one-way")
            elif state.get(t) is None:
                visit(t, [*stack, t])
        state[n] = 2

    for n in graph:
        if state.get(n) is None:
            visit(n, [n])
