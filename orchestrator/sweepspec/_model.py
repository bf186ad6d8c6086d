"""The typed, frozen form of a sweep spec. Built only by :func:`orchestrator.sweepspec.load_spec`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Goal = Literal["minimize", "maximize"]
Method = Literal["grid", "random", "bayes", "tpe", "gp", "cmaes"]

METHODS: tuple[str, ...] = ("grid", "random", "bayes", "tpe", "gp", "cmaes")
# Methods whose sampler models parameters that appear only in some trials.
CONDITIONAL_METHODS: frozenset[str] = frozenset({"grid", "random", "bayes", "tpe"})

DISTRIBUTIONS: tuple[str, ...] = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform",
    "q_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
)
CONTINUOUS: frozenset[str] = frozenset(
    {"uniform", "log_uniform", "log_uniform_values", "normal", "log_normal",
     "q_log_uniform", "q_log_uniform_values", "q_normal", "q_log_normal"}
)


@dataclass(frozen=True)
class Metric:
    name: str
    goal: Goal = "minimize"
    target: float | None = None

    @property
    def mode(self) -> str:
        """Ray Tune's word for the goal."""
        return "min" if self.goal == "minimize" else "max"

    def reached(self, value: float) -> bool:
        if self.target is None:
            return False
        return value <= self.target if self.goal == "minimize" else value >= self.target


@dataclass(frozen=True)
class Parameter:
    """One searched (or fixed) parameter; ``name`` is dotted for nested config."""

    name: str
    distribution: str
    value: Any = None  # constant
    values: tuple[Any, ...] = ()  # categorical
    probabilities: tuple[float, ...] | None = None
    min: float | None = None
    max: float | None = None
    q: float | None = None
    mu: float = 0.0
    sigma: float = 1.0
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # ((other_param, allowed values), ...)
    source: str | None = None  # placeholder (`from: lr_find`): resolved before the sweep

    @property
    def is_placeholder(self) -> bool:
        """``from: ...`` in the spec: no values yet (see :mod:`orchestrator.method`)."""
        return self.distribution == "placeholder"

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))

    @property
    def is_constant(self) -> bool:
        return self.distribution == "constant"

    def grid_values(self) -> tuple[Any, ...] | None:
        """Every value of a discrete parameter, or None when it is continuous."""
        if self.distribution == "constant":
            return (self.value,)
        if self.distribution == "categorical":
            return self.values
        if self.distribution == "int_uniform":
            return tuple(range(int(self.min), int(self.max) + 1))  # type: ignore[arg-type]
        if self.distribution == "q_uniform":
            q = self.q or 1.0
            lo, hi = self.min, self.max
            n = int(round((hi - lo) / q))  # type: ignore[operator]
            return tuple(_tidy(lo + i * q) for i in range(n + 1))  # type: ignore[operator]
        return None


def _tidy(x: float) -> float | int:
    r = round(x, 12)
    return int(r) if float(r).is_integer() else r


@dataclass(frozen=True)
class EarlyTerminate:
    type: Literal["asha", "median"]
    grace_period: int = 1
    max_t: int = 100
    reduction_factor: float = 3.0
    min_samples_required: int = 3
    requested_as: str = "asha"  # what the spec said (hyperband runs as ASHA)


@dataclass(frozen=True)
class Resources:
    """Per trial. ``gpu=None`` (not set): one GPU per trial where the cluster has GPUs, else none."""

    cpu: float = 1.0
    gpu: float | None = None


@dataclass(frozen=True)
class CV:
    folds: int
    stratify: bool = True
    seed: int | None = None

    def as_dict(self, sweep_seed: int) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "stratify": self.stratify,
            "seed": self.seed if self.seed is not None else sweep_seed,
        }


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec. Build it with :func:`orchestrator.sweepspec.load_spec`."""

    name: str  # as the user wrote it: shown and tagged, never used as a path
    trainable: str
    method: str
    metric: Metric
    parameters: tuple[Parameter, ...]
    run_cap: int
    experiment: str
    seed: int = 0
    hypothesis: str = ""
    expected: str = ""
    description: str = ""
    baseline: dict[str, Any] | str | None = None
    baseline_repeats: int = 1  # baseline runs with distinct seeds (its noise floor without cv)
    early_terminate: EarlyTerminate | None = None
    resources: Resources = field(default_factory=Resources)
    max_concurrent: int | None = None
    max_failures: int = 0
    trial_timeout_s: float | None = None  # a trial's wall-time limit, from its start
    report_timeout_s: float | None = None  # the longest a running trial may go without reporting
    cv: CV | None = None
    storage_path: str | None = None
    run_cap_defaulted: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source: str = ""
    notes: tuple[str, ...] = ()  # non-fatal remarks (W&B keys ignored, hyperband → ASHA, ...)
    slug: str = "sweep"  # derived from `name`: letters, digits, '_', '.', '-' (folders)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def searched(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if not p.is_constant)

    def effective(self) -> dict[str, Any]:
        """The spec as it runs (after ``--set``), with the names it derived made explicit:
        what is recorded for a resume, and what a resume compares against."""
        return {**self.raw, "name": self.name, "experiment": self.experiment,
                "trainable": self.trainable}

    @property
    def placeholders(self) -> tuple[Parameter, ...]:
        """Parameters written ``from: lr_find``: resolved before the sweep runs."""
        return tuple(p for p in self.parameters if p.is_placeholder)

    @property
    def scheduler_name(self) -> str:
        return self.early_terminate.type if self.early_terminate else "fifo"
