"""The store, as the method layer and the CLI ask for it: runs, histories, texts, tags.

A small facade over ``MlflowClient`` so that nothing outside this package touches
MLflow: :class:`Store` reads what the recorder wrote and writes what the method
commands add (notes, reports, ablation tables, an LR range test's own run).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import TrackingError

__all__ = ["Store", "read_histories", "resumable_sweep"]

HISTORY_READERS = 10  # metric histories read at once from a tracking server (MLflow's pool)
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
_RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class Store:
    """One tracking store (a URI); every read and write orch's commands make."""

    def __init__(self, tracking_uri: str | None, *, create: bool = False) -> None:
        """``create``: a store that is not there yet is made (writing); by default reading
        a store that does not exist is an error that says so."""
        from orchestrator.tracking._recorder import (
            QUIET_RUN_LINKS,
            _sqlite_init_lock,
            resolve_tracking_uri,
        )
        from orchestrator.tracking._review import _client

        # Artifact downloads (spec, confusion matrix) are tiny: no progress bars.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault(*QUIET_RUN_LINKS)  # no "View run ..." lines from MLflow
        self.uri = resolve_tracking_uri(tracking_uri)
        if create:
            from mlflow import MlflowClient

            with _sqlite_init_lock(self.uri):  # a new SQLite store's tables, made once
                self.client = MlflowClient(tracking_uri=self.uri)
                self.client.search_experiments(max_results=1)
        else:
            self.client = _client(self.uri)

    # -- runs ------------------------------------------------------------------------

    def run(self, run_id: str) -> Any:
        return self.client.get_run(run_id)

    def find_run(self, ref: str) -> Any:
        """The run ``ref`` names: an MLflow run id, else a unique ``orch.trial_id``."""
        from orchestrator.tracking._review import _experiments, _search

        ref = (ref or "").strip()
        if _RUN_ID_RE.match(ref):
            try:
                return self.client.get_run(ref)
            except Exception:  # noqa: BLE001 - fall through to the trial id lookup
                pass
        exps = list(_experiments(self.client, self.uri))
        safe = ref.replace("'", "")
        hits = list(_search(self.client, self.uri, exps, f"tags.`orch.trial_id` = '{safe}'"))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            ids = ", ".join(h.info.run_id for h in hits[:5])
            raise TrackingError(f"trial id {ref!r} names {len(hits)} runs in {self.uri} ({ids});"
                                " pass the MLflow run id instead")
        raise TrackingError(f"no run {ref!r} in {self.uri}: neither an MLflow run id nor an "
                            "orch.trial_id of a recorded trial; list them with `orch export`")

    def trial_runs(self, sweep: Any) -> list[Any]:
        """The sweep's trial and baseline runs (its parent's children), in trial order."""
        from orchestrator.tracking._review import _trial_runs

        return _trial_runs(self.client, self.uri, sweep)

    def history(self, run_id: str, metric: str) -> list[Any]:
        """Every point of ``metric`` (``.step``, ``.value``, ``.timestamp``), by step."""
        return sorted(self.client.get_metric_history(run_id, metric),
                      key=lambda m: (m.step, m.timestamp))

    def histories(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
        """:meth:`history` of every ``(run_id, metric)``, read at once (see
        :func:`read_histories`)."""
        return read_histories(self.client, self.uri, pairs)

    # -- artifacts ---------------------------------------------------------------------

    def text(self, run_id: str, path: str) -> str | None:
        """A text artifact of the run, or None when it has none by that name."""
        with tempfile.TemporaryDirectory(prefix="orch-artifact-") as folder:
            try:
                local = self.client.download_artifacts(run_id, path, folder)
            except Exception:  # noqa: BLE001 - no such artifact (or no artifact store)
                return None
            return Path(local).read_text(encoding="utf-8")

    def effective_spec(self, parent_run_id: str) -> dict[str, Any] | None:
        from orchestrator.tracking._recorder import EFFECTIVE_SPEC

        text = self.text(parent_run_id, EFFECTIVE_SPEC)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    def experiment_tags(self, experiment_id: str) -> dict[str, str]:
        return dict(self.client.get_experiment(experiment_id).tags)

    # -- writes ------------------------------------------------------------------------

    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_experiment_tag(experiment_id, key, str(value))

    def save_ui_view(self, sweep: Any) -> str:
        """Save the reviewer's view on the sweep's experiment (the MLflow UI's shared view
        ``orch``: the sweep's metric, outcome, diagnosis and the parameters its trials
        vary as columns, best first) and mark the experiment as model development;
        returns the UI route that opens it (see :func:`._review.ui_address`)."""
        from orchestrator.tracking._recorder import EXPERIMENT_KIND, EXPERIMENT_KIND_ML
        from orchestrator.tracking._review import UI_VIEW_TAG, ui_view_state

        runs = self.trial_runs(sweep)
        keys = sorted({k for r in runs for k in r.data.params})
        varied = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]
        extra = [m for m in ("val_acc", "train_loss", "val_loss")
                 if any(m in r.data.metrics for r in runs)]
        view = ui_view_state(metric=sweep.metric, goal=sweep.goal, params=varied, metrics=extra)
        tags = self.experiment_tags(sweep.experiment_id)
        wanted = {UI_VIEW_TAG: view}
        if EXPERIMENT_KIND not in tags:
            wanted[EXPERIMENT_KIND] = EXPERIMENT_KIND_ML
        if any(tags.get(k) != v for k, v in wanted.items()):
            self.set_experiment_tags(sweep.experiment_id, wanted)
        return view

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), MAX_TAGS_PER_BATCH):
            self.client.log_batch(run_id, tags=items[i:i + MAX_TAGS_PER_BATCH])

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_file(self, run_id: str, path: str | Path, name: str | None = None) -> None:
        """Log a file, under ``name`` when given (the file is copied to that name)."""
        path = Path(path)
        if name and path.name != name:
            named = Path(tempfile.mkdtemp(prefix="orch-artifact-")) / name
            named.write_bytes(path.read_bytes())
            path = named
        self.client.log_artifact(run_id, str(path))

    def record_run(self, *, experiment: str, run_name: str, tags: Mapping[str, str],
                   params: Mapping[str, Any] = {},
                   metrics: Iterable[tuple[str, float, int]] = (),
                   texts: Mapping[str, str] = {}, files: Sequence[tuple[Path, str]] = (),
                   ) -> str:
        """One finished run of its own (an LR range test, say): FINISHED, or FAILED if a
        write fails; never left RUNNING. Returns its id."""
        from mlflow.entities import Metric, Param

        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(
            experiment)
        run = self.client.create_run(exp_id, run_name=run_name,
                                     tags={k: v for k, v in tags.items() if v})
        run_id = run.info.run_id
        try:
            items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
                self.client.log_batch(run_id, params=items[i:i + MAX_PARAMS_PER_BATCH])
            now = int(time.time() * 1000)
            points = [Metric(k, float(v), now, int(step)) for k, v, step in metrics]
            for i in range(0, len(points), MAX_METRICS_PER_BATCH):
                self.client.log_batch(run_id, metrics=points[i:i + MAX_METRICS_PER_BATCH])
            for name, text in texts.items():
                self.client.log_text(run_id, text, name)
            for path, name in files:
                self.log_file(run_id, path, name)
        except BaseException:
            self.client.set_terminated(run_id, status="FAILED")  # never left RUNNING
            raise
        self.client.set_terminated(run_id, status="FINISHED")
        return run_id


def resumable_sweep(ref: str | None, *, name: str | None, tracking_uri: str
                    ) -> tuple[Any, str, dict[str, Any]]:
    """``(sweep, its Ray Tune folder, its recorded effective spec)`` of a sweep that can be
    resumed: named by ``ref`` (id, prefix, name), else the newest unfinished one called
    ``name``. Raises :class:`TrackingError` saying why a sweep cannot be resumed."""
    from orchestrator.tracking._review import find_sweep, list_sweeps, storage_exists

    if ref is not None:
        sweep = find_sweep(ref, tracking_uri=tracking_uri)
    else:
        found = [x for x in list_sweeps(tracking_uri=tracking_uri)
                 if x.name == name and x.status != "finished"]
        if not found:
            raise TrackingError(f"no interrupted sweep named {name!r} in {tracking_uri}; run it "
                                "without --resume")
        sweep = found[0]
    if sweep.status == "finished":
        raise TrackingError(f"sweep {sweep.sweep_id} finished; nothing to resume")
    store = Store(tracking_uri)
    try:
        path = store.run(sweep.parent_run_id).data.tags.get("orch.storage", "")
        stored = store.effective_spec(sweep.parent_run_id)
    except Exception as exc:  # noqa: BLE001 - the store answered, but not with these records
        raise TrackingError(f"sweep {sweep.sweep_id} cannot be resumed from {tracking_uri}: "
                            f"{type(exc).__name__}: {exc}") from exc
    if not path or not storage_exists(path):
        raise TrackingError(f"sweep {sweep.sweep_id}: its Ray Tune folder {path or '(unknown)'} "
                            "is gone, so its trials cannot be restored")
    if stored is None:
        raise TrackingError(f"sweep {sweep.sweep_id} has no recorded effective spec "
                            "(spec.effective.json), so it cannot be resumed exactly")
    return sweep, path, stored


def read_histories(client: Any, uri: str, pairs: Iterable[tuple[str, str]],
                   ) -> dict[tuple[str, str], list[Any]]:
    """``{(run_id, metric): points by step}`` for every pair.

    MLflow's public client reads one history per call: through a tracking server that is
    one HTTP round trip per run per metric, so they are made ``HISTORY_READERS`` at a time
    (the server answers them in parallel); a local store is read in turn. The first read
    that fails raises, naming the run and metric.
    """
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.tracking._review import _wrap

    wanted = list(dict.fromkeys(pairs))

    def one(pair: tuple[str, str]) -> list[Any]:
        run_id, metric = pair
        try:
            points = client.get_metric_history(run_id, metric)
        except Exception as exc:  # noqa: BLE001 - said with the store and what was read
            raise _wrap(uri, f"read metric history {metric!r} of run {run_id}", exc) from exc
        return sorted(points, key=lambda m: (m.step, m.timestamp))

    remote = uri.startswith(("http://", "https://"))
    if not remote or len(wanted) < 2:
        return {pair: one(pair) for pair in wanted}
    pool = ThreadPoolExecutor(max_workers=_readers(), thread_name_prefix="orch-history")
    try:
        futures = [pool.submit(one, pair) for pair in wanted]
        return {pair: future.result() for pair, future in zip(wanted, futures)}
    finally:  # after a failure, the reads not yet started are not made (each may retry)
        pool.shutdown(wait=True, cancel_futures=True)


def _readers() -> int:
    """No more reads at once than MLflow's HTTP session keeps connections for."""
    from mlflow.environment_variables import MLFLOW_HTTP_POOL_MAXSIZE

    try:
        return max(1, min(HISTORY_READERS, int(MLFLOW_HTTP_POOL_MAXSIZE.get())))
    except (TypeError, ValueError):
        return HISTORY_READERS
