"""Ray Tune's hooks into the ledger: the :class:`Guard` stopper and :class:`TuneCallback`.

Ray Tune pickles its callbacks and stopper with the experiment state, so they
hold only the sweep id and find the live ledger through :data:`LEDGERS`.

The guard sees every result before any scheduler or searcher does. It fails a
trial whose metric is missing or not a finite number, notes a trial that ended
itself (``done``), and ends the whole sweep when ``metric.target`` is reached by
a searched trial (never by the baseline). Interrupts do not go through it: they
stop Tune the way Tune's own signal handler does (``_run.py``), so the saved
state keeps unfinished trials resumable.
"""

from __future__ import annotations

import math
import os
import signal
import time
import traceback as tb
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from orchestrator.engine._ledger import Ledger
from orchestrator.engine._values import RAY_RESULT_KEYS, as_number
from orchestrator.engine.raytune._private import fall_back_to_existing_checkpoint

__all__ = ["LEDGERS", "Guard", "TuneCallback", "describe_error"]

LEDGERS: dict[str, Ledger] = {}

# How Ray says a trial's process went away (as exception class names or in messages).
_WORKER_GONE = ("ActorDiedError", "ActorUnavailableError", "WorkerCrashedError",
                "OwnerDiedError", "RayActorError")
_NODE_GONE = ("NodeDiedError",)
_NOT_USER_CODE = ("/ray/", "threading.py", "/orchestrator/engine/")  # frames to look past


class Guard(Stopper):
    """Fails trials with a missing or non-finite metric; ends the sweep at the target."""

    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id

    @property
    def ledger(self) -> Ledger:
        return LEDGERS[self.sweep_id]

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        ledger = self.ledger
        spec = ledger.spec
        if result.get("done") and trial_id not in ledger.ended_itself:
            # Before any scheduler: only the trainable (returning, or reporting done) sets it.
            ledger.ended_itself[trial_id] = "the trainable ended itself (returned, or done)"
        for metric in (spec.metrics or ((spec.metric,) if spec.metric else ())):
            problem = _metric_problem(metric.name, result)
            if problem:
                ledger.guard_failures[trial_id] = problem
                return True
        for key, threshold in spec.stop:  # Ray's `stop=` meaning: stop once value >= it
            value = as_number(result.get(key))
            if value is not None and value >= threshold:
                ledger.ended_itself.setdefault(trial_id, f"stop: {key} reached {threshold:g}")
                return True
        rec = ledger.records.get(trial_id)
        if spec.metric is not None and spec.metric.reached(float(result[spec.metric.name])) \
                and (rec is None or rec.role == "trial"):
            ledger.target_reached = True  # the baseline reaching it proves nothing
            ledger.ending = ledger.ending or "the sweep's target was reached"
        return False

    def stop_all(self) -> bool:
        ledger = self.ledger
        budget = ledger.spec.time_budget_s
        if budget and not ledger.ending and time.time() - ledger.started > budget:
            ledger.ending = f"the sweep's time budget ({budget:g} s) ran out"
        return bool(ledger.ending)


def _metric_problem(name: str, result: dict[str, Any]) -> str:
    """Why a result cannot be judged on metric ``name`` ("" when it can)."""
    if name not in result:
        reported = sorted(k for k in result if k not in RAY_RESULT_KEYS)
        return (f"MetricMissingError: the sweep's metric {name!r} was not reported; the "
                f"trainable reported: {', '.join(reported) or 'nothing'}. Set `metric.name` "
                "to one of these, or report it.")
    value = as_number(result[name])
    if value is None or not math.isfinite(value):
        kind = "NonFiniteMetricError" if value is not None else "MetricMissingError"
        what = "the trial diverged" if value is not None else "it must be a number"
        return (f"{kind}: metric {name!r} is {result[name]!r} at report "
                f"{result.get('training_iteration')}: {what}")
    return ""


class TuneCallback(Callback):
    """Ray Tune's trial events, handed to the ledger as plain data."""

    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id

    @property
    def ledger(self) -> Ledger:
        return LEDGERS[self.sweep_id]

    def _adopt_once(self, trials: list[Any]) -> None:
        ledger = self.ledger
        if not ledger.adopted:  # first sight of a restored sweep's trials
            ledger.adopted = True
            ledger.adopt(trials)
        ledger.number(trials)

    def on_step_begin(self, iteration, trials, **info):  # type: ignore[no-untyped-def]
        self._adopt_once(trials)

    def on_experiment_end(self, trials, **info):  # type: ignore[no-untyped-def]
        # A resumed sweep whose trials had all ended never steps: adopt them here.
        self._adopt_once(trials)
        # Ray ends some trials without telling callbacks (a reused actor that cannot be
        # reset fails the trial silently): settle what the ledger still has as running.
        for trial in trials:
            rec = self.ledger.records.get(trial.trial_id)
            if rec is None or rec.outcome != "running":
                continue
            if trial.status == "ERROR":
                self.on_trial_error(0, trials, trial)
            elif trial.status == "TERMINATED":
                self.ledger.on_trial_complete(trial)

    def on_trial_start(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
        self.ledger.on_trial_start(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):  # type: ignore[no-untyped-def]
        self.ledger.on_trial_result(trial, result)

    def on_trial_complete(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
        self.ledger.on_trial_complete(trial)

    def on_trial_error(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
        ledger = self.ledger
        tags = ledger.record(trial).tags
        message, full = describe_error(trial, node_id=tags.get("node_id", ""),
                                       artifact_dir=tags.get("artifact_dir", ""))
        storage = storage_problem(full + "\n" + message)
        if storage and not ledger.interrupted:
            # The storage, not the trial, failed: stop the whole sweep resumably rather than
            # fail every trial in turn; `orch resume` continues once it is writable again.
            ledger.storage_problem = storage
            ledger.interrupted = True
            stop = signal.getsignal(signal.SIGUSR1)
            if callable(stop):
                stop(signal.SIGUSR1, None)
        if ledger.storage_problem and storage:
            ledger.on_trial_stopped(trial, f"stopped by the storage problem: {storage}")
            return
        ledger.on_trial_error(trial, message, full)

    def on_trial_recover(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
        message, _ = describe_error(trial)
        self.ledger.on_trial_recover(trial, message)
        problem = fall_back_to_existing_checkpoint(trial)
        if problem:
            self.ledger.record(trial).tags["checkpoint_problem"] = problem


STORAGE_ERRORS = {28: "no space left on the device", 30: "the file system is read-only",
                  122: "the disk quota is exceeded"}  # errno -> what it means here


def storage_problem(text: str) -> str:
    """What is wrong with the storage, if a trial's error says the storage refused a write."""
    import re

    for errno_, meaning in STORAGE_ERRORS.items():
        if re.search(rf"\[Errno {errno_}\]", text):
            line = next((ln.strip() for ln in text.splitlines() if f"[Errno {errno_}]" in ln), "")
            return f"{meaning} ({line[:300]})"
    return ""


def _chain(err: BaseException | None) -> list[BaseException]:
    out = []
    while err is not None and err not in out:
        out.append(err)
        err = getattr(err, "cause", None) or err.__cause__
    return out


def _crash(artifact_dir: str) -> str:
    """What Python's faulthandler wrote when the trial's process crashed (see _trial.py)."""
    if not artifact_dir:
        return ""
    try:
        return (Path(artifact_dir).parent / "crash.txt").read_text(errors="replace").strip()
    except OSError:
        return ""


def describe_error(trial: Any, *, node_id: str = "", artifact_dir: str = "") -> tuple[str, str]:
    """``(one line saying what went wrong, the full text)`` for a trial Ray says failed.

    A worker process that died (segfault, OOM kill, ``os._exit``) is named as such,
    with its exit detail; only a node that went away is called a lost node.
    """
    try:
        err = trial.get_pickled_error() or trial.get_error()
    except Exception:  # noqa: BLE001 - error files missing: fall back to Ray's message
        err = None
    if err is None:
        full = ""
        path = getattr(trial, "error_file", None)
        if path and os.path.exists(path):
            full = Path(path).read_text(errors="replace")
        lines = [ln for ln in full.strip().splitlines() if ln.strip()]
        message = lines[-1] if lines else "trial failed (no error recorded)"
        names: set[str] = set()
    else:
        chain = _chain(err)
        cause = chain[-1]
        full = "".join(tb.format_exception(type(err), err, err.__traceback__))
        message = f"{type(cause).__name__}: {cause}".strip()
        # Ray wraps user exceptions (RayTaskError) with the remote traceback in str().
        lines = [ln for ln in str(err).splitlines() if ln.strip()]
        if lines and "Error" in lines[-1]:
            message = lines[-1].strip()
        elif message.splitlines():
            message = message.splitlines()[0]
        names = {type(e).__name__ for e in chain}
    text = full + "\n" + message
    where = node_id or getattr(trial, "node_ip", "") or "unknown"
    if names & set(_NODE_GONE) or "NodeDiedError" in text:
        return f"the node running this trial was lost (node {where}): {message}", full
    if "failed to import on the worker" in text:
        cause = next((ln.strip() for ln in reversed(text.splitlines())
                      if "Error" in ln and "failed to import" not in ln), "")
        return (f"the trial's worker could not import the trainable ({cause or message}); it "
                "must be importable on every node: a module in the folder orch runs from, "
                "or an installed package", full)
    # Ray's own words for an actor it cannot reach (not any "temporarily unavailable")
    unreachable = "ActorUnavailableError" in names or "The actor is temporarily unavailable" \
        in text
    if names & set(_WORKER_GONE) or any(n in text for n in _WORKER_GONE) or \
            "worker process has died" in text or unreachable:
        crash = _crash(artifact_dir)
        if crash:  # "Fatal Python error: Segmentation fault", then the trial's stack
            first = crash.splitlines()[0].replace("Fatal Python error: ", "")
            frames = [ln.strip() for ln in crash.splitlines() if ln.strip().startswith("File ")]
            own = [f for f in frames if not any(x in f for x in _NOT_USER_CODE)]
            where_in = (own or frames or [""])[0]
            return (f"the trial's worker process died: {first}"
                    + (f" ({where_in})" if where_in else "")
                    + "; a crash in native code or a C extension", crash + "\n\n" + full)
        if unreachable:
            # Ray cannot reach the trial's actor any more: its process or its whole node
            # went away, and which one Ray only knows seconds later (the node's health check).
            return (f"the trial's worker on node {where} stopped answering ({message}); its "
                    "process or its node went away", full)
        detail = _exit_detail(text)
        if "node" in detail.lower() and any(w in detail.lower() for w in
                                            ("node was removed", "node died", "raylet died")):
            return f"the node running this trial was lost (node {where}): {detail}", full
        return (f"the trial's worker process died ({detail or 'Ray gave no exit detail'}); a "
                "crash in native code (segfault), running out of memory, or os._exit ends a "
                "trial this way", full)
    return message, full


def _exit_detail(text: str) -> str:
    """Why Ray says the worker exited: its exit type and detail, without Ray's advice."""
    import re

    found = re.search(r"Worker exit type: (\w+)", text)
    detail = re.search(r"Worker exit detail: (.*?)(?: Some common causes|\n|$)", text)
    parts = []
    if found:
        parts.append(f"exit type {found.group(1)}")
    if detail:
        parts.append(detail.group(1).strip().rstrip("."))
    signal_name = re.search(r"\b(SIG[A-Z]+)\b.*?(?:received|killed|signal)", text)
    if signal_name and not detail:
        parts.append(signal_name.group(1))
    return "; ".join(parts)[:400]
