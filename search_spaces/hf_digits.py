"""Example: a Hugging Face ``Trainer`` on the digits, reporting through orch's callback.

Reference it in a spec as ``trainable: search_spaces.hf_digits:train`` (see
``huggingface.yaml``). The model is a ``PreTrainedModel`` built from its config (nothing
downloaded); the loop is the Trainer's own. :class:`OrchTrainerCallback` reports each
evaluation (``eval_loss``, ``eval_accuracy``, and the epoch's training ``loss`` and
``grad_norm``, as orch's ``val_loss``, ``val_acc``, ``train_loss``, ``grad_norm``),
checkpoints the Trainer's folder through orch, and ``resume_path()`` continues a trial
Ray restarted or a sweep that was resumed. Searchable keys: ``lr``, ``width``,
``weight_decay``, ``epochs``.
"""

import tempfile

import numpy as np
import torch
import transformers
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import Dataset
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.trainer_callback import PrinterCallback

import orchestrator
from orchestrator.integrations.huggingface import OrchTrainerCallback

BATCH = 64  # training rows per step (evaluation takes 4x as many)
HOLDOUT = 0.2  # share of the digits kept for validation, stratified
# orch's names (what its diagnosis reads) for the Trainer's: the evaluation's eval_*, and the
# training loss and last gradient norm logged in the same epoch.
METRICS = {"val_loss": "eval_loss", "val_acc": "eval_accuracy", "train_loss": "loss",
           "grad_norm": "grad_norm"}


class DigitsConfig(PretrainedConfig):
    model_type = "orch-digits-mlp"

    def __init__(self, n_pixels: int = 64, width: int = 64, num_labels: int = 10,
                 **kwargs) -> None:
        self.n_pixels = n_pixels
        self.width = width
        super().__init__(num_labels=num_labels, **kwargs)


class DigitsMLP(PreTrainedModel):
    """Saved and loaded as any Hub model is (``config.json`` + ``model.safetensors``)."""

    config_class = DigitsConfig

    def __init__(self, config: DigitsConfig) -> None:
        super().__init__(config)
        self.net = nn.Sequential(nn.Linear(config.n_pixels, config.width), nn.ReLU(),
                                 nn.Linear(config.width, config.num_labels))
        self.post_init()

    def forward(self, pixels, labels=None):
        logits = self.net(pixels)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class Digits(Dataset):
    """Rows as the Trainer's default collator takes them: ``{"pixels", "labels"}``."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixels": self.X[i], "labels": self.y[i]}


def datasets(seed: int) -> tuple[Digits, Digits]:
    digits = load_digits()  # bundled with scikit-learn: nothing downloaded
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    tr, va = train_test_split(np.arange(len(y)), test_size=HOLDOUT, stratify=digits.target,
                              random_state=seed)
    return Digits(X[tr], y[tr]), Digits(X[va], y[va])


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def make_trainer(config, output_dir: str, callbacks: list, **arguments) -> Trainer:
    """The Trainer for one trial; ``arguments`` change its ``TrainingArguments``."""
    seed = orchestrator.trial_seed()
    transformers.set_seed(seed)  # before the model: its initial weights are the trial's
    train_set, val_set = datasets(orchestrator.split_seed())
    args = dict(
        output_dir=output_dir, num_train_epochs=int(config.get("epochs", 5)),
        learning_rate=float(config.get("lr", 3e-3)),
        weight_decay=float(config.get("weight_decay", 0.0)),
        per_device_train_batch_size=BATCH, per_device_eval_batch_size=4 * BATCH,
        eval_strategy="epoch", logging_strategy="epoch",  # train loss once per evaluation
        save_strategy="no",  # the callback saves at each evaluation, for orch to keep
        dataloader_pin_memory=torch.cuda.is_available(),  # it serves a GPU (warns without)
        seed=seed, report_to="none", disable_tqdm=True, log_level="error")
    trainer = Trainer(model=DigitsMLP(DigitsConfig(width=int(config.get("width", 64)))),
                      args=TrainingArguments(**{**args, **arguments}),
                      train_dataset=train_set, eval_dataset=val_set,
                      compute_metrics=accuracy, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # disable_tqdm prints every log line instead
    return trainer


def train(config):
    transformers.utils.logging.disable_progress_bar()  # the bars of each save_pretrained
    callback = OrchTrainerCallback(metrics=METRICS)
    with tempfile.TemporaryDirectory(prefix="orch-hf-") as folder:
        trainer = make_trainer(config, folder, [callback])
        trainer.train(resume_from_checkpoint=callback.resume_path())
