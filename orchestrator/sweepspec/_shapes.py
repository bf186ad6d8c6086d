"""The shape of each section (types, known keys, allowed words), checked by pydantic.

These models say only what a section may contain; what depends on several values
(bounds, references, budgets) is checked by the section modules. Defaults are
``None`` so the checks can tell "left out" from "written": the defaults themselves
live in :mod:`orchestrator.sweepspec._model`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

# W&B keys that have no meaning here: accepted so W&B files run, and named in a note.
# (`program`, `command`: what W&B runs; `entity`: the account; `controller`, `job`, `queue`,
# `image_uri`, `launch`, `scheduler`: where and how W&B or Launch runs it; `apiVersion`,
# `kind`: the schema's own header.) `project` names the MLflow experiment.
WANDB_IGNORED: tuple[str, ...] = ("program", "command", "entity", "controller", "job", "queue",
                                  "image_uri", "launch", "scheduler", "apiVersion", "kind")


class MetricShape(BaseModel):
    model_config = STRICT
    name: str
    goal: Literal["minimize", "maximize"] | None = None
    target: float | None = None
    impute: Literal["latest", "best", "worst"] | None = None
    # W&B's schema spells "off" as the text "false"; YAML users write the boolean.
    impute_while_running: Literal["latest", "best", "worst", "false"] | bool | None = None


class EarlyTerminateShape(BaseModel):
    model_config = STRICT
    type: str
    grace_period: int | None = None
    min_iter: int | None = None  # W&B's name for grace_period
    max_t: int | None = None
    max_iter: int | None = None  # W&B's name for max_t
    reduction_factor: float | None = None
    eta: float | None = None  # W&B's name for reduction_factor
    s: int | None = None  # W&B hyperband: how many brackets below max_iter
    strict: bool | None = None  # W&B hyperband: judge the value at a bracket, not the best
    min_samples_required: int | None = None


class ResourcesShape(BaseModel):
    model_config = STRICT
    cpu: float | None = None
    gpu: float | None = None
    workers: int | None = None  # Ray Train workers per trial (cpu and gpu: per worker)


class CVShape(BaseModel):
    model_config = STRICT
    folds: int
    stratify: bool | None = None
    seed: int | None = None


class PBTShape(BaseModel):
    model_config = STRICT
    interval: int | None = None
    quantile: float | None = None
    resample_probability: float | None = None


class ParamShape(BaseModel):
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
    a: float | None = None
    b: float | None = None
    parameters: dict[str, Any] | None = None
    when: dict[str, Any] | None = None


class TopShape(BaseModel):
    model_config = STRICT
    name: str | None = None
    experiment: str | None = None
    description: str | None = None
    trainable: str | None = None
    method: str
    # Checked by their own readers, whose messages say what to write (_objectives, _running).
    metric: Any = None
    metrics: Any = None  # W&B's multi-objective form
    parameters: dict[str, Any]
    early_terminate: dict[str, Any] | None = None
    run_cap: int | None = None
    num_samples: int | None = None  # Ray Tune's word for run_cap
    hypothesis: str | None = None
    expected: str | None = None
    baseline: dict[str, Any] | str | None = None
    baseline_repeats: int | None = None
    seed: int | None = None
    resources: dict[str, Any] | None = None
    max_concurrent: int | None = None
    max_failures: int | None = None
    trial_timeout_s: float | None = None
    report_timeout_s: float | None = None
    time_budget_s: float | None = None
    stop: Any = None
    metric_constraints: Any = None
    pbt: Any = None
    points_to_evaluate: Any = None  # checked by _points, whose messages say what to write
    confirm_seeds: Any = None
    cv: dict[str, Any] | None = None
    storage_path: str | None = None
    project: str | None = None  # W&B's project: names the experiment
    program: Any = None
    command: Any = None
    entity: Any = None
    controller: Any = None
    job: Any = None
    queue: Any = None
    image_uri: Any = None
    launch: Any = None
    scheduler: Any = None
    apiVersion: Any = None  # noqa: N815 - W&B's spelling
    kind: Any = None


TOP_KEYS = tuple(TopShape.model_fields)
