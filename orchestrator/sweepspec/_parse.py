"""Turn YAML (or a mapping) into a validated :class:`SweepSpec`, reporting every problem at once.

Two passes: pydantic checks the shape of each section (types, unknown keys,
allowed words); then plain Python checks what depends on several values
(bounds, `when:` references, grid over continuous ranges, ...). Each problem
becomes an :class:`~orchestrator.errors.Issue` with its YAML path, its line,
the rule and the bad value, and a fix. Nothing here imports Ray or MLflow.
"""

from __future__ import annotations

import copy
import math
import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import Issue, SpecError
from orchestrator.sweepspec._model import (
    CV,
    DISTRIBUTIONS,
    METHODS,
    EarlyTerminate,
    Metric,
    Parameter,
    Resources,
    SweepSpec,
)
from orchestrator.sweepspec._rules import parse_rule
from orchestrator.sweepspec._yaml import parse_yaml, read_yaml_file

DEFAULT_RUN_CAP = 20  # trials, when the spec sets neither run_cap nor num_samples
MAX_SEED = 2**32 - 1  # numpy's and Optuna's samplers take seeds in [0, 2**32)
MAX_GRID_SIZE = 100_000  # configs: a bigger grid is almost certainly a mistake
PLACEHOLDER_SOURCES = ("lr_find",)  # what `from:` may name; resolved before the sweep
PROBABILITY_TOLERANCE = 1e-6  # |sum(probabilities) - 1| allowed
MAX_NAME_CHARS = 200  # a sweep or experiment name, as the user writes it
SLUG_CHARS = 80  # characters of the safe name derived for folders and default experiments
PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$")
TRAINABLE_RE = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")
METRIC_RE = re.compile(r"[A-Za-z_][\w.\-/]{0,249}")  # MLflow's metric-name characters
# Control characters (NUL, bidi overrides, ...) never belong in free text sent to MLflow.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


# --------------------------------------------------------------------------- shapes


class _MetricModel(BaseModel):
    model_config = _STRICT
    name: str
    goal: Literal["minimize", "maximize"] = "minimize"
    target: float | None = None


class _EarlyTerminateModel(BaseModel):
    model_config = _STRICT
    type: str
    grace_period: int | None = None
    min_iter: int | None = None  # W&B's name for grace_period
    max_t: int | None = None
    max_iter: int | None = None  # W&B's name for max_t
    reduction_factor: float | None = None
    eta: float | None = None  # W&B's name for reduction_factor
    s: int | None = None  # W&B hyperband brackets: accepted, ASHA runs one bracket
    strict: bool | None = None  # W&B hyperband: accepted and ignored
    min_samples_required: int | None = None


class _ResourcesModel(BaseModel):
    model_config = _STRICT
    cpu: float = 1.0
    gpu: float | None = None


class _CVModel(BaseModel):
    model_config = _STRICT
    folds: int
    stratify: bool = True
    seed: int | None = None


class _ParamModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)
    from_: str | None = Field(default=None, alias="from")  # a placeholder: `from: lr_find`
    value: Any = None
    values: list[Any] | None = None
    probabilities: list[float] | None = None
    distribution: str | None = None
    min: float | None = None
    max: float | None = None
    q: float | None = None
    mu: float | None = None
    sigma: float | None = None
    parameters: dict[str, Any] | None = None
    when: dict[str, Any] | None = None


class _TopModel(BaseModel):
    model_config = _STRICT
    name: str | None = None
    experiment: str | None = None
    description: str | None = None
    trainable: str | None = None
    method: str
    metric: dict[str, Any]
    parameters: dict[str, Any]
    early_terminate: dict[str, Any] | None = None
    run_cap: int | None = None
    num_samples: int | None = None  # Ray Tune's word for run_cap
    hypothesis: str | None = None
    expected: str | None = None
    baseline: dict[str, Any] | str | None = None
    baseline_repeats: int = 1
    seed: int = 0
    resources: dict[str, Any] | None = None
    max_concurrent: int | None = None
    max_failures: int = 0
    trial_timeout_s: float | None = None
    report_timeout_s: float | None = None
    cv: dict[str, Any] | None = None
    storage_path: str | None = None
    # W&B keys that have no meaning here: accepted so W&B files run, and noted.
    program: str | None = None
    command: list[Any] | None = None
    entity: str | None = None
    project: str | None = None


TOP_KEYS = tuple(_TopModel.model_fields)


# --------------------------------------------------------------------------- helpers


class _Issues:
    def __init__(self, lines: Mapping[str, int]) -> None:
        self.items: list[Issue] = []
        self.notes: list[str] = []
        self._lines = lines

    def add(self, path: str, message: str, fix: str = "") -> None:
        self.items.append(Issue(path, message, fix, self._line(path)))

    def _line(self, path: str) -> int | None:
        while path:
            if path in self._lines:
                return self._lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None

    def from_pydantic(self, exc: ValidationError, prefix: str, model: type[BaseModel]) -> None:
        fields = list(model.model_fields)
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            path = ".".join([prefix, *loc]) if prefix else ".".join(loc)
            kind = err["type"]
            value = err.get("input")
            if kind == "extra_forbidden":
                key = loc[-1]
                self.add(path, f"unknown key {key!r}", _suggest(key, fields))
            elif kind == "missing":
                self.add(path, "required key is missing", f"add `{loc[-1]}:`")
            elif kind == "literal_error":
                expected = err.get("ctx", {}).get("expected", "")
                self.add(path, f"must be one of {expected}, got {value!r}",
                         _suggest(str(value), re.findall(r"'([^']*)'", expected)))
            else:
                self.add(path, f"{err['msg'].lower()}, got {_show(value)}", "")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "valid keys: " + ", ".join(choices) if choices else ""


def _apply_overrides(data: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any],
                     issues: _Issues) -> dict[str, Any]:
    data = copy.deepcopy(data)
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        for text in overrides:
            key, sep, raw = str(text).partition("=")
            if not sep or not key.strip():
                issues.add("--set", f"an override must look like key=value, got {text!r}",
                           "e.g. --set run_cap=4 or --set parameters.lr.max=0.1")
                continue
            # The same reader and limits as a spec file (aliases, tags, depth, 1e-5).
            try:
                value, _, notes = parse_yaml(raw, source=f"--set {key.strip()}") \
                    if raw.strip() else ("", {}, [])
            except SpecError as exc:
                for issue in exc.issues:
                    issues.add(f"--set {key.strip()}", issue.message, issue.fix)
                continue
            issues.notes.extend(f"--set {key.strip()}: {n}" for n in notes)
            items.append((key.strip(), value))
    for key, value in items:
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                node[part] = nxt = {}
            if not isinstance(nxt, dict):
                issues.add(f"--set {key}",
                           f"{'.'.join(parts[: i + 1])!r} is {_show(nxt)}, not a mapping",
                           "override a key that exists, or the whole value")
                break
            node = nxt
        else:
            node[parts[-1]] = value
    return data


# --------------------------------------------------------------------------- parameters


def _flatten_parameters(raw: Any, prefix: str, path: str, issues: _Issues,
                        out: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Collect parameters (dotted name → (yaml path, raw mapping)), descending into nesting."""
    if not isinstance(raw, dict) or not raw:
        issues.add(path, f"must be a non-empty mapping of parameter names, got {_show(raw)}",
                   "e.g. parameters: {lr: {min: 0.0001, max: 0.1}}")
        return
    for key, body in raw.items():
        name = str(key)
        ppath = f"{path}.{name}"
        if not PARAM_NAME_RE.fullmatch(name):
            issues.add(ppath, f"parameter name {name!r} is not allowed",
                       "use letters, digits, '_' or '-', starting with a letter or '_'")
            continue
        dotted = f"{prefix}{name}"
        if not isinstance(body, dict):
            # W&B requires a mapping; a bare scalar is a common slip.
            issues.add(ppath, f"a parameter must be a mapping, got {_show(body)}",
                       f"write `{name}: {{value: {body!r}}}` for a constant")
            continue
        if "parameters" in body:
            extra = sorted(set(body) - {"parameters"})
            if extra:
                issues.add(ppath, f"a nested group holds only `parameters:`, found also {extra}",
                           "move these keys into the nested parameters")
            _flatten_parameters(body["parameters"], f"{dotted}.", f"{ppath}.parameters",
                                issues, out)
            continue
        out[dotted] = (ppath, body)


def _infer_distribution(m: _ParamModel, fields: set[str], body: dict[str, Any]) -> str | None:
    """W&B's rule: value → constant, values → categorical, int bounds → int_uniform, else uniform."""
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


def _build_parameter(name: str, path: str, body: dict[str, Any], method: str | None,
                     issues: _Issues) -> Parameter | None:
    try:
        m = _ParamModel.model_validate(body)
    except ValidationError as exc:
        issues.from_pydantic(exc, path, _ParamModel)
        return None
    fields = set(m.model_fields_set)
    if m.from_ is not None:
        return _placeholder(name, path, m, fields, method, issues)
    dist = _infer_distribution(m, fields, body)
    if dist is None:
        issues.add(path, "cannot tell the distribution: give `value`, `values`, or `min` and `max`",
                   "or name it with `distribution:` (normal needs `mu` and `sigma`)")
        return None
    if dist not in DISTRIBUTIONS:
        issues.add(f"{path}.distribution", f"unknown distribution {dist!r}",
                   _suggest(dist, DISTRIBUTIONS).replace("valid keys", "valid distributions"))
        return None
    n_before = len(issues.items)
    kw: dict[str, Any] = {}
    allowed: set[str] = {"distribution", "when"}
    if dist == "constant":
        allowed |= {"value"}
        if "value" not in fields:
            issues.add(path, "distribution constant needs `value`", "add `value: ...`")
        kw["value"] = m.value
    elif dist == "categorical":
        allowed |= {"values", "probabilities"}
        if not m.values:
            issues.add(f"{path}.values", "`values` must be a non-empty list, got "
                       f"{_show(m.values)}", "list at least one value")
        else:
            kw["values"] = tuple(m.values)
            if len({repr(v) for v in m.values}) != len(m.values):
                issues.add(f"{path}.values", f"`values` has duplicates: {_show(m.values)}",
                           "list each value once (use `probabilities` to weight them)")
        if m.probabilities is not None:
            probs = m.probabilities
            if m.values and len(probs) != len(m.values):
                issues.add(f"{path}.probabilities",
                           f"needs one probability per value: {len(m.values)} values, "
                           f"{len(probs)} probabilities", "give one probability per value")
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
                    issues.notes.append(
                        f"{path}.probabilities: honoured by method random only; "
                        f"method {method} samples the values with its own model")
    elif dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
        allowed |= {"mu", "sigma", "q"}
        kw["mu"] = 0.0 if m.mu is None else m.mu
        kw["sigma"] = 1.0 if m.sigma is None else m.sigma
        if kw["sigma"] <= 0:
            issues.add(f"{path}.sigma", f"{dist} needs sigma > 0, got {kw['sigma']:g}",
                       "give a positive standard deviation")
    else:
        allowed |= {"min", "max", "q"}
        if m.min is None or m.max is None:
            missing = " and ".join(k for k in ("min", "max") if getattr(m, k) is None)
            issues.add(path, f"distribution {dist} needs `min` and `max` ({missing} missing)",
                       "add both bounds")
        else:
            lo, hi = m.min, m.max
            if dist == "int_uniform" and float(lo).is_integer() and float(hi).is_integer():
                lo, hi = int(lo), int(hi)
            kw["min"], kw["max"] = lo, hi
            if lo > hi:
                issues.add(f"{path}.min", f"`min <= max` must hold, got min={lo:g} > max={hi:g}",
                           "swap the bounds")
            if dist == "int_uniform" and not (float(lo).is_integer() and float(hi).is_integer()):
                issues.add(path, f"int_uniform needs integer bounds, got min={lo!r}, max={hi!r}",
                           "use whole numbers, or distribution: uniform")
            if dist in ("log_uniform_values", "q_log_uniform_values"):
                for key, v in (("min", lo), ("max", hi)):
                    if v <= 0:
                        issues.add(f"{path}.{key}", f"{dist} needs {key} > 0, got {v:g}",
                                   "log bounds must be positive (these are values, not "
                                   "exponents); e.g. min: 1e-5")
            if dist in ("log_uniform", "q_log_uniform"):
                for key, v in (("min", lo), ("max", hi)):
                    if v > 700:
                        issues.add(f"{path}.{key}",
                                   f"{dist} bounds are natural-log exponents; e^{v:g} overflows",
                                   f"did you mean distribution: {dist}_values?")
    if m.q is not None:
        if dist not in ("q_uniform", "q_log_uniform", "q_log_uniform_values", "q_normal",
                        "q_log_normal"):
            issues.add(f"{path}.q", f"`q` applies only to q_* distributions, not {dist}",
                       f"use distribution: q_{dist}" if f"q_{dist}" in DISTRIBUTIONS
                       else "remove `q`")
        elif m.q <= 0:
            issues.add(f"{path}.q", f"`q` must be > 0, got {m.q:g}", "give a positive step")
        else:
            kw["q"] = m.q
    elif dist.startswith("q_"):
        kw["q"] = 1.0
    extra = sorted(fields - allowed - {"parameters"})
    if extra:
        issues.add(path, f"distribution {dist} does not use {', '.join(map(repr, extra))}",
                   "remove them, or pick the distribution that uses them")
    if len(issues.items) > n_before:
        return None
    return Parameter(name=name, distribution=dist, **kw)


def _placeholder(name: str, path: str, m: _ParamModel, fields: set[str], method: str | None,
                 issues: _Issues) -> Parameter | None:
    """`from: lr_find`: a range filled in before the sweep runs (only `when:` may join it)."""
    n_before = len(issues.items)
    if m.from_ not in PLACEHOLDER_SOURCES:
        issues.add(f"{path}.from", f"`from` must be one of {', '.join(PLACEHOLDER_SOURCES)}, "
                   f"got {_show(m.from_)}",
                   _suggest(str(m.from_), PLACEHOLDER_SOURCES).replace("valid keys", "valid"))
    extra = sorted(fields - {"from_", "when"})
    if extra:
        issues.add(path, f"`from: {m.from_}` stands alone, but found also "
                   f"{', '.join(map(repr, extra))}",
                   "remove them: the range test sets the distribution and its bounds")
    if method == "grid":
        issues.add(f"{path}.from", f"`from: {m.from_}` becomes a continuous log range, which "
                   "method grid cannot enumerate", "use method random, tpe or gp")
    if len(issues.items) > n_before:
        return None
    return Parameter(name=name, distribution="placeholder", source=m.from_)


def _possible(p: Parameter, value: Any) -> bool | None:
    """Can parameter `p` take `value`? None when it cannot be told (continuous)."""
    grid = p.grid_values()
    if grid is None:
        return None
    return any(value == g and type(value) is type(g) or
               (isinstance(value, (int, float)) and isinstance(g, (int, float))
                and not isinstance(value, bool) and not isinstance(g, bool) and value == g)
               for g in grid)


def _resolve_when(params: dict[str, Parameter], raw: dict[str, tuple[str, dict[str, Any]]],
                  method: str | None, issues: _Issues) -> dict[str, Parameter]:
    out = dict(params)
    for name, p in params.items():
        ppath, body = raw[name]
        cond = body.get("when")
        if cond is None:
            continue
        if not isinstance(cond, dict) or not cond:
            issues.add(f"{ppath}.when", f"`when` must map parameter names to values, got "
                       f"{_show(cond)}", "e.g. when: {optimizer: sgd}")
            continue
        clauses = []
        prefix = name.rsplit(".", 1)[0] + "." if "." in name else ""
        for other, allowed in cond.items():
            other = str(other)
            target = other if other in raw else f"{prefix}{other}"
            wpath = f"{ppath}.when.{other}"
            if target not in raw:
                issues.add(wpath, f"`when` names parameter {other!r}, which does not exist",
                           _suggest(other, list(raw)).replace("valid keys", "parameters"))
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
                for v in choices:
                    ok = _possible(dep, v)
                    if ok is False:
                        grid = dep.grid_values() or ()
                        issues.add(wpath, f"{target!r} can never be {v!r}; its values are "
                                   f"{_show(list(grid))}", "use one of those values")
                    elif ok is None:
                        issues.add(wpath, f"{target!r} is continuous ({dep.distribution}), so "
                                   f"it is never exactly {v!r}",
                                   "condition on a categorical or integer parameter")
            clauses.append((target, choices))
        if clauses:
            out[name] = Parameter(**{**p.__dict__, "when": tuple(clauses)})
    # Cycles: a → b → a can never be sampled.
    graph = {n: [t for t, _ in p.when] for n, p in out.items()}
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
    if method in ("gp", "cmaes"):
        conditional = [n for n, p in out.items() if p.when]
        if conditional:
            issues.notes.append(
                f"method {method} models only parameters present in every trial; conditional "
                f"parameters {', '.join(conditional)} are sampled at random (use tpe or "
                "random to model them)")
    return out


# --------------------------------------------------------------------------- top level


def _early_terminate(raw: dict[str, Any], issues: _Issues) -> EarlyTerminate | None:
    path = "early_terminate"
    try:
        m = _EarlyTerminateModel.model_validate(raw)
    except ValidationError as exc:
        issues.from_pydantic(exc, path, _EarlyTerminateModel)
        return None
    kind = m.type.lower()
    if kind not in ("asha", "hyperband", "median"):
        issues.add(f"{path}.type", f"unknown early_terminate type {m.type!r}",
                   _suggest(kind, ["asha", "hyperband", "median"]).replace("valid keys",
                                                                          "valid types"))
        return None

    def pick(ours: str, theirs: str) -> Any:
        a, b = getattr(m, ours), getattr(m, theirs)
        if a is not None and b is not None and a != b:
            issues.add(f"{path}.{theirs}", f"{theirs} ({b}) and {ours} ({a}) are the same "
                       "setting with different values", f"keep only {ours}")
        return a if a is not None else b

    grace = pick("grace_period", "min_iter")
    max_t = pick("max_t", "max_iter")
    eta = pick("reduction_factor", "eta")
    if kind == "hyperband":
        issues.notes.append("early_terminate.type hyperband runs as ASHA (asynchronous "
                            "successive halving, Ray Tune's recommended form of Hyperband)")
    if kind == "median" and (max_t is not None or eta is not None):
        issues.add(path, "median stopping uses grace_period and min_samples_required only",
                   "remove max_t/max_iter and reduction_factor/eta")
    grace = 1 if grace is None else grace
    max_t = 100 if max_t is None else max_t
    eta = 3.0 if eta is None else eta
    ok = True
    if grace < 1:
        issues.add(f"{path}.grace_period", f"must be >= 1 epoch, got {grace}", "use 1 or more")
        ok = False
    if max_t < grace:
        issues.add(f"{path}.max_t", f"`grace_period <= max_t` must hold, got grace_period="
                   f"{grace}, max_t={max_t}", "raise max_t or lower grace_period")
        ok = False
    if eta <= 1:
        issues.add(f"{path}.reduction_factor", f"must be > 1, got {eta:g}", "use 2, 3 or 4")
        ok = False
    if not ok:
        return None
    return EarlyTerminate(
        type="median" if kind == "median" else "asha",
        grace_period=grace,
        max_t=max_t,
        reduction_factor=eta,
        min_samples_required=m.min_samples_required or 3,
        requested_as=kind,
    )


def _grid_size(params: Sequence[Parameter], issues: _Issues,
               raw: dict[str, tuple[str, dict[str, Any]]]) -> int:
    size = 1
    for p in params:
        values = p.grid_values()
        if values is None:
            issues.add(raw[p.name][0], f"method grid needs discrete values, but {p.name!r} is "
                       f"{p.distribution} (continuous)",
                       "list `values:`, use int_uniform or q_uniform, or pick method random")
            return 0
        size *= max(1, len(values))
    if size <= MAX_GRID_SIZE and any(p.when for p in params):
        from orchestrator.sweepspec._space import grid_configs  # conditionals shrink the grid

        size = len(grid_configs(params))
    return size


def slugify(text: str) -> str:
    """A name safe for folders and MLflow: word characters, '.', '-' (no '/', no '..').

    >>> slugify("ResNet-50: lr sweep (v2)")
    'ResNet-50-lr-sweep-v2'
    >>> slugify("[wide] 幅 sweep")
    'wide-幅-sweep'
    """
    slug = re.sub(r"[^\w.\-]+", "-", text, flags=re.UNICODE)
    slug = re.sub(r"\.{2,}", ".", re.sub(r"-{2,}", "-", slug)).strip("-._")
    return slug[:SLUG_CHARS].rstrip("-._") or "sweep"


def _check_name(value: str, path: str, issues: _Issues) -> None:
    """Any text a person would write as a title: it is shown as is, never used as a path."""
    if not value.strip():
        issues.add(path, "must not be empty", "e.g. name: digits lr sweep")
    elif len(value) > MAX_NAME_CHARS:
        issues.add(path, f"is {len(value)} characters (limit {MAX_NAME_CHARS})", "shorten it")
    elif CONTROL_RE.search(value) or "\n" in value or "\r" in value or "\t" in value:
        issues.add(path, f"{_show(value)} contains control characters or line breaks",
                   "write the name on one line of plain text")


def _non_finite(value: Any, path: str, issues: _Issues) -> None:
    """Every number in a spec is finite: NaN and ±inf are refused wherever they stand."""
    if isinstance(value, float) and not math.isfinite(value):
        issues.add(path, f"must be a finite number, got {value!r}",
                   "write a finite number (NaN and infinity are never meaningful here)")
    elif isinstance(value, dict):
        for k, v in value.items():
            _non_finite(v, f"{path}.{k}" if path else str(k), issues)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _non_finite(v, f"{path}[{i}]", issues)


def _validate(data: Any, lines: Mapping[str, int], source: str,
              trainable: str | None, issues: _Issues | None = None) -> SweepSpec:
    issues = issues or _Issues(lines)
    _non_finite(data, "", issues)
    if not isinstance(data, dict):
        issues.add("", f"a spec must be a YAML mapping, got {_show(data)}",
                   "start from search_spaces/quick.yaml")
        raise SpecError(issues.items, source=source)
    raw_data = data
    try:
        top = _TopModel.model_validate(data)
    except ValidationError as exc:
        issues.from_pydantic(exc, "", _TopModel)
        top = _TopModel.model_construct(
            **{k: v for k, v in data.items() if k in _TopModel.model_fields})
        for key, default in (("seed", 0), ("max_failures", 0), ("method", None),
                             ("metric", None), ("parameters", None)):
            if not hasattr(top, key):
                object.__setattr__(top, key, default)

    def good(key: str, kind: type) -> Any:
        """The value of a top-level key if it has the right type (else pydantic said why)."""
        value = getattr(top, key, None)
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    # method
    method = good("method", str)
    if method is not None:
        method = method.lower()
        if method not in METHODS:
            issues.add("method", f"unknown method {top.method!r}",
                       _suggest(method, METHODS).replace("valid keys", "valid methods"))
            method = None

    # trainable
    if top.program is not None and trainable is None and top.trainable is None:
        issues.add("program", "W&B's `program:` runs a script; orch runs a Python function",
                   "replace `program:` with `trainable: module:function` or a built-in "
                   "(digits_mlp, digits_cnn)")
    tname = trainable or good("trainable", str)
    if tname is None and top.program is None:
        issues.add("trainable", "required key is missing",
                   "add `trainable: digits_mlp` or `trainable: mymodule:train`")
    elif tname is not None and not TRAINABLE_RE.fullmatch(tname):
        issues.add("trainable", f"{_show(tname)} is not a built-in name or `module:function`",
                   "e.g. trainable: digits_mlp, or trainable: mypkg.train:fit")
    for key in ("command", "entity"):
        if getattr(top, key, None) is not None:
            issues.notes.append(f"`{key}:` is a W&B setting with no meaning here; ignored")
    if top.program is not None and (trainable or top.trainable):
        issues.notes.append("`program:` ignored: `trainable:` says what runs")

    # metric
    metric = None
    if isinstance(top.metric, dict):
        try:
            mm = _MetricModel.model_validate(top.metric)
            if not mm.name.strip():
                issues.add("metric.name", "must not be empty", "e.g. name: val_loss")
            elif not METRIC_RE.fullmatch(mm.name) or ".." in mm.name:
                issues.add("metric.name", f"{_show(mm.name)} is not a metric name (letters, "
                           "digits, '_', '-', '.', '/'; up to 250 characters; no '..')",
                           "use the key your trainable reports, e.g. val_loss")
            else:
                metric = Metric(name=mm.name, goal=mm.goal, target=mm.target)
        except ValidationError as exc:
            issues.from_pydantic(exc, "metric", _MetricModel)

    # parameters
    raw_params: dict[str, tuple[str, dict[str, Any]]] = {}
    if top.parameters is not None:
        _flatten_parameters(top.parameters, "", "parameters", issues, raw_params)
    params: dict[str, Parameter] = {}
    for name, (ppath, body) in raw_params.items():
        p = _build_parameter(name, ppath, body, method, issues)
        if p is not None:
            params[name] = p
    params = _resolve_when(params, raw_params, method, issues)
    parameters = tuple(params[n] for n in raw_params if n in params)

    # budget
    run_cap = good("run_cap", int)
    num_samples = good("num_samples", int)
    for key, value in (("run_cap", run_cap), ("num_samples", num_samples)):
        if value is not None and value < 1:
            issues.add(key, f"must be >= 1 trial, got {value}", "give a positive trial budget")
    if run_cap is not None and num_samples is not None and run_cap != num_samples:
        issues.add("num_samples", f"run_cap ({run_cap}) and num_samples ({num_samples}) are the "
                   "same budget with different values", "keep only run_cap")
    budget = run_cap if run_cap is not None else num_samples
    defaulted = False
    if method == "grid" and len(parameters) == len(raw_params):
        size = _grid_size(parameters, issues, raw_params)
        if size > MAX_GRID_SIZE:
            issues.add("parameters", f"the grid has {size} configs (over {MAX_GRID_SIZE})",
                       "narrow the values, set run_cap, or use method random")
        budget = size if budget is None else min(budget, size)
    if budget is None:
        budget, defaulted = DEFAULT_RUN_CAP, True

    # the rest
    early = None
    if isinstance(top.early_terminate, dict):
        early = _early_terminate(top.early_terminate, issues)
    resources = Resources()
    if isinstance(top.resources, dict):
        try:
            rm = _ResourcesModel.model_validate(top.resources)
            if rm.cpu <= 0:
                issues.add("resources.cpu", f"must be > 0, got {rm.cpu:g}", "e.g. cpu: 1")
            if rm.gpu is not None and rm.gpu < 0:
                issues.add("resources.gpu", f"must be >= 0, got {rm.gpu:g}", "e.g. gpu: 0.25")
            if rm.gpu is not None and 1 < rm.gpu and not float(rm.gpu).is_integer():
                issues.add("resources.gpu", f"a fraction above 1 GPU cannot be placed, got "
                           f"{rm.gpu:g}", "use a fraction <= 1 or a whole number")
            resources = Resources(cpu=rm.cpu, gpu=rm.gpu)
        except ValidationError as exc:
            issues.from_pydantic(exc, "resources", _ResourcesModel)
    cv = None
    if isinstance(top.cv, dict):
        try:
            cm = _CVModel.model_validate(top.cv)
            if cm.folds < 2:
                issues.add("cv.folds", f"K-fold needs folds >= 2, got {cm.folds}",
                           "use 5 or 10, or remove `cv:` for a single hold-out split")
            else:
                cv = CV(folds=cm.folds, stratify=cm.stratify, seed=cm.seed)
        except ValidationError as exc:
            issues.from_pydantic(exc, "cv", _CVModel)
    max_concurrent = good("max_concurrent", int)
    if max_concurrent is not None and max_concurrent < 1:
        issues.add("max_concurrent", f"must be >= 1, got {max_concurrent}", "or remove it")
    seed = good("seed", int)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        issues.add("seed", f"must be a whole number in [0, {MAX_SEED}] (the samplers' range), "
                   f"got {seed}", f"e.g. seed: {seed % (MAX_SEED + 1)}")
        seed = 0
    max_failures = good("max_failures", int) or 0
    if max_failures < 0:
        issues.add("max_failures", f"must be >= 0, got {max_failures}", "0 means no retries")
    timeouts: dict[str, float | None] = {}
    for key, example in (("trial_timeout_s", 3600), ("report_timeout_s", 600)):
        value = getattr(top, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                (not math.isfinite(value) or value <= 0):
            issues.add(key, f"must be a finite number of seconds > 0, got {value!r}",
                       f"e.g. {key}: {example}, or remove it for no limit")
            value = None
        timeouts[key] = float(value) if isinstance(value, (int, float)) else None
    baseline = top.baseline if isinstance(top.baseline, (dict, str)) else None
    if isinstance(baseline, str) and not re.fullmatch(r"[0-9a-fA-F]{32}", baseline.strip()):
        issues.add("baseline", f"a baseline is a config mapping or an MLflow run id (32 hex "
                   f"characters), got {_show(baseline)}", "paste the run id from `orch ls`/the UI")

    repeats = good("baseline_repeats", int) or 1
    if repeats < 1:
        issues.add("baseline_repeats", f"must be >= 1, got {repeats}", "e.g. 3")
    elif repeats > 1 and not isinstance(baseline, dict):
        issues.add("baseline_repeats", "repeats apply to a baseline config, but `baseline:` is "
                   f"{'a run id' if baseline else 'not set'}", "give `baseline:` as a config")

    # The name as written is kept (shown, tagged); folders use a safe name derived from it.
    name = good("name", str) or (Path(source).stem if source and not source.startswith("<")
                                 else "sweep")
    if good("name", str) is not None:
        _check_name(name, "name", issues)
    name = CONTROL_RE.sub("", name).strip() or "sweep"
    experiment = good("experiment", str) or good("project", str)
    if experiment is not None:
        _check_name(experiment, "experiment" if good("experiment", str) else "project", issues)
    else:
        experiment = slugify(name)
    texts: dict[str, str] = {}
    for key in ("hypothesis", "expected", "description"):
        text = getattr(top, key, None)
        if isinstance(text, str) and len(text) > 5000:
            issues.add(key, f"is {len(text)} characters (limit 5000)", "shorten it")
        texts[key] = CONTROL_RE.sub("", text).strip() if isinstance(text, str) else ""

    if texts["expected"] and parse_rule(texts["expected"]) is None:
        issues.notes.append(
            f"`expected` is free text ({texts['expected'][:80]!r}), so the verdict can only be "
            "inconclusive; write it as a rule orch can check, e.g. `val_acc >= baseline + "
            "0.005` or `val_loss < 0.1`")
    if issues.items or method is None or metric is None or tname is None:
        # method/metric/trainable being None always comes with an issue already added.
        raise SpecError(issues.items, source=source)
    return SweepSpec(
        name=name,
        slug=slugify(name),
        trainable=tname,
        method=method,
        metric=metric,
        parameters=parameters,
        run_cap=budget,
        run_cap_defaulted=defaulted,
        experiment=experiment,
        seed=seed or 0,
        hypothesis=texts["hypothesis"],
        expected=texts["expected"],
        description=texts["description"],
        baseline=baseline,
        baseline_repeats=repeats,
        early_terminate=early,
        resources=resources,
        max_concurrent=max_concurrent,
        max_failures=max_failures,
        trial_timeout_s=timeouts["trial_timeout_s"],
        report_timeout_s=timeouts["report_timeout_s"],
        cv=cv,
        storage_path=top.storage_path,
        raw=raw_data,
        source=source,
        notes=tuple(issues.notes),
    )


def load_spec(
    spec: str | Path | Mapping[str, Any],
    *,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    trainable: str | None = None,
) -> SweepSpec:
    """Read and validate a sweep spec; raise :class:`SpecError` listing every problem.

    ``spec`` is a path to a YAML file, YAML text, or a mapping. ``overrides``
    are ``key=value`` strings (dotted keys for nesting, values parsed as YAML)
    or a mapping of dotted keys, applied before validation.

    >>> s = load_spec({"trainable": "digits_mlp", "method": "random",
    ...                "metric": {"name": "val_loss"},
    ...                "parameters": {"lr": {"min": 0.001, "max": 0.1}}},
    ...               overrides=["run_cap=3"])
    >>> s.run_cap, s.parameter("lr").distribution
    (3, 'uniform')
    """
    lines: dict[str, int] = {}
    notes: list[str] = []
    if isinstance(spec, Mapping):
        data: Any = dict(spec)
        source = "<mapping>"
    elif isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec
                                    and spec.strip().endswith((".yaml", ".yml"))):
        data, lines, _, notes = read_yaml_file(spec)
        source = str(spec)
    else:
        data, lines, notes = parse_yaml(str(spec))
        source = "<string>"
    issues = _Issues(lines)
    issues.notes.extend(notes)
    if overrides:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            issues.add("", f"a spec must be a YAML mapping, got {_show(data)}",
                       "start from search_spaces/quick.yaml")
            raise SpecError(issues.items, source=source)
        data = _apply_overrides(data, overrides, issues)
        if issues.items:
            raise SpecError(issues.items, source=source)
    return _validate(data, lines, source, trainable, issues)

