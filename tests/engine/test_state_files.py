"""Ray Tune's state files, checked before a resume: whole ones pass, cut ones are refused."""

from __future__ import annotations

import json
import pickle

import pytest

from orchestrator.engine.raytune._run import _check_state, _cut_short
from orchestrator.errors import OrchError


def test_whole_files_pass_whatever_their_names_say(tmp_path):
    (tmp_path / "experiment_state-1.json").write_text(json.dumps({"trials": []}))
    # Ray's search_gen_state-*.json is a cloudpickle despite its name.
    (tmp_path / "search_gen_state-1.json").write_bytes(pickle.dumps({"counter": 2}))
    (tmp_path / "searcher-state-1.pkl").write_bytes(pickle.dumps({"x": [1, 2]}))
    for f in tmp_path.iterdir():
        assert _cut_short(f) == "", f
    _check_state(str(tmp_path))


@pytest.mark.parametrize(("name", "content", "why"), [
    ("experiment_state-1.json", b"", "empty"),
    ("experiment_state-1.json", b'{"trials": [', "not valid JSON"),
    ("search_gen_state-1.json", pickle.dumps({"counter": 2})[:-3], "pickle cut short"),
    ("searcher-state-1.pkl", pickle.dumps(list(range(100)))[:40], "pickle cut short"),
])
def test_a_cut_file_is_refused_with_the_reason(tmp_path, name, content, why):
    (tmp_path / name).write_bytes(content)
    assert why in _cut_short(tmp_path / name)
    with pytest.raises(OrchError, match=why):
        _check_state(str(tmp_path))


@pytest.mark.parametrize("early", [None, {"type": "asha", "max_t": 9}, {"type": "median"}])
def test_the_scheduler_survives_the_pickle_a_resume_reads(early):
    """Tune pickles its scheduler into tuner.pkl; a resume unpickles it (orch's Referee
    once failed there, so every resume failed)."""
    import cloudpickle

    from orchestrator.engine.raytune._search import build_scheduler
    from orchestrator.sweepspec import load_spec

    raw = {"trainable": "digits_mlp", "method": "random", "metric": {"name": "val_loss"},
           "run_cap": 2, "parameters": {"lr": {"min": 0.001, "max": 0.1}},
           "trial_timeout_s": 60}
    if early:
        raw["early_terminate"] = early
    scheduler = build_scheduler(load_spec(raw), "abc")
    again = cloudpickle.loads(cloudpickle.dumps(scheduler))
    assert type(again.inner) is type(scheduler.inner)
    assert again.trial_timeout_s == 60
