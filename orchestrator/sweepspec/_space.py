"""The parameter space as the spec defines it: `when:` conditions, grid expansion, nesting.

Pure Python, no Optuna and no Ray: the spec package validates with it (a
conditional grid's size), the engine samples through it, and the method layer
(ablation) walks it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.sweepspec._model import Parameter

if TYPE_CHECKING:
    from orchestrator.sweepspec._model import SweepSpec

__all__ = ["active", "baseline_config", "constants", "flatten", "grid_configs", "nest", "quantize", "same",
           "sampling_order"]

def sampling_order(params: Sequence[Parameter]) -> list[Parameter]:
    """Parameters ordered so every `when:` dependency is sampled before its dependant."""
    by_name = {p.name: p for p in params}
    done: set[str] = set()
    out: list[Parameter] = []

    def visit(p: Parameter) -> None:
        if p.name in done:
            return
        done.add(p.name)
        for dep, _ in p.when:
            if dep in by_name:
                visit(by_name[dep])
        out.append(p)

    for p in params:
        visit(p)
    return out


def active(p: Parameter, flat: Mapping[str, Any]) -> bool:
    for dep, allowed in p.when:
        if dep not in flat or not any(same(flat[dep], v) for v in allowed):
            return False
    return True


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def quantize(x: float, q: float) -> float | int:
    v = round(x / q) * q
    v = round(v, 12)
    if float(q).is_integer() and float(v).is_integer():
        return int(v)
    return v


def grid_configs(params: Sequence[Parameter]) -> list[dict[str, Any]]:
    """Every combination of a discrete space, honouring `when:`, as flat dotted configs.

    A conditional parameter multiplies only the configs where its condition holds;
    duplicate configs are dropped, order is stable (the spec's parameter order).
    """
    configs: list[dict[str, Any]] = [{}]
    for p in sampling_order(params):
        values = p.grid_values()
        if values is None:
            raise ValueError(f"parameter {p.name!r} ({p.distribution}) has no finite grid")
        grown: list[dict[str, Any]] = []
        for cfg in configs:
            if active(p, cfg):
                grown.extend({**cfg, p.name: v} for v in values)
            else:
                grown.append(cfg)
        configs = grown
    order = [p.name for p in params]
    seen: set[str] = set()
    out = []
    for cfg in configs:
        ordered = {k: cfg[k] for k in order if k in cfg}
        key = json.dumps(ordered, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(ordered)
    return out


def nest(flat: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """``{"model.width": 3}`` → ``{"model": {"width": 3}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *heads, last = key.split(sep)
        for h in heads:
            node = node.setdefault(h, {})
        node[last] = value
    return out


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"width": 3}}`` → ``{"model.width": 3}`` (inverse of :func:`nest`)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def constants(params: Iterable[Parameter]) -> dict[str, Any]:
    """The flat config of every unconditional constant."""
    return {p.name: p.value for p in params if p.is_constant and not p.when}


def baseline_config(spec: SweepSpec) -> dict[str, Any] | None:
    """The baseline as a nested config: the space's constants overlaid with `baseline:`
    (None when the baseline is a recorded run, or there is none)."""
    if not isinstance(spec.baseline, dict):
        return None
    flat = constants(spec.parameters)
    flat.update(flatten(spec.baseline))
    return nest(flat)
