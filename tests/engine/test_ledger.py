"""The ledger's rules, with stand-in trials: no Ray, no MLflow."""

from __future__ import annotations

import decimal
from types import SimpleNamespace

import numpy as np
import pytest

from orchestrator.engine import Ledger
from orchestrator.engine._values import as_number, numeric_metrics
from orchestrator.sweepspec import load_spec


def spec(**extra):
    raw = {"name": "ledger", "trainable": "m:f", "method": "random",
           "metric": {"name": "loss"}, "run_cap": 4,
           "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    raw.update(extra)
    return load_spec(raw)


def trial(tid="t1", **config):
    return SimpleNamespace(trial_id=tid, config={"x": 0.5, **config}, status="RUNNING",
                           last_result={}, node_ip="127.0.0.1")


class Heard:
    """A listener that writes down what the ledger told it."""

    def __init__(self):
        self.events = []

    def trial_start(self, rec):
        self.events.append(("start", rec.trial_id))

    def trial_result(self, rec, row, step):
        self.events.append(("result", rec.trial_id, step, dict(row)))

    def trial_end(self, rec):
        self.events.append(("end", rec.trial_id, rec.outcome))

    def trial_adopted(self, rec):
        self.events.append(("adopted", rec.trial_id))


def run(ledger, t, results):
    ledger.on_trial_start(t)
    for r in results:
        ledger.on_trial_result(t, r)


@pytest.mark.parametrize("value,expected", [
    (np.float32(1.5), 1.5), (np.int64(3), 3.0), (decimal.Decimal("2.25"), 2.25), ("1.5", 1.5),
    (" 7 ", 7.0), (np.array(4.0), 4.0), (True, None), ("abc", None), (None, None), ([1], None),
])
def test_numbers_in_any_clothing_are_numbers(value, expected):
    assert as_number(value) == expected


def test_numeric_metrics_keep_the_trainables_numbers_only():
    row = numeric_metrics({"loss": np.float32(0.5), "acc": "0.9", "note": "ok", "done": False,
                           "training_iteration": 3, "epoch": 0})
    assert row == {"loss": 0.5, "acc": 0.9, "epoch": 0.0}


def test_epochs_counted_from_zero_lose_nothing():
    ledger, heard = Ledger(spec()), Heard()
    ledger.listeners.append(heard)
    t = trial()
    run(ledger, t, [{"epoch": e, "loss": 1.0 / (e + 1), "training_iteration": e + 1}
                    for e in range(5)])
    steps = [e[2] for e in heard.events if e[0] == "result"]
    assert steps == [1, 2, 3, 4, 5]  # the report's number is the step; epoch 0 is kept
    assert [e[3]["epoch"] for e in heard.events if e[0] == "result"] == [0, 1, 2, 3, 4]


def test_a_retried_attempt_repeats_no_step_and_its_error_is_kept():
    ledger, heard = Ledger(spec(max_failures=1)), Heard()
    ledger.listeners.append(heard)
    t = trial()
    run(ledger, t, [{"loss": 1.3, "training_iteration": 1}, {"loss": 0.8, "training_iteration": 2}])
    ledger.on_trial_recover(t, "RuntimeError: flaky disk")
    run(ledger, t, [{"loss": 1.3, "training_iteration": 1}, {"loss": 0.8, "training_iteration": 2},
                    {"loss": 0.63, "training_iteration": 3}])
    ledger.on_trial_complete(t)
    told = [(e[2], e[3]["loss"]) for e in heard.events if e[0] == "result"]
    assert told == [(1, 1.3), (2, 0.8), (3, 0.63)]  # each step once
    rec = ledger.records["t1"]
    assert rec.steps == [1, 2, 3] and rec.value("loss") == 0.63
    assert rec.attempts[0]["error"] == "RuntimeError: flaky disk"
    assert rec.attempts[0]["reached_step"] == 2 and rec.outcome == "completed"


def test_a_restore_from_an_older_checkpoint_replaces_the_steps_after_it():
    ledger = Ledger(spec())
    t = trial()
    run(ledger, t, [{"loss": 5 - s, "training_iteration": s} for s in range(1, 6)])
    run(ledger, t, [{"loss": 9.0, "training_iteration": 4}])  # restored at 3, step 4 again
    rec = ledger.records["t1"]
    assert rec.steps == [1, 2, 3, 4] and rec.value("loss") == 9.0 and rec.max_step == 5


def test_ending_itself_is_completed_and_a_scheduler_stop_is_early_stopped():
    asha = {"type": "asha", "grace_period": 1, "max_t": 4, "reduction_factor": 2}
    ledger = Ledger(spec(early_terminate=asha))
    itself, cut, full = trial("a"), trial("b"), trial("c")
    ledger.ended_itself["a"] = "the trainable ended itself"  # the guard saw done first
    run(ledger, itself, [{"loss": 1, "training_iteration": 1, "done": True}])
    run(ledger, cut, [{"loss": 1, "training_iteration": 2, "done": True}])
    run(ledger, full, [{"loss": 1, "training_iteration": 4, "done": True}])  # at max_t
    for t in (itself, cut, full):
        ledger.on_trial_complete(t)
    outcomes = {tid: r.outcome for tid, r in ledger.records.items()}
    assert outcomes == {"a": "completed", "b": "early_stopped", "c": "completed"}
    assert ledger.records["b"].stopped_at == 2


def test_done_without_a_scheduler_is_completed():
    ledger = Ledger(spec())
    t = trial()
    run(ledger, t, [{"loss": 1, "training_iteration": 1, "done": True}])
    ledger.on_trial_complete(t)
    assert ledger.records["t1"].outcome == "completed"


def test_failed_and_killed_trials_are_not_called_healthy():
    ledger = Ledger(spec())
    a, b, c = trial("a"), trial("b"), trial("c")
    rows = [{"loss": 1.0, "train_loss": 1.0, "val_loss": 1.0, "training_iteration": s}
            for s in range(1, 5)]
    run(ledger, a, rows)
    ledger.on_trial_error(a, "RuntimeError: boom")
    run(ledger, b, rows)
    run(ledger, c, rows[:1])
    ledger.on_trial_complete(c)
    ledger.interrupted = True
    ledger.end_unfinished()
    recs = ledger.records
    assert (recs["a"].outcome, recs["a"].diagnosis) == ("failed", "failed")
    assert recs["a"].diagnosis_reason == "RuntimeError: boom"
    assert (recs["b"].outcome, recs["b"].diagnosis) == ("killed", "")
    assert recs["c"].diagnosis == "too_short"  # one epoch judges nothing


def test_the_guards_verdict_wins_over_ray_s_error():
    ledger = Ledger(spec())
    t = trial()
    run(ledger, t, [{"loss": 1, "training_iteration": 1}])
    ledger.guard_failures["t1"] = "TrialTimeoutError: it reported nothing for 9 s"
    ledger.on_trial_error(t, "The actor is dead because it was killed by `ray.kill`.")
    assert ledger.records["t1"].error.startswith("TrialTimeoutError")


def test_a_worker_that_stops_answering_is_named_with_its_node():
    """Ray's "actor is temporarily unavailable" (a killed worker node, a dead process):
    the message names the node and says what may have gone, not Ray's raw text alone."""
    from orchestrator.engine.raytune._callbacks import describe_error

    class Unavailable(Exception):
        pass

    class FakeTrial:
        node_ip = "127.0.0.1"

        def get_pickled_error(self):
            return Unavailable("The actor abc is unavailable: The actor is temporarily "
                               "unavailable: RpcError: RPC error: Socket closed rpc_code: 14.")

    message, full = describe_error(FakeTrial(), node_id="n-42")
    assert "node n-42" in message and "stopped answering" in message
    assert "Socket closed" in message and "Unavailable" in full
