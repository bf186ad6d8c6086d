"""Hugging Face's ``Trainer``, reporting through orch: one callback, the loop unchanged.

>>> from orchestrator.integrations.huggingface import OrchTrainerCallback  # doctest: +SKIP
>>> def trainable(config):                                                 # doctest: +SKIP
...     callback = OrchTrainerCallback(metrics={"val_loss": "eval_loss"})
...     args = TrainingArguments(output_dir=folder, eval_strategy="epoch",
...                              num_train_epochs=config["epochs"], report_to="none")
...     trainer = Trainer(model, args, train_dataset=train, eval_dataset=val,
...                       callbacks=[callback])
...     trainer.train(resume_from_checkpoint=callback.resume_path())

Each evaluation the Trainer runs inside ``trainer.train()`` becomes one orch report:
the numbers the Trainer logged since the previous report (the evaluation's ``eval_*``,
and the training ``loss``, ``grad_norm``, ``learning_rate`` when ``logging_strategy``
logs at least once per evaluation) and ``epoch``, the epoch it falls in counted from 1.
Reports come from the main process only (``state.is_world_process_zero``).

The lifecycle, with ``checkpoint=True`` (the default)::

    on_evaluate   keep the metrics; ask the Trainer to save (control.should_save)
    on_save       report the metrics with the checkpoint folder the Trainer just wrote,
                  kept in orch's state as {relative path: bytes} under STATE_KEY
    on_step_begin / on_train_end
                  an evaluation the Trainer did not save (save_strategy="best" without
                  improvement) is reported there, without a checkpoint

Saves the callback asked for are deleted from ``output_dir`` once orch holds them; the
Trainer's own (``save_strategy``) stay. A trial Ray restarts after a failure
(``max_failures``), or an interrupted sweep resumed, continues from the last checkpoint
through :meth:`OrchTrainerCallback.resume_path`. An early-stopped trial stops at its
next report, as any orch trainable does. Evaluations outside ``trainer.train()`` (a
final ``trainer.evaluate(test)``) are not reported: report those with
``orchestrator.report`` yourself.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.engine._context import load_checkpoint, report
from orchestrator.integrations._common import MetricNames, pick_metrics

__all__ = ["OrchTrainerCallback"]

STATE_KEY = "hf_checkpoint"  # where the Trainer's checkpoint folder sits in orch's state
WHERE = "OrchTrainerCallback (Hugging Face Trainer)"


def _callback_base() -> type:
    try:
        from transformers import TrainerCallback
    except ImportError:
        raise ImportError("orchestrator.integrations.huggingface needs Hugging Face "
                          "transformers: pip install 'transformers[torch]'") from None
    return TrainerCallback


class OrchTrainerCallback(_callback_base()):  # type: ignore[misc]
    """Report each evaluation to orch and checkpoint the Trainer through it.

    ``metrics``: which logged numbers to report — None for all of them, a list of names,
    or ``{orch_name: logged_name}`` (e.g. ``{"val_loss": "eval_loss", "train_loss":
    "loss"}``). ``checkpoint``: save the Trainer's checkpoint folder with each report
    (default True), for :meth:`resume_path`.
    """

    def __init__(self, metrics: MetricNames = None, *, checkpoint: bool = True) -> None:
        super().__init__()
        self.metrics = metrics
        self.checkpoint = checkpoint
        self._training = False
        self._logged: dict[str, Any] = {}  # every number logged since the last report
        self._evaluated = False  # an evaluation waits to be reported
        self._ours: Path | None = None  # the save we asked for, removed once reported
        self._resumed: tempfile.TemporaryDirectory[str] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training, self._logged, self._evaluated, self._ours = True, {}, False, None

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
               **kwargs: Any) -> None:
        if self._training and logs:
            self._logged.update(logs)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None,
                    **kwargs: Any) -> Any:
        if not self._training:
            return control
        # Several eval datasets evaluate one after the other: one report for all of them.
        self._logged.update(metrics or {})
        first, self._evaluated = not self._evaluated, True
        if self.checkpoint and first:
            folder = _checkpoint_folder(args, state)
            # The Trainer's own saves stay: one it planned, one already written this step,
            # and any under save_strategy="best" (which decides after this, and only then).
            best = _value(args.save_strategy) == "best"
            self._ours = None if control.should_save or folder.exists() or best else folder
            control.should_save = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._evaluated or not self.checkpoint:
            return
        folder, ours, self._ours = _checkpoint_folder(args, state), self._ours, None
        saved = None
        if state.is_world_process_zero:
            saved = {STATE_KEY: _read_folder(folder)}
            if ours == folder:  # before reporting: an early stop ends the trial in report()
                shutil.rmtree(folder, ignore_errors=True)
        self._report(state, saved)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._evaluated:
            self._report(state, None)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._evaluated:
            self._report(state, None)
        self._training = False

    def _report(self, state: Any, saved: Mapping[str, Any] | None) -> None:
        logged, self._logged, self._evaluated = self._logged, {}, False
        _check_logged(logged, self.metrics, state)
        metrics = pick_metrics(logged, self.metrics, WHERE)
        metrics["epoch"] = _epoch(state.epoch)
        if state.is_world_process_zero:
            report(metrics, checkpoint=saved)

    def resume_path(self) -> str | None:
        """The checkpoint folder to pass as ``trainer.train(resume_from_checkpoint=)``:
        this trial's last one when Ray restarted or resumed it, else None (a fresh start)."""
        state = load_checkpoint()
        if not state or STATE_KEY not in state:
            return None
        self._resumed = tempfile.TemporaryDirectory(prefix="orch-hf-resume-")
        folder = Path(self._resumed.name) / "checkpoint"
        for name, data in state[STATE_KEY].items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return str(folder)


def _epoch(epoch: float | None) -> int:
    """The epoch an evaluation falls in, counted from 1 (Lightning's ``current_epoch + 1``):
    ``state.epoch`` is the float count of epochs done, exactly k at the end of epoch k,
    0.5 half-way through the first.

    >>> [_epoch(e) for e in (1.0, 3.0, 0.5, 1.25, 2.0000000001, None)]
    [1, 3, 1, 2, 2, 1]
    """
    return max(1, math.ceil(round(epoch or 0.0, 6)))


def _checkpoint_folder(args: Any, state: Any) -> Path:
    """Where ``Trainer._save_checkpoint`` writes this step's checkpoint."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"


def _value(option: Any) -> str:
    """A TrainingArguments strategy as text (an enum in transformers, or a string)."""
    return str(getattr(option, "value", option))


def _read_folder(folder: Path) -> dict[str, bytes]:
    """Every file of a checkpoint folder as ``{relative path: bytes}`` (orch's state is read
    back with ``weights_only=True``: bytes pass, the Trainer reads its own files back)."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{WHERE}: the Trainer saved no checkpoint at {folder} (output_dir/checkpoint-"
            "<global_step>). Save under TrainingArguments(output_dir=...) itself; "
            "Trainer.hyperparameter_search saves elsewhere and is not supported (run the "
            "search with orch), or pass checkpoint=False")
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_logged(logged: Mapping[str, Any], names: MetricNames, state: Any) -> None:
    """A metric the callback should report but the Trainer did not log fails the trial,
    naming what was logged and the Trainer's settings that decide it."""
    if names is None:
        return
    wanted = names.values() if isinstance(names, Mapping) else names
    missing = sorted(n for n in wanted if n not in logged)
    if not missing:
        return
    hint = [f"{n} -> eval_{n}" for n in missing if f"eval_{n}" in logged]
    raise KeyError(
        f"{WHERE}: {', '.join(missing)} not logged; logged: "
        f"{', '.join(sorted(logged)) or 'nothing'} (the evaluation at step "
        f"{state.global_step}, epoch {state.epoch}). "
        + (f"Evaluation metrics are named eval_<name>: {', '.join(hint)}. " if hint else "")
        + "Return it from compute_metrics (named eval_<key>), log training numbers at least "
        "once per evaluation (logging_strategy like eval_strategy), or change the "
        "callback's metrics=")
