"""The read side of sweep tracking: list, find, export and browse recorded sweeps.

Everything here reads what the recorder (``_recorder.py``) wrote into MLflow,
following its contract:

* one **parent run** per sweep, tagged ``orch.role=sweep`` plus ``orch.sweep_id``,
  ``orch.sweep_name``, ``orch.metric``, ``orch.goal``, ``orch.status`` …; when the
  sweep ends it also carries ``orch.best_trial_id`` and the metrics
  ``best_<metric>``, ``trials_completed``, ``trials_early_stopped``,
  ``trials_failed`` and ``trials_total``;
* one **child run** per trial (``mlflow.parentRunId`` = the parent's run id,
  ``orch.role`` = ``trial`` or ``baseline``, ``orch.trial_id``, ``orch.outcome`` …),
  whose params are the trial's config (nested keys dotted) and whose metrics
  are logged with ``step`` = epoch.

Only :class:`mlflow.MlflowClient`, pyarrow and the standard library are used;
nothing here needs Ray.

Cost notes
----------
* :func:`list_sweeps` is one paged ``search_runs`` over all active experiments
  (plus one paged query for the trials of sweeps that have no final counts yet,
  i.e. still running or cut off).
* :func:`export_sweep` pages the sweep's child runs with one query, then calls
  ``get_metric_history`` once **per run per metric key** (MLflow's public client has
  no bulk read): with a remote tracking server that is ``trials × metrics`` HTTP
  requests, made 10 at a time (``_store.read_histories``; figures in bench/README.md,
  case ``server``).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import unquote, urlparse

from orchestrator.errors import TrackingError
from orchestrator.tracking._server import LocalServer, free_port, port_taken, start_server

__all__ = [
    "EXPORT_SCHEMA",
    "OUTCOMES",
    "SweepNotFoundError",
    "SweepSummary",
    "UIServer",
    "export_sweep",
    "find_sweep",
    "list_sweeps",
    "serve_ui",
    "ui_address",
    "ui_command",
    "ui_view_state",
]

# The outcomes a trial run can carry in ``orch.outcome``, in display order: the engine's.
# (From its records module, not the package: the package's run_sweep reaches tracking.)
from orchestrator.engine._records import OUTCOMES  # noqa: E402

_PAGE = 1000  # rows per search_runs page
_SWEEP_FILTER = "tags.`orch.role` = 'sweep'"
_TRIAL_FILTER = "tags.`orch.sweep_id` IS NOT NULL AND tags.`orch.role` != 'sweep'"


class SweepNotFoundError(TrackingError):
    """No recorded sweep matches the reference (or it matches several)."""


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class SweepSummary:
    """One recorded sweep, as read back from its MLflow parent run.

    ``status`` is the recorder's ``orch.status`` tag (``running``, ``finished``,
    ``killed``, ``failed``), falling back to the MLflow run status lower-cased.
    ``trials`` counts trials by outcome: always the keys of :data:`OUTCOMES`
    plus ``total``; a sweep still running (no final counts on its parent run yet)
    is counted from its trial runs, and trials without an outcome yet are
    counted under ``running``. For a finished sweep ``killed`` is the parent's
    ``trials_killed`` metric when recorded, else the trials that neither
    completed, stopped early nor failed (``total`` minus those).
    ``best_value`` is the parent's ``best_<metric>`` metric; while a sweep has
    none yet it is the best final value of ``metric`` among its trial runs so
    far (or ``None``).
    """

    sweep_id: str
    name: str
    experiment: str
    experiment_id: str
    started: datetime
    status: str
    trials: dict[str, int]
    metric: str
    goal: str
    best_value: float | None
    best_trial_id: str | None
    parent_run_id: str
    ended: datetime | None = None
    run_status: str = ""
    tags: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def best_metric(self) -> str:
        """Name of the parent-run metric holding the best value, e.g. ``best_val_loss``."""
        return f"best_{self.metric}" if self.metric else ""

    @property
    def hypothesis(self) -> str:
        return self.tags.get("orch.hypothesis", "")

    def describe(self) -> str:
        """One line: ``<id>  <name>  <status>  <started>``, as used in error messages."""
        when = self.started.strftime("%Y-%m-%d %H:%M:%S")
        return f"{self.sweep_id}  {self.name!r}  {self.status}  started {when} UTC  (run {self.parent_run_id})"


# --------------------------------------------------------------------------- plumbing


def _client(tracking_uri: str):
    """An MlflowClient on ``tracking_uri``, refusing to *create* a store that is not there."""
    import mlflow

    if not tracking_uri:
        raise TrackingError(
            "no tracking URI given; pass the store the sweeps were recorded in, "
            "e.g. tracking_uri='sqlite:///path/to/mlflow.db'"
        )
    db_path = _sqlite_path(tracking_uri)
    if db_path is not None and db_path != ":memory:" and not Path(db_path).is_file():
        raise TrackingError(
            f"no MLflow store at {tracking_uri}: the file {db_path} does not exist; "
            "check the path (sqlite:////abs/path has four slashes, sqlite:///rel/path three) "
            "or point to the store the sweep was recorded in"
        )
    return mlflow.MlflowClient(tracking_uri=tracking_uri)


def _sqlite_path(tracking_uri: str) -> str | None:
    if not tracking_uri.startswith("sqlite:"):
        return None
    # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db"
    rest = tracking_uri[len("sqlite:") :]
    if rest.startswith("///"):
        path = rest[3:]
    elif rest.startswith("//"):
        path = rest[2:]
    else:
        path = rest
    path = unquote(path.split("?", 1)[0])
    return path or ":memory:"


def _wrap(tracking_uri: str, what: str, exc: Exception) -> TrackingError:
    return TrackingError(
        f"could not {what} in the MLflow store {tracking_uri}: {type(exc).__name__}: {exc}; "
        "check that the tracking URI is right and the store is reachable"
    )


def _experiments(client, tracking_uri: str) -> dict[str, str]:
    """experiment_id -> name, for all active experiments (paged)."""
    out: dict[str, str] = {}
    token = None
    try:
        while True:
            page = client.search_experiments(max_results=_PAGE, page_token=token)
            for exp in page:
                out[exp.experiment_id] = exp.name
            token = page.token
            if not token:
                break
    except Exception as exc:  # noqa: BLE001 - MlflowException, SQLAlchemy, requests …
        raise _wrap(tracking_uri, "list experiments", exc) from exc
    return out


def _search(client, tracking_uri: str, experiment_ids: list[str], filter_string: str,
            order_by: list[str] | None = None) -> Iterator[Any]:
    """All runs matching ``filter_string`` in ``experiment_ids``, following page tokens."""
    if not experiment_ids:
        return
    token = None
    while True:
        try:
            page = client.search_runs(
                experiment_ids=experiment_ids,
                filter_string=filter_string,
                max_results=_PAGE,
                order_by=order_by,
                page_token=token,
            )
        except Exception as exc:  # noqa: BLE001
            raise _wrap(tracking_uri, f"search runs ({filter_string})", exc) from exc
        yield from page
        token = page.token
        if not token:
            return


def _ts(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)


def _is_better(a: float, b: float | None, goal: str) -> bool:
    if b is None:
        return True
    return a > b if goal == "maximize" else a < b


def _sweep_runs(client, tracking_uri: str) -> tuple[list[Any], dict[str, str]]:
    experiments = _experiments(client, tracking_uri)
    runs = list(
        _search(client, tracking_uri, list(experiments), _SWEEP_FILTER,
                order_by=["attributes.start_time DESC"])
    )
    runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id), reverse=True)
    return runs, experiments


def _summaries(client, tracking_uri: str, runs: list[Any], experiments: dict[str, str]) -> list[SweepSummary]:
    """Turn parent runs into summaries; count trials live for sweeps lacking final counts."""
    live = [r for r in runs if "trials_total" not in r.data.metrics]
    children: dict[str, list[Any]] = {}
    if live:
        wanted = {r.info.run_id for r in live}
        exp_ids = sorted({r.info.experiment_id for r in live})
        for child in _search(client, tracking_uri, exp_ids, _TRIAL_FILTER):
            parent = child.data.tags.get("mlflow.parentRunId")
            if parent in wanted:
                children.setdefault(parent, []).append(child)
    return [_summary(r, experiments, children.get(r.info.run_id)) for r in runs]


def _summary(run, experiments: dict[str, str], children: list[Any] | None) -> SweepSummary:
    tags = {k: v for k, v in run.data.tags.items()}
    metrics = run.data.metrics
    metric = tags.get("orch.metric", "")
    goal = tags.get("orch.goal", "minimize")
    best_trial = tags.get("orch.best_trial_id") or None
    best = metrics.get(f"best_{metric}") if metric else None

    if "trials_total" in metrics:
        total = int(metrics["trials_total"])
        trials = {o: int(metrics.get(f"trials_{o}", 0)) for o in OUTCOMES}
        if "trials_killed" not in metrics:
            # the contract records no trials_killed: whatever did not complete,
            # stop early or fail was cut off when the sweep ended
            trials["killed"] = max(0, total - sum(trials.values()))
        trials["total"] = total
    else:
        counts = Counter()
        for child in children or []:
            counts[child.data.tags.get("orch.outcome") or "running"] += 1
        trials = {o: counts.pop(o, 0) for o in OUTCOMES}
        trials.update(sorted(counts.items()))  # "running" and anything unforeseen
        trials["total"] = len(children or [])
        if best is None and metric:
            for child in children or []:
                value = child.data.metrics.get(metric)
                if value is None or not math.isfinite(value):
                    continue
                if _is_better(value, best, goal):
                    best = value
                    best_trial = child.data.tags.get("orch.trial_id") or child.info.run_name

    status = tags.get("orch.status") or (run.info.status or "").lower()
    return SweepSummary(
        sweep_id=tags.get("orch.sweep_id", ""),
        name=tags.get("orch.sweep_name") or run.info.run_name or "",
        experiment=experiments.get(run.info.experiment_id, run.info.experiment_id),
        experiment_id=run.info.experiment_id,
        started=_ts(run.info.start_time) or datetime.fromtimestamp(0, tz=timezone.utc),
        status=status,
        trials=trials,
        metric=metric,
        goal=goal,
        best_value=best,
        best_trial_id=best_trial,
        parent_run_id=run.info.run_id,
        ended=_ts(run.info.end_time),
        run_status=run.info.status or "",
        tags=tags,
    )


# --------------------------------------------------------------------------- list / find


def list_sweeps(*, tracking_uri: str) -> list[SweepSummary]:
    """Every sweep recorded in ``tracking_uri`` (all active experiments), newest first."""
    client = _client(tracking_uri)
    runs, experiments = _sweep_runs(client, tracking_uri)
    return _summaries(client, tracking_uri, runs, experiments)


def find_sweep(ref: str, *, tracking_uri: str) -> SweepSummary:
    """The sweep ``ref`` names.

    ``ref`` may be, tried in this order: a full sweep id, a parent run id, a sweep
    name (the newest sweep of that name wins), or a unique prefix of a sweep id
    or parent run id. Raises :class:`SweepNotFoundError` listing close matches
    when nothing (or more than one sweep, for a prefix) matches.
    """
    ref = (ref or "").strip()
    client = _client(tracking_uri)
    runs, experiments = _sweep_runs(client, tracking_uri)
    if not ref:
        raise SweepNotFoundError(
            "empty sweep reference; pass a sweep id, a prefix of one, a parent run id or a sweep name"
        )

    def pick(run) -> SweepSummary:
        return _summaries(client, tracking_uri, [run], experiments)[0]

    def sid(run) -> str:
        return run.data.tags.get("orch.sweep_id", "")

    def sname(run) -> str:
        return run.data.tags.get("orch.sweep_name") or run.info.run_name or ""

    for match in (
        lambda r: sid(r) == ref,
        lambda r: r.info.run_id == ref,
        lambda r: sname(r) == ref,
    ):
        hits = [r for r in runs if match(r)]  # runs are newest first
        if hits:
            return pick(hits[0])

    prefixed = [r for r in runs if sid(r).startswith(ref) or r.info.run_id.startswith(ref)]
    if len(prefixed) == 1:
        return pick(prefixed[0])

    summaries = _summaries(client, tracking_uri, runs, experiments) if runs else []
    if len(prefixed) > 1:
        listed = [s for s in summaries if s.parent_run_id in {r.info.run_id for r in prefixed}]
        lines = "\n".join(f"  - {s.describe()}" for s in listed[:10])
        raise SweepNotFoundError(
            f"sweep reference {ref!r} is ambiguous in {tracking_uri}: it is a prefix of "
            f"{len(prefixed)} sweeps:\n{lines}\nuse more characters of the sweep id"
        )
    if not summaries:
        raise SweepNotFoundError(
            f"no sweep matches {ref!r}: the store {tracking_uri} holds no sweeps at all "
            "(no run tagged orch.role=sweep); check that this is the tracking URI the sweep "
            "was recorded with"
        )
    keys = {s.sweep_id: s for s in summaries}
    keys.update({s.name: s for s in reversed(summaries)})  # newest of a name wins
    close = difflib.get_close_matches(ref, list(keys), n=5, cutoff=0.5)
    shown: list[SweepSummary] = []
    for s in [keys[c] for c in close] + summaries[:5]:
        if all(s.parent_run_id != t.parent_run_id for t in shown):
            shown.append(s)
    shown = shown[:8]
    lines = "\n".join(f"  - {s.describe()}" for s in shown)
    head = "closest matches, then the most recent sweeps" if close else "most recent sweeps"
    raise SweepNotFoundError(
        f"no sweep matches {ref!r} in {tracking_uri} (looked for a sweep id, a prefix of one, "
        f"a parent run id or a sweep name among {len(summaries)} sweeps); {head}:\n{lines}\n"
        "pass one of these ids or names (list them all with list_sweeps)"
    )


# --------------------------------------------------------------------------- export

_INT_RE = re.compile(r"[+-]?\d+\Z")
_NULLS = {"None", "null", "nan", "NaN", ""}


def _typed_column(values: list[str | None]):
    """Convert one config column of strings consistently: int64, float64, bool or string."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    informative = [v for v in present if v not in _NULLS]

    def nullify(v):
        return None if v is None or v in _NULLS else v

    if informative:
        if all(_INT_RE.match(v.strip()) for v in informative):
            ints = [None if nullify(v) is None else int(v) for v in values]
            if all(i is None or -(2**63) <= i < 2**63 for i in ints):
                return pa.array(ints, type=pa.int64())
        try:
            floats = [None if nullify(v) is None else float(v) for v in values]
        except ValueError:
            floats = None
        if floats is not None:
            return pa.array(floats, type=pa.float64())
        if all(v in {"True", "False", "true", "false"} for v in informative):
            return pa.array(
                [None if nullify(v) is None else v.lower() == "true" for v in values],
                type=pa.bool_(),
            )
    return pa.array(values, type=pa.string())


def _trial_runs(client, tracking_uri: str, sweep: SweepSummary) -> list[Any]:
    filt = f"tags.`mlflow.parentRunId` = '{sweep.parent_run_id}'"
    runs = list(_search(client, tracking_uri, [sweep.experiment_id], filt))
    runs.sort(key=lambda r: (r.data.tags.get("orch.trial_id") or r.info.run_name or "", r.info.run_id))
    return runs


def _write_parquet(table, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


EXPORT_SCHEMA = """\
``trials.parquet``: one row per trial run (trials and baselines)

======================  ====================  ==========================================
column                  type                  what
======================  ====================  ==========================================
sweep_id                string                the sweep (``orch.sweep_id``)
trial_id                string                Ray Tune's trial id (``orch.trial_id``)
run_id                  string                the MLflow run id
role                    string                ``trial`` or ``baseline``
outcome                 string                completed, early_stopped, failed, killed
diagnosis               string                healthy, overfitting, too_short, failed ...
status                  string                the MLflow run status
seed                    int64                 the trial's seed (``orch.seed``)
epochs                  int64                 the last step the sweep's metric was logged at
stopped_at_epoch        int64 (null)          where early stopping cut it; null otherwise
start_time, end_time    timestamp[ms, UTC]    null end_time: still running
duration_s              float64
config.<param>          int64/float64/bool/   the trial's config, nested keys dotted; one
                        string                type per column; null where a conditional
                                              parameter was off
metric.<name>           float64               the last logged value (fold means; the
                                              per-fold values are in metrics.parquet)
tag.<orch.key>          string (int64 for     every ``orch.*`` tag
                        seed, stopped_at_
                        epoch, attempts)
======================  ====================  ==========================================

``metrics.parquet``: one row per logged point

======================  ====================  ==========================================
sweep_id, trial_id,     string
run_id
metric                  string                the metric's name, without a fold suffix
fold                    int64 (null)          the fold (0..K-1) of a per-fold value
                                              (``val_loss_fold3`` is metric ``val_loss``,
                                              fold 3); null for fold means and the rest
step                    int64                 the report number (usually the epoch)
value                   float64
timestamp               timestamp[ms, UTC]
======================  ====================  ==========================================

Integer columns with nulls carry pandas metadata so that ``pandas.read_parquet``
gives them the nullable ``Int64`` dtype (not float64); pyarrow and DuckDB read the
Parquet types as they are. Both files carry ``orch.sweep_id``, ``orch.sweep_name``,
``orch.parent_run_id`` and ``orch.tracking_uri`` in their schema metadata.
"""

_FOLD_RE = re.compile(r"^(?P<metric>.+)_fold(?P<fold>\d+)$")
_INT_TAGS = ("orch.seed", "orch.stopped_at_epoch", "orch.attempts", "orch.resumed_from_epoch")


def _split_fold(key: str) -> tuple[str, int | None]:
    """``val_loss_fold3`` → ``("val_loss", 3)``; other names keep no fold."""
    m = _FOLD_RE.match(key)
    return (m["metric"], int(m["fold"])) if m else (key, None)


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text not in (None, "") else None
    except ValueError:
        return None


def _pandas_metadata(table) -> dict[bytes, bytes]:
    """pandas metadata naming the nullable dtypes of integer and bool columns with nulls, so
    pandas keeps them integers (``Int64``) instead of floats."""
    import json

    import pyarrow as pa

    cols = []
    for f, col in zip(table.schema, table.columns):
        if col.null_count and (pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)):
            integer = pa.types.is_integer(f.type)
            cols.append({"name": f.name, "field_name": f.name,
                         "pandas_type": "int64" if integer else "bool",
                         "numpy_type": "Int64" if integer else "boolean", "metadata": None})
    if not cols:
        return {}
    meta = {"index_columns": [], "column_indexes": [], "columns": cols,
            "creator": {"library": "orch", "version": "1"}, "pandas_version": "2.0.0"}
    return {b"pandas": json.dumps(meta).encode()}


def _run_trial_id(run) -> str:
    return run.data.tags.get("orch.trial_id") or run.info.run_name or run.info.run_id


def _trials_table(runs: list[Any], sweep: SweepSummary):
    import pyarrow as pa

    ts_type = pa.timestamp("ms", tz="UTC")
    tags = [r.data.tags for r in runs]
    param_keys = sorted({k for r in runs for k in r.data.params})
    metric_keys = sorted({k for r in runs for k in r.data.metrics if _split_fold(k)[1] is None})
    tag_keys = sorted({k for t in tags for k in t if k.startswith("orch.")})
    durations = [(r.info.end_time - r.info.start_time) / 1000.0
                 if r.info.start_time is not None and r.info.end_time is not None else None
                 for r in runs]
    columns: dict[str, Any] = {
        "sweep_id": pa.array([sweep.sweep_id] * len(runs), type=pa.string()),
        "trial_id": pa.array([_run_trial_id(r) for r in runs], type=pa.string()),
        "run_id": pa.array([r.info.run_id for r in runs], type=pa.string()),
        "role": pa.array([t.get("orch.role") for t in tags], type=pa.string()),
        "outcome": pa.array([t.get("orch.outcome") for t in tags], type=pa.string()),
        "diagnosis": pa.array([t.get("orch.diagnosis") for t in tags], type=pa.string()),
        "status": pa.array([r.info.status for r in runs], type=pa.string()),
        "seed": pa.array([_int_or_none(t.get("orch.seed")) for t in tags], type=pa.int64()),
        "epochs": pa.array([None] * len(runs), type=pa.int64()),  # see _with_epochs
        "stopped_at_epoch": pa.array([_int_or_none(t.get("orch.stopped_at_epoch")) for t in tags],
                                     type=pa.int64()),
        "start_time": pa.array([r.info.start_time for r in runs], type=pa.int64()).cast(ts_type),
        "end_time": pa.array([r.info.end_time for r in runs], type=pa.int64()).cast(ts_type),
        "duration_s": pa.array(durations, type=pa.float64()),
    }
    for k in param_keys:
        columns[f"config.{k}"] = _typed_column([r.data.params.get(k) for r in runs])
    for k in metric_keys:
        columns[f"metric.{k}"] = pa.array([r.data.metrics.get(k) for r in runs], type=pa.float64())
    for k in tag_keys:
        values = [t.get(k) for t in tags]
        columns[f"tag.{k}"] = (pa.array([_int_or_none(v) for v in values], type=pa.int64())
                               if k in _INT_TAGS else pa.array(values, type=pa.string()))
    return pa.table(columns)


def _metrics_table(client, tracking_uri: str, runs: list[Any], sweep: SweepSummary):
    """One row per point; one ``get_metric_history`` call per run per key (module notes)."""
    import pyarrow as pa

    from orchestrator.tracking._store import read_histories

    names = ("sweep_id", "trial_id", "run_id", "metric", "fold", "step", "value", "timestamp")
    rows: dict[str, list] = {k: [] for k in names}
    histories = read_histories(client, tracking_uri, [(r.info.run_id, key) for r in runs
                                                      for key in sorted(r.data.metrics)])
    for r in runs:
        tid = _run_trial_id(r)
        for key in sorted(r.data.metrics):
            name, fold = _split_fold(key)
            for m in histories[(r.info.run_id, key)]:
                for col, v in zip(names, (sweep.sweep_id, tid, r.info.run_id, name, fold, m.step,
                                          m.value, m.timestamp)):
                    rows[col].append(v)
    types = (pa.string(), pa.string(), pa.string(), pa.string(), pa.int64(), pa.int64(),
             pa.float64(), pa.int64())
    table = pa.table({k: pa.array(rows[k], type=t) for k, t in zip(names, types)})
    return table.set_column(7, "timestamp", table["timestamp"].cast(pa.timestamp("ms", tz="UTC")))


def _with_epochs(trials, metrics, metric: str):
    """Fill ``epochs``: the last step each run logged the sweep's metric at."""
    import pyarrow as pa

    last: dict[str, int] = {}
    for rid, name, fold, step in zip(metrics["run_id"].to_pylist(), metrics["metric"].to_pylist(),
                                     metrics["fold"].to_pylist(), metrics["step"].to_pylist()):
        if name == metric and fold is None:
            last[rid] = max(step, last.get(rid, step))
    epochs = pa.array([last.get(rid) for rid in trials["run_id"].to_pylist()], type=pa.int64())
    return trials.set_column(trials.schema.get_field_index("epochs"), "epochs", epochs)


def export_sweep(ref: str, *, tracking_uri: str, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the sweep ``ref`` to ``out_dir/trials.parquet`` and ``out_dir/metrics.parquet``.

    The columns and their types are :data:`EXPORT_SCHEMA` (also in the README):
    ``trials.parquet`` one row per trial run with ``sweep_id``, typed ``seed``,
    ``epochs`` and ``stopped_at_epoch``, ``config.<param>`` (int64, float64, bool
    or string per column; conditional integers stay integers), ``metric.<name>``
    and ``tag.<orch key>``; ``metrics.parquet`` one row per logged point with the
    fold as a column (``metric = "val_loss", fold = 3`` for ``val_loss_fold3``).
    Timestamps are ``timestamp[ms, tz=UTC]``. Returns ``(trials_path, metrics_path)``.
    """
    sweep = find_sweep(ref, tracking_uri=tracking_uri)
    client = _client(tracking_uri)
    runs = _trial_runs(client, tracking_uri, sweep)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        b"orch.sweep_id": sweep.sweep_id.encode(),
        b"orch.sweep_name": sweep.name.encode(),
        b"orch.parent_run_id": sweep.parent_run_id.encode(),
        b"orch.tracking_uri": tracking_uri.encode(),
    }
    metrics = _metrics_table(client, tracking_uri, runs, sweep)
    trials = _with_epochs(_trials_table(runs, sweep), metrics, sweep.metric)
    trials = trials.replace_schema_metadata({**meta, **_pandas_metadata(trials)})
    metrics = metrics.replace_schema_metadata({**meta, **_pandas_metadata(metrics)})
    trials_path, metrics_path = out / "trials.parquet", out / "metrics.parquet"
    _write_parquet(trials, trials_path)
    _write_parquet(metrics, metrics_path)
    return trials_path, metrics_path


# --------------------------------------------------------------------------- UI

#: MLflow 3's UI opens an experiment in its GenAI mode (Traces, token usage) unless the
#: address says otherwise: the parameter after the ``#/experiments/N`` route wins over
#: the browser's stored ``mlflow.workflowType``.
UI_WORKFLOW = "workflowType=machine_learning"
#: The name of the saved view (experiment tag ``mlflow.sharedViewState.orch``) whose
#: columns a reviewer needs: the sweep's metric, outcome, diagnosis, the searched params.
UI_VIEW_KEY = "orch"
UI_VIEW_TAG = f"mlflow.sharedViewState.{UI_VIEW_KEY}"
UI_VIEW_TAGS = ("orch.outcome", "orch.diagnosis", "orch.stopped_at_epoch", "orch.role")


def ui_address(base: str, *, experiment_id: str | None = None, run_id: str | None = None,
               view: bool = False) -> str:
    """The MLflow UI address that opens on the runs (never the GenAI pages).

    >>> ui_address("http://127.0.0.1:5000", experiment_id="3")
    'http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning'
    >>> ui_address("http://127.0.0.1:5000", experiment_id="3", run_id="ab")
    'http://127.0.0.1:5000/#/experiments/3/runs/ab?workflowType=machine_learning'
    >>> ui_address("http://h:5000/", experiment_id="3", view=True)
    'http://h:5000/#/experiments/3/runs?viewStateShareKey=orch&workflowType=machine_learning'
    """
    base = base.rstrip("/")
    if experiment_id is None:
        return f"{base}/#/experiments?{UI_WORKFLOW}"
    route = f"{base}/#/experiments/{experiment_id}"
    if run_id:
        return f"{route}/runs/{run_id}?{UI_WORKFLOW}"
    if view:  # the runs tab itself: the redirect from the bare route drops the view key
        return f"{route}/runs?viewStateShareKey={UI_VIEW_KEY}&{UI_WORKFLOW}"
    return f"{route}?{UI_WORKFLOW}"


def ui_view_state(*, metric: str, goal: str, params: Sequence[str] = (),
                  metrics: Sequence[str] = ()) -> str:
    """The saved view's JSON (MLflow's shared view state): the columns a reviewer needs.
    The default order (newest first) is kept: sorting by a metric would list trials apart
    from the sweep they are nested under."""
    import json

    def col(kind: str, key: str) -> str:
        return f"{kind}.`{key}`"

    columns = [col("metrics", m) for m in dict.fromkeys([metric, *metrics]) if m]
    columns += [col("tags", t) for t in UI_VIEW_TAGS]
    columns += [col("params", p) for p in params]
    return json.dumps({"selectedColumns": columns})




def _backend_store_uri(tracking_uri: str) -> str:
    if not tracking_uri:
        raise TrackingError("no tracking URI given; pass e.g. tracking_uri='sqlite:///path/to/mlflow.db'")
    scheme = urlparse(tracking_uri).scheme
    if scheme in ("http", "https"):
        raise TrackingError(
            f"{tracking_uri} is already an MLflow tracking server; open it in a browser "
            "instead of starting a UI over it (serve_ui needs a store: sqlite:///…, a database URI or a directory)"
        )
    if scheme == "databricks":
        raise TrackingError(f"{tracking_uri} is a Databricks workspace; use its own UI")
    db_path = _sqlite_path(tracking_uri)
    if db_path is not None and db_path != ":memory:" and not Path(db_path).is_file():
        raise TrackingError(
            f"no MLflow store at {tracking_uri}: the file {db_path} does not exist; "
            "point to the store the sweep was recorded in"
        )
    if db_path is not None and not os.path.isabs(db_path):
        # the server is started with its own cwd; make the path absolute
        return "sqlite:///" + str(Path(db_path).resolve())
    return tracking_uri


def _mlflow_argv() -> list[str]:
    exe = Path(sys.executable).with_name("mlflow")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("mlflow")
    return [found] if found else [sys.executable, "-m", "mlflow"]


def ui_command(*, tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The argv of an ``mlflow server`` serving the UI over ``tracking_uri``.

    ``port=0`` picks a free port now (the returned argv names it).
    """
    port = free_port(host) if port == 0 else int(port)
    backend = _backend_store_uri(tracking_uri)
    argv = [*_mlflow_argv(), "server", "--backend-store-uri", backend, "--host", host,
            "--port", str(port), "--workers", "1"]
    db_path = _sqlite_path(backend)
    if db_path and db_path != ":memory:":
        # Beside the store, not in the server's working folder (a temporary one).
        argv += ["--artifacts-destination", str(Path(db_path).parent / "mlartifacts")]
    return argv


UIServer = LocalServer  # a running ``mlflow server``: ``.url``, ``.stop()``, ``with``


def serve_ui(
    *,
    tracking_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    timeout_s: float = 60.0,
    log_path: str | os.PathLike[str] | None = None,
) -> LocalServer:
    """Start the MLflow UI over ``tracking_uri`` and wait until it answers HTTP.

    ``port=0`` picks a free port. Waits at most ``timeout_s`` seconds; on
    timeout, or if the server exits early (e.g. port taken), stops it and raises
    :class:`~orchestrator.errors.TrackingError` with the end of its log.
    The server's output goes to ``log_path`` (default: a temporary file).
    """
    if port != 0 and port_taken(host, port):
        raise TrackingError(
            f"cannot start the MLflow UI on {host}:{port}: something already listens there; "
            "pass port=0 to pick a free port, or another port"
        )
    argv = ui_command(tracking_uri=tracking_uri, host=host, port=port)
    real_port = int(argv[argv.index("--port") + 1])
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    # a read-only browser needs no background job runners (huey consumers: GenAI
    # scoring, trace archival); they add ~7 processes and slow start and stop
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.pop("MLFLOW_TRACKING_URI", None)
    return start_server(argv, what=f"the MLflow UI over {tracking_uri}", host=host,
                        port=real_port, ready_paths=("/health", "/"), timeout_s=timeout_s,
                        log_path=log_path, env=env)


def storage_exists(path: str) -> bool:
    """Whether a sweep folder exists: a local path or a URI (s3://, gs://) via pyarrow."""
    if "://" not in path:
        return Path(path).exists()
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound
