"""Trials that are distributed jobs: each trial one Ray Train run of several workers.

``resources: {workers: N, cpu: c, gpu: g}`` runs every trial as a Ray Train V2
``TorchTrainer`` of N workers, each with ``c`` CPUs and ``g`` GPUs (gloo on CPUs, NCCL
with GPUs), started from inside the Ray Tune trial: Ray's documented pattern for Ray
Train inside Ray Tune (the trial function builds the trainer; ``TuneReportCallback``
hands rank 0's results to Tune). The user writes the same trainable as for one process;
it runs on every worker, inside a :class:`~orchestrator.engine._context.TrialContext`:

* :func:`orchestrator.report` on every rank calls ``ray.train.report``, which is a
  barrier (every rank must report every epoch). Ray Train keeps rank 0's metrics, so the
  Tune trial gets one result per epoch. A checkpoint mapping is saved from rank 0 only:
  data-parallel ranks hold the same state. A ``ray.train.Checkpoint`` goes as given.
* :func:`orchestrator.load_checkpoint` reads Ray Train's latest checkpoint.
* ``torch.distributed`` is set up by Ray Train (``DistributedDataParallel``, a
  ``DistributedSampler`` or rank-strided indices shard the work: see
  ``search_spaces/distributed_digits.py``); with one worker the same code runs alone.

Decisions, each with its reason:

* The Tune trial only drives the run, so it reserves no CPU (:data:`DRIVER_RESOURCES`);
  the workers' CPUs and GPUs are reserved by Ray Train's placement group. The sweep runs
  at most :func:`concurrent_trials` trials at once, as many as the cluster can give all
  their workers (Ray's advice: limit ``max_concurrent_trials`` so that no Train run
  waits for workers), and :func:`check_worker_resources` refuses a sweep whose trial
  could never get its workers, instead of waiting for ever.
* Retries belong to Tune (the spec's ``max_failures``), as for one-process trials: Ray
  Train's own retries of worker errors and preemptions are off (``FailureConfig``), so
  a failed worker fails the trial, Tune records it and runs it again. Ray Train keeps its
  run state in the trial's folder (``<experiment>/<trial_id>/train``); the retried or
  resumed trial's new trainer, of the same name there, continues from its latest
  checkpoint. ``training_iteration`` continues too: it is kept in the checkpoint's
  metadata (:data:`ITERATION_KEY`), so MLflow holds every epoch once.
* When Tune ends a trial early (ASHA, a time limit, Ctrl-C) its process goes, and the
  Train controller with it, but Ray keeps the workers' placement group as long as the
  job lives, so the next trial would wait for ever for those CPUs. Rank 0 registers the
  group at start; :class:`WorkerGroupJanitor`, a Tune callback in the driver, removes it
  when Tune says the trial ended. Ray Train's own cleaner for this needs the dashboard's
  state API, which orch's local Ray does not run (it then warns every second and stays
  behind), so orch's trainer leaves it out (``_private.torch_trainer_class``).
* Ray Train V2 is the default from Ray 2.51; orch refuses a sweep (and a trial) where
  ``RAY_TRAIN_V2_ENABLED`` turns it off, rather than run the old API's semantics.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune import Callback

from orchestrator.engine._checkpoint import save_state
from orchestrator.engine._context import TrialContext, _activate, derive_seed
from orchestrator.engine._ledger import unwrap_config
from orchestrator.engine._values import TAGS_KEY
from orchestrator.engine.raytune._private import torch_trainer_class
from orchestrator.engine.raytune._trial import _place_tags, _report_outputs
from orchestrator.errors import OrchError, ResourceError, TrialError
from orchestrator.sweepspec import SweepSpec

__all__ = ["DRIVER_RESOURCES", "ITERATION_KEY", "TRAIN_RUN_NAME", "WorkerGroupJanitor",
           "WorkerPlan", "check_worker_resources", "close_registry", "concurrent_trials",
           "limit_concurrency",
           "make_distributed_trial", "worker_plan"]

# The Tune trial of a distributed trial waits on its Train run and computes nothing: it
# reserves one byte of memory only (Ray cannot place a request for nothing at all).
DRIVER_RESOURCES = {"cpu": 0.0, "gpu": 0.0, "memory": 1.0}
TRAIN_RUN_NAME = "train"  # the Ray Train run's folder, inside the trial's folder
ITERATION_KEY = "orch_training_iteration"  # checkpoint metadata: the report it came with
TRAIN_LOG_LEVEL = "WARNING"  # Ray Train logs a line per report per worker at INFO
V2_SWITCH = "RAY_TRAIN_V2_ENABLED"  # Ray's own switch between Ray Train's two APIs
V2_OFF = f"{V2_SWITCH} turns Ray Train V2 off"
FIT_EPSILON = 1e-9  # 0.3 CPUs hold three workers of 0.1 although 0.3 / 0.1 < 3 in floats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerPlan:
    """How each trial runs: ``workers`` Ray Train workers of ``cpu`` CPUs, ``gpu`` GPUs."""

    workers: int
    cpu: float
    gpu: float

    @property
    def backend(self) -> str:
        """torch.distributed's backend: NCCL between GPUs, gloo between CPU processes."""
        return "nccl" if self.gpu > 0 else "gloo"

    def bundle(self) -> dict[str, float]:
        """One worker's share, as Ray names resources."""
        return {"CPU": self.cpu, **({"GPU": self.gpu} if self.gpu > 0 else {})}

    def tags(self) -> dict[str, str]:
        return {"workers": str(self.workers), "worker_cpu": f"{self.cpu:g}",
                "worker_gpu": f"{self.gpu:g}", "backend": self.backend}


def worker_plan(spec: SweepSpec, resources: Mapping[str, float]) -> WorkerPlan | None:
    """The plan of a spec with ``resources.workers`` > 1 (``resources``: per worker, as
    :func:`~orchestrator.engine.raytune._start.trial_resources` gives them); else None."""
    if not spec.resources.distributed:
        return None
    if os.environ.get(V2_SWITCH, "1").strip().lower() not in ("1", "true"):  # Ray's reading
        raise OrchError(f"`resources.workers: {spec.resources.workers}` runs each trial on "
                        f"Ray Train V2, but {V2_OFF} ({V2_SWITCH}="
                        f"{os.environ[V2_SWITCH]!r}); unset it or set {V2_SWITCH}=1")
    return WorkerPlan(spec.resources.workers, float(resources["cpu"]),
                      float(resources["gpu"]))


def placeable_workers(plan: WorkerPlan, nodes: Iterable[Mapping[str, Any]]) -> int:
    """How many of the plan's workers the nodes (``ray.nodes()`` entries) hold at once.

    Ray Train packs the workers of one run onto as few nodes as it can, spreading them when
    one node is not enough, so identical workers fit wherever each node has room:

    >>> nodes = [{"Resources": {"CPU": 2.0}}, {"Resources": {"CPU": 1.0, "GPU": 1.0}}]
    >>> placeable_workers(WorkerPlan(2, 0.5, 0.0), nodes)
    6
    >>> placeable_workers(WorkerPlan(2, 1.0, 1.0), nodes)
    1
    """
    total = 0
    for node in nodes:
        have = node.get("Resources", {})
        fits = [math.floor(have.get(key, 0.0) / need + FIT_EPSILON)
                for key, need in plan.bundle().items() if need > 0]
        total += min(fits) if fits else 0
    return total


def concurrent_trials(plan: WorkerPlan, nodes: Iterable[Mapping[str, Any]]) -> int:
    """How many trials can have all their workers at once."""
    return placeable_workers(plan, nodes) // plan.workers


def _alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def check_worker_resources(plan: WorkerPlan, nodes: Iterable[Mapping[str, Any]] | None = None,
                           ) -> None:
    """Fail before any trial when the cluster can never give one trial all its workers."""
    nodes = list(_alive_nodes() if nodes is None else nodes)
    if concurrent_trials(plan, nodes) >= 1:
        return
    from orchestrator.engine.raytune._start import describe_nodes

    have = describe_nodes(nodes)
    raise ResourceError(
        f"each trial runs {plan.workers} workers of cpu={plan.cpu:g}, gpu={plan.gpu:g} "
        f"(`resources:`), but the cluster can hold only {placeable_workers(plan, nodes)} such "
        f"workers at once; nodes: {have}. Lower `resources.workers` or the per-worker "
        "`cpu`/`gpu`, or add nodes that have them."
    )


def limit_concurrency(spec: SweepSpec, plan: WorkerPlan) -> SweepSpec:
    """The spec with ``max_concurrent`` no higher than the trials whose workers fit at once
    (Tune would otherwise start trials whose Train runs wait for workers)."""
    fit = max(1, concurrent_trials(plan, _alive_nodes()))
    wanted = spec.max_concurrent
    if wanted is not None and wanted <= fit:
        return spec
    if wanted is not None:
        log.info("max_concurrent: %d -> %d: the cluster holds the workers of %d trials at "
                 "once", wanted, fit, fit)
    return dataclasses.replace(spec, max_concurrent=fit)


# --- the worker side -----------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker of one trial needs, sent with the training function."""

    config: dict[str, Any]
    seed: int
    split_seed: int
    cv: dict[str, Any] | None
    metric: str | None
    artifacts: str | None  # the trial's artifact folder: rank 0 writes there
    tags: dict[str, str]  # the trial's tags, sent with rank 0's first report
    trial_id: str
    registry: Any  # a ray.util.queue.Queue: rank 0 puts (trial_id, placement group) on it


class _TrainChannel:
    """Where a worker's ``orchestrator.report`` and ``load_checkpoint`` go: Ray Train.

    Every report carries ``training_iteration``, counted on from the checkpoint the run
    resumed from, so a retried trial's epochs keep their numbers in Tune and MLflow.
    """

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.iteration = _iteration_of(self.get_checkpoint())

    def get_checkpoint(self) -> Any:
        import ray.train

        return ray.train.get_checkpoint()

    def report(self, metrics: dict[str, Any], checkpoint: Any) -> None:
        import ray.train

        self.iteration += 1
        metrics = {**metrics, "training_iteration": self.iteration}
        if isinstance(checkpoint, Mapping):
            if self.rank != 0:  # data-parallel ranks hold the same state: rank 0 saves it
                ray.train.report(metrics)
                return
            with tempfile.TemporaryDirectory(prefix="orch-ckpt-") as folder:
                save_state(checkpoint, folder)
                saved = ray.train.Checkpoint.from_directory(folder)
                saved.set_metadata({ITERATION_KEY: self.iteration})
                # Ray Train copies the folder into the run's storage before report() returns.
                ray.train.report(metrics, checkpoint=saved)
            return
        if checkpoint is not None and self.rank == 0:
            checkpoint.update_metadata({ITERATION_KEY: self.iteration})
        ray.train.report(metrics, checkpoint=checkpoint)


def _iteration_of(checkpoint: Any) -> int:
    if checkpoint is None:
        return 0
    try:
        return int(checkpoint.get_metadata().get(ITERATION_KEY, 0))
    except (OSError, ValueError, TypeError):  # no metadata: a checkpoint orch did not write
        return 0


def _quiet_worker_logs() -> None:
    """Ray Train logs "Reporting training result ..." for every report of every worker at
    INFO, through a logger named after its file, outside its ``LoggingConfig``."""
    tail = os.path.join("train", "v2", "_internal", "execution", "context.py")
    for name in list(logging.root.manager.loggerDict):
        if name.endswith(tail):
            logging.getLogger(name).setLevel(logging.WARNING)


def _register_worker_group(setup: WorkerSetup) -> None:
    """Tell the sweep's janitor which placement group holds this trial's workers."""
    import ray

    group = ray.util.get_current_placement_group()
    if group is not None and setup.registry is not None:
        setup.registry.put((setup.trial_id, group))


def _worker_tags() -> dict[str, str]:
    import ray

    return {"worker_node": socket.gethostname(),
            "gpu_ids": ",".join(map(str, ray.get_gpu_ids())),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}


def run_worker(fn: Callable[[dict[str, Any]], Any], setup: WorkerSetup) -> None:
    """One worker's part of a trial: the user's trainable, reporting through Ray Train."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    _quiet_worker_logs()
    if rank == 0:
        _register_worker_group(setup)
    # Rank 0 writes the trial's artifacts; the others write theirs where nobody looks.
    own = setup.artifacts if rank == 0 and setup.artifacts else tempfile.mkdtemp(
        prefix=f"orch-rank{rank}-")
    ctx = TrialContext(metric=setup.metric, seed=setup.seed, split_seed=setup.split_seed,
                       cv=setup.cv, artifacts=Path(own), channel=_TrainChannel(rank))
    if rank == 0:
        ctx.pending_tags.update({**setup.tags, **_worker_tags()})
    try:
        with _activate(ctx):
            _report_outputs(fn(dict(setup.config)), setup.metric)
    finally:
        if rank != 0:
            shutil.rmtree(own, ignore_errors=True)
    if ctx.reports == 0:
        raise TrialError(
            f"worker rank {rank} reported nothing through orch: with `resources.workers` > 1 "
            "call orchestrator.report(...) every epoch on every worker (ray.tune.report does "
            "not reach Ray Tune from a Ray Train worker, and ray.train.report bypasses orch's "
            "checks and epoch numbering)")


# --- the Tune side -------------------------------------------------------------------


def _require_train_v2() -> None:
    import ray.train

    if not hasattr(ray.train, "UserCallback"):  # exported by Ray Train V2 only
        raise OrchError(f"this trial runs on Ray Train V2, but {V2_OFF} in the trial's "
                        f"process; unset {V2_SWITCH} (or set it to 1) on every node")


def _report_callback() -> Any:
    """Ray's ``TuneReportCallback``, with the checkpoint's path as a tag, not a metric."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class ReportToTune(TuneReportCallback):  # type: ignore[misc, valid-type]
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                         checkpoint: Any) -> None:
            first = dict(metrics[0])
            if checkpoint is not None:
                first[TAGS_KEY] = {**first.get(TAGS_KEY, {}), "train_checkpoint":
                                   str(checkpoint.path)}
            super().after_report(run_context, [first, *metrics[1:]], None)

    return ReportToTune()


def _trainer(fn: Callable[..., Any], setup: WorkerSetup, plan: WorkerPlan, *, storage: str,
             checkpoints_kept: int) -> Any:
    import ray.train
    from ray.train.torch import TorchConfig

    return torch_trainer_class()(
        functools.partial(run_worker, fn, setup),
        torch_config=TorchConfig(backend=plan.backend),
        scaling_config=ray.train.ScalingConfig(num_workers=plan.workers, use_gpu=plan.gpu > 0,
                                               resources_per_worker=plan.bundle()),
        run_config=ray.train.RunConfig(
            # The same (storage, name) in every attempt: a retried trial's run resumes.
            name=TRAIN_RUN_NAME, storage_path=storage,
            callbacks=[_report_callback()],
            # retries are Tune's, preemptions included (Ray Train retries those for ever)
            failure_config=ray.train.FailureConfig(max_failures=0, max_preemption_failures=0),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=checkpoints_kept),
            logging_config=ray.train.LoggingConfig(log_level=TRAIN_LOG_LEVEL)),
    )


def _worker_failure(exc: Exception, workers: int) -> Exception:
    """A Ray Train failure said the way a one-process trial's would be (the first failed
    rank's error; orch's own errors keep their class, so the ledger knows them)."""
    failures = getattr(exc, "worker_failures", None) or {}
    if not failures:
        cause = getattr(exc, "controller_failure", exc)
        return TrialError(f"Ray Train's controller failed: {type(cause).__name__}: {cause}")
    # The rank whose own code failed, not one that only saw a peer go (a collective's
    # "connection closed"); among equals, the lowest rank.
    rank, err = min(failures.items(), key=lambda item: (_peer_gone(item[1]), item[0]))
    where = f"worker rank {rank} of {workers}"
    if isinstance(err, TrialError):
        return type(err)(f"{err} ({where})")
    return TrialError(f"{type(err).__name__} on {where}: {err}")


_PEER_GONE = ("gloo", "nccl", "connection closed", "connection reset", "broken pipe",
              "timed out", "collective")


def _peer_gone(err: BaseException) -> bool:
    """Whether a worker's error reads as another rank having gone (torch.distributed)."""
    text = f"{type(err).__name__}: {err}".lower()
    return any(word in text for word in _PEER_GONE)


def make_distributed_trial(fn: Callable[[dict[str, Any]], Any], plan: WorkerPlan, *,
                           sweep_id: str, metric: str | None, sweep_seed: int,
                           split_seed: int, cv: dict[str, Any] | None, train_storage: str,
                           checkpoints_kept: int, artifact_root: str | None = None,
                           trainable_ref: str = "") -> Callable[[dict[str, Any]], None]:
    """The Tune trial function of a distributed trial: one Ray Train run of ``plan``.

    ``train_storage`` is the experiment's folder; the run lives in ``<it>/<trial_id>/train``.
    """
    if isinstance(fn, type):
        raise OrchError(f"`resources.workers: {plan.workers}` runs a function on every "
                        f"worker, but the trainable {fn.__name__} is a class (tune.Trainable); "
                        "write it as a function of config that calls orchestrator.report "
                        "every epoch")
    if "://" not in train_storage:
        train_storage = os.path.abspath(train_storage)
    registry = _open_registry(sweep_id)

    def trial(config: dict[str, Any]) -> None:
        import ray.train
        import ray.tune

        _require_train_v2()
        config, _, repeat = unwrap_config(config)
        seed = derive_seed(sweep_seed, config, repeat) if repeat else derive_seed(sweep_seed, config)
        ctx = TrialContext(metric=metric, seed=seed, split_seed=split_seed, cv=cv)
        _place_tags(ctx, artifact_root)
        ctx.pending_tags.update(plan.tags())
        if trainable_ref:
            ctx.pending_tags["trainable"] = trainable_ref
        trial_id = ray.tune.get_context().get_trial_id()
        setup = WorkerSetup(config=config, seed=seed, split_seed=split_seed, cv=cv,
                            metric=metric, artifacts=str(ctx.artifacts) if ctx.artifacts
                            else None, tags=dict(ctx.pending_tags), trial_id=trial_id,
                            registry=registry)
        trainer = _trainer(fn, setup, plan, storage=f"{train_storage}/{trial_id}",
                           checkpoints_kept=checkpoints_kept)
        try:
            trainer.fit()
        except ray.train.TrainingFailedError as exc:
            raise _worker_failure(exc, plan.workers) from exc

    trial.__name__ = getattr(fn, "__name__", "trainable")
    trial.__qualname__ = trial.__name__
    return trial


# --- the driver side: nothing left holding workers -----------------------------------

_REGISTRIES: dict[str, Any] = {}  # sweep id -> the queue its trials' rank 0 workers fill


def _open_registry(sweep_id: str) -> Any:
    from ray.util.queue import Queue

    queue = Queue(actor_options={"num_cpus": 0})
    _REGISTRIES[sweep_id] = queue
    return queue


def _remove_group(group: Any) -> None:
    import ray

    try:
        if ray.util.placement_group_table(group).get("state") != "REMOVED":
            ray.util.remove_placement_group(group)
    except Exception as exc:  # noqa: BLE001 - already gone, or Ray is shutting down
        log.debug("could not remove placement group %s: %s", group, exc)


class WorkerGroupJanitor(Callback):
    """Removes the workers' placement group of every distributed trial Tune ends.

    A finished run removed its own already; a trial Tune stopped, timed out or lost left
    it reserved (see the module docstring). State lives in the module, by sweep id: Tune
    pickles its callbacks with the experiment, and a resumed sweep gets a fresh queue.
    """

    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id
        self._groups: dict[str, list[Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, "_groups": {}}

    def _collect(self) -> None:
        queue = _REGISTRIES.get(self.sweep_id)
        if queue is None:
            return
        try:
            items = queue.get_nowait_batch(queue.qsize())
        except Exception as exc:  # noqa: BLE001 - the queue went with Ray
            log.debug("worker registry of sweep %s unreadable: %s", self.sweep_id, exc)
            return
        for trial_id, group in items:
            self._groups.setdefault(trial_id, []).append(group)

    def _release(self, trial_id: str) -> None:
        self._collect()
        for group in self._groups.pop(trial_id, []):
            _remove_group(group)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial.trial_id)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._collect()
        for trial_id in list(self._groups):
            self._release(trial_id)
        close_registry(self.sweep_id)


def close_registry(sweep_id: str) -> None:
    """Shut the sweep's worker registry down (its queue actor), if it has one; again is a
    no-op. The janitor does it when the experiment ends; the run, when it never began."""
    queue = _REGISTRIES.pop(sweep_id, None)
    if queue is not None:
        try:
            queue.shutdown(force=True)
        except Exception as exc:  # noqa: BLE001 - gone with Ray already
            log.debug("worker registry of sweep %s: %s", sweep_id, exc)
