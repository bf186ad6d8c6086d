"""Trials of several workers (`resources.workers`): the spec, the plan, and real sweeps.

The unit tests need no Ray. The end-to-end ones run real Ray Train V2 jobs of two gloo
workers inside Ray Tune trials, on the shared 2-CPU Ray (workers of half a CPU), and
read back what MLflow holds: one run per trial, every epoch once (not once per worker),
and a retried trial that carries on from rank 0's checkpoint.
"""

from __future__ import annotations

import copy

import pytest

import orchestrator
from orchestrator.engine.raytune._distributed import (
    WorkerPlan,
    _worker_failure,
    check_worker_resources,
    concurrent_trials,
    placeable_workers,
    worker_plan,
)
from orchestrator.errors import MetricMissingError, OrchError, ResourceError, SpecError, TrialError
from orchestrator.sweepspec import load_spec
from search_spaces.distributed_digits import train

BASE = {
    "trainable": "search_spaces.distributed_digits:train",
    "method": "random",
    "metric": {"name": "val_loss", "goal": "minimize"},
    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1e-2}},
}


def spec(**changes):
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def problems(data) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(data)
    return [str(i) for i in info.value.issues]


def test_workers_are_read_per_trial_with_cpu_and_gpu_per_worker():
    parsed = load_spec(spec(resources={"workers": 4, "cpu": 2, "gpu": 1})).resources
    assert (parsed.workers, parsed.cpu, parsed.gpu, parsed.distributed) == (4, 2.0, 1.0, True)
    one = load_spec(spec()).resources
    assert (one.workers, one.distributed) == (1, False)
    assert load_spec(spec(resources={"workers": 1})).resources == one


BAD = [
    ("zero workers", {"workers": 0}, "resources.workers", "must be >= 1, got 0", "workers: 2"),
    ("negative", {"workers": -2}, "resources.workers", ">= 1, got -2"),
    ("fraction", {"workers": 2.5}, "resources.workers", "valid integer", "2.5", "whole number"),
    ("quoted", {"workers": "2"}, "resources.workers", "valid integer", "without quotes"),
    ("boolean", {"workers": True}, "resources.workers", "valid integer", "True"),
    ("shared GPU", {"workers": 2, "gpu": 0.5}, "resources.gpu", "whole GPUs", "0.5", "gpu: 1"),
    ("typo", {"worker": 2}, "resources.worker", "unknown key", "did you mean 'workers'"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_workers_are_reported_with_path_rule_value_and_fix(case):
    _, resources, path, *fragments = case
    found = problems(spec(resources=resources))
    assert any(p.startswith(path) and all(f in p for f in fragments) for p in found), found


def test_population_methods_refuse_distributed_trials():
    found = problems(spec(method="pbt", resources={"workers": 2},
                          parameters={"lr": {"min": 0.001, "max": 0.01}}))
    assert any(p.startswith("resources.workers") and "pbt" in p and "workers: 1" in p
               for p in found), found


NODES = [{"NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 8.0, "GPU": 2.0}},
         {"NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 4.0, "GPU": 2.0}}]


def test_workers_are_packed_over_nodes_and_trials_counted_whole():
    assert placeable_workers(WorkerPlan(4, 2.0, 1.0), NODES) == 4  # the GPUs limit: 2 + 2
    assert concurrent_trials(WorkerPlan(4, 2.0, 1.0), NODES) == 1
    assert concurrent_trials(WorkerPlan(2, 0.5, 0.0), NODES) == 12
    assert concurrent_trials(WorkerPlan(3, 0.1, 0.0), [{"Resources": {"CPU": 0.3}}]) == 1
    assert WorkerPlan(2, 1, 0).backend == "gloo" and WorkerPlan(2, 1, 1).backend == "nccl"


def test_a_trial_whose_workers_never_fit_is_refused_with_what_the_cluster_has():
    with pytest.raises(ResourceError) as info:
        check_worker_resources(WorkerPlan(5, 2.0, 1.0), NODES)
    text = str(info.value)
    for fragment in ("5 workers of cpu=2, gpu=1", "only 4", "10.0.0.2: cpu=4 gpu=2",
                     "resources.workers"):
        assert fragment in text, text
    check_worker_resources(WorkerPlan(4, 2.0, 1.0), NODES)  # fits: no error


def test_the_plan_follows_the_spec_and_refuses_ray_train_v1(monkeypatch):
    one = load_spec(spec())
    assert worker_plan(one, {"cpu": 1.0, "gpu": 0.0}) is None
    two = load_spec(spec(resources={"workers": 2, "cpu": 0.5}))
    assert worker_plan(two, {"cpu": 0.5, "gpu": 0.0}) == WorkerPlan(2, 0.5, 0.0)
    monkeypatch.setenv("RAY_TRAIN_V2_ENABLED", "0")
    with pytest.raises(OrchError, match="RAY_TRAIN_V2_ENABLED"):
        worker_plan(two, {"cpu": 0.5, "gpu": 0.0})


def test_a_worker_failure_names_the_rank_and_keeps_orchs_error_class():
    class Failed(Exception):
        def __init__(self, failures):
            self.worker_failures = failures

    plain = _worker_failure(Failed({1: RuntimeError("boom"), 0: RuntimeError("later")}), 2)
    assert isinstance(plain, TrialError)
    assert str(plain) == "RuntimeError on worker rank 0 of 2: later"
    # the rank whose own code failed, not rank 0 that only saw its peer go
    peer = _worker_failure(Failed({0: RuntimeError("[Gloo] connection closed by peer"),
                                   1: ValueError("bad batch")}), 2)
    assert str(peer) == "ValueError on worker rank 1 of 2: bad batch"
    missing = _worker_failure(Failed({1: MetricMissingError("no val_loss")}), 2)
    assert type(missing) is MetricMissingError and "worker rank 1 of 2" in str(missing)


def test_the_example_trainable_runs_unchanged_in_one_process_and_resumes():
    with orchestrator.capture_reports(metric="val_loss", seed=3) as full:
        train({"epochs": 3, "width": 16})
    assert [r["epoch"] for r in full.reports] == [1, 2, 3]
    assert all(r["workers"] == 1 for r in full.reports)
    with orchestrator.capture_reports(metric="val_loss", seed=3,
                                      resume_from=full.checkpoints[0]) as resumed:
        train({"epochs": 3, "width": 16})
    assert [r["epoch"] for r in resumed.reports] == [2, 3]
    assert resumed.reports[-1]["val_loss"] == pytest.approx(full.reports[-1]["val_loss"])


# --- end to end: real Ray Train jobs inside Ray Tune trials, recorded in MLflow -----------

WORKERS = {"workers": 2, "cpu": 0.5}  # two gloo workers of half a CPU: 1 of the 2 CPUs


def sweep_spec(**extra):
    raw = {"name": "distributed", "method": "random", "run_cap": 2, "seed": 5,
           "metric": {"name": "val_loss", "goal": "minimize"}, "confirm_seeds": 0,
           "parameters": {"lr": {"distribution": "log_uniform_values", "min": 3e-3,
                                 "max": 3e-2},
                          "width": {"value": 16}, "epochs": {"value": 3}},
           "resources": dict(WORKERS)}
    raw.update(extra)
    return raw


def trial_runs(store, result):
    from mlflow import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([result.experiment_id], "tags.`orch.role` = 'trial'")
    return client, runs


def steps(client, run, key="val_loss"):
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


def worker_groups_left():
    """Placement groups of two half-CPU workers that Ray still holds."""
    import ray

    return [pg for pg, info in ray.util.placement_group_table().items()
            if info["state"] != "REMOVED" and list(info["bundles"].values())
            == [{"CPU": 0.5}, {"CPU": 0.5}]]


@pytest.mark.e2e
def test_a_two_worker_sweep_records_every_epoch_once_per_trial(ray_session, store):
    # One trial at a time: the second can start its workers only if the first one's,
    # which Tune ends at ASHA's max_t, were given back.
    result = orchestrator.sweep(
        sweep_spec(max_concurrent=1, early_terminate={"type": "asha", "grace_period": 1,
                                                      "max_t": 3}),
        trainable=train, tracking_uri=store)
    assert len(result.records) == 2 and not result.interrupted
    assert all(r.outcome in ("completed", "early_stopped") for r in result.records), \
        [(r.outcome, r.error) for r in result.records]
    client, runs = trial_runs(store, result)
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        last = int(run.data.metrics["epoch"])
        for key in ("val_loss", "val_acc", "train_loss", "epoch"):
            assert steps(client, run, key) == list(range(1, last + 1)), (key, last)
        assert run.data.metrics["workers"] == 2  # rank 0 saw a world of two
        tags = run.data.tags
        assert (tags["orch.workers"], tags["orch.backend"]) == ("2", "gloo")
        assert tags["orch.split_fingerprint"] and tags["orch.train_checkpoint"]
    assert max(int(r.data.metrics["epoch"]) for r in runs) == 3
    assert result.best is not None and result.best.value("val_acc") > 0.5
    assert not worker_groups_left()


def fails_once(config):
    """The example's loop, but rank 1 fails at epoch 2 of an attempt that began afresh."""
    import ray.train

    fresh = orchestrator.load_checkpoint() is None
    rank = ray.train.get_context().get_world_rank()

    def report(metrics, *, checkpoint=None):
        if fresh and rank == 1 and metrics["epoch"] == 2:
            raise RuntimeError("worker lost at epoch 2")
        metrics = {**metrics, "attempt_began_fresh": float(fresh)}
        real_report(metrics, checkpoint=checkpoint)

    real_report = orchestrator.report
    orchestrator.report = report  # the example calls orchestrator.report by attribute
    try:
        train(config)
    finally:
        orchestrator.report = real_report


@pytest.mark.e2e
def test_a_failed_worker_is_retried_from_rank_zeros_checkpoint(ray_session, store):
    import ray

    # Workers import this test module by name, like Ray Tune's trial processes.
    ray.cloudpickle.register_pickle_by_value(__import__(__name__))
    result = orchestrator.sweep(sweep_spec(run_cap=1, max_failures=1), trainable=fails_once,
                                tracking_uri=store)
    (record,) = result.records
    assert record.outcome == "completed", (record.outcome, record.error)
    client, (run,) = trial_runs(store, result)
    assert run.info.status == "FINISHED"
    assert run.data.tags["orch.attempts"] == "2"
    for key in ("val_loss", "epoch", "attempt_began_fresh"):
        assert steps(client, run, key) == [1, 2, 3], key  # epoch 1 is not run again
    fresh = {m.step: m.value for m in client.get_metric_history(run.info.run_id,
                                                                "attempt_began_fresh")}
    assert fresh == {1: 1.0, 2: 0.0, 3: 0.0}  # epochs 2 and 3 came from the resumed attempt
    assert not worker_groups_left()


@pytest.mark.e2e
def test_workers_that_cannot_fit_are_refused_before_any_trial(ray_session, store):
    with pytest.raises(ResourceError, match="3 workers of cpu=1"):
        orchestrator.sweep(sweep_spec(resources={"workers": 3, "cpu": 1}), trainable=train,
                           tracking_uri=store)
