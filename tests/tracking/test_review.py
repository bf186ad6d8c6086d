"""Tests of the read side of tracking (orchestrator.tracking._review).

The fixture store is written with plain ``mlflow.MlflowClient`` calls following
the recorder's contract (parent run per sweep, child run per trial), into a real
SQLite store under tmp_path. ``build_store`` is also used by test_ui_browser.py.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.errors import OrchError, TrackingError
from orchestrator.tracking._review import (
    SweepNotFoundError,
    _typed_column,
    export_sweep,
    find_sweep,
    list_sweeps,
    serve_ui,
    ui_command,
)

T0 = 1_700_000_000_000  # ms; fixed so ordering is deterministic


@dataclass
class Trial:
    trial_id: str
    outcome: str | None  # None: still running
    config: dict
    epochs: int  # metric points per key
    role: str = "trial"
    diagnosis: str = ""
    error: str = ""


@dataclass
class Sweep:
    sweep_id: str
    name: str
    experiment: str
    start: int
    status: str  # orch.status
    trials: list[Trial]
    goal: str = "minimize"
    final: bool = True  # parent carries the end-of-sweep metrics
    parent_run_id: str = ""
    experiment_id: str = ""
    run_ids: dict[str, str] = field(default_factory=dict)
    points: int = 0  # metric points logged on its trial runs
    best: float | None = None
    best_trial: str | None = None


def _val_loss(i: int, epoch: int) -> float:
    return round(1.0 / (1 + epoch) + 0.05 * i, 6)


SWEEPS = [
    Sweep(
        "3f9a1c0b7d2e", "mlp-lr", "mnist-mlp", T0, "finished",
        [
            Trial("a1b2c3d4_00000", "completed", {"model": {"width": 64}, "lr": 0.01, "optimizer": "sgd", "use_bn": True, "momentum": 0.9}, 4, role="baseline", diagnosis="healthy"),
            Trial("a1b2c3d4_00001", "completed", {"model": {"width": 128}, "lr": 1e-05, "optimizer": "adam", "use_bn": False}, 4, diagnosis="healthy"),
            Trial("a1b2c3d4_00002", "early_stopped", {"model": {"width": 256}, "lr": 0.1, "optimizer": "sgd", "use_bn": True, "momentum": 0.5}, 2, diagnosis="plateau"),
            Trial("a1b2c3d4_00003", "failed", {"model": {"width": 32}, "lr": 3.0, "optimizer": "adam", "use_bn": "None"}, 1, diagnosis="diverged", error="NonFiniteMetricError: val_loss is nan"),
        ],
    ),
    Sweep(
        "3f9a77aa0011", "mlp-lr", "mnist-mlp", T0 + 3_600_000, "killed",
        [
            Trial("e5f6a7b8_00000", "completed", {"model": {"width": 64}, "lr": 0.02, "optimizer": "sgd", "use_bn": True}, 3),
            Trial("e5f6a7b8_00001", "killed", {"model": {"width": 512}, "lr": 0.002, "optimizer": "adam", "use_bn": True}, 1),
        ],
        goal="minimize",
    ),
    Sweep(
        "b41d09e2c5f8", "resnet-width", "cifar-resnet", T0 + 7_200_000, "running",
        [
            Trial("c0ffee00_00000", "completed", {"model": {"width": 16}, "lr": 0.1}, 3),
            Trial("c0ffee00_00001", None, {"model": {"width": 32}, "lr": 0.05}, 2),
        ],
        final=False,
    ),
]


def _flatten(config: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


def build_store(root: Path) -> tuple[str, list[Sweep]]:
    """Write SWEEPS into a fresh SQLite store under ``root``; return (uri, sweeps)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    sweeps = [Sweep(**{**s.__dict__, "trials": list(s.trials), "run_ids": {}}) for s in SWEEPS]
    experiments: dict[str, str] = {}
    for sweep in sweeps:
        if sweep.experiment not in experiments:
            experiments[sweep.experiment] = client.create_experiment(
                sweep.experiment, artifact_location=(root / "artifacts" / sweep.experiment).as_uri()
            )
        exp_id = sweep.experiment_id = experiments[sweep.experiment]
        parent = client.create_run(
            exp_id,
            start_time=sweep.start,
            run_name=sweep.name,
            tags={
                "orch.role": "sweep",
                "orch.sweep_id": sweep.sweep_id,
                "orch.sweep_name": sweep.name,
                "orch.metric": "val_loss",
                "orch.goal": sweep.goal,
                "orch.method": "optuna",
                "orch.scheduler": "asha",
                "orch.seed": "0",
                "orch.hypothesis": "wider is better",
                "orch.expected": "val_loss < 0.4",
                "orch.baseline_id": "a1b2c3d4_00000",
                "orch.status": "running",
            },
        )
        sweep.parent_run_id = parent.info.run_id
        for i, trial in enumerate(sweep.trials):
            t_start = sweep.start + 1000 * (i + 1)
            tags = {
                "mlflow.parentRunId": parent.info.run_id,
                "orch.role": trial.role,
                "orch.sweep_id": sweep.sweep_id,
                "orch.trial_id": trial.trial_id,
                "orch.node": "127.0.0.1",
                "orch.gpu_ids": "",
            }
            # the recorder tags a live trial orch.outcome=running, then its final outcome
            tags["orch.outcome"] = trial.outcome or "running"
            if trial.outcome:
                tags["orch.diagnosis"] = trial.diagnosis
            if trial.outcome == "early_stopped":
                tags["orch.stopped_at_epoch"] = str(trial.epochs)
            if trial.error:
                tags["orch.error"] = trial.error
            run = client.create_run(exp_id, start_time=t_start, run_name=trial.trial_id, tags=tags)
            rid = sweep.run_ids[trial.trial_id] = run.info.run_id
            metrics = []
            for epoch in range(trial.epochs):
                ts = t_start + 100 * (epoch + 1)
                loss = _val_loss(i, epoch)
                metrics += [
                    Metric("train_loss", loss * 0.9, ts, epoch),
                    Metric("val_loss", loss, ts, epoch),
                    Metric("val_acc", 1 - loss / 2, ts, epoch),
                ]
            if trial.role == "trial" and trial.epochs:
                metrics.append(Metric("delta_val_loss", 0.01 * i, t_start + 999, trial.epochs - 1))
            sweep.points += len(metrics)
            params = [Param(k, v) for k, v in _flatten(trial.config).items()]
            client.log_batch(rid, metrics=metrics, params=params)
            if trial.outcome and trial.epochs and trial.outcome in ("completed", "early_stopped"):
                final = _val_loss(i, trial.epochs - 1)
                if sweep.best is None or final < sweep.best:
                    sweep.best, sweep.best_trial = final, trial.trial_id
            if trial.outcome:
                status = {"completed": "FINISHED", "early_stopped": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
                client.set_terminated(rid, status[trial.outcome], end_time=t_start + 5000 + 250 * i)
        if sweep.final:
            outcomes = [t.outcome for t in sweep.trials]
            client.log_batch(
                parent.info.run_id,
                metrics=[
                    Metric("best_val_loss", sweep.best, sweep.start + 60_000, 0),
                    Metric("trials_completed", outcomes.count("completed"), sweep.start + 60_000, 0),
                    Metric("trials_early_stopped", outcomes.count("early_stopped"), sweep.start + 60_000, 0),
                    Metric("trials_failed", outcomes.count("failed"), sweep.start + 60_000, 0),
                    Metric("trials_total", len(outcomes), sweep.start + 60_000, 0),
                ],
                tags=[RunTag("orch.best_trial_id", sweep.best_trial), RunTag("orch.status", sweep.status)],
            )
            client.set_terminated(
                parent.info.run_id,
                {"finished": "FINISHED", "killed": "KILLED", "failed": "FAILED"}[sweep.status],
                end_time=sweep.start + 60_000,
            )
    return uri, sweeps


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory) -> tuple[str, list[Sweep]]:
    return build_store(tmp_path_factory.mktemp("store"))


# ------------------------------------------------------------------ list_sweeps


def test_list_sweeps_newest_first_with_counts_and_best(sweep_store):
    uri, sweeps = sweep_store
    found = list_sweeps(tracking_uri=uri)
    assert [s.sweep_id for s in found] == ["b41d09e2c5f8", "3f9a77aa0011", "3f9a1c0b7d2e"]
    assert [s.started for s in found] == sorted((s.started for s in found), reverse=True)
    by_id = {s.sweep_id: s for s in found}
    exp = {s.sweep_id: s for s in sweeps}

    done = by_id["3f9a1c0b7d2e"]
    assert done.name == "mlp-lr"
    assert done.experiment == "mnist-mlp"
    assert done.status == "finished" and done.run_status == "FINISHED"
    assert done.parent_run_id == exp["3f9a1c0b7d2e"].parent_run_id
    assert done.trials == {"completed": 2, "early_stopped": 1, "failed": 1, "killed": 0, "total": 4}
    assert done.metric == "val_loss" and done.best_metric == "best_val_loss"
    assert done.best_value == pytest.approx(exp["3f9a1c0b7d2e"].best)
    assert done.best_trial_id == exp["3f9a1c0b7d2e"].best_trial
    assert done.started.tzinfo is not None and done.ended is not None

    killed = by_id["3f9a77aa0011"]
    assert killed.status == "killed"
    # no trials_killed metric in the contract: killed = total - completed - early_stopped - failed
    assert killed.trials == {"completed": 1, "early_stopped": 0, "failed": 0, "killed": 1, "total": 2}

    # still running: no final metrics on the parent -> counted from its trial runs
    live = by_id["b41d09e2c5f8"]
    assert live.status == "running" and live.experiment == "cifar-resnet"
    assert live.trials == {"completed": 1, "early_stopped": 0, "failed": 0, "killed": 0, "running": 1, "total": 2}
    assert live.best_value == pytest.approx(_val_loss(0, 2))
    assert live.best_trial_id == "c0ffee00_00000"


def test_list_sweeps_pages_through_results(sweep_store, monkeypatch):
    import orchestrator.tracking._review as review

    monkeypatch.setattr(review, "_PAGE", 1)
    uri, _ = sweep_store
    assert [s.sweep_id for s in list_sweeps(tracking_uri=uri)] == ["b41d09e2c5f8", "3f9a77aa0011", "3f9a1c0b7d2e"]


def test_list_sweeps_missing_store_is_clear_and_creates_nothing(tmp_path):
    missing = tmp_path / "nope" / "mlflow.db"
    with pytest.raises(TrackingError) as err:
        list_sweeps(tracking_uri=f"sqlite:///{missing}")
    assert str(missing) in str(err.value) and "does not exist" in str(err.value)
    assert not missing.exists()


def test_list_sweeps_empty_store(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()  # creates the schema
    assert list_sweeps(tracking_uri=uri) == []
    with pytest.raises(SweepNotFoundError, match="holds no sweeps"):
        find_sweep("abc", tracking_uri=uri)


# ------------------------------------------------------------------ find_sweep


def test_find_sweep_by_id_prefix_run_id_and_name(sweep_store):
    uri, sweeps = sweep_store
    assert find_sweep("3f9a1c0b7d2e", tracking_uri=uri).sweep_id == "3f9a1c0b7d2e"
    assert find_sweep("b41d", tracking_uri=uri).sweep_id == "b41d09e2c5f8"
    assert find_sweep("3f9a7", tracking_uri=uri).sweep_id == "3f9a77aa0011"
    assert find_sweep(sweeps[0].parent_run_id, tracking_uri=uri).sweep_id == "3f9a1c0b7d2e"
    # two sweeps are named mlp-lr: the newest wins
    assert find_sweep("mlp-lr", tracking_uri=uri).sweep_id == "3f9a77aa0011"
    assert find_sweep("resnet-width", tracking_uri=uri).sweep_id == "b41d09e2c5f8"


def test_find_sweep_ambiguous_prefix_lists_candidates(sweep_store):
    uri, _ = sweep_store
    with pytest.raises(SweepNotFoundError) as err:
        find_sweep("3f9a", tracking_uri=uri)
    msg = str(err.value)
    assert "ambiguous" in msg and "3f9a1c0b7d2e" in msg and "3f9a77aa0011" in msg
    assert "b41d09e2c5f8" not in msg


def test_find_sweep_not_found_lists_close_matches(sweep_store):
    uri, _ = sweep_store
    with pytest.raises(OrchError) as err:
        find_sweep("mlp-lrr", tracking_uri=uri)
    assert isinstance(err.value, TrackingError)
    msg = str(err.value)
    assert "'mlp-lrr'" in msg  # what was looked for
    assert "closest matches" in msg and "mlp-lr" in msg  # what exists
    assert "pass one of these" in msg  # how to fix
    with pytest.raises(SweepNotFoundError, match="most recent sweeps"):
        find_sweep("zzzzzzzzzzzzzzzzzzzz", tracking_uri=uri)


# ------------------------------------------------------------------ export_sweep


def test_export_sweep_roundtrip_pyarrow(sweep_store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    uri, sweeps = sweep_store
    sweep = sweeps[0]
    trials_path, metrics_path = export_sweep("3f9a1c", tracking_uri=uri, out_dir=tmp_path / "out")
    assert trials_path == tmp_path / "out" / "trials.parquet" and trials_path.is_file()
    assert metrics_path == tmp_path / "out" / "metrics.parquet" and metrics_path.is_file()

    trials = pq.read_table(trials_path)
    assert trials.num_rows == len(sweep.trials)
    assert trials.schema.metadata[b"orch.sweep_id"] == b"3f9a1c0b7d2e"
    schema = trials.schema
    for name in ("trial_id", "run_id", "role", "outcome", "diagnosis"):
        assert schema.field(name).type == pa.string()
    assert schema.field("start_time").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("duration_s").type == pa.float64()
    assert schema.field("config.model.width").type == pa.int64()
    assert schema.field("config.lr").type == pa.float64()
    assert schema.field("config.momentum").type == pa.float64()
    assert schema.field("config.optimizer").type == pa.string()
    assert schema.field("config.use_bn").type == pa.bool_()
    for m in ("train_loss", "val_loss", "val_acc", "delta_val_loss"):
        assert schema.field(f"metric.{m}").type == pa.float64()
    assert "tag.orch.node" in schema.names and "tag.orch.error" in schema.names
    assert "tag.mlflow.parentRunId" not in schema.names

    rows = {r["trial_id"]: r for r in trials.to_pylist()}
    assert set(rows) == {t.trial_id for t in sweep.trials}
    base = rows["a1b2c3d4_00000"]
    assert base["role"] == "baseline" and base["outcome"] == "completed"
    assert base["run_id"] == sweep.run_ids["a1b2c3d4_00000"]
    assert base["config.model.width"] == 64 and base["config.momentum"] == 0.9
    assert base["duration_s"] == pytest.approx(5.0)
    assert base["metric.val_loss"] == pytest.approx(_val_loss(0, 3))
    assert rows["a1b2c3d4_00001"]["config.lr"] == pytest.approx(1e-05)
    assert rows["a1b2c3d4_00001"]["config.momentum"] is None  # conditional param
    assert rows["a1b2c3d4_00001"]["config.use_bn"] is False
    assert rows["a1b2c3d4_00003"]["config.use_bn"] is None  # "None" string -> null
    assert rows["a1b2c3d4_00002"]["tag.orch.stopped_at_epoch"] == 2
    assert rows["a1b2c3d4_00002"]["stopped_at_epoch"] == 2 and base["stopped_at_epoch"] is None
    assert base["sweep_id"] == "3f9a1c0b7d2e" and base["epochs"] == 3
    assert rows["a1b2c3d4_00003"]["outcome"] == "failed"
    assert rows["a1b2c3d4_00003"]["diagnosis"] == "diverged"
    assert "NonFiniteMetricError" in rows["a1b2c3d4_00003"]["tag.orch.error"]

    metrics = pq.read_table(metrics_path)
    assert metrics.num_rows == sweep.points
    assert metrics.schema.names == ["sweep_id", "trial_id", "run_id", "metric", "fold", "step",
                                    "value", "timestamp"]
    assert metrics.schema.field("step").type == pa.int64()
    assert metrics.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    early = [r for r in metrics.to_pylist() if r["trial_id"] == "a1b2c3d4_00002" and r["metric"] == "val_loss"]
    assert [r["step"] for r in early] == [0, 1]
    assert [r["value"] for r in early] == pytest.approx([_val_loss(2, 0), _val_loss(2, 1)])


def test_export_sweep_reads_with_pandas(sweep_store, tmp_path):
    pd = pytest.importorskip("pandas")
    uri, sweeps = sweep_store
    sweep = sweeps[1]
    trials_path, metrics_path = export_sweep("mlp-lr", tracking_uri=uri, out_dir=tmp_path)
    trials = pd.read_parquet(trials_path)
    metrics = pd.read_parquet(metrics_path)
    assert len(trials) == len(sweep.trials)  # newest "mlp-lr": the killed sweep
    assert len(metrics) == sweep.points
    assert str(trials["config.model.width"].dtype) == "int64"
    assert pd.api.types.is_datetime64_any_dtype(trials["start_time"])
    assert sorted(trials["outcome"]) == ["completed", "killed"]
    per_trial = metrics.groupby("trial_id").size().to_dict()
    assert per_trial == {"e5f6a7b8_00000": 3 * 3 + 1, "e5f6a7b8_00001": 3 * 1 + 1}


def test_export_sweep_reads_with_duckdb(sweep_store, tmp_path):
    import duckdb  # a test dependency: this check must run, never skip
    uri, sweeps = sweep_store
    trials_path, metrics_path = export_sweep("b41d09e2c5f8", tracking_uri=uri, out_dir=tmp_path)
    con = duckdb.connect()
    assert con.execute(f"select count(*) from read_parquet('{trials_path}')").fetchone()[0] == 2
    assert con.execute(f"select count(*) from read_parquet('{metrics_path}')").fetchone()[0] == sweeps[2].points
    width = con.execute(f'select sum("config.model.width") from read_parquet(\'{trials_path}\')').fetchone()[0]
    assert width == 48


def _typed_store(root: Path) -> str:
    """A sweep as the recorder writes a K-fold one: per-fold metrics, a conditional
    integer (lr_step_size only with the step schedule), seed and stopped_at_epoch tags."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{root / 'typed.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("typed", artifact_location=(root / "art").as_uri())
    parent = client.create_run(exp, run_name="typed", tags={
        "orch.role": "sweep", "orch.sweep_id": "7e57ab1e0001", "orch.sweep_name": "typed",
        "orch.metric": "val_loss", "orch.goal": "minimize", "orch.status": "finished"})
    trials = [("t0", {"lr_schedule": "step", "lr_step_size": "4"}, "completed", 3),
              ("t1", {"lr_schedule": "none"}, "early_stopped", 1)]
    for i, (tid, params, outcome, epochs) in enumerate(trials):
        tags = {"mlflow.parentRunId": parent.info.run_id, "orch.role": "trial",
                "orch.sweep_id": "7e57ab1e0001", "orch.trial_id": tid, "orch.outcome": outcome,
                "orch.seed": str(1000 + i), "orch.attempts": "1"}
        if outcome == "early_stopped":
            tags["orch.stopped_at_epoch"] = str(epochs)
        run = client.create_run(exp, run_name=tid, tags=tags)
        points = []
        for step in range(1, epochs + 1):
            points += [Metric("val_loss", 1.0 / step, T0 + step, step)]
            points += [Metric(f"val_loss_fold{k}", 1.0 / step + 0.01 * k, T0 + step, step)
                       for k in range(2)]
        client.log_batch(run.info.run_id, metrics=points,
                         params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run.info.run_id, "FINISHED")
    return uri


def test_export_types_what_a_reader_computes_with(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pd = pytest.importorskip("pandas")
    uri = _typed_store(tmp_path)
    trials_path, metrics_path = export_sweep("typed", tracking_uri=uri, out_dir=tmp_path / "x")
    trials = pq.read_table(trials_path)
    for name in ("seed", "stopped_at_epoch", "epochs", "tag.orch.seed",
                 "tag.orch.stopped_at_epoch", "config.lr_step_size"):
        assert trials.schema.field(name).type == pa.int64(), name
    assert trials.column("sweep_id").to_pylist() == ["7e57ab1e0001"] * 2
    assert not [n for n in trials.schema.names if "_fold" in n]  # folds are rows, not names
    frame = pd.read_parquet(trials_path)
    assert str(frame["config.lr_step_size"].dtype) == "Int64"  # not float64 for the null
    assert frame["config.lr_step_size"].tolist()[0] == 4
    assert frame["seed"].tolist() == [1000, 1001] and frame["epochs"].tolist() == [3, 1]
    metrics = pd.read_parquet(metrics_path)
    assert set(metrics["metric"]) == {"val_loss"} and set(metrics["sweep_id"]) == {"7e57ab1e0001"}
    per_fold = metrics[metrics["fold"].notna()]
    assert sorted(per_fold["fold"].unique().tolist()) == [0, 1] and len(per_fold) == 8
    assert str(metrics["fold"].dtype) == "Int64"


def test_export_schema_is_documented():
    from orchestrator.tracking._review import EXPORT_SCHEMA

    for column in ("sweep_id", "seed", "stopped_at_epoch", "epochs", "fold", "config.<param>"):
        assert column in EXPORT_SCHEMA, column


def test_export_running_sweep_has_null_end(sweep_store, tmp_path):
    import pyarrow.parquet as pq

    uri, sweeps = sweep_store
    trials_path, metrics_path = export_sweep("b41d09e2c5f8", tracking_uri=uri, out_dir=tmp_path)
    rows = {r["trial_id"]: r for r in pq.read_table(trials_path).to_pylist()}
    assert rows["c0ffee00_00001"]["outcome"] == "running"
    assert rows["c0ffee00_00001"]["end_time"] is None and rows["c0ffee00_00001"]["duration_s"] is None
    assert pq.read_table(metrics_path).num_rows == sweeps[2].points


def test_export_unknown_sweep_raises(sweep_store, tmp_path):
    uri, _ = sweep_store
    with pytest.raises(SweepNotFoundError):
        export_sweep("nothing-like-this", tracking_uri=uri, out_dir=tmp_path)
    assert not (tmp_path / "trials.parquet").exists()


# ------------------------------------------------------------------ helpers


def test_typed_column_is_consistent_per_column():
    import pyarrow as pa

    assert _typed_column(["1", "2", None]).type == pa.int64()
    assert _typed_column(["1", "2.5"]).to_pylist() == [1.0, 2.5]
    assert _typed_column(["1e-05", "None"]).to_pylist() == [1e-05, None]
    assert _typed_column(["True", "false"]).to_pylist() == [True, False]
    assert _typed_column(["1", "adam"]).to_pylist() == ["1", "adam"]
    assert _typed_column(["[1, 2]", None]).type == pa.string()
    assert _typed_column([None, None]).type == pa.string()
    assert math.isinf(_typed_column(["inf", "1"]).to_pylist()[0])


def test_ui_command(sweep_store):
    uri, _ = sweep_store
    argv = ui_command(tracking_uri=uri, port=5123)
    i = argv.index("server")
    assert argv[i:i + 9] == ["server", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", "5123", "--workers", "1"]
    db_dir = Path(uri[len("sqlite:///"):]).parent
    assert argv[argv.index("--artifacts-destination") + 1] == str(db_dir / "mlartifacts")
    free = ui_command(tracking_uri=uri, port=0)
    assert int(free[free.index("--port") + 1]) > 0
    with pytest.raises(TrackingError, match="already an MLflow tracking server"):
        ui_command(tracking_uri="http://127.0.0.1:5000")


def test_serve_ui_gives_up_after_timeout(sweep_store, tmp_path):
    uri, _ = sweep_store
    log = tmp_path / "ui.log"
    started = time.monotonic()
    with pytest.raises(TrackingError, match=r"did not answer on http://127\.0\.0\.1:\d+ within 0\.2 s"):
        serve_ui(tracking_uri=uri, port=0, timeout_s=0.2, log_path=log)
    assert time.monotonic() - started < 15
    assert log.exists()


def test_serve_ui_reports_a_server_that_dies(tmp_path):
    bad = tmp_path / "not-a-db.db"
    bad.write_text("this is not sqlite")
    with pytest.raises(TrackingError) as err:
        serve_ui(tracking_uri=f"sqlite:///{bad}", port=0, timeout_s=60, log_path=tmp_path / "ui.log")
    msg = str(err.value)
    assert "exited with code" in msg and "last lines of" in msg


def test_serve_ui_missing_store(tmp_path):
    with pytest.raises(TrackingError, match="does not exist"):
        serve_ui(tracking_uri=f"sqlite:///{tmp_path / 'missing.db'}", port=0)


# ------------------------------------------------------------------ UI addresses


def test_every_ui_address_opens_on_the_runs_not_the_genai_pages():
    from orchestrator.tracking._review import ui_address

    base = "http://127.0.0.1:5000"
    for url in (ui_address(base), ui_address(base, experiment_id="4"),
                ui_address(base, experiment_id="4", run_id="ab12"),
                ui_address(base, experiment_id="4", view=True)):
        route, _, query = url.partition("?")
        assert "#/experiments" in route and "workflowType=machine_learning" in query, url


def test_the_reviewers_view_is_saved_on_the_experiment(sweep_store):
    import json

    from orchestrator.tracking import Store
    from orchestrator.tracking._review import UI_VIEW_TAG

    uri, sweeps = sweep_store
    sweep = find_sweep(sweeps[0].sweep_id, tracking_uri=uri)
    store = Store(uri)
    store.save_ui_view(sweep)
    tags = store.experiment_tags(sweep.experiment_id)
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    columns = json.loads(tags[UI_VIEW_TAG])["selectedColumns"]
    assert columns[0] == "metrics.`val_loss`"
    assert "tags.`orch.outcome`" in columns and "tags.`orch.diagnosis`" in columns
    assert "params.`lr`" in columns and "params.`model.width`" in columns


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "sqlite:///x.db"])
def test_histories_are_read_at_once_each_sorted_and_a_failure_named(uri):
    """Through a server the reads overlap (a round trip each); every pair comes back sorted
    by step, whatever order the store answered in; a failed read names run and metric."""
    import threading
    import time
    from types import SimpleNamespace as P

    from orchestrator.errors import TrackingError
    from orchestrator.tracking._store import read_histories

    class Client:
        def __init__(self):
            self.lock, self.now, self.most = threading.Lock(), 0, 0

        def get_metric_history(self, run_id, key):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(0.02)
            with self.lock:
                self.now -= 1
            if run_id == "bad":
                raise ConnectionError("server went away")
            return [P(step=s, value=float(s), timestamp=0) for s in (3, 1, 2)]

    client = Client()
    pairs = [(f"run{i}", key) for i in range(10) for key in ("loss", "acc")]
    got = read_histories(client, uri, pairs)
    assert list(got) == pairs
    assert all([m.step for m in points] == [1, 2, 3] for points in got.values())
    assert (client.most > 1) == uri.startswith("http")  # local stores are read in turn
    with pytest.raises(TrackingError, match="'loss' of run bad"):
        read_histories(client, uri, [("run0", "loss"), ("bad", "loss")])
