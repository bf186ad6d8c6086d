"""The ledger: every trial's config, reports and outcome, told to its listeners.

Ray-free. The Ray Tune callback (``raytune/_callbacks.py``) turns Tune's events
into calls here; a trial is any object with ``trial_id``, ``config``, ``status``,
``last_result`` and ``node_ip`` (Ray's ``Trial``, or a stand-in in a test).
Listeners (the MLflow recorder, the live view) implement :class:`Listener`.

Outcome rules, in order:

1. a trial the guard failed (metric missing or not finite, a time limit, a value
   that is not a number) is ``failed`` with that error;
2. a trial that raised, or whose worker died, is ``failed``;
3. a trial that ended itself (reported ``done``, met a ``stop:`` condition,
   returned) or reached the scheduler's ``max_t`` is ``completed``;
4. a trial the scheduler stopped before that is ``early_stopped``, and so are
   those still running when the sweep's target was reached;
5. trials still running when the sweep was interrupted are ``killed``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from orchestrator.engine._diagnosis import Thresholds, diagnose
from orchestrator.engine._records import OUTCOMES, TrialRecord
from orchestrator.engine._values import TAGS_KEY, numeric_metrics
from orchestrator.sweepspec import SweepSpec

__all__ = ["GRID_KEY", "REPEAT_KEY", "ROLE_KEY", "Ledger", "Listener", "unwrap_config"]

ROLE_KEY = "__orch_role"  # marks the baseline trial's config; removed before the trainable runs
REPEAT_KEY = "__orch_repeat"  # which baseline repeat: enters the trial seed, then removed
GRID_KEY = "__orch_config"  # grid: one grid_search over whole configs (conditionals included)
class Listener(Protocol):
    """What the ledger tells: a trial started, reported, ended, or was taken over from an
    interrupted sweep. ``step`` is the report's number (Ray's ``training_iteration``);
    ``new`` is False when a retried or resumed attempt repeats a step it already had."""

    def trial_start(self, rec: TrialRecord) -> None: ...
    def trial_result(self, rec: TrialRecord, row: dict[str, float], step: int) -> None: ...
    def trial_end(self, rec: TrialRecord) -> None: ...
    def trial_adopted(self, rec: TrialRecord) -> None: ...


def unwrap_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], str, int]:
    """The trainable's config, the trial's role and baseline repeat, without orch's keys."""
    config = dict(config)
    if GRID_KEY in config:
        config = {**config.pop(GRID_KEY), **config}
    role = str(config.pop(ROLE_KEY, "trial"))
    repeat = int(config.pop(REPEAT_KEY, 0) or 0)
    return config, role, repeat


class Ledger:
    """Tracks every trial's config, history and outcome; the listeners hear of each change."""

    def __init__(self, spec: SweepSpec, *, thresholds: Thresholds | None = None) -> None:
        self.spec = spec
        self.records: dict[str, TrialRecord] = {}
        self.guard_failures: dict[str, str] = {}  # trial id -> why the guard failed it
        self.ended_itself: dict[str, str] = {}  # trial id -> how it ended before its budget
        self.target_reached = False
        self.listeners: list[Listener] = []
        self.prior_outcomes: dict[str, str] = {}  # a resumed sweep: outcomes recorded before
        self.prior_diagnoses: dict[str, str] = {}  # ... and their diagnoses
        self.interrupted = False  # Ctrl-C / SIGTERM / SIGHUP, or the storage failing
        self.storage_problem = ""  # why the storage stopped the sweep, if it did
        self.ending = ""  # why the whole sweep is being stopped (target, time budget), if it is
        self.started = time.time()  # the sweep's clock (time_budget_s counts from here)
        self.adopted = False
        self.numbered = 0
        self.thresholds = thresholds or Thresholds()

    def record(self, trial: Any) -> TrialRecord:
        rec = self.records.get(trial.trial_id)
        if rec is None:
            config, role, repeat = unwrap_config(trial.config)
            rec = TrialRecord(trial_id=trial.trial_id, config=config, role=role, repeat=repeat)
            self.records[trial.trial_id] = rec
        return rec

    # -- Tune's events --------------------------------------------------------------

    def number(self, trials: list[Any]) -> None:
        """Remember each trial's creation order (Ray's list is in that order; only new
        trials at its end are looked at)."""
        for i in range(self.numbered, len(trials)):
            self.record(trials[i]).index = i
        self.numbered = max(self.numbered, len(trials))

    def adopt(self, trials: list[Any]) -> None:
        """Take in trials that had ended before a resumed sweep started again."""
        for trial in trials:
            if trial.trial_id in self.records or trial.status not in ("TERMINATED", "ERROR"):
                continue
            rec = self.record(trial)
            if trial.last_result:
                step = int(trial.last_result.get("training_iteration") or 1)
                rec.add(step, numeric_metrics(trial.last_result))
            prior = self.prior_outcomes.get(trial.trial_id, "")
            rec.diagnosis = self.prior_diagnoses.get(trial.trial_id, "")
            if prior in OUTCOMES:
                rec.outcome = prior
            else:
                rec.outcome = "failed" if trial.status == "ERROR" else "completed"
            if rec.outcome == "failed" and not rec.error:
                rec.error = "failed before the sweep was resumed"
            rec.ended = rec.started = rec.started or time.time()
            self._emit("trial_adopted", rec)

    def on_trial_start(self, trial: Any) -> None:
        rec = self.record(trial)
        now = time.time()
        if rec.started is None:
            rec.started = now
        rec.last_report = now  # the no-report watchdog counts from the (re)start
        rec.outcome = "running"
        rec.node = getattr(trial, "node_ip", "") or rec.node
        self._emit("trial_start", rec)

    def on_trial_result(self, trial: Any, result: Mapping[str, Any]) -> None:
        rec = self.record(trial)
        rec.last = dict(result)
        rec.last_report = time.time()
        step = int(result.get("training_iteration") or (rec.last_step + 1))
        row = numeric_metrics(result)
        new = rec.add(step, row)
        tags = result.get(TAGS_KEY)
        if isinstance(tags, Mapping):
            rec.tags.update({str(k): str(v) for k, v in tags.items()})
        tid = trial.trial_id
        if result.get("done") and tid not in self.guard_failures and tid not in \
                self.ended_itself and not self.ending:
            et = self.spec.early_terminate
            at_max = et is not None and et.type == "asha" and et.max_t is not None \
                and step >= et.max_t
            if et is not None and (not at_max or self.target_reached):
                rec.stopped_at = step
        if new:
            self._emit("trial_result", rec, row, step)

    def on_trial_complete(self, trial: Any) -> None:
        rec = self.record(trial)
        tid = trial.trial_id
        if tid in self.guard_failures:
            rec.outcome, rec.error = "failed", self.guard_failures[tid]
        elif rec.stopped_at is not None:
            rec.outcome = "early_stopped"
        elif self.ending and not rec.last.get("done"):
            # Ray ended it without its last result: the target was reached or the time
            # budget ran out while it ran.
            rec.outcome, rec.stopped_at, rec.stop_reason = "early_stopped", rec.last_step, \
                self.ending
        else:
            rec.outcome = "completed"
            rec.stop_reason = self.ended_itself.get(tid, "")
        self._finish(rec)

    def on_trial_error(self, trial: Any, error: str, traceback: str = "") -> None:
        rec = self.record(trial)
        rec.outcome = "failed"
        rec.error = self.guard_failures.get(trial.trial_id) or error
        rec.traceback = traceback or rec.traceback
        self._finish(rec)

    def on_trial_exploit(self, trial: Any, clone: Any, step: int) -> None:
        """Population-based training: ``trial`` took ``clone``'s checkpoint at ``step`` and
        goes on with a perturbed config (recorded: where from, when, and the new config)."""
        rec = self.record(trial)
        config, _, _ = unwrap_config(trial.config)
        if not rec.exploits:  # the schedule starts with the config it was given
            rec.exploits.append({"step": 1, "from": None, "config": rec.config})
        rec.exploits.append({"step": step, "from": clone.trial_id, "config": config})
        rec.config = config

    def on_trial_stopped(self, trial: Any, why: str) -> None:
        """Ended by the sweep's own trouble (its storage), not by what the trial did: killed,
        so that a resume runs it again."""
        rec = self.record(trial)
        rec.outcome, rec.error = "killed", why
        self._finish(rec)

    def on_trial_recover(self, trial: Any, error: str) -> None:
        """A failed attempt that Ray retries (``max_failures``): kept with its error."""
        rec = self.record(trial)
        error = self.guard_failures.pop(trial.trial_id, "") or error  # e.g. a time limit
        rec.attempts.append({"attempt": len(rec.attempts) + 1, "error": error,
                             "reached_step": rec.last_step, "at": time.time()})

    def end_unfinished(self) -> None:
        """Close trials the sweep ended: cut off at the target, else interrupted.

        Trials the searcher created but Ray never started are dropped: they did not run.
        """
        for tid in [t for t, r in self.records.items()
                    if r.outcome == "pending" and r.started is None]:
            del self.records[tid]
        for rec in self.records.values():
            if rec.outcome in ("pending", "running"):
                if self.ending:
                    rec.outcome, rec.stopped_at = "early_stopped", rec.last_step
                    rec.stop_reason = self.ending
                else:
                    rec.outcome = "killed"
                    rec.error = rec.error or "sweep interrupted"
                self._finish(rec)

    def _finish(self, rec: TrialRecord) -> None:
        rec.ended = time.time()
        if rec.error and "NonFiniteMetricError" in rec.error:
            # The non-finite report never reaches the driver (report() raises first).
            rec.diagnosis, rec.diagnosis_reason = "diverged", rec.error
        elif rec.outcome == "failed":
            found = diagnose(rec.history, thresholds=self.thresholds) if rec.history else None
            if found is not None and found.label == "diverged":
                rec.diagnosis, rec.diagnosis_reason = found.label, found.reason
            else:  # its curves say nothing about the configuration: it broke
                rec.diagnosis, rec.diagnosis_reason = "failed", rec.error or "the trial failed"
        elif rec.outcome == "killed":  # cut off by the interrupt: its curves are unfinished
            rec.diagnosis, rec.diagnosis_reason = "", ""
        elif rec.history:
            found = diagnose(rec.history, thresholds=self.thresholds)
            rec.diagnosis, rec.diagnosis_reason = found.label, found.reason
        self._emit("trial_end", rec)

    def _emit(self, event: str, rec: TrialRecord, *args: Any) -> None:
        for listener in self.listeners:
            getattr(listener, event)(rec, *args)
