"""Sampling the spec's space with Optuna: a define-by-run function and the method's sampler.

Every sampled method goes through Optuna (``RandomSampler`` for ``random``),
driven by Ray Tune's ``OptunaSearch`` with a define-by-run function, because
define-by-run is what makes ``when:`` (conditional parameters) natural: a
parameter is asked for only when its condition holds, so it is absent from
the config otherwise, and TPE models it over the trials where it exists.

W&B distributions Optuna lacks are sampled through a uniform variable the
sampler sees, mapped by W&B's inverse CDF (:func:`inverse_cdf`: the ``normal``
family, ``inv_log_uniform`` and ``inv_log_uniform_values``, ``beta`` and
``q_beta``) or a cumulative table (``values`` with ``probabilities``); the
mapping is monotone, so samplers and importance analysis still see a faithful
ordering. Every ``q_*`` value is W&B's ``round(X / q) * q`` of the draw, so
``q_uniform``'s two end values are half as likely as the inner ones.

Imports Optuna only when a sampler is made; never Ray.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

from orchestrator.sweepspec import DEFAULT_Q, Parameter, SweepSpec
from orchestrator.sweepspec import active, quantize, sampling_order

__all__ = ["NORMAL_EPS", "OPTUNA_SEP", "UNIFORM_VARIABLE", "OptunaSpace", "inverse_cdf",
           "make_sampler"]

NORMAL_EPS = 1e-6  # the uniform variable behind normal draws stays in (eps, 1 - eps)
OPTUNA_SEP = "/"  # Ray's unflatten_dict splits Optuna parameter names on "/"
_PRIMITIVE = (type(None), bool, int, float, str)
# Distributions sampled through a uniform variable the sampler sees, mapped by the inverse
# CDF; its range. The normal family's tails are cut at NORMAL_EPS (the inverse CDF of 0 or 1
# is infinite); the others map the closed interval to their bounds.
UNIFORM_VARIABLE: dict[str, tuple[float, float]] = {
    **{d: (NORMAL_EPS, 1.0 - NORMAL_EPS) for d in ("normal", "q_normal", "log_normal",
                                                   "q_log_normal")},
    **{d: (0.0, 1.0) for d in ("inv_log_uniform", "inv_log_uniform_values", "beta", "q_beta")},
}


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
            if active(p, flat):
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
            # W&B's rule: a uniform draw rounded to a multiple of q, so the two end values
            # are half as likely as the inner ones (not Optuna's equally likely steps).
            return quantize(trial.suggest_float(name, float(p.min), float(p.max)),  # type: ignore[arg-type]
                            p.q or DEFAULT_Q)
        if d in ("log_uniform", "q_log_uniform"):
            x = trial.suggest_float(name, math.exp(p.min), math.exp(p.max), log=True)  # type: ignore[arg-type]
            return quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        if d in ("log_uniform_values", "q_log_uniform_values"):
            x = trial.suggest_float(name, p.min, p.max, log=True)
            return quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        if d in UNIFORM_VARIABLE:
            u = trial.suggest_float(name, *UNIFORM_VARIABLE[d])
            x = inverse_cdf(p, u)
            return quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        raise ValueError(f"unknown distribution {d!r} for parameter {p.name!r}")

    def optuna_point(self, point: dict[str, Any]) -> dict[str, Any]:
        """A flat config (``points_to_evaluate``) as the values Optuna is asked to fix
        (``Study.enqueue_trial``): what :meth:`sample` would have drawn to give it."""
        by_name = {p.name: p for p in self.params}
        fixed: dict[str, Any] = {}
        for name, value in point.items():
            p = by_name[name]
            if p.distribution != "constant":
                fixed[name.replace(".", OPTUNA_SEP)] = self._internal(p, value)
        return fixed

    def _internal(self, p: Parameter, value: Any) -> Any:
        d = p.distribution
        if d == "categorical":
            values = list(p.values)
            if p.probabilities is not None and self.method == "random":
                i = values.index(value)  # the middle of its share of [0, 1]
                edges = [0.0, *itertools.accumulate(p.probabilities)]
                return (edges[i] + edges[i + 1]) / 2
            if all(isinstance(v, _PRIMITIVE) for v in values):
                return value
            return json.dumps(value, sort_keys=True, default=str)
        if d == "int_uniform":
            return int(value)
        if d in UNIFORM_VARIABLE:
            return _quantile(p, float(value))
        return float(value)


def _quantile(p: Parameter, x: float) -> float:
    """The ``u`` with ``inverse_cdf(p, u) == x`` (bisection: inverse_cdf increases in u)."""
    lo, hi = UNIFORM_VARIABLE[p.distribution]
    for _ in range(80):
        mid = (lo + hi) / 2
        if inverse_cdf(p, mid) < x:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def inverse_cdf(p: Parameter, u: float) -> float:
    """The value at quantile ``u`` of ``p``'s distribution, before quantization, as W&B
    defines it (wandb/sweeps ``params.py``); increasing in ``u``.

    ``inv_log_uniform``: ``X = exp(-V)``, ``V`` uniform on ``[min, max]`` (so ``log(1/X)``
    is uniform); ``inv_log_uniform_values``: the same with ``V`` on ``[log(1/max),
    log(1/min)]``, i.e. ``X`` in ``[min, max]``; ``beta``: scipy's beta(a, b) on [0, 1];
    the normal family: ``mu + sigma * Phi^-1(u)`` (exponentiated for log_normal).

    >>> from orchestrator.sweepspec import Parameter
    >>> p = Parameter("t", "inv_log_uniform_values", min=0.1, max=10.0)
    >>> round(inverse_cdf(p, 0.0), 9), round(inverse_cdf(p, 0.5), 9), round(inverse_cdf(p, 1.0), 9)
    (0.1, 1.0, 10.0)
    """
    d = p.distribution
    if d in ("normal", "q_normal", "log_normal", "q_log_normal"):
        x = p.mu + p.sigma * NormalDist().inv_cdf(u)
        return math.exp(x) if d.endswith("log_normal") else x
    if d == "inv_log_uniform":
        return math.exp(-(p.min + (1.0 - u) * (p.max - p.min)))  # type: ignore[operator]
    if d == "inv_log_uniform_values":
        lo, hi = -math.log(p.max), -math.log(p.min)  # type: ignore[arg-type]
        return math.exp(-(lo + (1.0 - u) * (hi - lo)))
    if d in ("beta", "q_beta"):
        from scipy import stats

        return float(stats.beta.ppf(u, p.a, p.b))
    raise ValueError(f"distribution {d!r} of parameter {p.name!r} has no inverse CDF here")


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
