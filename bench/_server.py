"""Case ``server``: tracking through ``mlflow server``: HTTP calls per trial, export and report.

    python bench/run.py server [--full | --smoke]

An MLflow server is started on 127.0.0.1 over a SQLite store (``orchestrator.tracking.
serve_ui``), and every HTTP request this process makes is counted by endpoint (by
wrapping ``requests.Session.request``, which all of MLflow's REST and artifact calls go
through). Then:

1. a sweep of ``n`` trials (``bench._trainables:curves``: 5 epochs of 4 metrics each),
   2 slots, tracking on through the server: HTTP calls per trial, by endpoint;
2. ``export_sweep`` and ``build_report`` of that sweep through the server, in this
   process: wall time and calls by endpoint; and ``orch export`` / ``orch report`` as
   users run them (fresh processes: imports included);
3. the same reads done the batched way MLflow 3.17's server already offers, as
   bench/README.md proposes for ``orchestrator/tracking``: one ``search_runs`` page per
   1000 runs (latest value *and step* of every metric), then the metric histories with
   ``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk`` (100 runs and one metric per
   call), checked to give exactly the points ``export_sweep`` wrote.
"""

from __future__ import annotations

import collections
import cProfile
import os
import pstats
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench._common import ROOT, orch_sweep, pick, simple_spec, table

BULK_RUNS = 100  # the server's limit of run ids per get-history-bulk call
BULK_POINTS = 25_000  # ... and of points per call


class Calls:
    """Counts this process's HTTP requests by (method, path), while ``on``."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.lock = threading.Lock()
        self.original: Any = None

    def __enter__(self) -> Calls:
        import requests.sessions

        self.original = requests.sessions.Session.request
        calls = self

        def request(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            parsed = urlparse(url)
            path = parsed.path
            if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
                path = f"{parsed.hostname}{path} (not the server)"
            for part in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/", "/api/2.0/"):
                if part in path:
                    path = path.split(part, 1)[1]
                    path = ("artifacts/..." if path.startswith("mlflow-artifacts")
                            else path)
                    break
            with calls.lock:
                calls.counts[(method.upper(), path)] += 1
            return calls.original(session, method, url, *args, **kwargs)

        requests.sessions.Session.request = request
        return self

    def __exit__(self, *exc: object) -> None:
        import requests.sessions

        requests.sessions.Session.request = self.original

    def snapshot(self) -> collections.Counter[tuple[str, str]]:
        with self.lock:
            return collections.Counter(self.counts)


def by_endpoint(counts: collections.Counter, per: float = 1.0) -> list[dict[str, Any]]:
    return [{"method": m, "endpoint": p, "calls": c, "per_trial": c / per}
            for (m, p), c in counts.most_common()]


WATCHED = ("get_metric_history", "search_runs", "get_run", "download_artifacts",
           "savefig", "print_png", "_importance", "get_param_importances", "plot_",
           "_figure", "_png", "figure", "render", "section")  # names worth a line


def where_time_goes(prof: cProfile.Profile, total: float) -> list[dict[str, Any]]:
    """Cumulative seconds of the functions that explain a read: HTTP calls, figures, orch's
    own report sections (cProfile; its overhead inflates pure-Python parts a little)."""
    stats = pstats.Stats(prof)
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        own = "/orchestrator/" in filename
        if ct < 0.05 * total or not (own or any(w in func for w in WATCHED)):
            continue
        where = filename.split("/orchestrator/", 1)[1] if own else filename.rsplit(
            "site-packages/", 1)[-1]
        rows.append({"function": f"{func} ({where}:{line})", "calls": nc,
                     "cumulative_s": ct, "share": ct / total})
    rows.sort(key=lambda r: -r["cumulative_s"])
    return rows[:14]


# ----------------------------------------------------------------------------- batched reads


def bulk_histories(uri: str, run_ids: list[str], keys: list[str]) -> list[tuple]:
    """Every point of ``keys`` for ``run_ids``: one get-history-bulk call per 100 runs per key."""
    from mlflow import MlflowClient
    from mlflow.utils.rest_utils import http_request

    creds = MlflowClient(tracking_uri=uri)._tracking_client.store.get_host_creds()
    rows = []
    for key in keys:
        for i in range(0, len(run_ids), BULK_RUNS):
            chunk = run_ids[i:i + BULK_RUNS]
            resp = http_request(creds, "/ajax-api/2.0/mlflow/metrics/get-history-bulk", "GET",
                                params={"run_id": chunk, "metric_key": key,
                                        "max_results": BULK_POINTS})
            resp.raise_for_status()
            points = resp.json().get("metrics", [])
            if len(points) >= BULK_POINTS:  # a real reader splits the chunk; here: say so
                raise RuntimeError("get-history-bulk hit its point limit: use fewer runs")
            rows += [(p["run_id"], key, int(p["step"]), float(p["value"]), int(p["timestamp"]))
                     for p in points]
    return rows


def batched_read(uri: str, experiment_id: str, parent_run_id: str) -> dict[str, Any]:
    """What export and report need, read the batched way: runs (latest metric values and
    steps) in pages of 1000, histories 100 runs per call."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = "
                                  f"'{parent_run_id}'", max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    # The report's "epochs run" per trial: the latest step of its metric, from search_runs.
    steps = {r.info.run_id: max((m.step for m in r.data._metric_objs), default=0) for r in runs}
    keys = sorted({k for r in runs for k in r.data.metrics})
    points = bulk_histories(uri, [r.info.run_id for r in runs], keys)
    return {"runs": len(runs), "keys": keys, "points": points, "steps": steps}


# ----------------------------------------------------------------------------- case


def cli(args: list[str], cwd: Path) -> float:
    exe = [sys.executable, "-c", "from orchestrator.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(exe + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"orch {' '.join(args)} failed: {proc.stderr[-600:]}")
    return wall


def case_server(size: str, work: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from bench import _trainables as T
    from bench._common import fresh_store
    from orchestrator.method import build_report
    from orchestrator.tracking import export_sweep, serve_ui

    n = pick(size, 4, 500, 2000)
    epochs = 5
    store = fresh_store(work, "server")
    server = serve_ui(tracking_uri=store, port=0, log_path=work / "server.log")
    out: dict[str, Any] = {"trials": n}
    try:
        uri = server.url
        with Calls() as calls:
            spec = simple_spec("server", n, metric="val_loss", max_concurrent=2,
                               params={"x": {"min": 0.0, "max": 1.0},
                                       "epochs": {"value": epochs}})
            t0 = time.perf_counter()
            res, wall = orch_sweep(spec, work=work, trainable=T.curves, uri=uri)
            sweep_counts = calls.snapshot()
            out["sweep"] = {"wall_s": wall, "fit_s": res.wall_s, "problems": res.tracking_problems,
                            "completed": res.counts["completed"],
                            "calls": sum(sweep_counts.values()),
                            "per_trial": sum(sweep_counts.values()) / n,
                            "endpoints": by_endpoint(sweep_counts, n)}
            reads: dict[str, Any] = {}

            def one_at_a_time() -> Any:  # the export as it read before: a history per call
                from orchestrator.tracking import _store

                kept, _store.HISTORY_READERS = _store.HISTORY_READERS, 1
                try:
                    return export_sweep(res.sweep_id, tracking_uri=uri,
                                        out_dir=work / "export-serial")
                finally:
                    _store.HISTORY_READERS = kept

            for name, fn in (
                    ("export_sweep, one read at a time", one_at_a_time),
                    ("export_sweep", lambda: export_sweep(res.sweep_id, tracking_uri=uri,
                                                          out_dir=work / "export")),
                    ("build_report", lambda: build_report(res.sweep_id, tracking_uri=uri)),
                    ("batched (search_runs + get-history-bulk)",
                     lambda: batched_read(uri, res.experiment_id, res.parent_run_id))):
                before = calls.snapshot()
                prof = cProfile.Profile()
                t0 = time.perf_counter()
                value = prof.runcall(fn)
                took = time.perf_counter() - t0
                diff = calls.snapshot() - before
                reads[name] = {"wall_s": took, "calls": sum(diff.values()),
                               "endpoints": by_endpoint(diff, n), "value": value,
                               "profile": where_time_goes(prof, took)}
        # The batched read gives exactly what the export wrote.
        metrics = pq.read_table(work / "export" / "metrics.parquet").to_pydict()
        exported = sorted(zip(metrics["run_id"], metrics["metric"], metrics["step"],
                              metrics["value"]))
        batched = reads["batched (search_runs + get-history-bulk)"]["value"]
        same = exported == sorted((r, k, s, v) for r, k, s, v, _ in batched["points"])
        out["batched_matches_export"] = same
        out["points"] = len(exported)
        out["cli"] = {} if size == "smoke" else {  # users' commands, imports included
            "orch export": cli(["export", res.sweep_id, "--out", str(work / "cli-export"),
                                "--tracking-uri", uri], work),
            "orch report": cli(["report", res.sweep_id, "--out", str(work / "report.html"),
                                "--tracking-uri", uri], work)}
        for r in reads.values():
            r.pop("value", None)
        out["reads"] = reads
    finally:
        server.stop()
    sw = out["sweep"]
    text = (f"server: {n} trials x {epochs} epochs x 4 metrics, 2 slots, tracking through "
            f"`mlflow server` (SQLite behind it, {server.url}): sweep {sw['wall_s']:.1f} s, "
            f"{sw['calls']} HTTP calls = {sw['per_trial']:.2f} per trial; problems: "
            f"{sw['problems'] or 'none'}\n")
    text += table("server: HTTP calls of the sweep, by endpoint", sw["endpoints"],
                  ["method", "endpoint", "calls", "per_trial"])
    rows = [{"read": k, "wall_s": v["wall_s"], "calls": v["calls"],
             "calls_per_trial": v["calls"] / n} for k, v in out["reads"].items()]
    rows += [{"read": f"{k} (CLI, fresh process)", "wall_s": v} for k, v in out["cli"].items()]
    text += "\n\n" + table(f"server: reading the {n}-trial sweep back through the server "
                           f"({out['points']} metric points; batched read gives the same "
                           f"points as the export: {out['batched_matches_export']})", rows,
                           ["read", "wall_s", "calls", "calls_per_trial"])
    for k, v in out["reads"].items():
        text += "\n\n" + table(f"server: calls of {k}, by endpoint", v["endpoints"][:8],
                               ["method", "endpoint", "calls", "per_trial"])
        text += "\n" + table(f"server: where the time of {k} goes (cProfile, cumulative)",
                              v["profile"], ["function", "calls", "cumulative_s", "share"])
    out["text"] = text
    return out
