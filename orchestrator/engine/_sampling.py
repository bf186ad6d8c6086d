"""Sampling the spec's space with Optuna: a define-by-run function and the method's sampler.

Every sampled method goes through Optuna (``RandomSampler`` for ``random``),
driven by Ray Tune's ``OptunaSearch`` with a define-by-run function, because
define-by-run is what makes ``when:`` (conditional parameters) natural: a
parameter is asked for only when its condition holds, so it is absent from
the config otherwise, and TPE models it over the trials where it exists.

W&B distributions Optuna lacks are sampled through a uniform variable the
sampler sees, mapped by the inverse CDF (``normal`` family) or a cumulative
table (``values`` with ``probabilities``); the mapping is monotone, so
samplers and importance analysis still see a faithful ordering.

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

from orchestrator.sweepspec import Parameter, SweepSpec
from orchestrator.sweepspec import active, quantize, sampling_order

__all__ = ["NORMAL_EPS", "OPTUNA_SEP", "OptunaSpace", "make_sampler"]

NORMAL_EPS = 1e-6  # the uniform variable behind normal draws stays in (eps, 1 - eps)
OPTUNA_SEP = "/"  # Ray's unflatten_dict splits Optuna parameter names on "/"
_PRIMITIVE = (type(None), bool, int, float, str)


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
            q, lo, hi = p.q or 1.0, float(p.min), float(p.max)  # type: ignore[arg-type]
            steps = (hi - lo) / q
            if abs(lo / q - round(lo / q)) < 1e-9 and abs(steps - round(steps)) < 1e-9:
                return quantize(trial.suggest_float(name, lo, hi, step=q), q)
            return quantize(trial.suggest_float(name, lo, hi), q)
        if d in ("log_uniform", "q_log_uniform"):
            x = trial.suggest_float(name, math.exp(p.min), math.exp(p.max), log=True)  # type: ignore[arg-type]
            return quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        if d in ("log_uniform_values", "q_log_uniform_values"):
            x = trial.suggest_float(name, p.min, p.max, log=True)
            return quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        if d in ("normal", "q_normal", "log_normal", "q_log_normal"):
            u = trial.suggest_float(name, NORMAL_EPS, 1.0 - NORMAL_EPS)
            x = p.mu + p.sigma * NormalDist().inv_cdf(u)
            if d.endswith("log_normal"):
                x = math.exp(x)
            return quantize(x, p.q) if d.startswith("q_") else x  # type: ignore[arg-type]
        raise ValueError(f"unknown distribution {d!r} for parameter {p.name!r}")


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
