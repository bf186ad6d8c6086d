"""Trial checkpoints: a mapping of state written to a folder, and read back safely.

:func:`orchestrator.report` takes ``checkpoint=<mapping>``; the mapping is
written here into a fresh temporary folder with ``torch.save`` (``pickle``
when torch is not installed) and handed to Ray Tune as a
``ray.tune.Checkpoint``, which copies it into the trial's storage and keeps the
last few. :func:`orchestrator.load_checkpoint` reads it back when Ray restarts
a failed trial.

Reading never executes code from the file: torch loads with
``weights_only=True`` (tensors, numpy arrays and scalars, plain Python), and
the pickle fallback allows the same few classes. A checkpoint that cannot be
read is a :class:`CheckpointUnreadable` here; the caller turns it into a
warning and a fresh start, never a crash. Nothing here imports Ray.
"""

from __future__ import annotations

import importlib
import io
# Reading goes through _SafeUnpickler below, which allows no code to run.
import pickle  # nosec B403
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "PICKLE_STATE_FILE",
    "STATE_FILE",
    "CheckpointUnreadable",
    "load_state",
    "save_state",
    "snapshot",
]

STATE_FILE = "orch_state.pt"  # the state mapping, written by torch.save
PICKLE_STATE_FILE = "orch_state.pkl"  # the same without torch: pickle, read back restricted
MAX_PROBLEM_CHARS = 200  # characters of a load error quoted in the warning


class CheckpointUnreadable(Exception):
    """A checkpoint folder or file that is missing, truncated or not an orch state."""


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def _numpy_globals() -> list[Any]:
    """The numpy classes and functions that pickled arrays and scalars need (and no others)."""
    try:
        import numpy as np
    except ImportError:
        return []
    multiarray = importlib.import_module(
        "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
    )
    numeric = importlib.import_module(
        "numpy._core.numeric" if hasattr(np, "_core") else "numpy.core.numeric"
    )
    dtypes = [type(np.dtype(code)) for code in "?bhilqpBHILQPefdgFDGSUVMm"]
    extra = [numeric._frombuffer] if hasattr(numeric, "_frombuffer") else []  # pickle protocol 5
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtypes, *extra]


def save_state(state: Mapping[str, Any], folder: str | Path) -> Path:
    """Write ``state`` into ``folder`` (created if needed); return the file written."""
    if not isinstance(state, Mapping):
        raise TypeError(f"a checkpoint state must be a mapping, got {type(state).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch = _torch()
    if torch is not None:
        path = folder / STATE_FILE
        torch.save(dict(state), path)
    else:
        path = folder / PICKLE_STATE_FILE
        with path.open("wb") as fh:
            pickle.dump(dict(state), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


class _SafeUnpickler(pickle.Unpickler):
    """Plain Python containers and numpy arrays only: a checkpoint never runs code."""

    _BUILTINS = frozenset({"set", "frozenset", "complex", "bytearray", "slice", "range"})

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in self._BUILTINS:
            return super().find_class(module, name)
        allowed = {(g.__module__, g.__qualname__) for g in _numpy_globals()}
        if (module, name) in allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a checkpoint")


def _read(path: Path) -> Any:
    if path.name == STATE_FILE:
        torch = _torch()
        if torch is None:
            raise CheckpointUnreadable(
                f"{path} was written by torch, which is not installed (pip install torch)"
            )
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    with path.open("rb") as fh:
        # Safe: _SafeUnpickler.find_class refuses every class but plain containers and numpy.
        return _SafeUnpickler(fh).load()  # nosec B301


def _gist(exc: BaseException) -> str:
    """The informative part of a load error (torch's begin with generic advice)."""
    advice = ("Weights only load failed", "Check the documentation", "(1)", "(2)")
    paragraphs = [p.strip() for p in str(exc).split("\n\n") if p.strip()]
    useful = [p for p in paragraphs if not p.startswith(advice)] or paragraphs or [""]
    text = useful[0]
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    line = " ".join(text.split())
    first_sentence = line.split(". ")[0]
    line = first_sentence if len(first_sentence) >= 20 else line
    return line if len(line) <= MAX_PROBLEM_CHARS else line[: MAX_PROBLEM_CHARS - 3] + "..."


def load_state(folder: str | Path) -> dict[str, Any]:
    """Read the state :func:`save_state` wrote into ``folder``.

    Raises :class:`CheckpointUnreadable` saying what is wrong: the folder or
    its state file is missing, or the file is truncated, corrupt or holds
    something other than a mapping.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointUnreadable(f"the checkpoint folder {folder} does not exist")
    path = next((folder / f for f in (STATE_FILE, PICKLE_STATE_FILE) if (folder / f).is_file()),
                None)
    if path is None:
        raise CheckpointUnreadable(
            f"the checkpoint folder {folder} holds no {STATE_FILE} or {PICKLE_STATE_FILE}"
        )
    try:
        state = _read(path)
    except CheckpointUnreadable:
        raise
    except Exception as exc:  # truncated zip, bad pickle, disallowed class, I/O error, ...
        raise CheckpointUnreadable(
            f"{path} cannot be read: it is truncated or corrupt, or holds more than plain state "
            f"({type(exc).__name__}: {_gist(exc)})"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointUnreadable(f"{path} holds a {type(state).__name__}, not a mapping")
    return state


def snapshot(state: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``state`` as a later :func:`load_state` would return it (write, read back)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"a checkpoint state must be a mapping, got {type(state).__name__}")
    torch = _torch()
    buffer = io.BytesIO()
    if torch is not None:
        torch.save(dict(state), buffer)
        buffer.seek(0)
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(buffer, map_location="cpu", weights_only=True)
    pickle.dump(dict(state), buffer, protocol=pickle.HIGHEST_PROTOCOL)
    buffer.seek(0)
    # Safe: _SafeUnpickler.find_class refuses every class but plain containers and numpy.
    return _SafeUnpickler(buffer).load()  # nosec B301
