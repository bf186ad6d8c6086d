"""``parameters:``: W&B's parameter syntax, checked and built into :class:`Parameter` objects.

Order of the checks: names (W&B's ``^[A-Za-z_][A-Za-z0-9_.-]*$``, no empty part
between dots), nesting (``parameters:`` groups and dotted names give the same dotted
name; a name defined twice, or both a value and a group, is refused), then each
parameter: its shape, its distribution (named, or inferred by W&B's rule), and the
keys and values that distribution takes.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import ValidationError

from orchestrator.sweepspec._issues import Issues, show, suggest, typo_of
from orchestrator.sweepspec._model import (
    DEFAULT_BETA_A,
    DEFAULT_BETA_B,
    DEFAULT_MU,
    DEFAULT_Q,
    DEFAULT_SIGMA,
    DISTRIBUTIONS,
    Parameter,
)
from orchestrator.sweepspec._shapes import ParamShape

__all__ = ["PLACEHOLDER_SOURCES", "RawParameters", "build_parameters"]

RawParameters = dict[str, tuple[str, dict[str, Any]]]  # dotted name -> (YAML path, body)

PARAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}")  # W&B's rule, 100 characters
PLACEHOLDER_SOURCES = ("lr_find",)  # what `from:` may name; resolved before the sweep
PROBABILITY_TOLERANCE = 1e-6  # |sum(probabilities) - 1| allowed
MAX_EXPONENT = 700.0  # e**700 is near the largest float: a bigger log bound overflows

NORMAL_FAMILY = frozenset({"normal", "q_normal", "log_normal", "q_log_normal"})
BETA_FAMILY = frozenset({"beta", "q_beta"})
CATEGORICAL_FAMILY = frozenset({"categorical", "categorical_w_probabilities"})
LOG_VALUES = frozenset({"log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"})
LOG_EXPONENTS = frozenset({"log_uniform", "q_log_uniform", "inv_log_uniform"})
QUANTIZED = frozenset(d for d in DISTRIBUTIONS if d.startswith("q_"))


def build_parameters(raw: Any, method: str | None, issues: Issues
                     ) -> tuple[dict[str, Parameter], RawParameters]:
    """Every parameter that is valid (by dotted name), and every one found (with its path)."""
    found: RawParameters = {}
    _flatten(raw, "", "parameters", issues, found)
    _check_groups(found, issues)
    built: dict[str, Parameter] = {}
    for name, (path, body) in found.items():
        p = _build(name, path, body, method, issues)
        if p is not None:
            built[name] = p
    return built, found


def _flatten(raw: Any, prefix: str, path: str, issues: Issues, out: RawParameters) -> None:
    """Collect parameters (dotted name -> (YAML path, raw mapping)), descending into groups."""
    if not isinstance(raw, dict) or not raw:
        issues.add(path, f"must be a non-empty mapping of parameter names, got {show(raw)}",
                   "e.g. parameters: {lr: {min: 0.0001, max: 0.1}}")
        return
    for key, body in raw.items():
        name = str(key)
        ppath = f"{path}.{name}"
        if not PARAM_NAME_RE.fullmatch(name) or not all(name.split(".")):
            issues.add(ppath, f"parameter name {name!r} is not allowed",
                       "use letters, digits, '_', '-' or '.' (nesting), starting with a letter "
                       "or '_', with a name between every two dots")
            continue
        dotted = f"{prefix}{name}"
        if not isinstance(body, dict):
            # W&B requires a mapping; a bare scalar is a common slip.
            issues.add(ppath, f"a parameter must be a mapping, got {show(body)}",
                       f"write `{name}: {{value: {body!r}}}` for a constant")
            continue
        if "parameters" in body:
            extra = sorted(map(str, set(body) - {"parameters"}))
            if extra:
                issues.add(ppath, f"a nested group holds only `parameters:`, found also {extra}",
                           "move these keys into the nested parameters")
            _flatten(body["parameters"], f"{dotted}.", f"{ppath}.parameters", issues, out)
            continue
        if dotted in out:
            issues.add(ppath, f"parameter {dotted!r} is defined twice (also at {out[dotted][0]})",
                       "keep one: `model.lr:` and `model: {parameters: {lr: ...}}` are the "
                       "same parameter")
            continue
        out[dotted] = (ppath, body)


def _check_groups(found: RawParameters, issues: Issues) -> None:
    """A dotted name makes its prefix a group: the prefix cannot also be a parameter."""
    for name, (path, _) in found.items():
        parts = name.split(".")
        for i in range(1, len(parts)):
            head = ".".join(parts[:i])
            if head in found:
                issues.add(path, f"{head!r} is a parameter, and {name!r} makes it a group too "
                           "(a config value cannot be both a value and a mapping)",
                           f"rename one of them, e.g. {head}_value")
                break


def _build(name: str, path: str, body: dict[str, Any], method: str | None,
           issues: Issues) -> Parameter | None:
    try:
        m = ParamShape.model_validate(body)
    except ValidationError as exc:
        issues.from_pydantic(exc, path, ParamShape)
        return None
    numbers = (m.min, m.max, m.q, m.mu, m.sigma, m.a, m.b, *(m.probabilities or ()))
    if any(x is not None and not math.isfinite(x) for x in numbers):
        return None  # already reported: every number in a spec is finite
    fields = set(m.model_fields_set)
    if m.from_ is not None:
        return _placeholder(name, path, m, fields, method, issues)
    dist = _infer_distribution(m, fields, body)
    if dist is None:
        issues.add(path, "cannot tell the distribution: give `value`, `values`, or `min` and `max`",
                   "or name it with `distribution:` (normal needs `mu` and `sigma`)")
        return None
    if dist not in DISTRIBUTIONS:
        close = typo_of(dist, DISTRIBUTIONS)
        issues.add(f"{path}.distribution", f"unknown distribution {dist!r}",
                   f"did you mean {close!r}?" if close else
                   "valid distributions: " + ", ".join(DISTRIBUTIONS))
        return None
    n_before = len(issues)
    family = (_constant if dist == "constant" else _categorical if dist in CATEGORICAL_FAMILY
              else _normal if dist in NORMAL_FAMILY else _beta if dist in BETA_FAMILY
              else _range)
    kw, allowed = family(name, dist, m, fields, path, method, issues)
    kw.update(_quantization(dist, m, path, issues))
    extra = sorted(fields - allowed - {"distribution", "when", "parameters"})
    if extra:
        issues.add(path, f"distribution {dist} does not use {', '.join(map(repr, extra))}",
                   "remove them, or pick the distribution that uses them")
    if len(issues) > n_before:
        return None
    if dist == "categorical_w_probabilities":
        dist = "categorical"  # W&B's name for categorical values with probabilities
    return Parameter(name=name, distribution=dist, **kw)


def _infer_distribution(m: ParamShape, fields: set[str], body: dict[str, Any]) -> str | None:
    """W&B's rule: value -> constant, values -> categorical, int bounds -> int_uniform,
    else uniform."""
    if m.distribution is not None:
        return m.distribution
    if "value" in fields:
        return "constant"
    if m.values is not None:
        return "categorical"
    if m.min is not None and m.max is not None:
        both_int = all(isinstance(body[k], int) and not isinstance(body[k], bool)
                       for k in ("min", "max"))
        return "int_uniform" if both_int else "uniform"
    return None


Family = tuple[dict[str, Any], set[str]]


def _constant(name: str, dist: str, m: ParamShape, fields: set[str], path: str,
              method: str | None, issues: Issues) -> Family:
    if "value" not in fields:
        issues.add(path, "distribution constant needs `value`", "add `value: ...`")
    return {"value": m.value}, {"value"}


def _categorical(name: str, dist: str, m: ParamShape, fields: set[str], path: str,
                 method: str | None, issues: Issues) -> Family:
    kw: dict[str, Any] = {}
    if not m.values:
        issues.add(f"{path}.values", f"`values` must be a non-empty list, got {show(m.values)}",
                   "list at least one value")
    else:
        kw["values"] = tuple(m.values)
        if len({repr(v) for v in m.values}) != len(m.values):
            issues.add(f"{path}.values", f"`values` has duplicates: {show(m.values)}",
                       "list each value once (use `probabilities` to weight them)")
    probs = m.probabilities
    if probs is None:
        if dist == "categorical_w_probabilities":
            issues.add(path, "categorical_w_probabilities needs `probabilities`, one per value",
                       "add e.g. probabilities: [0.5, 0.5], or use distribution: categorical")
        return kw, {"values", "probabilities"}
    if m.values and len(probs) != len(m.values):
        issues.add(f"{path}.probabilities", f"needs one probability per value: {len(m.values)} "
                   f"values, {len(probs)} probabilities", "give one probability per value")
    elif any(p < 0 for p in probs):
        issues.add(f"{path}.probabilities", f"probabilities must be >= 0, got {probs}",
                   "use non-negative numbers")
    elif abs(sum(probs) - 1.0) > PROBABILITY_TOLERANCE:
        issues.add(f"{path}.probabilities",
                   f"probabilities must sum to 1, got {probs} (sum {sum(probs):g})",
                   "rescale them so they sum to 1")
    else:
        kw["probabilities"] = tuple(float(p) for p in probs)
        if method not in (None, "random"):
            issues.note(f"{path}.probabilities: honoured by method random only; method "
                        f"{method} samples the values with its own model")
    return kw, {"values", "probabilities"}


def _normal(name: str, dist: str, m: ParamShape, fields: set[str], path: str,
            method: str | None, issues: Issues) -> Family:
    mu = DEFAULT_MU if m.mu is None else m.mu
    sigma = DEFAULT_SIGMA if m.sigma is None else m.sigma
    if sigma <= 0:
        issues.add(f"{path}.sigma", f"{dist} needs sigma > 0, got {sigma:g}",
                   "give a positive standard deviation")
    return {"mu": mu, "sigma": sigma}, {"mu", "sigma", "q"}


def _beta(name: str, dist: str, m: ParamShape, fields: set[str], path: str,
          method: str | None, issues: Issues) -> Family:
    a = DEFAULT_BETA_A if m.a is None else m.a
    b = DEFAULT_BETA_B if m.b is None else m.b
    for key, v in (("a", a), ("b", b)):
        if v <= 0:
            issues.add(f"{path}.{key}", f"{dist} needs {key} > 0, got {v:g}",
                       f"give a positive shape, e.g. {key}: 2 (a = b = 1 is uniform on [0, 1])")
    return {"a": a, "b": b}, {"a", "b", "q"}


def _range(name: str, dist: str, m: ParamShape, fields: set[str], path: str,
           method: str | None, issues: Issues) -> Family:
    allowed = {"min", "max", "q"}
    if m.min is None or m.max is None:
        missing = " and ".join(k for k in ("min", "max") if getattr(m, k) is None)
        issues.add(path, f"distribution {dist} needs `min` and `max` ({missing} missing)",
                   "add both bounds")
        return {}, allowed
    lo, hi = m.min, m.max
    if dist == "int_uniform" and float(lo).is_integer() and float(hi).is_integer():
        lo, hi = int(lo), int(hi)
    if lo > hi:
        issues.add(f"{path}.min", f"`min <= max` must hold, got min={lo:g} > max={hi:g}",
                   "swap the bounds")
    if dist == "int_uniform" and not (float(lo).is_integer() and float(hi).is_integer()):
        issues.add(path, f"int_uniform needs integer bounds, got min={lo!r}, max={hi!r}",
                   "use whole numbers, or distribution: uniform")
    if dist in LOG_VALUES:
        for key, v in (("min", lo), ("max", hi)):
            if v <= 0:
                issues.add(f"{path}.{key}", f"{dist} needs {key} > 0, got {v:g}",
                           "log bounds must be positive (these are values, not exponents); "
                           "e.g. min: 1e-5")
    if dist in LOG_EXPONENTS:
        _check_exponents(name, dist, lo, hi, path, issues)
    q = DEFAULT_Q if m.q is None else m.q
    if dist == "q_uniform" and q > 0:
        _check_alignment(dist, lo, hi, q, path, issues)
    return {"min": lo, "max": hi}, allowed


def _check_exponents(name: str, dist: str, lo: float, hi: float, path: str,
                     issues: Issues) -> None:
    """Bounds that are natural-log exponents: refuse overflow, warn when they look like values."""
    inverse = dist.startswith("inv_")
    for key, v in (("min", lo), ("max", hi)):
        if (-v if inverse else v) > MAX_EXPONENT:
            issues.add(f"{path}.{key}",
                       f"{dist} bounds are natural-log exponents; e^{abs(v):g} overflows",
                       f"did you mean distribution: {dist}_values?")
            return
    if 0 <= lo < hi <= 1:
        a, b = (math.exp(-hi), math.exp(-lo)) if inverse else (math.exp(lo), math.exp(hi))
        shown = f"e^-{hi:g}..e^-{lo:g}" if inverse else f"e^{lo:g}..e^{hi:g}"
        issues.note(f"{path}: check the bounds: {dist} takes natural-log exponents, so min "
                    f"{lo:g} and max {hi:g} sample {name} in {shown} = {a:.5g}..{b:.5g}; if {lo:g} and {hi:g} "
                    f"are the values you want, write distribution: {dist}_values")


def _check_alignment(dist: str, lo: float, hi: float, q: float, path: str,
                     issues: Issues) -> None:
    """W&B rounds a uniform draw to a multiple of q: bounds off that lattice are never drawn."""
    def off(v: float) -> bool:
        return abs(v / q - round(v / q)) > 1e-9

    if off(lo) or off(hi):
        issues.note(f"{path}: {dist} samples round(U(min, max) / q) * q (W&B's rule), multiples "
                    f"of q={q:g}, so min={lo:g} or max={hi:g} itself is never drawn; use bounds "
                    "that are multiples of q")


def _quantization(dist: str, m: ParamShape, path: str, issues: Issues) -> dict[str, Any]:
    if m.q is None:
        return {"q": DEFAULT_Q} if dist in QUANTIZED else {}
    if dist not in QUANTIZED:
        issues.add(f"{path}.q", f"`q` applies only to q_* distributions, not {dist}",
                   f"use distribution: q_{dist}" if f"q_{dist}" in DISTRIBUTIONS
                   else "remove `q`")
        return {}
    if m.q <= 0:
        issues.add(f"{path}.q", f"`q` must be > 0, got {m.q:g}", "give a positive step")
        return {}
    return {"q": m.q}


def _placeholder(name: str, path: str, m: ParamShape, fields: set[str], method: str | None,
                 issues: Issues) -> Parameter | None:
    """`from: lr_find`: a range filled in before the sweep runs (only `when:` may join it)."""
    n_before = len(issues)
    if m.from_ not in PLACEHOLDER_SOURCES:
        issues.add(f"{path}.from", f"`from` must be one of {', '.join(PLACEHOLDER_SOURCES)}, "
                   f"got {show(m.from_)}", suggest(str(m.from_), PLACEHOLDER_SOURCES,
                                                   what="sources"))
    extra = sorted(fields - {"from_", "when"})
    if extra:
        issues.add(path, f"`from: {m.from_}` stands alone, but found also "
                   f"{', '.join(map(repr, extra))}",
                   "remove them: the range test sets the distribution and its bounds")
    if method == "grid":
        issues.add(f"{path}.from", f"`from: {m.from_}` becomes a continuous log range, which "
                   "method grid cannot enumerate", "use method random, tpe or gp")
    if len(issues) > n_before:
        return None
    return Parameter(name=name, distribution="placeholder", source=m.from_)
