"""PyTorch Lightning, reporting through orch: one callback, the loop unchanged.

>>> from orchestrator.integrations.lightning import OrchCallback       # doctest: +SKIP
>>> def trainable(config):                                              # doctest: +SKIP
...     callback = OrchCallback(metrics={"val_loss": "val_loss", "val_acc": "val_acc"})
...     trainer = L.Trainer(max_epochs=config["epochs"], callbacks=[callback],
...                         enable_checkpointing=False, logger=False)
...     trainer.fit(Model(config), datamodule, ckpt_path=callback.resume_path())

Each validation epoch (not the sanity check) reports the metrics the module logged with
``self.log`` and ``epoch`` (counted from 1), from rank 0 only, with the trainer's full
checkpoint (``checkpoint=True``, the default): a trial Ray restarts after a failure, or an
interrupted sweep resumed, continues from it through :meth:`OrchCallback.resume_path`.
An early-stopped trial stops at its next report, as any orch trainable does. Works with
``lightning`` (``import lightning.pytorch``) and the older ``pytorch_lightning``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from orchestrator.engine._context import load_checkpoint, report
from orchestrator.integrations._common import MetricNames, pick_metrics

__all__ = ["OrchCallback"]

STATE_KEY = "lightning_checkpoint"  # where the trainer's checkpoint sits in orch's state


def _callback_base() -> type:
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError:
            raise ImportError("orchestrator.integrations.lightning needs PyTorch Lightning: "
                              "pip install lightning") from None
    return Callback


class OrchCallback(_callback_base()):  # type: ignore[misc]
    """Report each validation epoch to orch and checkpoint the trainer through it.

    ``metrics``: which logged metrics to report — None for all of them, a list of names,
    or ``{orch_name: logged_name}``. ``checkpoint``: save the trainer's checkpoint with
    each report (default True), for :meth:`resume_path`.
    """

    def __init__(self, metrics: MetricNames = None, *, checkpoint: bool = True) -> None:
        super().__init__()
        self.metrics = metrics
        self.checkpoint = checkpoint
        self._resumed: tempfile.TemporaryDirectory[str] | None = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        metrics = pick_metrics(trainer.callback_metrics, self.metrics,
                               "OrchCallback (PyTorch Lightning)")
        metrics["epoch"] = int(trainer.current_epoch) + 1
        state = self._state(trainer) if self.checkpoint else None
        if trainer.is_global_zero:
            report(metrics, checkpoint=state)

    @staticmethod
    def _state(trainer: Any) -> dict[str, Any] | None:
        """The trainer's whole checkpoint (model, optimisers, loops), the file as Lightning
        writes it (orch keeps its bytes; Lightning reads it back itself). Every rank takes
        part in writing, as Lightning requires."""
        with tempfile.TemporaryDirectory(prefix="orch-lightning-") as folder:
            path = Path(folder) / "last.ckpt"
            trainer.save_checkpoint(path)
            if not trainer.is_global_zero:
                return None
            return {STATE_KEY: path.read_bytes()}

    def resume_path(self) -> str | None:
        """The checkpoint to pass as ``trainer.fit(..., ckpt_path=)``: this trial's last
        one when Ray restarted or resumed it, else None (a fresh start)."""
        state = load_checkpoint()
        if not state or STATE_KEY not in state:
            return None
        self._resumed = tempfile.TemporaryDirectory(prefix="orch-lightning-resume-")
        path = Path(self._resumed.name) / "resume.ckpt"
        path.write_bytes(state[STATE_KEY])
        return str(path)

