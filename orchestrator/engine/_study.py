"""Where a sweep's Optuna study is kept, so that it outlives the driver.

Ray's ``OptunaSearch`` keeps its study in memory unless it is given a storage (Ray
issue 48500): Optuna's dashboard could not see it and only Ray's pickle of the searcher
carried the sampler's history across a resume. orch gives every sampled sweep Optuna's
journal storage (an append-only file; an RDB's SQLite costs ~5x more per trial and a
second to create) and one study named after the sweep id:

* beside a SQLite tracking store (``sqlite:///dir/mlflow.db`` → ``dir/optuna.journal``),
  one file for every sweep of that store (Optuna locks it), one study per sweep;
* otherwise (a tracking server, or no tracking) in the sweep's own local folder.

Its location is recorded on the sweep's parent run as ``orch.optuna_storage``: a file
path (journal), or an RDB URL (``sqlite:///...``, ``postgresql://...``) where someone
pointed it at one; ``orch dashboard SWEEP`` serves either. Only the driver writes to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["STUDY_FILE", "load_study", "open_storage", "study_url"]

STUDY_FILE = "optuna.journal"
SQLITE_TIMEOUT_S = 60  # an RDB storage on SQLite shared by sweeps: a writer waits


def study_url(tracking_uri: str | None, sweep_dir: Path) -> str:
    """Where the study of a sweep tracked at ``tracking_uri`` (resolved) is kept."""
    prefix = "sqlite:///"
    if tracking_uri and tracking_uri.startswith(prefix):
        path = tracking_uri[len(prefix):].split("?", 1)[0]
        if path and path != ":memory:":
            return str(Path(path).resolve().parent / STUDY_FILE)
    return str(Path(sweep_dir).resolve() / STUDY_FILE)


def open_storage(where: str) -> Any:
    """Optuna's storage at ``where``: a journal file (folder made if missing) or an RDB URL."""
    import optuna

    if "://" in where:
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if where.startswith(
            "sqlite:") else {}
        return optuna.storages.RDBStorage(where, engine_kwargs=kwargs)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(where).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(where))


def load_study(where: str, sweep_id: str) -> Any:
    """The study a sweep kept (``KeyError`` if that storage holds none for the sweep)."""
    import optuna

    if "://" not in where and not Path(where).is_file():
        raise KeyError(sweep_id)
    storage = open_storage(where)
    names = {s.study_name for s in storage.get_all_studies()}
    if sweep_id not in names:
        raise KeyError(sweep_id)
    return optuna.load_study(study_name=sweep_id, storage=storage)
