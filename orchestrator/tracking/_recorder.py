"""Record a sweep in MLflow from the Ray driver: one parent run, one nested run per trial.

Why the driver records: trial results already flow to the driver through Ray
Tune, so no worker node ever opens the tracking store (a SQLite file needs no
sharing, a server needs no credentials on workers), and there is exactly one
writer per sweep, so parallel trials cannot produce "database is locked".

All MLflow calls run on one writer thread fed by a queue; Ray Tune's event loop
only enqueues. Metric points are coalesced into ``log_batch`` calls (up to
MLflow's 1000 per call). A failing call is retried with back-off, in order, so
a tracking server that goes away mid-sweep costs nothing while it is gone; at
the end whatever still could not be written is listed in ``problems``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import TrackingError
from orchestrator.tracking._journal import JOURNAL_FILE, Journal, TrialJournal, read_journal
from orchestrator.sweepspec import flatten

if TYPE_CHECKING:
    from orchestrator.engine import SweepResult, TrialRecord
    from orchestrator.sweepspec import SweepSpec

__all__ = ["DEFAULT_TRACKING_URI", "EFFECTIVE_SPEC", "Recorder", "git_state", "resolve_tracking_uri"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow 3's own default: a file in the cwd
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
MAX_TAGS_PER_BATCH = 100
MAX_PARAM_CHARS = 6000  # MLflow's param value limit
MAX_TAG_CHARS = 5000  # kept under MLflow's 8000 so long errors still fit
FLUSH_INTERVAL_S = 0.5  # how often buffered metric points are written
RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # waits between retries of one call
EFFECTIVE_SPEC = "spec.effective.json"  # the spec after --set overrides: what a resume reruns
FINISH_DEADLINE_S = 60.0  # how long the end of a sweep waits for an unreachable store
START_TIMEOUT_S = 10.0  # how long the reachability check may take
# Tags every trial run carries from its sweep (so a trial's run reads alone).
COMMON_TAGS = ("orch.sweep_id", "orch.hypothesis", "orch.expected", "orch.baseline_id",
               "orch.method", "orch.scheduler", "orch.git_commit", "orch.git_dirty",
               "mlflow.source.git.commit")
# MLflow 3's UI opens an experiment in its GenAI mode unless told it is model development.
EXPERIMENT_KIND, EXPERIMENT_KIND_ML = "mlflow.experimentKind", "custom_model_development"


# Against a server MLflow prints two lines per run it closes ("View run ... at"), through
# the live view, and reads the run back once more (an HTTP call per trial) to write them;
# orch prints the addresses that matter itself.
QUIET_RUN_LINKS = ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """`uri`, else ``MLFLOW_TRACKING_URI``, else a SQLite file in the working directory."""
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if chosen.startswith("sqlite:///") and not chosen.startswith("sqlite:////"):
        # Relative SQLite paths are resolved now, so every later call (and `orch ui`) agrees.
        chosen = "sqlite:///" + str(Path(chosen[len("sqlite:///"):]).resolve())
    return chosen


def git_state(cwd: str) -> tuple[str, str]:
    """``(commit, dirty)`` of the git tree at ``cwd``; empty strings outside a repository."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=5, check=False).stdout.strip()
        if not commit:
            return "", ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=10,
                               check=False).stdout.strip()
        return commit, "true" if dirty else "false"
    except (OSError, subprocess.SubprocessError):
        return "", ""


@contextlib.contextmanager
def _sqlite_init_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a SQLite store (``<db>.lock``); nothing for other stores."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri[len("sqlite:///"):])  # resolve_tracking_uri made it absolute
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _step_boundary(points: list[Any], limit: int) -> int:
    """How many of ``points`` (in step order) to write at once: at most ``limit``, ending
    at a whole step where it can, so that a written batch always holds whole steps."""
    if len(points) <= limit:
        return len(points)
    cut = limit
    while cut > 0 and points[cut - 1].step == points[cut].step:
        cut -= 1
    return cut or limit  # one step of more than `limit` points: split it


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "... [truncated]"


class Recorder:
    """Listens to the engine's :class:`~orchestrator.engine.Ledger` and writes MLflow runs."""

    def __init__(self, spec: SweepSpec, *, sweep_id: str, tracking_uri: str | None = None,
                 spec_text: str | None = None, experiment_path: str = "",
                 journal_dir: Path | None = None,
                 verdict: Callable[[SweepResult], Any] | None = None,
                 optuna_storage: str = "") -> None:
        self.spec = spec
        self.optuna_storage = optuna_storage  # where the sweep's Optuna study is kept
        self.verdict = verdict  # the method's judge, handed in: tracking does not judge
        self.experiment_path = experiment_path
        self.prior_outcomes: dict[str, str] = {}  # resumed sweep: trial id → recorded outcome
        self.prior_diagnoses: dict[str, str] = {}
        self._run_status: dict[str, str] = {}
        # Per trial, the highest step accepted for the store: a step is stored once, the
        # first time any attempt reports it (a retry or a resume repeats steps).
        self._stored_max: dict[str, int] = {}
        self.journal_dir = journal_dir
        self._journal: Journal | None = None
        self._orphans: dict[str, TrialJournal] = {}
        self.points_refilled = 0  # points a resumed sweep found in the journal, not in MLflow
        self.sweep_id = sweep_id
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.spec_text = spec_text
        self.problems: list[str] = []
        self.warnings: list[str] = []  # loud, but not about tracking: e.g. a different split
        self.baseline_fingerprint = ""
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.points_reported = 0
        self.points_written = 0
        self.baseline_value: float | None = None
        self._run_ids: dict[str, str] = {}
        self._pending: dict[str, list[Any]] = {}
        self._ops: queue.Queue[tuple[str, Callable[[], None]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failed_ops: list[str] = []
        self._finish_by = float("inf")
        self._client: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, resume_parent: str | None = None) -> None:
        """Check the store answers, create the experiment and parent run; start the writer.

        With ``resume_parent`` the sweep's parent run and trial runs are reused instead.
        Raises :class:`TrackingError` before any trial runs when the store is unreachable.
        """
        # "Creating initial MLflow database tables..." on a new store is not news to a user.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(START_TIMEOUT_S)))
        os.environ.setdefault(*QUIET_RUN_LINKS)
        self._connect()
        spec = self.spec
        if isinstance(spec.baseline, str):
            self.baseline_value = self._baseline_run_value(spec.baseline)
        if resume_parent is not None:
            self._reopen(resume_parent)
            return
        self._open_journal()
        tags = self._sweep_tags()
        self._common = {k: tags[k] for k in COMMON_TAGS}
        try:
            run = self._client.create_run(self.experiment_id, run_name=spec.name,
                                          tags={k: _clip(v, MAX_TAG_CHARS)
                                                for k, v in tags.items() if v})
        except Exception as exc:
            raise TrackingError(f"could not create the sweep's run in {self.tracking_uri}: "
                                f"{_short(exc)}") from exc
        self.parent_run_id = parent = run.info.run_id
        settings = self._sweep_settings()
        self._submit("sweep params", lambda: self._log_params(parent, settings))
        text = self.spec_text or json.dumps(spec.raw, indent=2, default=str)
        self._submit("spec artifact", lambda: self._client.log_text(parent, text, "spec.yaml"))
        effective = json.dumps(spec.effective(), indent=2, sort_keys=True, default=str)
        self._submit("effective spec", lambda: self._client.log_text(parent, effective,
                                                                     EFFECTIVE_SPEC))
        self._start_writer()

    def _connect(self) -> None:
        """The client and the sweep's experiment (created if new); TrackingError if the store
        cannot be used, before any trial runs."""
        from mlflow import MlflowClient

        name = self.spec.experiment
        try:
            # MLflow creates a new SQLite store's tables on first use; two sweeps doing
            # that at once clash ("duplicate column"), so the first use is serialised.
            with _sqlite_init_lock(self.tracking_uri):
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
                exp = self._client.get_experiment_by_name(name)
                if exp is None:
                    try:
                        self.experiment_id = self._client.create_experiment(
                            name, tags={EXPERIMENT_KIND: EXPERIMENT_KIND_ML})
                    except Exception:  # another sweep created it meanwhile
                        exp = self._client.get_experiment_by_name(name)
                        if exp is None:
                            raise
        except Exception as exc:  # any failure here means nothing could be recorded
            raise TrackingError(
                f"the tracking store {self.tracking_uri} cannot be used: {_short(exc)}. "
                "Start the server, fix --tracking-uri / MLFLOW_TRACKING_URI, or pass "
                "--no-tracking to run without records."
            ) from exc
        if exp is not None and exp.lifecycle_stage == "deleted":
            raise TrackingError(
                f"the experiment {name!r} was deleted in {self.tracking_uri}; restore it "
                f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or set "
                "`experiment:` to another name")
        if exp is not None:
            self.experiment_id = exp.experiment_id
        self._describe_experiment(dict(exp.tags) if exp is not None else {})

    def _describe_experiment(self, tags: dict[str, str]) -> None:
        """The experiment opens in MLflow's model-training view with the reviewer's columns
        (the sweep's metric, outcome, diagnosis, what it searches), from the first trial
        on; an experiment made by hand gets its kind too. A failure here loses nothing."""
        from orchestrator.tracking._review import UI_VIEW_TAG, ui_view_state

        spec = self.spec
        wanted = {UI_VIEW_TAG: ui_view_state(
            metric=spec.metric.name if spec.metric else "",
            goal=spec.metric.goal if spec.metric else "",
            params=[p.name for p in spec.searched], metrics=["val_acc", "train_loss", "val_loss"])}
        if EXPERIMENT_KIND not in tags:
            wanted[EXPERIMENT_KIND] = EXPERIMENT_KIND_ML
        try:
            for key, value in wanted.items():
                if tags.get(key) != value:
                    self._client.set_experiment_tag(self.experiment_id, key, value)
        except Exception as exc:  # noqa: BLE001 - a view is a convenience, not a record
            self.warnings.append(f"the MLflow UI view was not saved: {_short(exc)}")

    def _sweep_tags(self) -> dict[str, str]:
        spec = self.spec
        commit, dirty = git_state(os.getcwd())
        if not commit and "no code version" not in " ".join(self.warnings):
            self.warnings.append("not a git repository (or git is missing): no code version "
                                 "recorded with the sweep; run it from a git checkout to "
                                 "tie its results to a commit")
        metric = spec.metric
        return {
            "orch.role": "sweep",
            "orch.sweep_id": self.sweep_id,
            "orch.sweep_name": spec.name,
            "orch.metric": metric.name if metric else "",
            "orch.goal": metric.goal if metric else "",
            "orch.method": spec.method,
            "orch.scheduler": spec.scheduler_name,
            "orch.seed": str(spec.seed),
            "orch.hypothesis": spec.hypothesis,
            "orch.expected": spec.expected,
            "orch.baseline_id": spec.baseline if isinstance(spec.baseline, str) else "",
            "orch.status": "running",
            "orch.storage": self.experiment_path,
            "orch.journal": str(self.journal_dir / JOURNAL_FILE) if self.journal_dir else "",
            "orch.optuna_storage": self.optuna_storage,
            "orch.git_commit": commit,
            "orch.git_dirty": dirty,
            "mlflow.source.git.commit": commit,
            "mlflow.note.content": spec.description or spec.hypothesis,
        }

    def _sweep_settings(self) -> dict[str, Any]:
        """The sweep's settings as the parent run's params."""
        spec, metric = self.spec, self.spec.metric
        gpu = spec.resources.gpu
        settings = {
            "method": spec.method, "metric": metric.name if metric else None,
            "goal": metric.goal if metric else None, "target": metric.target if metric else None,
            "run_cap": spec.run_cap, "seed": spec.seed, "trainable": spec.trainable,
            "scheduler": spec.scheduler_name, "max_concurrent": spec.max_concurrent,
            "max_failures": spec.max_failures, "resources.cpu": spec.resources.cpu,
            "resources.gpu": "auto" if gpu is None else gpu,
            "cv.folds": spec.cv.folds if spec.cv else None,
        }
        et = spec.early_terminate
        if et is not None:
            settings.update({"early_terminate.grace_period": et.grace_period,
                             "early_terminate.max_t": et.max_t,
                             "early_terminate.rungs": list(et.rungs),
                             "early_terminate.strict": et.strict,
                             "early_terminate.reduction_factor": et.reduction_factor})
        return settings

    def _open_journal(self) -> None:
        if self.journal_dir is not None:
            try:
                self._journal = Journal(self.journal_dir)
            except OSError as exc:
                self.warnings.append(f"no journal of reported points ({exc}): points not yet in "
                                     "MLflow when the driver dies cannot be recovered")

    def _start_writer(self) -> None:
        self._thread = threading.Thread(target=self._writer, name="orch-recorder", daemon=True)
        self._thread.start()

    def _reopen(self, parent_run_id: str) -> None:
        """Reuse a sweep's runs: parent back to RUNNING, trial runs found by trial id."""
        from mlflow.entities import RunStatus

        client = self._client
        try:
            parent = client.get_run(parent_run_id)
        except Exception as exc:
            raise TrackingError(f"the sweep's parent run {parent_run_id} is not in "
                                f"{self.tracking_uri}: {_short(exc)}") from exc
        self.parent_run_id = parent_run_id
        self.experiment_id = parent.info.experiment_id
        self._common = {k: v for k, v in parent.data.tags.items() if k in COMMON_TAGS}
        client.update_run(parent_run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        client.set_tag(parent_run_id, "orch.status", "running")
        runs = client.search_runs([self.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  max_results=50_000)
        journal = read_journal(self.journal_dir / JOURNAL_FILE) if self.journal_dir else {}
        for run in runs:
            tid = run.data.tags.get("orch.trial_id")
            if not tid:
                continue
            self._run_ids[tid] = run.info.run_id
            self._run_status[tid] = run.info.status
            self.prior_outcomes[tid] = run.data.tags.get("orch.outcome", "")
            self.prior_diagnoses[tid] = run.data.tags.get("orch.diagnosis", "")
            if tid in journal:
                self._refill(tid, run.info.run_id, journal[tid])
            else:  # recorded before journals, or the journal is gone: ask the store
                first = self.spec.metric.name if self.spec.metric else "training_iteration"
                steps = [m.step for m in client.get_metric_history(run.info.run_id, first)]
                self._stored_max[tid] = max(steps, default=0)
        # Trials the journal knows whose run was never created (the store hung): their
        # points go into the run they get when Ray starts or adopts them.
        self._orphans = {tid: tj for tid, tj in journal.items() if tid not in self._run_ids}
        for tid, tj in self._orphans.items():
            self._stored_max[tid] = tj.last_step
        self._open_journal()
        self._start_writer()

    def _queue_journal_points(self, tid: str, points: dict[int, dict[str, float]],
                              times: dict[int, int]) -> None:
        from mlflow.entities import Metric

        batch = [Metric(k, v, times.get(step, 0) or int(time.time() * 1000), step)
                 for step, metrics in sorted(points.items()) for k, v in metrics.items()]
        if batch:
            with self._lock:
                self._pending.setdefault(tid, []).extend(batch)
                self.points_reported += len(batch)
            self.points_refilled += len(batch)

    def _refill(self, tid: str, run_id: str, tj: TrialJournal) -> None:
        """Queue what the journal has of a trial and the store lacks (points reported before
        the driver died, not yet written); every step is then known as stored."""
        missing = tj.unconfirmed()
        if missing:
            names = sorted({k for m in missing.values() for k in m})
            present = {(name, m.step) for name in names
                       for m in self._client.get_metric_history(run_id, name)}
            self._queue_journal_points(tid, {step: {k: v for k, v in metrics.items()
                                                    if (k, step) not in present}
                                             for step, metrics in missing.items()}, tj.times)
        self._stored_max[tid] = tj.last_step

    def finish(self, result: SweepResult, *, failure: BaseException | None = None) -> None:
        """Close every run with its outcome, write the summary, and drain the queue.

        ``failure``: the sweep itself broke (not a trial); its parent run ends FAILED.
        """
        spec, parent = self.spec, self.parent_run_id
        base = result.baseline
        name = spec.metric.name if spec.metric else ""
        if base is not None and name and base.value(name) is not None:
            self.baseline_value = base.value(name)
        if self.baseline_value is not None:
            for rec in result.records:
                self._delta(rec)
        self._verdict_per_trial(result)
        best = result.best
        counts = result.counts
        metrics = {f"trials_{k}": float(v) for k, v in counts.items()}
        metrics["trials_total"] = float(len(result.records))
        tags = {"orch.status": "killed" if result.interrupted else "finished"}
        if best is not None:
            metrics[f"best_{name}"] = float(best.value(name))  # type: ignore[arg-type]
            tags["orch.best_trial_id"] = best.trial_id
            tags["orch.best_config"] = _clip(json.dumps(best.config, sort_keys=True,
                                                        default=str), MAX_TAG_CHARS)
        prints = {r.tags["split_fingerprint"] for r in result.records
                  if r.tags.get("split_fingerprint")}
        if self.baseline_fingerprint and prints and self.baseline_fingerprint not in prints:
            self.warnings.append(
                f"the baseline run {spec.baseline} was trained on a different data split "
                f"(fingerprint {self.baseline_fingerprint} vs {', '.join(sorted(prints))}): "
                f"delta_{name} compares unlike with unlike")
            tags["orch.split_mismatch"] = "true"
        if result.target_reached:
            tags["orch.target_reached"] = "true"
        if result.storage_problem:
            tags["orch.stopped_for"] = _clip(f"storage: {result.storage_problem}", MAX_TAG_CHARS)
        tags.update(_verdict_tags(result, self.verdict))
        status = "KILLED" if result.interrupted else "FINISHED"
        if failure is not None:
            status = "FAILED"
            tags["orch.status"] = "failed"
            tags["orch.error"] = _clip(f"{type(failure).__name__}: {failure}", MAX_TAG_CHARS)

        def summary() -> None:
            from mlflow.entities import Metric, RunTag

            now = int(time.time() * 1000)
            self._client.log_batch(
                parent,
                metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            self._client.set_terminated(parent, status=status)
            # Nothing stays RUNNING: a run whose trial Ray never reported back is closed.
            for run in self._client.search_runs(
                    [self.experiment_id],
                    f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'RUNNING'",
                    max_results=50_000):
                self._client.set_tag(run.info.run_id, "orch.outcome", "killed")
                self._client.set_terminated(run.info.run_id, status="KILLED")

        self._submit("sweep summary", summary)
        self._drain(FINISH_DEADLINE_S)
        lost = self.points_reported - self.points_written
        if lost > 0:
            kept = (f"; they are kept in {self._journal.path}, and `orch resume "
                    f"{self.sweep_id}` writes them once the store answers"
                    if self._journal is not None and not self._journal.problem else "")
            self.problems.insert(0, f"{lost} of {self.points_reported} metric points could not "
                                 f"be written to {self.tracking_uri}{kept}")
        self.problems.extend(f"not recorded: {what}" for what in self._failed_ops)
        if self._journal is not None:
            if self._journal.problem:
                self.warnings.append(self._journal.problem)
            self._journal.close()

    # ------------------------------------------------------------------ ledger events

    def trial_start(self, rec: TrialRecord) -> None:
        if rec.trial_id in self._run_ids and self._run_status.get(rec.trial_id, "RUNNING") \
                != "RUNNING":
            run_id = self._run_ids[rec.trial_id]
            self._run_status[rec.trial_id] = "RUNNING"  # a resumed trial continues its run

            def reopen() -> None:
                self._client.update_run(run_id, status="RUNNING")
                self._client.set_tag(run_id, "orch.outcome", "running")

            self._submit(f"reopen trial {rec.trial_id}", reopen)
            return
        if rec.trial_id in self._run_ids or rec.trial_id in self._pending:
            return
        with self._lock:
            self._pending[rec.trial_id] = []
        orphan = self._orphans.pop(rec.trial_id, None)
        if orphan is not None:
            self._queue_journal_points(rec.trial_id, orphan.points, orphan.times)
        config = dict(flatten(rec.config))
        tags = {
            **self._common,
            "mlflow.parentRunId": self.parent_run_id or "",
            "orch.role": rec.role,
            "orch.trial_id": rec.trial_id,
            "orch.outcome": "running",
        }
        tid = rec.trial_id

        run_name = tid if rec.role == "trial" else \
            (f"baseline-{rec.repeat}" if rec.repeat else "baseline")

        def create() -> None:
            run = self._client.create_run(self.experiment_id, run_name=run_name,
                                          tags={k: _clip(str(v), MAX_TAG_CHARS)
                                                for k, v in tags.items() if v})
            self._run_ids[tid] = run.info.run_id
            self._log_params(run.info.run_id, config)

        self._submit(f"run of trial {tid}", create)

    def trial_result(self, rec: TrialRecord, row: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        tid = rec.trial_id
        if step <= self._stored_max.get(tid, 0):
            return  # an attempt repeating a step (retry, resume): it is stored already
        self._stored_max[tid] = step
        now = int(time.time() * 1000)
        if self._journal is not None:  # on this machine's disk before it is queued
            self._journal.point(tid, step, row, now)
        points = [Metric(k, v, now, step) for k, v in row.items()]
        with self._lock:
            self._pending.setdefault(tid, []).extend(points)
            self.points_reported += len(points)

    def trial_adopted(self, rec: TrialRecord) -> None:
        """A trial that finished before the sweep was interrupted: close its run if open."""
        tid = rec.trial_id
        if tid not in self._run_ids:
            self.trial_start(rec)
            self.trial_end(rec)
        elif self._run_status.get(tid) == "RUNNING":
            self.trial_end(rec)

    def trial_end(self, rec: TrialRecord) -> None:
        if rec.trial_id not in self._run_ids and rec.trial_id not in self._pending:
            self.trial_start(rec)  # a trial that failed before it started
        tid = rec.trial_id
        tags = {f"orch.{k}": v for k, v in rec.tags.items()}
        tags.update({"orch.outcome": rec.outcome, "orch.diagnosis": rec.diagnosis,
                     "orch.diagnosis_reason": rec.diagnosis_reason})
        if rec.node and "orch.node" not in tags:
            tags["orch.node"] = rec.node
        if rec.stopped_at is not None and rec.outcome == "early_stopped":
            tags["orch.stopped_at_epoch"] = str(rec.stopped_at)
        if rec.error:
            tags["orch.error"] = rec.error
        if rec.stop_reason:
            tags["orch.stop_reason"] = rec.stop_reason
        tags["orch.attempts"] = str(len(rec.attempts) + 1)
        attempts = json.dumps(rec.attempts, indent=1, default=str) if rec.attempts else ""
        schedule = ""
        if rec.exploits:  # population-based training: where it copied from, its configs
            tags["orch.pbt.exploits"] = str(len(rec.exploits) - 1)
            tags["orch.pbt.exploited_from"] = str(rec.exploits[-1]["from"])
            schedule = json.dumps(rec.exploits, indent=1, default=str)
        status = {"completed": "FINISHED", "early_stopped": "FINISHED",
                  "failed": "FAILED", "killed": "KILLED"}.get(rec.outcome, "FINISHED")
        artifacts = self._artifact_folder(rec)
        error_text = rec.traceback or rec.error or ""

        def end() -> None:
            from mlflow.entities import RunTag

            run_id = self._run_ids[tid]
            items = [RunTag(k, _clip(str(v), MAX_TAG_CHARS)) for k, v in tags.items() if v]
            # The trial's last points and its first 100 tags go in one call (a call costs
            # ~4 ms on SQLite, a round trip to a server); any further tags after them.
            self._flush_trial(tid, tags=items[:MAX_TAGS_PER_BATCH])
            for i in range(MAX_TAGS_PER_BATCH, len(items), MAX_TAGS_PER_BATCH):
                self._client.log_batch(run_id, tags=items[i: i + MAX_TAGS_PER_BATCH])
            if error_text and rec.outcome == "failed":
                self._client.log_text(run_id, error_text, "error.txt")
            if attempts:  # the failed attempts before the last, each with its error
                self._client.log_text(run_id, attempts, "attempts.json")
            if schedule:
                self._client.log_text(run_id, schedule, "pbt_schedule.json")
            if artifacts is not None:
                self._client.log_artifacts(run_id, str(artifacts))
            self._client.set_terminated(run_id, status=status)
            if self._journal is not None and not self._pending.get(tid):
                self._journal.closed(tid)

        self._submit(f"end of trial {tid}", end)

    # ------------------------------------------------------------------ helpers

    def _delta(self, rec: TrialRecord) -> None:
        if self.spec.metric is None:
            return
        value = rec.value(self.spec.metric.name)
        if value is None or self.baseline_value is None:
            return
        delta = value - self.baseline_value
        tid, name = rec.trial_id, f"delta_{self.spec.metric.name}"

        def log() -> None:
            from mlflow.entities import Metric

            if tid in self._run_ids:
                self._client.log_batch(self._run_ids[tid],
                                       metrics=[Metric(name, delta, int(time.time() * 1000),
                                                       rec.epochs)])

        self._submit(f"{name} of trial {tid}", log)

    def _verdict_per_trial(self, result: SweepResult) -> None:
        """``orch.pareto`` (multi-objective) and ``orch.feasible`` (constraints) on every trial
        run: known only once the sweep has ended."""
        spec = self.spec
        front = {r.trial_id for r in result.pareto}
        ok = result.feasible_ids
        for rec in result.records:
            tags: dict[str, str] = {}
            if spec.multi_objective and rec.role == "trial":
                tags["orch.pareto"] = "true" if rec.trial_id in front else "false"
            if spec.metric_constraints:
                tags["orch.feasible"] = "true" if rec.trial_id in ok else "false"
            if tags:
                self._submit(f"tags of trial {rec.trial_id}",
                             lambda tid=rec.trial_id, t=tags: self._tag_trial(tid, t))

    def _tag_trial(self, tid: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        if tid in self._run_ids:
            self._client.log_batch(self._run_ids[tid],
                                   tags=[RunTag(k, v) for k, v in tags.items()])

    def _baseline_run_value(self, run_id: str) -> float:
        from orchestrator.tracking._baseline import check_baseline_run

        found = check_baseline_run(run_id, tracking_uri=self.tracking_uri,
                                   experiment=self.spec.experiment, metric=self.spec.metric.name)
        self.baseline_fingerprint = found.fingerprint
        self.warnings.extend(found.warnings)
        return found.value

    def _artifact_folder(self, rec: TrialRecord) -> Path | None:
        # In the sweep's folder under storage_path. With object-store storage the folder
        # is the worker's own (not readable here): then nothing is copied (see README).
        raw = rec.tags.get("artifact_dir")
        if raw and Path(raw).is_dir() and any(Path(raw).iterdir()):
            return Path(raw)
        return None

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k)[:250], _clip("None" if v is None else
                                           (json.dumps(v) if isinstance(v, (list, dict))
                                            else str(v)), MAX_PARAM_CHARS))
                 for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._client.log_batch(run_id, params=items[i: i + MAX_PARAMS_PER_BATCH])

    def _submit(self, what: str, op: Callable[[], None]) -> None:
        self._ops.put((what, op))

    def _flush_trial(self, tid: str, tags: Sequence[Any] = ()) -> None:
        """Write the trial's pending points; ``tags`` (at most 100) go with the last batch,
        or alone when no point is pending."""
        run_id = self._run_ids.get(tid)
        if run_id is None:
            return
        limit = MAX_METRICS_PER_BATCH - len(tags)  # MLflow: 1000 entities per call in all
        while True:
            with self._lock:
                points = self._pending.get(tid, [])
                cut = _step_boundary(points, limit)
                batch, rest = points[:cut], points[cut:]
                self._pending[tid] = rest
            if not batch:
                if tags:
                    self._client.log_batch(run_id, tags=list(tags))
                return
            last = not rest
            try:
                self._client.log_batch(run_id, metrics=batch, tags=list(tags) if last else [])
            except Exception:
                with self._lock:  # put them back in front; the caller retries
                    self._pending[tid] = batch + self._pending.get(tid, [])
                raise
            self.points_written += len(batch)
            if self._journal is not None and (not rest or rest[0].step != batch[-1].step):
                self._journal.written(tid, batch[-1].step)  # whole steps up to here
            if last and tags:  # the trial has ended: nothing more will come
                return

    def _flush_all(self) -> None:
        for tid in list(self._pending):
            self._flush_trial(tid)

    def _call(self, what: str, op: Callable[[], None]) -> bool:
        """Run one MLflow call; retry transient failures until it works or the end's deadline."""
        attempt = 0
        while True:
            try:
                op()
                return True
            except Exception as exc:  # classified below: permanent ones are not retried
                last = exc
                if _permanent(exc):
                    break
            if self._stop.is_set() and time.time() > self._finish_by:
                break
            time.sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
            attempt += 1
        self._failed_ops.append(f"{what} ({_short(last)})")
        return False

    def _writer(self) -> None:
        while True:
            try:
                item = self._ops.get(timeout=FLUSH_INTERVAL_S)
            except queue.Empty:
                try:  # periodic flush: on failure the points stay buffered for the next try
                    self._flush_all()
                except Exception:  # noqa: S110 - retried on the next tick or at the end
                    pass
                continue
            if item is None:
                self._call("metric points", self._flush_all)
                return
            self._call(*item)

    def _drain(self, timeout: float) -> None:
        self._finish_by = time.time() + timeout
        self._stop.set()
        self._ops.put(None)
        if self._thread is not None:
            self._thread.join(timeout + 10)
            if self._thread.is_alive():
                self.problems.append(f"the tracking store {self.tracking_uri} did not answer "
                                     f"within {timeout:g} s; records still queued were lost")


def _verdict_tags(result: SweepResult, verdict: Callable[[Any], Any] | None) -> dict[str, str]:
    """``orch.verdict`` and ``orch.verdict_reason`` from the judge the caller handed over
    (``orchestrator.method.verdict_for``); nothing when none was."""
    if verdict is None:
        return {}
    try:
        found = verdict(result)
    except Exception as exc:  # noqa: BLE001 - a verdict must never lose the sweep's record
        return {"orch.verdict": "inconclusive",
                "orch.verdict_reason": f"the verdict could not be computed: {_short(exc)}"}
    return {k: _clip(v, MAX_TAG_CHARS) for k, v in found.tags().items()}


_PERMANENT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS",
                              "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST", "INVALID_STATE"})


def _permanent(exc: BaseException) -> bool:
    """Errors that retrying cannot fix (bad values, missing runs); the rest are retried."""
    if isinstance(exc, (KeyError, TypeError, ValueError)) and not hasattr(exc, "error_code"):
        return True
    code = getattr(exc, "error_code", None)
    return code in _PERMANENT_CODES and "locked" not in str(exc)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    line = text.splitlines()[0] if text else repr(exc)
    return line[:300]

