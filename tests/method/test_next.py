"""`orch next`: the next sweep's spec from the review of the last one.

Unit tests build a :class:`SweepReview` by hand (the range, fixing and comment rules);
one store test writes a sweep into a real SQLite MLflow store (no Ray) and runs the
command in-process; the end-to-end test runs a real small sweep (Ray, MLflow, torch),
then ``orch next`` and ``orch validate`` as subprocesses, and runs the spec it wrote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.method import (
    RankedTrial,
    SweepReview,
    next_name,
    next_spec,
    plan_next,
    read_review,
)
from orchestrator.method._next import FIX_IMPORTANCE, NEXT_POINTS
from orchestrator.method._report._ranges import MIN_TO_NARROW
from orchestrator.sweepspec import flatten, load_spec

ROOT = Path(__file__).resolve().parents[2]

RAW = {
    "name": "digits-tpe", "trainable": "digits_mlp", "method": "tpe", "seed": 1,
    "hypothesis": "width matters more than depth", "expected": "val_loss <= baseline - 0.01",
    "metric": {"name": "val_loss", "goal": "minimize"}, "run_cap": 12,
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
        "optimizer": {"values": ["adam", "adamw", "sgd"]},
        "momentum": {"min": 0.5, "max": 0.99, "when": {"optimizer": "sgd"}},
        "width": {"distribution": "q_uniform", "min": 32, "max": 256, "q": 32},
        "depth": {"min": 1, "max": 3},
        "dropout": {"min": 0.0, "max": 0.5},
        "epochs": {"value": 3},
    },
    "early_terminate": {"type": "asha", "grace_period": 1, "max_t": 3},
    "resources": {"cpu": 1},
    "baseline": {"lr": 0.001, "optimizer": "adam", "width": 64, "depth": 2, "dropout": 0.0},
}


def config(i: int) -> dict:
    """Best first: lr at the top edge, narrow widths, adam among the best, sgd never."""
    c = {"lr": 0.1 * 0.8 ** i, "optimizer": "adam" if i < 4 else "sgd",
         "width": 64 + 32 * (i % 3), "depth": 2, "dropout": 0.02 * i, "epochs": 3}
    if c["optimizer"] == "sgd":
        c["momentum"] = 0.9
    return c


def review(raw: dict | None = None, n: int = 12, *, configs=None, ranked=None,
           importance=None, **kw) -> SweepReview:
    spec = load_spec(raw or RAW)
    cs = configs or [config(i) for i in range(n)]
    order = ranked or cs
    return SweepReview(
        sweep_id="abc123def456", name=spec.name, started="2025-01-01", spec=spec,
        effective=spec.effective(), metric="val_loss", goal="minimize",
        ranked=tuple(RankedTrial(f"trial{i:03d}", c, 0.1 + i / 100, 3)
                     for i, c in enumerate(order)),
        matched=tuple(cs), tried=tuple(cs), budget=f"{len(cs)} trial(s) compared at epoch 3",
        importance=importance if importance is not None else
        {"dropout": (0.01, 0.04), "depth": (0.02, 0.5), "lr": (0.6, 0.8), "width": (0.2, 0.4),
         "optimizer": (0.1, 0.3)},
        verdict="inconclusive", verdict_reason="no noise estimate: neither cv nor repeats",
        notes=("lr sits at the top of its range", "dropout did nothing\nnext: wider nets"), **kw)


def written(rv: SweepReview, **kw):
    planned = plan_next(rv, file="next.yaml", today="2025-01-02", **kw)
    return planned, yaml.safe_load(planned.text), planned.text


def unwrapped(text: str) -> str:
    """The text with wrapped comment lines joined back."""
    return re.sub(r"\n *#   ", " ", text)


def comment_before(text: str, key: str) -> str:
    """The comment lines right above ``key:`` (stripped), joined."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
    above = []
    for line in reversed(lines[:at]):
        if not line.lstrip().startswith("#"):
            break
        above.insert(0, line.strip().lstrip("#").strip())
    return " ".join(above)


# --------------------------------------------------------------------------- unit


def test_the_written_spec_round_trips_with_the_values_intended() -> None:
    rv = review()
    planned, data, text = written(rv)
    spec = load_spec(text)  # what `orch validate` does, minus the trainable check
    assert planned.spec == spec and spec.name == data["name"] == "digits-tpe-2"
    best = rv.ranked[0].config
    searched = ["lr", "optimizer", "width", "depth", "dropout"]  # momentum: unused by the best
    assert data["baseline"] == {k: best[k] for k in searched} == flatten(spec.baseline)
    assert planned.baseline_from == "trial000"
    points = [{k: v for k, v in rv.ranked[i].config.items() if k in searched and k != "dropout"}
              for i in (1, 2, 3)]
    assert data["points_to_evaluate"] == points == [dict(p) for p in spec.points_to_evaluate]
    assert len(points) == min(NEXT_POINTS, RAW["run_cap"] // 4)
    assert data["seed"] == spec.seed == 2 and data["hypothesis"] == data["expected"] == ""
    for key in ("trainable", "method", "metric", "run_cap", "early_terminate", "resources"):
        assert data[key] == RAW[key], key  # everything else carries over
    assert data["experiment"] == "digits-tpe"  # the sweeps sit side by side in MLflow
    assert list(data)[:4] == ["name", "experiment", "hypothesis", "expected"]


def test_ranges_move_as_the_review_suggests_with_the_reason_beside_them() -> None:
    _, data, text = written(review())
    p = data["parameters"]
    assert p["lr"]["max"] > 0.1 and "widened past it" in comment_before(text, "  lr")
    assert p["width"] == {"distribution": "q_uniform", "min": 32, "max": 160, "q": 32}
    assert "narrowed from [32, 256] to [32, 160]" in comment_before(text, "  width")
    # sgd never won, but momentum's `when:` names it: dropping it would break the spec
    assert p["optimizer"]["values"] == ["adam", "adamw", "sgd"]
    assert "momentum's `when:` uses it" in comment_before(text, "  optimizer")
    assert p["momentum"] == RAW["parameters"]["momentum"]  # the best never used it: kept
    assert p["epochs"] == {"value": 3}
    assert p["depth"] == {"distribution": "int_uniform", "min": 1, "max": 3}  # no q: 1


def test_an_idle_parameter_is_fixed_at_the_best_value_and_says_why() -> None:
    planned, data, text = written(review())
    assert data["parameters"]["dropout"] == {"value": 0.0}
    why = comment_before(text, "  dropout")
    assert why.startswith("fixed at the best trial's value") and f"< {FIX_IMPORTANCE}" in why
    assert set(planned.fixed) == {"dropout"}
    assert planned.changes["depth"] == "kept"  # low importance, but a wide spread: not fixed


def test_one_category_left_is_fixed_unless_a_condition_names_it() -> None:
    raw = {**RAW, "parameters": {k: v for k, v in RAW["parameters"].items() if k != "momentum"}}
    configs = [config(i) for i in range(12)]
    for i, c in enumerate(configs):
        c.pop("momentum", None)
        c["optimizer"] = "adam" if i < 4 else ("sgd" if i % 2 else "adamw")
    planned, data, text = written(review(raw, configs=configs, importance={}))
    assert data["parameters"]["optimizer"] == {"value": "adam"}
    assert "one value left" in comment_before(text, "  optimizer")
    assert all("optimizer" not in p for p in data["points_to_evaluate"])
    assert load_spec(text).parameter("optimizer").is_constant
    # with momentum conditioned on it, optimizer stays searched: sgd must stay possible
    _, data, _ = written(review(configs=configs, importance={}))
    assert data["parameters"]["optimizer"]["values"] == ["adam", "sgd"]  # adamw lost


def test_too_few_trials_keep_every_range_and_fix_nothing_but_still_queue_points() -> None:
    planned, data, text = written(review(n=MIN_TO_NARROW - 1))
    assert data["parameters"] == RAW["parameters"] and not planned.fixed
    assert f"{MIN_TO_NARROW} are needed before any range is narrowed" in unwrapped(text)
    assert data["points_to_evaluate"] and data["baseline"]["lr"] == 0.1


def test_the_baseline_and_points_stay_inside_the_new_ranges() -> None:
    # The best by depth (ranked) is not among the best at the matched budget.
    cs = [config(i) for i in range(12)]
    ranked = [cs[9], *cs[:9]]
    planned, data, text = written(review(configs=cs, ranked=ranked))
    assert data["baseline"]["lr"] == cs[9]["lr"]
    assert data["parameters"]["lr"]["min"] <= cs[9]["lr"]
    assert "to hold the baseline" in comment_before(text, "  lr")
    assert "sgd" in data["parameters"]["optimizer"]["values"]
    load_spec(text)  # every point inside its range, or this raises


def test_cv_keeps_its_folds_while_the_seed_moves_on() -> None:
    raw = {**RAW, "cv": {"folds": 3}}
    _, data, text = written(review(raw))
    assert data["seed"] == 2 and data["cv"] == {"folds": 3, "seed": 1}
    assert "the folds digits-tpe used" in comment_before(text, "cv")
    assert "hold-out split follows this seed" in comment_before(written(review())[2], "seed")


def test_a_grid_gets_no_points_and_says_so() -> None:
    raw = {"name": "g", "trainable": "digits_mlp", "method": "grid",
           "metric": {"name": "val_loss"}, "parameters": {
               "width": {"values": [16, 32, 64]}, "lr": {"values": [0.01, 0.1]}}}
    configs = [{"width": w, "lr": lr} for w in (16, 32, 64) for lr in (0.01, 0.1)]
    planned, data, text = written(review(raw, configs=configs, importance={}))
    assert "points_to_evaluate" not in data and not planned.points
    assert "a grid runs every point of its space anyway" in text
    assert data["name"] == "g-2" and data["baseline"] == configs[0]


def test_nested_groups_are_written_as_groups() -> None:
    raw = {**RAW, "parameters": {"lr": RAW["parameters"]["lr"],
                                 "model": {"parameters": {"width": {"values": [16, 32, 64]},
                                                          "depth": {"value": 2}}}}}
    configs = [{"lr": 0.01 * (i + 1), "model.width": [16, 32, 64][i % 3], "model.depth": 2}
               for i in range(10)]
    _, data, text = written(review(raw, configs=configs, importance={}))
    assert data["parameters"]["model"]["parameters"]["depth"] == {"value": 2}
    assert data["baseline"] == {"lr": 0.01, "model.width": 16}
    assert flatten(load_spec(text).baseline) == data["baseline"]


def test_header_and_comments_carry_the_source_the_verdict_and_every_note() -> None:
    rv = review()
    _, _, text = written(rv)
    head = text.split("\nname:")[0]
    assert "sweep abc123def456, started 2025-01-01" in head and "2025-01-02" in head
    assert "Verdict on digits-tpe: inconclusive — no noise estimate" in head
    assert "1. lr sits at the top of its range" in head
    assert "2. dropout did nothing" in head and "#      next: wider nets" in head
    assert "orch validate next.yaml && orch sweep next.yaml" in head
    hyp = comment_before(text, "hypothesis")
    assert "write what you expect to change and why before running" in hyp
    assert "digits-tpe tested: width matters more than depth" in hyp
    assert "val_loss <= baseline - 0.005" in comment_before(text, "expected")
    assert "trial000, val_loss 0.1 at epoch 3" in comment_before(text, "baseline")
    assert "enqueue_trial" in comment_before(text, "points_to_evaluate")
    assert all(len(line) <= 100 for line in text.splitlines() if line.lstrip().startswith("#"))
    assert next_spec(rv) == plan_next(rv).text  # a review read already: no store needed


def test_next_name_counts_up() -> None:
    assert [next_name(n) for n in ("a", "a-2", "a-9", "tpe-asha")] == \
        ["a-2", "a-3", "a-10", "tpe-asha-2"]


def test_a_review_without_trials_is_refused_clearly() -> None:
    empty = SweepReview(sweep_id="x", name="x", started="", spec=load_spec(RAW),
                        effective=RAW, metric="val_loss", goal="minimize", ranked=(),
                        matched=())
    with pytest.raises(ValueError, match="at least one finished trial"):
        plan_next(empty)


# --------------------------------------------------------------------------- a real store


def _record(client, exp: str, sweep_id: str, name: str, *, n: int, finished: bool) -> None:
    """One sweep recorded by hand as the recorder writes it (no Ray)."""
    from mlflow.entities import Metric, Param

    raw = {**RAW, "name": name, "cv": {"folds": 2}}
    pid = client.create_run(exp, run_name=name, tags={
        "orch.role": "sweep", "orch.sweep_id": sweep_id, "orch.sweep_name": name,
        "orch.metric": "val_loss", "orch.goal": "minimize", "orch.status": "finished",
        "orch.seed": "1", "orch.verdict": "refuted",
        "orch.verdict_reason": "the best is worse than the baseline"}).info.run_id
    client.log_text(pid, yaml.safe_dump(raw, sort_keys=False), "spec.yaml")
    client.log_text(pid, json.dumps(load_spec(raw).effective(), sort_keys=True),
                    "spec.effective.json")
    for i in range(n):
        run = client.create_run(exp, run_name=f"trial{i:03d}", tags={
            "mlflow.parentRunId": pid, "orch.role": "trial", "orch.trial_id": f"trial{i:03d}",
            "orch.sweep_id": sweep_id,
            "orch.outcome": "completed" if finished else "failed"}).info.run_id
        points = [Metric("val_loss", 0.5 + i / 50 + 1 / e, 1_700_000_000_000 + e, e)
                  for e in range(1, 4)] if finished else []
        client.log_batch(run, metrics=points,
                         params=[Param(k, str(v)) for k, v in config(i).items()])
        client.set_terminated(run, "FINISHED" if finished else "FAILED")
    client.set_terminated(pid, "FINISHED")


@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> str:
    """A SQLite store with two sweeps: hand-next (10 finished trials), hand-failed (none)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("next-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("hand-next", artifact_location=(root / "art").as_uri())
    _record(client, exp, "feedface0001", "hand-next", n=10, finished=True)
    _record(client, exp, "feedface0002", "hand-failed", n=3, finished=False)
    return uri


def cli(*args: str):
    from orchestrator.cli import app

    return CliRunner().invoke(app, list(args))


def test_read_from_a_store_and_written_by_the_command(hand, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = hand
    res = cli("note", "hand-next", "width helped; lr is at its edge", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    rv = read_review("feedface0001", tracking_uri=uri)
    assert rv.notes == ("width helped; lr is at its edge",) and rv.verdict == "refuted"
    assert list(rv.effective)[:4] == list(RAW)[:4]  # the order the user wrote, not sorted
    assert rv.ranked[0].trial_id == "trial000" and len(rv.matched) == 10
    assert set(rv.importance) >= {"lr", "width", "dropout"}  # what the report computes
    res = cli("next", "feedface0001", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    path = tmp_path / "hand-next-2.yaml"  # the default: the next name, here
    assert f"wrote {path.name}" in res.output and "orch sweep hand-next-2.yaml" in res.output
    data = yaml.safe_load(path.read_text())
    assert data["cv"] == {"folds": 2, "seed": 1} and data["seed"] == 2
    assert "width helped; lr is at its edge" in path.read_text()
    res = cli("next", "feedface0001", "--tracking-uri", uri, "--out", str(path))
    assert res.exit_code == 2 and "exists" in res.output and "--force" in res.output
    res = cli("next", "feedface0001", "--tracking-uri", uri, "--out", "-")
    assert res.exit_code == 0 and res.output.startswith("# Next sweep after hand-next")
    path.write_text("old")
    assert cli("next", "feedface0001", "--tracking-uri", uri, "--force").exit_code == 0
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(res.output)  # overwritten
    assert "orch validate <this file>" in res.output  # printed: the file is yours to name


def test_clear_errors_for_a_missing_sweep_no_finished_trial_and_an_unwritable_out(
        hand, tmp_path) -> None:
    res = cli("next", "nosuchsweep", "--tracking-uri", hand)
    assert res.exit_code == 4 and "nosuchsweep" in res.output
    res = cli("next", "hand-failed", "--tracking-uri", hand, "--out", str(tmp_path / "n.yaml"))
    assert res.exit_code == 4 and "no finished trial" in res.output
    assert "orch resume feedface0002" in res.output and not (tmp_path / "n.yaml").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = cli("next", "hand-next", "--tracking-uri", hand, "--out", str(blocker / "x.yaml"))
    assert res.exit_code == 4 and "cannot write the next spec to" in res.output
    assert "is a file, not a folder" in res.output and "choose another --out" in res.output


# --------------------------------------------------------------------------- end to end

E2E = {
    "name": "next-e2e", "trainable": "digits_mlp", "method": "tpe", "seed": 3,
    "hypothesis": "a tuned lr and width beat the small baseline",
    "expected": "val_loss <= baseline - 0.01", "confirm_seeds": 0,
    "metric": {"name": "val_loss", "goal": "minimize"}, "run_cap": 8, "cv": {"folds": 2},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 0.003, "max": 0.1},
        "width": {"values": [16, 32, 64]},
        "optimizer": {"values": ["adam", "sgd"]},
        "momentum": {"min": 0.5, "max": 0.95, "when": {"optimizer": "sgd"}},
        "dropout": {"min": 0.0, "max": 0.3},
        "epochs": {"value": 2}, "train_fraction": {"value": 0.5},
    },
    "baseline": {"lr": 0.01, "width": 16, "optimizer": "adam", "dropout": 0.0},
}


def orch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_next_after_a_real_sweep_validates_and_runs(ray_session, store, tmp_path) -> None:
    import orchestrator
    from orchestrator.tracking import Store, find_sweep

    result = orchestrator.sweep(E2E, tracking_uri=store, storage_path=str(tmp_path / "ray"))
    assert result.ok and len(result.records) == 9
    assert cli("note", result.sweep_id, "width matters; try more epochs",
               "--tracking-uri", store).exit_code == 0
    out = tmp_path / "specs" / "next.yaml"
    done = orch("next", result.sweep_id, "--out", str(out), "--tracking-uri", store,
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    checked = orch("validate", str(out), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = out.read_text()
    data, spec = yaml.safe_load(text), load_spec(out)

    trials = sorted((r for r in result.records if r.role == "trial"),
                    key=lambda r: r.value("val_loss"))  # all ran to the end: no ASHA
    searched = [p.name for p in load_spec(E2E).parameters if not p.is_constant]
    best = flatten(trials[0].config)
    assert flatten(spec.baseline) == {k: best[k] for k in searched if k in best}
    assert result.best.trial_id == trials[0].trial_id
    still = {p.name for p in spec.parameters if not p.is_constant}
    assert [dict(p) for p in spec.points_to_evaluate] == \
        [{k: v for k, v in flatten(t.config).items() if k in still} for t in trials[1:3]]
    assert spec.name == "next-e2e-2" and spec.seed == 4 and spec.cv.seed == 3
    assert spec.hypothesis == "" and spec.trainable == "digits_mlp" and spec.cv.folds == 2
    tags = Store(store).run(result.parent_run_id).data.tags
    assert f"Verdict on next-e2e: {tags['orch.verdict']}" in text
    assert "width matters; try more epochs" in text and result.sweep_id in text
    assert "# write what you expect to change and why before running" in text

    res = cli("sweep", str(out), "--set", "run_cap=3", "--no-live", "--tracking-uri", store,
              "--storage-path", str(tmp_path / "ray2"))
    assert res.exit_code == 0, res.output
    second = find_sweep("next-e2e-2", tracking_uri=store)
    runs = Store(store).trial_runs(second)
    configs = [r.data.params for r in runs if r.data.tags.get("orch.role") == "trial"]
    assert len(configs) == 3
    for point in spec.points_to_evaluate:  # tried first, so inside a budget of 3
        assert any(all(c.get(k) == str(v) for k, v in point.items()) for c in configs), point
