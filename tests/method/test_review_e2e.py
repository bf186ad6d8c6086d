"""End to end: a real small sweep (digits MLP, K-fold, baseline, ASHA) reviewed with the
method's commands: verdict on the parent run, notes, the HTML report opened in
headless Chromium, compare, reproduce and the confirmation on fresh seeds. One
module-scoped sweep serves every check (each real sweep costs the shared cores)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SPEC = {
    "name": "review-e2e", "trainable": "digits_mlp", "method": "random", "seed": 0,
    "hypothesis": "a tuned lr and width beat the small, slow baseline",
    "expected": "val_acc >= baseline + 0.005",
    "metric": {"name": "val_loss", "goal": "minimize"}, "run_cap": 4, "cv": {"folds": 3},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 0.003, "max": 0.05},
        "width": {"values": [16, 64]},
        "optimizer": {"values": ["adam", "sgd"]},
        "momentum": {"min": 0.5, "max": 0.95, "when": {"optimizer": "sgd"}},
        "epochs": {"value": 3}, "train_fraction": {"value": 0.6},
    },
    "baseline": {"lr": 0.001, "width": 16, "optimizer": "adam"},
    # ASHA cuts some trials after epoch 1 or 2: the report must draw them from their
    # recorded points and compare them at matched budgets.
    "early_terminate": {"type": "asha", "grace_period": 1, "max_t": 3, "reduction_factor": 2},
}


@pytest.fixture(scope="module")
def swept(ray_session, tmp_path_factory):
    import orchestrator

    root = tmp_path_factory.mktemp("review")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    result = orchestrator.sweep(SPEC, tracking_uri=uri, storage_path=str(root / "ray"))
    assert result.ok and len(result.records) == 5
    return result, uri, root


def cli(*args: str):
    from orchestrator.cli import app

    res = CliRunner().invoke(app, list(args))
    return res


def test_the_verdict_is_recorded_on_the_parent_run(swept) -> None:
    from mlflow import MlflowClient

    from orchestrator.method import verdict_for

    result, uri, _ = swept
    client = MlflowClient(uri)
    tags = client.get_run(result.parent_run_id).data.tags
    own = verdict_for(result)
    assert own.factors == ("lr", "width")  # the hypothesis names them
    # `expected:` is a rule, so orchestrator.sweep confirmed the verdict on fresh seeds:
    # a sweep of its own, the judged config and the baseline 3 times each, in full.
    verdict = result.verdict
    assert tags["orch.verdict"] == verdict.status in ("confirmed", "refuted", "inconclusive")
    assert tags["orch.verdict_reason"] == verdict.reason
    assert tags["orch.verdict_before_confirmation"] == own.status
    confirmation = client.search_runs(
        [result.experiment_id], f"tags.`orch.sweep_id` = '{tags['orch.confirmation_sweep_id']}'")
    trials = [r for r in confirmation if r.data.tags.get("orch.role") != "sweep"]
    assert len(trials) == 6 and all(r.info.status == "FINISHED" for r in trials)
    assert {r.data.tags.get("orch.outcome") for r in trials} == {"completed"}
    if verdict.comparison is not None:
        assert "Confirmed on fresh seeds" in verdict.reason


def test_report_is_one_self_contained_page_that_renders(swept, tmp_path) -> None:
    from _browser import CHROMIUM

    from orchestrator.method import REPORT_SECTIONS

    result, uri, _ = swept
    for text in ("lr looks right; width matters", "next: try dropout"):
        res = cli("note", result.sweep_id, text, "--tracking-uri", uri)
        assert res.exit_code == 0, res.output
    out = tmp_path / "report.html"
    res = cli("report", result.sweep_id, "--out", str(out), "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert "logged" in res.output
    page = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)  # nothing external
    assert "<script" not in page
    for sid in REPORT_SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    assert "next: try dropout" in page and "This section could not be built" not in page
    assert page.count("data:image/png;base64,") >= 8  # curves, gradients, confusion, plots
    stopped = [r.trial_id for r in result.records if r.outcome == "early_stopped"]
    assert stopped, "ASHA stopped no trial: the early-stopped checks below test nothing"
    for tid in stopped:  # drawn from the points MLflow recorded, like every other trial
        assert f"{tid} (early_stopped)" in page

    from mlflow import MlflowClient

    arts = {a.path for a in MlflowClient(uri).list_artifacts(result.parent_run_id)}
    assert "report.html" in arts

    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    pytest.importorskip("aiohttp")
    shot = tmp_path / "report.png"
    seen = _open_in_chromium(out, shot, tmp_path)
    assert seen["errors"] == [], seen["errors"]
    assert sorted(seen["sections"]) == sorted(REPORT_SECTIONS)
    assert seen["images"] and all(w > 0 for w in seen["images"]), seen["images"]
    assert shot.stat().st_size > 20_000
    print(f"report: {out}  screenshot: {shot}")


def _open_in_chromium(html: Path, shot: Path, tmp: Path) -> dict:
    from _browser import Page, start_chromium, stop_chromium

    profile = tmp / "chromium-profile"
    profile.mkdir()
    proc, port = start_chromium(profile)

    async def browse() -> dict:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                target = next(t for t in await resp.json() if t.get("type") == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                for domain in ("Page", "Runtime", "Log"):
                    await page.call(f"{domain}.enable")
                await page.call("Emulation.setDeviceMetricsOverride", width=1280, height=4000,
                                deviceScaleFactor=1, mobile=False)
                await page.call("Page.navigate", url=html.resolve().as_uri())
                await page.wait_for("document.readyState === 'complete' && "
                                    "[...document.images].every(i => i.complete)", "the page")
                sections = await page.js("[...document.querySelectorAll('section')]"
                                         ".map(s => s.id)")
                images = await page.js("[...document.images].map(i => i.naturalWidth)")
                await asyncio.sleep(0.3)
                await page.js("1")  # drain events that arrived meanwhile
                await page.screenshot(shot)
                return {"sections": sections, "images": images, "errors": page.errors}

    try:
        return asyncio.run(asyncio.wait_for(browse(), timeout=60))
    finally:
        stop_chromium(proc)


def test_compare_says_whether_the_splits_match(swept) -> None:
    from mlflow import MlflowClient

    result, uri, _ = swept
    best, base = result.best.trial_id, result.baseline.trial_id
    res = cli("compare", best, base, "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert "same data split" in res.output and "val_loss" in res.output
    assert "width" in res.output or "lr" in res.output  # config differences listed
    assert "A − B" in res.output and "paired t-test over the folds" in res.output
    client = MlflowClient(uri)
    runs = client.search_runs([result.experiment_id], f"tags.`orch.trial_id` = '{base}'")
    client.set_tag(runs[0].info.run_id, "orch.split_fingerprint", "0000000000000000")
    res = cli("compare", best, base, "--tracking-uri", uri)
    assert res.exit_code == 0 and "DIFFERENT" in res.output and "not comparable" in res.output


def test_reproduce_gets_the_recorded_metric_again(swept) -> None:
    from orchestrator.method import reproduce

    result, uri, _ = swept
    best = result.best
    rep = reproduce(best.trial_id, tracking_uri=uri)
    assert rep.seed == int(best.tags["seed"]) and rep.epoch == best.epochs
    assert rep.matches, (rep.recorded, rep.reproduced)
    res = cli("reproduce", best.trial_id, "--tracking-uri", uri)
    assert res.exit_code == 0 and "reproduced" in res.output, res.output


def test_confirm_reruns_the_judged_config_on_fresh_seeds(swept) -> None:
    from mlflow import MlflowClient

    from orchestrator.method import confirm

    result, uri, root = swept
    verdict = confirm(result, seeds=2, tracking_uri=uri, storage_path=str(root / "ray"))
    assert verdict.reason.startswith("Confirmed on fresh seeds (sweep ")
    assert verdict.status in ("confirmed", "refuted", "inconclusive")
    tags = MlflowClient(uri).get_run(result.parent_run_id).data.tags
    assert tags["orch.verdict"] == verdict.status
    assert tags["orch.confirmation_sweep_id"] in verdict.reason
