"""The report on a recorded sweep written by hand into a real SQLite MLflow store (no Ray):
matched budgets, every trial's curves, gradients, importance with its spread, the search
plots, the ablation table, and `orch compare`'s one sign convention."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from orchestrator.method import ABLATION_SECTIONS, REPORT_SECTIONS, build_report, compare_runs

SPEC = {
    "name": "hand", "trainable": "digits_mlp", "method": "tpe", "seed": 5,
    "hypothesis": "Dropout improves accuracy", "expected": "val_acc >= baseline + 0.005",
    "metric": {"name": "val_loss", "goal": "minimize"}, "run_cap": 8, "cv": {"folds": 3},
    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
                   "dropout": {"min": 0.0, "max": 0.5},
                   "optimizer": {"values": ["adam", "adamw", "sgd"]}, "epochs": {"value": 6}},
    "baseline": {"lr": 0.001, "dropout": 0.0, "optimizer": "adam"},
    "early_terminate": {"type": "asha", "grace_period": 2, "max_t": 6},
}
EPOCHS = 6


def _curve(level: float, epochs: int) -> list[float]:
    return [level + 1.5 / e for e in range(1, epochs + 1)]


def _log_run(client, exp, parent, tid, role, outcome, params, level, epochs, cm=False):
    from mlflow.entities import Metric, Param

    tags = {"mlflow.parentRunId": parent, "orch.role": role, "orch.trial_id": tid,
            "orch.sweep_id": "feedc0ffee00", "orch.outcome": outcome, "orch.seed": "1",
            "orch.diagnosis": "too_short" if outcome == "early_stopped" else "healthy",
            "orch.split_fingerprint": "f" * 16}
    if outcome == "early_stopped":
        tags["orch.stopped_at_epoch"] = str(epochs)
    run = client.create_run(exp, run_name=tid if role == "trial" else "baseline", tags=tags)
    points, t = [], 1_700_000_000_000
    for e, v in enumerate(_curve(level, epochs), start=1):
        folds = [v - 0.01, v, v + 0.01 + 0.002 * e]
        row = {"epoch": e, "val_loss": sum(folds) / 3, "train_loss": v * 0.8,
               "val_acc": 1 - v / 3, "val_loss_std": 0.01, "grad_norm": 1.0 / e,
               "grad_norm_first": 0.3 / e, "grad_norm_last": 0.5 / e, "update_ratio": 0.01 / e}
        row.update({f"val_loss_fold{k}": f for k, f in enumerate(folds)})
        row.update({f"val_acc_fold{k}": 1 - f / 3 for k, f in enumerate(folds)})
        points += [Metric(k, float(x), t + e, e) for k, x in row.items()]
    client.log_batch(run.info.run_id, metrics=points,
                     params=[Param(k, str(v)) for k, v in params.items()])
    if cm:
        client.log_text(run.info.run_id, json.dumps({"labels": [0, 1], "matrix": [[9, 1], [2, 8]],
                                                     "epoch": epochs, "folds": 3}),
                        "confusion_matrix.json")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def write_sweep(root, *, ablation=False):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("hand", artifact_location=(root / "art").as_uri())
    parent = client.create_run(exp, run_name="hand", tags={
        "orch.role": "sweep", "orch.sweep_id": "feedc0ffee00", "orch.sweep_name": "hand",
        "orch.metric": "val_loss", "orch.goal": "minimize", "orch.status": "finished",
        "orch.seed": "5", "orch.hypothesis": SPEC["hypothesis"],
        "orch.expected": SPEC["expected"], **({"orch.ablation": "true"} if ablation else {})})
    pid = parent.info.run_id
    from mlflow.entities import Param

    client.log_batch(pid, params=[Param("cv.folds", "3"), Param("scheduler", "asha"),
                                  Param("early_terminate.max_t", "6"), Param("seed", "5")])
    client.log_text(pid, yaml.safe_dump(SPEC), "spec.yaml")
    ids = {"baseline": _log_run(client, exp, pid, "base0000", "baseline", "completed",
                                {"lr": 0.001, "dropout": 0.0, "optimizer": "adam",
                                 "epochs": 6}, 0.30, EPOCHS, cm=True)}
    for i in range(9):
        cut = i >= 6  # three trials cut at epoch 2: the lowest epoch-2 values of all
        params = {"lr": 0.001 * 2 ** i, "dropout": 0.05 * i,
                  "optimizer": ["adam", "sgd"][i % 2], "epochs": 6}
        ids[f"t{i}"] = _log_run(client, exp, pid, f"trial{i:03d}", "trial",
                                "early_stopped" if cut else "completed", params,
                                0.1 + 0.05 * i - (0.5 if cut else 0), 2 if cut else EPOCHS,
                                cm=i in (0, 7))
    if ablation:
        client.log_text(pid, json.dumps({"baseline_value": 0.55, "rows": [
            {"param": "dropout", "value": 0.2, "metric": 0.5, "diff": -0.05, "ci_low": -0.08,
             "ci_high": -0.02, "p_value": 0.01, "spread": 0.01, "outcome": "completed"}]}),
            "ablation.json")
    client.set_terminated(pid, "FINISHED")
    return uri, ids


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    root = tmp_path_factory.mktemp("hand")
    uri, ids = write_sweep(root)
    report = build_report("feedc0ffee00", tracking_uri=uri)
    return uri, ids, report.html, report


def section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, sid
    return m.group(1)


def test_every_section_is_there_and_built(hand) -> None:
    _, _, page, report = hand
    assert report.problems == []
    for sid in REPORT_SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    assert "could not be built" not in page
    assert "<script" not in page


def test_importance_plots_and_ranges_use_matched_budgets(hand) -> None:
    _, _, page, _ = hand
    imp = section(page, "importance")
    # the cut trials' low epoch-2 values stay out: 6 trials at epoch 6, 3 left out
    assert "6 trial(s) compared at epoch 6; 3 trial(s) stopped before epoch 6 are left out" \
        in imp
    assert "20 bootstrap resamples" in imp and "seeded from the sweep seed 5" in imp
    assert "10–90%" in imp
    assert not re.search(r"<td>0\.0*[1-9]\d{2,}</td>", imp)  # two significant figures at most
    plots = section(page, "plots")
    for title in ("Optimisation history", "Intermediate values", "Parallel coordinates",
                  "Slices", "Contour of the two most important"):
        assert title in plots, title
    assert "These use matched budgets: 6 trial(s) compared at epoch 6" in plots
    assert "From matched budgets: 6 trial(s) compared at epoch 6" in section(page, "next-ranges")
    assert "too few trials" in section(page, "next-ranges")


def test_every_trial_is_drawn_early_stopped_ones_too(hand) -> None:
    _, _, page, _ = hand
    curves = section(page, "curves")
    assert "Every trial (9) and the baseline" in curves
    for i in range(9):
        assert f"trial{i:03d} (" in curves  # in the figures' descriptions
    assert "trial007 (early_stopped)" in curves
    assert curves.count("data:image/png;base64,") == 2


def test_gradients_are_shown_with_their_verdict(hand) -> None:
    _, _, page, _ = hand
    grads = section(page, "gradients")
    assert "data:image/png;base64," in grads and "update/weight ratio" in grads
    assert grads.count("gradient norm between") == 10  # 9 trials and the baseline


def test_confusion_matrices_and_the_baseline_comparison(hand) -> None:
    _, _, page, _ = hand
    conf = section(page, "confusion")
    assert "base0000 (baseline)" in conf and "recalled least well" in conf
    base = section(page, "baseline")
    assert "trial − baseline" in base and "compared at" in base
    assert "noise floor = the baseline&#x27;s standard deviation over its 3 folds" in base
    aim = section(page, "aim")
    assert "Tests dropout" in aim  # the hypothesis names dropout: one factor


def test_an_ablation_report_shows_the_factor_table_not_fanova(tmp_path) -> None:
    uri, _ = write_sweep(tmp_path, ablation=True)
    page = build_report("feedc0ffee00", tracking_uri=uri).html
    for sid in ABLATION_SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    assert '<section id="importance">' not in page
    table = section(page, "ablation")
    assert "factor = value" in table and "dropout = 0.2" in table and "[-0.08, -0.02]" in table
    assert "fANOVA) is not computed for an ablation" in table


def test_compare_reports_trial_minus_baseline_with_the_fold_paired_interval(hand) -> None:
    uri, ids, _, _ = hand
    cmp = compare_runs(ids["baseline"], ids["t0"], tracking_uri=uri)  # A is the baseline
    assert cmp.swapped and cmp.trial == ids["t0"] and cmp.reference == ids["baseline"]
    t, r, d = cmp.metric_diff["val_loss"]
    assert d == pytest.approx(t - r) and d < 0  # trial0 (level 0.1) below the baseline (0.3)
    c = cmp.intervals["val_loss"]
    assert c.diff == pytest.approx(d) and c.n == 3 and c.ci[0] <= c.ci[1]
    cut = compare_runs(ids["t7"], ids["baseline"], tracking_uri=uri)
    assert not cut.swapped and cut.step["val_loss"] == 2  # the cut trial at its own epoch
