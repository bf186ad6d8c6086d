"""From spec parameters to configs: Optuna define-by-run sampling and grid expansion.

Every sampled method goes through Optuna (``RandomSampler`` for ``random``),
driven by Ray Tune's ``OptunaSearch`` with a define-by-run function, because
define-by-run is what makes ``when:`` (conditional parameters) natural: a
parameter is asked for only when its condition holds, so it is absent from
the config otherwise, and TPE models it over the trials where it exists.

W&B distributions Optuna lacks are sampled through a uniform variable the
sampler sees, mapped by the inverse CDF (``normal`` family) or a cumulative
table (``values`` with ``probabilities``); the mapping is monotone, so
samplers and importance analysis still see a faithful ordering.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import warnings

from orchestrator.spec import Parameter, SweepSpec

__all__ = [
    "OptunaSpace",
    "make_sampler",
    "flatten",
    "grid_configs",
    "nest",
    "sampling_order",
]

NORMAL_EPS = 1e-6  # the uniform variable behind normal draws stays in (eps, 1 - eps)
OPTUNA_SEP = "/"  # Ray's unflatten_dict splits Optuna parameter names on "/"
_PRIMITIVE = (type(None), bool, int, float, str)


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


def _active(p: Parameter, flat: Mapping[str, Any]) -> bool:
    for dep, allowed in p.when:
        if dep not in flat or not any(_same(flat[dep], v) for v in allowed):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _quantize(x: float, q: float) -> float | int:
    v = round(x / q) * q
    v = round(v, 12)
    if float(q).is_integer() and float(v).is_integer():
        return int(v)
    return v


class OptunaSpace:
    """A define-by-run function for ``OptunaSearch``: ``space(trial) -> flat config``.

    Returns every parameter (constants included) under ``/``-joined names,
    which Ray's ``OptunaSearch`` nests into the trial's config.
    """

    def __init__(self, params: Sequence[Parameter], *, method: str) -> None:
        self.params = sampling_order(params)
        self.method = method

    def __call__(self, trial: Any) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for p in self.params:
            if _active(p, flat):
                flat[p.name] = self.sample(trial, p)
        return {k.replace(".", OPTUNA_SEP): v for k, v in flat.items()}

    def sample(self, trial: Any, p: Parameter) -> Any:
        name = p.name.replace(".", OPTUNA_SEP)
        d = p.distribution
        if d == "constant":
            return p.value
        if d == "categorical":
            values = list(p.values)
            if p.probabilities is not None and self.method == "random":
                u = trial.suggest_float(name, 0.0, 1.0)
                for value, edge in zip(values, itertools.accumulate(p.probabilities)):
                    if u <= edge:
                        return value
                return values[-1]
            if all(isinstance(v, _PRIMITIVE) for v in values):
                return trial.suggest_categorical(name, values)
            labels = [json.dumps(v, sort_keys=True, default=str) for v in values]
            return values[labels.index(trial.suggest_categorical(name, labels))]
        if d == "int_uniform":
            return trial.suggest_int(name, int(p.min), int(p.max))  # type: ignore[arg-type]
        if d == "uniform":
            return trial.suggest_float(name, p.min, p.max)
        if d == "q_uniform":
            q, lo, hi = p.q or 1.0, float(p.min), float(p.max)  # type: ignore[arg-type]
            steps = (hi - lo) / q
            if abs(lo / q - round(lo / q)) < 1e-9 and abs(steps - round(steps)) < 1e-9:
                return _quantize(trial.suggest_float(name, lo, hi, step=q), q)
            return _quantize(trial.suggest_float(name, lo, hi), q)
        if d in ("log_uniform", "q_log_uniform"):
            x = trial.suggest_float(name, math.exp(p.min), math.exp(p.max), log=True)  # type: ignore[arg-type]
            return _quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        if d in ("log_uniform_values", "q_log_uniform_values"):
            x = trial.suggest_float(name, p.min, p.max, log=True)
            return _quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        if d in ("normal", "q_normal", "log_normal", "q_log_normal"):
            u = trial.suggest_float(name, NORMAL_EPS, 1.0 - NORMAL_EPS)
            x = p.mu + p.sigma * NormalDist().inv_cdf(u)
            if d.endswith("log_normal"):
                x = math.exp(x)
            return _quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        raise ValueError(f"unknown distribution {d!r} for parameter {p.name!r}")


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
            if _active(p, cfg):
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


def make_sampler(spec: SweepSpec) -> Any:
    """The Optuna sampler for the spec's method, seeded by the sweep seed."""
    import optuna

    seed = spec.seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if spec.method in ("bayes", "tpe"):
            # multivariate+group model conditional (when:) parameters jointly where they exist.
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
        if spec.method == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        if spec.method == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"method {spec.method!r} has no Optuna sampler")
