"""Contract: every method x early-stopping choice lives the same scripted life, without Ray.

In the manner of Syne Tune's scheduler API test: the searcher and scheduler that
``build_search``/``build_scheduler`` make for a spec (Ray Tune's own objects:
``OptunaSearch``, ``ASHAScheduler``, ``MedianStoppingRule``, inside orch's
``BaselineFirst`` and ``Referee``) are driven by a script — suggest, report every
epoch, one trial errors, one reports NaN, the rest complete, the searcher is saved
and restored half-way — with orch's guard and ledger in front, as the Tuner would.
No Ray cluster is started: these objects are plain Python.

The contract: exactly the budget is suggested, the baseline first and once (also
after a restore), never a config twice for grid, the baseline never cut by the
scheduler, a NaN never reaches the scheduler, the target ends the sweep, and every
trial ends with an outcome.
"""

from __future__ import annotations

import json
import math

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from orchestrator.engine import Ledger
from orchestrator.engine._ledger import GRID_KEY, unwrap_config
from orchestrator.engine.raytune._callbacks import LEDGERS, Guard
from orchestrator.engine.raytune._search import build_scheduler, build_search
from orchestrator.sweepspec import METHODS, load_spec

EARLY = {
    "none": None,
    "asha": {"type": "asha", "grace_period": 1, "max_t": 4, "reduction_factor": 2},
    "hyperband": {"type": "hyperband", "min_iter": 1, "eta": 2},
    "median": {"type": "median", "grace_period": 1, "min_samples_required": 2},
}
EPOCHS, RUN_CAP = 4, 6
SEARCHERS = [m for m in METHODS if m not in ("pbt", "pb2")]  # population methods: own test


def spec_for(method: str, early: str, **extra):
    params = ({"x": {"values": [0.0, 0.2, 0.4, 0.6, 0.8, 0.9]}, "epochs": {"value": EPOCHS}}
              if method == "grid" else
              {"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": EPOCHS}})
    raw = {"name": f"contract-{method}-{early}", "trainable": "m:f", "method": method,
           "metric": {"name": "loss", "goal": "minimize"}, "run_cap": RUN_CAP, "seed": 1,
           "parameters": params, "baseline": {"x": 0.95}, **extra}
    if EARLY[early] is not None:
        raw["early_terminate"] = EARLY[early]
    return load_spec(raw)


class Controller:
    """What schedulers may ask of Ray's TuneController (its whitelisted methods)."""

    def __init__(self):
        self.trials: list[Trial] = []

    def get_trials(self):
        return self.trials

    def get_live_trials(self):
        return [t for t in self.trials if t.status in (Trial.PENDING, Trial.RUNNING)]

    def stop_trial(self, trial):
        trial.set_status(Trial.TERMINATED)


class Script:
    """Drives one search through Tune's calls, in Tune's order, with orch's guard first."""

    def __init__(self, spec, sweep_id):
        self.spec, self.sweep_id = spec, sweep_id
        self.search, self.space, self.samples = build_search(spec)
        self.scheduler = build_scheduler(spec, sweep_id)
        self.scheduler.set_search_properties(spec.metric.name, spec.metric.mode)
        self.ledger = LEDGERS[sweep_id] = Ledger(spec)
        self.guard = Guard(sweep_id)
        self.controller = Controller()
        self.grid = list(self.space[GRID_KEY]["grid_search"]) if self.space else []
        self.suggested: list[dict] = []
        self.decisions: dict[str, list[str]] = {}

    def suggest(self):
        n = len(self.suggested)
        if self.grid:
            config = self.grid[n] if n < len(self.grid) else None
        else:
            config = self.search.suggest(f"t{n}")
        if config is None:
            return None
        trial = Trial("f", config={GRID_KEY: config} if self.grid else config, stub=True,
                      trial_id=f"t{n}")
        self.controller.trials.append(trial)
        self.scheduler.on_trial_add(self.controller, trial)
        trial.set_status(Trial.RUNNING)
        self.ledger.on_trial_start(trial)
        self.suggested.append(unwrap_config(trial.config)[0])
        return trial

    def report(self, trial, epoch, loss):
        result = {"loss": loss, "training_iteration": epoch, "done": False}
        if self.guard(trial.trial_id, result):  # orch's guard sees it first, as in Tune
            decision = TrialScheduler.STOP
        else:
            decision = self.scheduler.on_trial_result(self.controller, trial, result)
        if decision == TrialScheduler.STOP:
            result["done"] = True
        elif not self.grid:
            self.search.on_trial_result(trial.trial_id, result)
        self.ledger.on_trial_result(trial, result)
        self.decisions.setdefault(trial.trial_id, []).append(decision)
        return decision

    def complete(self, trial, loss):
        result = {"loss": loss, "training_iteration": self.ledger.records[trial.trial_id].last_step}
        self.scheduler.on_trial_complete(self.controller, trial, result)
        if not self.grid:
            self.search.on_trial_complete(trial.trial_id, result=result)
        trial.set_status(Trial.TERMINATED)
        self.ledger.on_trial_complete(trial)

    def error(self, trial, message):
        self.scheduler.on_trial_error(self.controller, trial)
        if not self.grid:
            self.search.on_trial_complete(trial.trial_id, error=True)
        trial.set_status(Trial.ERROR)
        self.ledger.on_trial_error(trial, message)


def loss_of(config, epoch):
    return (float(config["x"]) - 0.3) ** 2 + 1.0 / epoch


def live_one_trial(script, trial, index):
    config = unwrap_config(trial.config)[0]
    for epoch in range(1, EPOCHS + 1):
        if index == 2 and epoch == 1:  # raises before its first report
            script.error(trial, "RuntimeError: boom")
            return
        loss = math.nan if index == 3 and epoch == 1 else loss_of(config, epoch)
        if script.report(trial, epoch, loss) == TrialScheduler.STOP:
            break
    script.complete(trial, loss_of(config, epoch))


@pytest.mark.parametrize("early", list(EARLY))
@pytest.mark.parametrize("method", SEARCHERS)
def test_every_method_and_scheduler_lives_the_same_script(method, early, tmp_path):
    spec = spec_for(method, early)
    sweep_id = f"contract-{method}-{early}"
    script = Script(spec, sweep_id)
    try:
        for index in range(3):  # the baseline and two searched trials
            live_one_trial(script, script.suggest(), index)
        if not script.grid:  # save, then a fresh searcher restored from it goes on
            path = str(tmp_path / "searcher.pkl")
            script.search.save(path)
            fresh, _, _ = build_search(spec)
            fresh.restore(path)
            script.search = fresh
        index = 3
        while len(script.suggested) < RUN_CAP + 1 and (trial := script.suggest()) is not None:
            live_one_trial(script, trial, index)
            index += 1
        assert script.grid or script.samples == RUN_CAP + 1  # Tune stops asking at the budget
        records = script.ledger.records
        budget = RUN_CAP + 1  # the searched budget and the baseline
        assert len(script.suggested) == budget, script.suggested
        assert script.suggested[0] == {"x": 0.95, "epochs": EPOCHS}  # the baseline, first
        assert sum(r.role == "baseline" for r in records.values()) == 1  # once, even restored
        if method == "grid":
            xs = [c["x"] for c in script.suggested[1:]]
            assert sorted(xs) == sorted(set(xs)) == [0.0, 0.2, 0.4, 0.6, 0.8, 0.9]
        base = records["t0"]
        assert base.outcome == "completed" and base.epochs == EPOCHS  # never cut
        assert records["t2"].outcome == "failed" and "boom" in records["t2"].error
        assert records["t3"].outcome == "failed" and "NonFiniteMetric" in records["t3"].error
        assert TrialScheduler.STOP == script.decisions["t3"][-1]
        assert all(r.outcome in ("completed", "early_stopped", "failed")
                   for r in records.values()), {t: r.outcome for t, r in records.items()}
        if early == "none":
            assert all(r.epochs == EPOCHS for t, r in records.items() if t not in ("t2", "t3"))
    finally:
        LEDGERS.pop(sweep_id, None)


@pytest.mark.parametrize("method", ["random", "tpe", "grid"])
def test_reaching_the_target_ends_the_sweep_but_not_when_the_baseline_reaches_it(method):
    spec = spec_for(method, "none", metric={"name": "loss", "target": 0.2},
                    baseline={"x": 0.3})
    sweep_id = f"target-{method}"
    script = Script(spec, sweep_id)
    try:
        base = script.suggest()
        script.report(base, 1, 0.05)  # the baseline under the target proves nothing
        assert not script.guard.stop_all()
        trial = script.suggest()
        script.report(trial, 1, 0.1)
        assert script.guard.stop_all() and script.ledger.target_reached
    finally:
        LEDGERS.pop(sweep_id, None)


def test_baseline_repeats_are_suggested_first_with_distinct_repeat_numbers():
    spec = spec_for("random", "none", baseline_repeats=3)
    script = Script(spec, "repeats")
    try:
        trials = [script.suggest() for _ in range(4)]
        roles = [unwrap_config(t.config)[1:] for t in trials]
        assert roles[:3] == [("baseline", 0), ("baseline", 1), ("baseline", 2)]
        assert roles[3] == ("trial", 0)
        assert json.dumps(script.suggested[0]) == json.dumps(script.suggested[1])
    finally:
        LEDGERS.pop("repeats", None)


def test_same_spec_and_seed_suggest_the_same_configs_in_another_process():
    import subprocess
    import sys

    code = ("from tests.engine.test_contract import spec_for, Script\n"
            "s = Script(spec_for('tpe', 'none'), 'p')\n"
            "print([s.suggest() and s.suggested[-1] for _ in range(5)])\n")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120).stdout for _ in range(2)}
    here = Script(spec_for("tpe", "none"), "here")
    mine = str([here.suggest() and here.suggested[-1] for _ in range(5)])
    LEDGERS.pop("here", None)
    assert len(runs) == 1 and runs.pop().strip() == mine


class Told:
    """A stand-in for Ray's OptunaSearch that writes down what it is told."""

    metric, mode = "loss", "min"

    def __init__(self):
        self.told = []

    def suggest(self, trial_id):
        return {"x": 0.5}

    def on_trial_result(self, trial_id, result):
        pass

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told.append((trial_id, dict(result) if result else None, error))


@pytest.mark.parametrize("impute,expected", [("worst", 3.0), ("best", 1.0), ("latest", 7.0)])
def test_a_failed_trial_counts_as_impute_says(impute, expected):
    from orchestrator.engine.raytune._search import OrchSearcher

    spec = load_spec({"name": "impute", "trainable": "m:f", "method": "tpe",
                      "metric": {"name": "loss", "impute": impute},
                      "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    inner = Told()
    searcher = OrchSearcher(inner, spec)
    for tid, loss in (("a", 1.0), ("b", 3.0)):
        searcher.suggest(tid)
        searcher.on_trial_complete(tid, result={"loss": loss})
    searcher.suggest("c")
    searcher.on_trial_result("c", {"loss": 7.0})
    searcher.on_trial_complete("c", error=True)
    tid, result, error = inner.told[-1]
    assert (tid, error) == ("c", False) and result["loss"] == expected  # never a FAILED hole
