"""Every use of Ray's private API (engine/raytune/_private.py) against the installed Ray.

If Ray moves or renames one of these, this file fails first and says which, instead
of a sweep failing in a user's hands. pyproject.toml admits only the Ray releases
these were checked on (``RAY_TESTED``).
"""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import ray

from orchestrator.engine.raytune import _private


def test_the_installed_ray_is_in_the_declared_range():
    declared = SpecifierSet(",".join(_private.RAY_TESTED))
    assert Version(ray.__version__) in declared, (ray.__version__, declared)
    from importlib import metadata

    requires = [r for r in metadata.requires("orch") or [] if r.startswith("ray")]
    assert requires and all(spec in requires[0] for spec in _private.RAY_TESTED), requires


def test_the_train_session_has_the_report_method_orch_wraps():
    from ray.train._internal import session

    assert callable(session.get_session)
    assert callable(getattr(session._TrainSession, "report", None))
    assert session.get_session() is None  # outside a trial: wrapping is a no-op
    undo = _private.wrap_session_report(lambda m: m)
    undo()


def test_the_wrapped_report_converts_and_refuses_after_a_stop():
    from ray.train._internal import session

    sent = []

    class FakeSession:
        def report(self, metrics, checkpoint=None):
            sent.append(metrics)
            if metrics.get("stop"):
                raise SystemExit(0)  # what Ray does to end a stopped trial

    fake = FakeSession()
    saved = session._session
    session._session = fake
    try:
        undo = _private.wrap_session_report(lambda m: {**m, "seen": True})
        fake.report({"loss": 1.0})
        with pytest.raises(SystemExit):
            fake.report({"stop": True})
        with pytest.raises(SystemExit):  # a trainable that caught it cannot go on reporting
            fake.report({"loss": 0.5})
        undo()
        assert "report" not in fake.__dict__
    finally:
        session._session = saved
    assert sent == [{"loss": 1.0, "seen": True}, {"stop": True, "seen": True}]


def test_the_checkpoint_manager_has_the_attributes_orch_reads_and_sets():
    from ray.train import CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager

    manager = _CheckpointManager(checkpoint_config=CheckpointConfig(num_to_keep=2))
    assert hasattr(manager, "latest_checkpoint_result")
    assert hasattr(manager, "_latest_checkpoint_result")
    assert hasattr(manager, "_checkpoint_results")


def test_ray_reads_the_loopback_setting_from_its_constants():
    from ray._private import ray_constants

    assert ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR == "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    assert isinstance(_private.loopback_effective(), bool)


def test_a_trial_has_the_temporary_state_that_holds_its_actor():
    from ray.tune.experiment import Trial

    trial = Trial("__fake", stub=True)
    assert hasattr(trial, "temporary_state") and hasattr(trial.temporary_state, "ray_actor")
    assert _private.kill_trial_actor(trial) is False  # no actor: nothing to kill


def test_ray_start_has_the_address_resolution_the_loopback_wrapper_replaces():
    import ray._private.services as services
    from ray._common.network_utils import is_localhost
    from ray.scripts.scripts import main

    assert callable(services.resolve_ip_for_localhost) and callable(main)
    assert is_localhost("127.0.0.1") and not is_localhost("192.0.2.7")


def test_optuna_search_keeps_the_study_and_trials_orch_reads(tmp_path):
    """set_constraints, set_optuna_attrs, describe_optuna_study, fail_orphaned_optuna_trials."""
    import optuna
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    def space(trial):
        trial.suggest_float("x", 0.0, 1.0)

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    searcher = OptunaSearch(space=space, metric="loss", mode="min", storage=storage,
                            study_name="s")
    _private.describe_optuna_study(searcher, ["loss"], {"orch.sweep_id": "s"})
    for tid in ("a", "b", "c"):
        searcher.suggest(tid)
    _private.set_optuna_attrs(searcher, "a", {"orch.trial_id": "a"})
    _private.set_constraints(searcher, "a", {"size <= 8": -1.0})
    searcher.on_trial_complete("a", {"loss": 1.0})
    del searcher._ot_trials["c"]  # as a searcher restored from a save made before "c"
    assert _private.fail_orphaned_optuna_trials(searcher) == 1
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.metric_names == ["loss"] and study.user_attrs == {"orch.sweep_id": "s"}
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING,
                                               TrialState.FAIL]
    assert study.trials[0].user_attrs == {"orch.trial_id": "a"}
    assert study.trials[0].constraints == {"size <= 8": -1.0}
