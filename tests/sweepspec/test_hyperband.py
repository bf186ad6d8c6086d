"""Early stopping as W&B documents hyperband, and as Ray's ASHA then runs it.

The bracket table is W&B's (docs and wandb/sweeps ``hyperband_stopping.py``); the Ray
part builds the engine's scheduler for each spec and drives Ray's own ASHA through its
public scheduler calls with a good and a bad trial, recording every epoch at which the
bad one is told to stop. No Ray cluster is started.
"""

from __future__ import annotations

import types

import pytest

from orchestrator.errors import SpecError
from orchestrator.sweepspec import load_spec

BASE = {"trainable": "digits_mlp", "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"min": 0.001, "max": 0.1}}}


def early(**et):
    return load_spec({**BASE, "early_terminate": et}).early_terminate


# (id, early_terminate, rungs, cut at max_t, strict)
BRACKETS = [
    ("docs max_iter 27 s 2", {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3},
     (3, 9), None, False),
    ("docs min_iter 3", {"type": "hyperband", "min_iter": 3},
     (3, 9, 27, 81, 243, 729, 2187, 6561, 19683, 59049, 177147, 531441), None, False),
    ("sweeps example max_iter 10", {"type": "hyperband", "max_iter": 10, "s": 2, "eta": 3},
     (1, 3), None, False),
    ("wandb doctest max_iter 5 eta 2", {"type": "hyperband", "max_iter": 5, "eta": 2, "s": 2},
     (1, 2), None, False),
    ("s larger than the brackets", {"type": "hyperband", "max_iter": 10, "s": 5, "eta": 3},
     (1, 3), None, False),
    ("min_iter 2 eta 2", {"type": "hyperband", "min_iter": 2, "eta": 2, "strict": True},
     tuple(2 ** k for k in range(1, 20)), None, True),
    ("max_iter 100 s 3 (not geometric)", {"type": "hyperband", "max_iter": 100, "s": 3},
     (3, 10, 33), None, False),
    ("asha", {"type": "asha", "grace_period": 1, "max_t": 27, "reduction_factor": 3},
     (1, 3, 9), 27, True),
    ("asha tpe_asha example", {"type": "asha", "grace_period": 2, "max_t": 18},
     (2, 6), 18, True),
    ("asha default max_t", {"type": "asha"}, (1, 3, 9, 27, 81), 100, True),
]


@pytest.mark.parametrize("case", BRACKETS, ids=[c[0] for c in BRACKETS])
def test_rungs_are_wandbs_brackets_and_nothing_is_cut_at_max_iter(case):
    _, et_raw, rungs, max_t, strict = case
    et = early(**et_raw)
    assert et.rungs == rungs and et.max_t == max_t and et.strict == strict


@pytest.mark.parametrize("et_raw,shown", [
    ({"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3}, "[3, 9];"),
    ({"type": "hyperband", "min_iter": 3}, "[3, 9, 27, 81, 243, 729, ...] (no upper end"),
    ({"type": "asha", "grace_period": 1, "max_t": 27}, "[1, 3, 9]; every trial ends by epoch 27"),
])
def test_validate_names_the_epochs_at_which_trials_can_stop(et_raw, shown):
    s = load_spec({**BASE, "early_terminate": et_raw})
    assert any("may stop trials at epochs " + shown in n for n in s.notes), s.notes


def test_wandbs_rounding_is_named_when_asha_cannot_follow_it():
    s = load_spec({**BASE, "early_terminate": {"type": "hyperband", "max_iter": 100, "s": 3}})
    assert any("[3, 11, 33] are not a geometric series" in n and "[3, 10, 33]" in n
               for n in s.notes)


HYPERBAND_BAD = [
    ("no brackets", {"type": "hyperband"}, "early_terminate", "needs `min_iter`"),
    ("max_iter without s", {"type": "hyperband", "max_iter": 27}, "early_terminate.max_iter",
     "only with `s`", "s: 2"),
    ("s zero", {"type": "hyperband", "max_iter": 27, "s": 0}, "early_terminate.s", ">= 1"),
    ("min_iter zero", {"type": "hyperband", "min_iter": 0}, "early_terminate.min_iter", ">= 1"),
    ("below one epoch", {"type": "hyperband", "max_iter": 2, "s": 1, "eta": 3},
     "early_terminate.max_iter", "no bracket"),
    ("s on asha", {"type": "asha", "s": 2}, "early_terminate", "does not use 's'", "hyperband"),
    ("strict on median", {"type": "median", "strict": True}, "early_terminate",
     "does not use 'strict'"),
    ("median with max_t", {"type": "median", "max_t": 9}, "early_terminate",
     "does not use 'max_t'"),
]


@pytest.mark.parametrize("case", HYPERBAND_BAD, ids=[c[0] for c in HYPERBAND_BAD])
def test_hyperband_settings_wandb_cannot_use_are_refused(case):
    _, et_raw, path, *fragments = case
    with pytest.raises(SpecError) as info:
        load_spec({**BASE, "early_terminate": et_raw})
    found = [str(i) for i in info.value.issues]
    assert any(f.startswith(path) and all(x in f for x in fragments) for f in found), found


def test_min_iter_with_max_iter_and_s_follows_max_iter_as_wandb_does():
    s = load_spec({**BASE, "early_terminate": {"type": "hyperband", "min_iter": 1,
                                               "max_iter": 27, "s": 2}})
    assert s.early_terminate.rungs == (3, 9)
    assert any("min_iter is ignored" in n for n in s.notes)


def test_early_terminate_defaults_are_named_once():
    from orchestrator.sweepspec import _early, _model

    et = early(type="asha")
    assert (et.grace_period, et.max_t, et.reduction_factor) == (
        _model.DEFAULT_GRACE_PERIOD, _model.DEFAULT_MAX_T, _model.DEFAULT_REDUCTION_FACTOR)
    assert early(type="median").min_samples_required == _model.DEFAULT_MIN_SAMPLES
    assert early(type="hyperband", min_iter=1).strict == _model.DEFAULT_HYPERBAND_STRICT
    source = open(_early.__file__).read()
    for literal in ("grace_period=1", "max_t=100", "= 3.0", "or 3"):
        assert literal not in source


# ------------------------------------------------------------------------------ Ray's ASHA

def stop_epochs(scheduler, epochs: int, *, good=lambda e: 0.0, bad=lambda e: 1.0) -> list[int]:
    """Every epoch at which Ray's scheduler says STOP to a bad trial that keeps reporting,
    after a good trial has passed every rung."""
    from ray.tune.schedulers import TrialScheduler

    scheduler.set_search_properties("loss", "min")
    g, b = types.SimpleNamespace(trial_id="good"), types.SimpleNamespace(trial_id="bad")
    for trial in (g, b):
        scheduler.on_trial_add(None, trial)
    for epoch in range(1, epochs + 1):
        scheduler.on_trial_result(None, g, {"training_iteration": epoch, "loss": good(epoch)})
    return [epoch for epoch in range(1, epochs + 1)
            if scheduler.on_trial_result(None, b, {"training_iteration": epoch,
                                                   "loss": bad(epoch)}) == TrialScheduler.STOP]


RAY_CASES = [c for c in BRACKETS if c[0] != "docs min_iter 3"] + [
    ("docs min_iter 3 (first 1000 epochs)", {"type": "hyperband", "min_iter": 3}, (3, 9, 27, 81,
                                                                                    243, 729),
     None, False)]


@pytest.mark.parametrize("case", RAY_CASES, ids=[c[0] for c in RAY_CASES])
def test_rays_asha_stops_exactly_at_the_rungs(case):
    pytest.importorskip("ray.tune")
    from orchestrator.engine.raytune._search import _early_stopping

    _, et_raw, rungs, max_t, _ = case
    s = load_spec({**BASE, "early_terminate": et_raw})
    horizon = min(1000, max(rungs) * 3)
    got = stop_epochs(_early_stopping(s), horizon)
    expected = [r for r in rungs if r <= horizon]
    if max_t is not None:  # Ray's asha also ends every trial at max_t
        expected += list(range(max_t, horizon + 1))
    assert got == expected


@pytest.mark.parametrize("strict,stopped", [(True, [3]), (False, [])])
def test_strict_judges_the_value_at_the_bracket_else_the_best_so_far(strict, stopped):
    pytest.importorskip("ray.tune")
    from orchestrator.engine.raytune._search import _early_stopping

    s = load_spec({**BASE, "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2,
                                               "strict": strict}})
    # The bad trial was best of all at epoch 1, then fell behind by epoch 3 (the bracket).
    got = stop_epochs(_early_stopping(s), 5, good=lambda e: 0.5, bad=lambda e: 0.1 if e < 3
                      else 0.9)
    assert got == stopped
