"""The typed, frozen form of a sweep spec. Built only by :func:`orchestrator.sweepspec.load_spec`.

Every default a spec can leave out is named here, once, with its unit; the parser
fills the same constants in, so a spec that omits a key and one that writes the
default build equal objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from orchestrator.sweepspec._rules import Rule

Goal = Literal["minimize", "maximize"]
Impute = Literal["latest", "best", "worst"]
Method = Literal["grid", "random", "bayes", "tpe", "gp", "cmaes", "pbt", "pb2"]

METHODS: tuple[str, ...] = ("grid", "random", "bayes", "tpe", "gp", "cmaes", "pbt", "pb2")
# Methods whose sampler models parameters that appear only in some trials.
CONDITIONAL_METHODS: frozenset[str] = frozenset({"grid", "random", "bayes", "tpe"})
# Methods that run every point without learning from results: `metric` may be left out (W&B).
METRIC_OPTIONAL_METHODS: frozenset[str] = frozenset({"grid", "random"})
# Methods with a multi-objective form: Optuna 5's TPESampler and GPSampler (logEHVI) take
# several directions; its CmaEsSampler raises for them, and PBT ranks by one metric.
MULTI_OBJECTIVE_METHODS: frozenset[str] = frozenset({"grid", "random", "bayes", "tpe", "gp"})
# Population-based training: Ray Tune's PopulationBasedTraining and PB2 schedulers.
POPULATION_METHODS: frozenset[str] = frozenset({"pbt", "pb2"})

DISTRIBUTIONS: tuple[str, ...] = (
    "constant",
    "categorical",
    "categorical_w_probabilities",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform",
    "q_log_uniform_values",
    "inv_log_uniform",
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
    "beta",
    "q_beta",
)

DEFAULT_RUN_CAP = 20  # trials, when the spec sets neither run_cap nor num_samples
DEFAULT_CPU = 1.0  # CPUs per trial (per worker when `workers` > 1)
DEFAULT_WORKERS = 1  # processes per trial; > 1: Ray Train workers, data-parallel
DEFAULT_STRATIFY = True  # K-fold keeps each class's share in every fold
DEFAULT_MU = 0.0  # mean of the normal family (W&B's default)
DEFAULT_SIGMA = 1.0  # standard deviation of the normal family (W&B's default)
DEFAULT_BETA_A = 1.0  # beta's a (W&B's default: with b = 1, uniform on [0, 1])
DEFAULT_BETA_B = 1.0  # beta's b (W&B's default)
DEFAULT_Q = 1.0  # step of every q_* distribution when `q` is left out (W&B's default)
DEFAULT_GOAL: Goal = "minimize"  # W&B's default goal
DEFAULT_IMPUTE: Impute = "worst"  # what a failed run counts as for the searcher (W&B's default)

DEFAULT_GRACE_PERIOD = 1  # epochs a trial runs before ASHA or the median rule may stop it
DEFAULT_MAX_T = 100  # epochs: where `type: asha` ends every trial when max_t is left out
DEFAULT_REDUCTION_FACTOR = 3.0  # ASHA's eta: each rung keeps the best 1/3 (also W&B's eta)
DEFAULT_MIN_SAMPLES = 3  # trials the median rule needs at an epoch before it stops any
DEFAULT_HYPERBAND_STRICT = False  # W&B's documented default: judge a run by its best value

DEFAULT_PBT_INTERVAL = 4  # epochs between exploit/explore steps (Ray's pbt_function example)
DEFAULT_PBT_QUANTILE = 0.25  # Ray's default: the bottom quarter copies the top quarter
DEFAULT_PBT_RESAMPLE = 0.25  # Ray's default: chance a mutated value is drawn afresh


@dataclass(frozen=True)
class Metric:
    """One objective: its name as the trainable reports it, and its goal."""

    name: str
    goal: Goal = DEFAULT_GOAL
    target: float | None = None
    # W&B: the value a failed, crashed or killed run counts as for the searcher.
    impute: Impute = DEFAULT_IMPUTE
    # W&B: a value appended for running trials too (None: W&B's "false", only finished ones).
    impute_while_running: Impute | None = None

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
    mu: float = DEFAULT_MU
    sigma: float = DEFAULT_SIGMA
    a: float = DEFAULT_BETA_A  # beta family
    b: float = DEFAULT_BETA_B
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # ((other_param, allowed values), ...)
    source: str | None = None  # placeholder (`from: lr_find`): resolved before the sweep

    @property
    def is_placeholder(self) -> bool:
        """``from: ...`` in the spec: no values yet (see :mod:`orchestrator.method`)."""
        return self.distribution == "placeholder"

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
            q = self.q or DEFAULT_Q
            lo, hi = self.min, self.max
            n = int(round((hi - lo) / q))  # type: ignore[operator]
            return tuple(_tidy(lo + i * q) for i in range(n + 1))  # type: ignore[operator]
        return None


def _tidy(x: float) -> float | int:
    r = round(x, 12)
    return int(r) if float(r).is_integer() else r


@dataclass(frozen=True)
class EarlyTerminate:
    """Early stopping: ASHA (``type: asha``, and W&B's ``hyperband`` brackets) or the median rule.

    For ASHA, ``rungs`` are the epochs at which a trial can be stopped, and a rung ``k``
    is reached at the first whole epoch at or after ``grace_period * reduction_factor**k``
    (Ray's ``ASHAScheduler``). ``max_t`` is where every trial ends (Ray's ``max_t`` with
    ``stop_last_trials``); ``None`` means no trial is ever cut for its length, which is
    W&B's hyperband: it stops runs only at its brackets.
    """

    type: Literal["asha", "median"]
    grace_period: float = DEFAULT_GRACE_PERIOD
    max_t: int | None = DEFAULT_MAX_T
    reduction_factor: float = DEFAULT_REDUCTION_FACTOR
    min_samples_required: int = DEFAULT_MIN_SAMPLES
    requested_as: str = "asha"  # what the spec said: asha, hyperband or median
    rungs: tuple[int, ...] = ()  # epochs at which a trial can be stopped (ASHA)
    # True: a trial is judged by its value at the rung (Ray's ASHA, W&B's `strict: true`);
    # False: by its best value so far (W&B's default, more lenient).
    strict: bool = True
    unbounded: bool = False  # rungs go on without end (W&B's min_iter); `rungs` lists the first


@dataclass(frozen=True)
class PBT:
    """Population-based training settings (``method: pbt`` and ``pb2``)."""

    interval: int = DEFAULT_PBT_INTERVAL  # epochs between exploit/explore steps
    quantile: float = DEFAULT_PBT_QUANTILE  # fraction at the bottom that copies the top
    resample_probability: float = DEFAULT_PBT_RESAMPLE  # pbt only: PB2 picks with its GP


@dataclass(frozen=True)
class Resources:
    """Per trial. ``gpu=None`` (not set): one GPU per trial where the cluster has GPUs, else none.

    ``workers`` > 1 runs each trial as one Ray Train job of that many workers, each with
    ``cpu`` CPUs and ``gpu`` GPUs (``gpu=None``: one each where the cluster has GPUs).
    """

    cpu: float = DEFAULT_CPU
    gpu: float | None = None
    workers: int = DEFAULT_WORKERS

    @property
    def distributed(self) -> bool:
        """Each trial is a Ray Train job of several workers."""
        return self.workers > 1


@dataclass(frozen=True)
class CV:
    folds: int
    stratify: bool = DEFAULT_STRATIFY
    seed: int | None = None

    def as_dict(self, sweep_seed: int) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "stratify": self.stratify,
            "seed": self.seed if self.seed is not None else sweep_seed,
        }


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec. Build it with :func:`orchestrator.sweepspec.load_spec`.

    ``metric`` is None only for ``grid`` and ``random`` without one (every point runs,
    no best is named). With W&B's multi-objective ``metrics:`` list, ``metrics`` holds
    every objective and ``metric`` is the first (the one early stopping judges); with a
    single ``metric:``, ``metrics`` is that one.
    """

    name: str  # as the user wrote it: shown and tagged, never used as a path
    trainable: str
    method: str
    metric: Metric | None
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
    notes: tuple[str, ...] = ()  # non-fatal remarks (W&B keys ignored, brackets, ...)
    slug: str = "sweep"  # derived from `name`: letters, digits, '_', '.', '-' (folders)
    metrics: tuple[Metric, ...] = ()  # every objective (see the class docstring)
    # Ray Tune's `stop=`: a trial stops once a reported value is >= its threshold
    # (metric names, `training_iteration`, `time_total_s`); `dict(spec.stop)` is Ray's form.
    stop: tuple[tuple[str, float], ...] = ()
    time_budget_s: float | None = None  # the whole sweep's wall-time budget (Ray's TuneConfig)
    metric_constraints: tuple[Rule, ...] = ()  # feasibility rules, e.g. `n_params <= 50000`
    pbt: PBT | None = None  # set for method pbt and pb2
    # Configs the search tries first (flat, dotted names; the rest sampled): Ray's name.
    points_to_evaluate: tuple[dict[str, Any], ...] = ()
    # Seeds the winner and the baseline are rerun on after the sweep (None: 3 with
    # `expected:`, else none; 0: none); see orchestrator.method.confirm.
    confirm_seeds: int | None = None

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def searched(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if not p.is_constant)

    @property
    def multi_objective(self) -> bool:
        """Two or more objectives (W&B's ``metrics:`` list)."""
        return len(self.metrics) > 1

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
        if self.method in POPULATION_METHODS:
            return self.method
        return self.early_terminate.type if self.early_terminate else "fifo"
