"""End-to-end: serve_ui over a recorded store, browsed with headless Chromium.

Chromium is driven over the DevTools protocol (``--remote-debugging-port=0``,
port read from ``<user-data-dir>/DevToolsActivePort``) with aiohttp's websocket
client — aiohttp is already a dependency of mlflow, so nothing new is needed.
The MLflow UI is a React app: we wait for the rows to be in the DOM, expand the
sweep's parent run, add the ``val_loss`` column through the "Columns" menu, and
check the nested trial rows and their values. A screenshot is kept as
``<tmp_path>/runs.png``.

Needs: ``apt-get install -y chromium`` (Debian); skipped when Chromium is absent.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import TrackingError
from orchestrator.tracking._review import serve_ui

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CHROMIUM = os.environ.get("ORCH_CHROMIUM") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


def _load_review_tests():
    """test_review.py's store builder, loaded by path (works with any pytest import mode)."""
    path = Path(__file__).with_name("test_review.py")
    spec = importlib.util.spec_from_file_location("_orch_test_review_store", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


review_tests = _load_review_tests()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-store")
    uri, sweeps = review_tests.build_store(root)
    server = serve_ui(tracking_uri=uri, port=0, timeout_s=60, log_path=root / "mlflow-ui.log")
    try:
        yield server, uri, sweeps
    finally:
        server.stop()


def test_serve_ui_answers_and_stops(ui):
    import urllib.request

    server, uri, sweeps = ui
    assert server.url.startswith("http://127.0.0.1:") and server.running
    body = json.dumps({"experiment_ids": [sweeps[0].experiment_id], "filter": "tags.`orch.role` = 'sweep'"})
    req = urllib.request.Request(
        server.url + "/api/2.0/mlflow/runs/search", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        runs = json.load(resp)["runs"]
    assert {r["info"]["run_id"] for r in runs} == {sweeps[0].parent_run_id, sweeps[1].parent_run_id}
    # a second server on the same port is refused with a clear message, before starting anything
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(TrackingError, match="already listens"):
        serve_ui(tracking_uri=uri, port=port)


# ------------------------------------------------------------------ DevTools protocol


class DevTools:
    """Just enough of the Chrome DevTools protocol: call a method, evaluate JS, wait for JS."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params):
        msg_id = next(self.ids)
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:  # skip events until our answer
            msg = await self.ws.receive_json()
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expression: str):
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"JS error in {expression!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout_s: float = 20.0):
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} ({expression})")
            await asyncio.sleep(0.25)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


def _start_chromium(profile: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1920,1080",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"chromium exited with code {proc.returncode} before opening DevTools")
        text = port_file.read_text() if port_file.exists() else ""
        if text.strip():
            return proc, int(text.split()[0])
        time.sleep(0.05)
    _stop(proc)
    raise AssertionError(f"chromium did not write {port_file} within 20 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def _q(s: str) -> str:
    return json.dumps(s)  # a JS string literal


async def _browse(devtools_port: int, url: str, sweep, other, shot: Path) -> dict:
    import aiohttp

    parent = sweep.parent_run_id
    children = sweep.run_ids  # trial id -> run id
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = DevTools(ws)
            await cdp.call("Page.enable")
            await cdp.call("Runtime.enable")
            await cdp.call(
                "Emulation.setDeviceMetricsOverride", width=1920, height=1080, deviceScaleFactor=1, mobile=False
            )
            await cdp.call("Page.navigate", url=url)
            try:
                link = f"document.querySelector({_q(f'a[href$={chr(34)}/runs/{parent}{chr(34)}]')})"
                await cdp.wait_for(f"!!{link}", "the sweep's parent run row")
                before = await cdp.js("document.body.innerText")

                # expand the parent run: the icon button in its run-name cell
                clicked = await cdp.js(
                    f"(() => {{ const a = {link}; const cell = a && a.closest('[role=gridcell]');"
                    " const b = cell && cell.querySelector('button'); if (!b) return false; b.click(); return true; })()"
                )
                assert clicked, "no expand button in the parent run's name cell"
                first = next(iter(children))
                await cdp.wait_for(
                    f"document.body.innerText.includes({_q(first)})", f"trial run {first} after expanding"
                )

                # add the val_loss metric column through the "Columns" menu
                await cdp.js(
                    "[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Columns').click()"
                )
                await cdp.wait_for("!!document.querySelector('[title=\"val_loss\"]')", "val_loss in the Columns menu")
                await cdp.js(
                    "(() => { const n = document.querySelector('[title=\"val_loss\"]')"
                    ".closest('[class*=\"tree-treenode\"]'); n.querySelector('[class*=\"tree-checkbox\"]').click(); })()"
                )
                col = "metrics.`val_loss`"
                await cdp.wait_for(
                    f"!!document.querySelector('.ag-header-cell[col-id=' + {_q(json.dumps(col))} + ']')",
                    "the val_loss column header",
                )
                for kind in ("keyDown", "keyUp"):  # close the menu
                    await cdp.call(
                        "Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27
                    )
                await asyncio.sleep(0.5)
                rows = await cdp.js(
                    "JSON.stringify([...document.querySelectorAll('[role=row][row-id]')].map(r => ["
                    " r.getAttribute('row-id'), Number(r.getAttribute('row-index')),"
                    " r.innerText.split(String.fromCharCode(10)).join(' '),"
                    f" (r.querySelector('[col-id=' + {_q(json.dumps(col))} + ']') || {{}}).innerText || null]))"
                )
                headers = await cdp.js(
                    "[...document.querySelectorAll('.ag-header-cell')].map(e => e.innerText.trim()).join('|')"
                )
                text = await cdp.js("document.body.innerText")
            finally:
                await cdp.screenshot(shot)
    return {"before": before, "rows": json.loads(rows), "headers": headers, "text": text, "other": other}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_runs_page_nests_trials_under_sweep(ui, tmp_path):
    pytest.importorskip("aiohttp", reason="aiohttp (an mlflow dependency) drives Chromium over DevTools")
    server, _, sweeps = ui
    sweep, other = sweeps[0], sweeps[1]  # both in experiment mnist-mlp
    url = f"{server.url}/#/experiments/{sweep.experiment_id}/runs"
    shot = tmp_path / "runs.png"

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    proc, port = _start_chromium(profile)
    try:
        seen = asyncio.run(asyncio.wait_for(_browse(port, url, sweep, other, shot), timeout=60))
    finally:
        _stop(proc)

    assert shot.is_file() and shot.stat().st_size > 10_000, f"no usable screenshot at {shot}"

    # collapsed at first: parents listed, trials hidden
    assert sweep.name in seen["before"]
    assert not any(t in seen["before"] for t in sweep.run_ids)

    # ag-grid renders pinned and scrolling parts as separate rows with the same row-id; merge them
    rows: dict[str, dict] = {}
    for run_id, index, text, value in seen["rows"]:
        row = rows.setdefault(run_id, {"index": index, "text": "", "val_loss": None})
        row["text"] += " " + text
        row["val_loss"] = row["val_loss"] or value
    assert sweep.parent_run_id in rows and sweep.name in rows[sweep.parent_run_id]["text"]

    # every trial is a row right beneath its parent, with its final val_loss
    p = rows[sweep.parent_run_id]["index"]
    child_idx = sorted(rows[rid]["index"] for rid in sweep.run_ids.values())
    assert child_idx == list(range(p + 1, p + 1 + len(sweep.run_ids))), rows
    for i, trial in enumerate(sweep.trials):
        row = rows[sweep.run_ids[trial.trial_id]]
        assert trial.trial_id in row["text"]
        expected = review_tests._val_loss(i, trial.epochs - 1)
        assert row["val_loss"] is not None and float(row["val_loss"]) == pytest.approx(expected, abs=1e-3)
    assert "val_loss" in seen["headers"]

    # the other sweep in the same experiment stays collapsed
    assert other.parent_run_id in rows
    assert not any(t in seen["text"] for t in other.run_ids)


# ------------------------------------------------------------------ the address orch prints


async def _open(devtools_port: int, url: str, shot: Path, ready: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as resp:
            page = next(t for t in await resp.json() if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = DevTools(ws)
            await cdp.call("Page.enable")
            await cdp.call("Runtime.enable")
            await cdp.call("Emulation.setDeviceMetricsOverride", width=1600, height=900,
                           deviceScaleFactor=1, mobile=False)
            await cdp.call("Page.navigate", url=url)
            try:
                ok = True
                try:
                    await cdp.wait_for(ready, "the runs table", timeout_s=25)
                except AssertionError:
                    ok = False
                await asyncio.sleep(1.0)
                headers = await cdp.js(
                    "[...document.querySelectorAll('.ag-header-cell')].map(e => e.innerText.trim())"
                    ".join('|')")
                text = await cdp.js("document.body.innerText")
                href = await cdp.js("location.href")
            finally:
                await cdp.screenshot(shot)
    return {"ok": ok, "headers": headers or "", "text": text or "", "href": href}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_address_orch_ui_prints_opens_on_the_runs_with_the_reviewers_columns(ui, tmp_path):
    pytest.importorskip("aiohttp")
    from orchestrator.cli._records import ui_lines

    server, uri, sweeps = ui
    lines = ui_lines(server.url, uri)
    assert all("workflowType=machine_learning" in line for line in lines), lines
    newest = next(s for s in sweeps if s.sweep_id == "b41d09e2c5f8")  # started last
    url = lines[-1].rsplit(" ", 1)[-1]
    assert f"#/experiments/{newest.experiment_id}/runs?" in url
    profile = tmp_path / "profile"
    profile.mkdir()
    proc, port = _start_chromium(profile)
    shot = tmp_path / "orch-ui.png"
    ready = f"!!document.querySelector('a[href$=\"/runs/{newest.parent_run_id}\"]')"
    try:
        seen = asyncio.run(asyncio.wait_for(_open(port, url, shot, ready), timeout=60))
    finally:
        _stop(proc)
    print(f"screenshot: {shot}")
    assert seen["ok"], (seen["href"], seen["text"][:500])
    assert "Traces" not in seen["headers"]
    # the reviewer's columns: the metric, the outcome, the parameters the trials vary
    for column in ("val_loss", "orch.outcome", "lr", "model.width"):
        assert column in seen["headers"], seen["headers"]
    assert "Source" not in seen["headers"] and "Models" not in seen["headers"]
