"""Example: a PyTorch Lightning module on the digits, reporting through orch's callback.

Reference it in a spec as ``trainable: search_spaces.lightning_digits:train`` (see
``lightning.yaml``). The loop is Lightning's own; :class:`OrchCallback` reports each
validation epoch, checkpoints the trainer, and ``resume_path()`` continues a trial Ray
restarted or a sweep that was resumed. Searchable keys: ``lr``, ``width``, ``epochs``.
"""

import lightning.pytorch as L
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import orchestrator
from orchestrator.integrations.lightning import OrchCallback

BATCH = 64
HOLDOUT = 0.2  # share of the digits kept for validation, stratified


class DigitsNet(L.LightningModule):
    def __init__(self, lr: float, width: int) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def loaders(seed: int) -> tuple[DataLoader, DataLoader]:
    digits = load_digits()  # bundled with scikit-learn: nothing downloaded
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    tr, va = train_test_split(range(len(y)), test_size=HOLDOUT, stratify=digits.target,
                              random_state=seed)
    generator = torch.Generator().manual_seed(seed)
    return (DataLoader(TensorDataset(X[tr], y[tr]), batch_size=BATCH, shuffle=True,
                       generator=generator),
            DataLoader(TensorDataset(X[va], y[va]), batch_size=BATCH))


def train(config):
    seed = orchestrator.trial_seed()
    L.seed_everything(seed, verbose=False)
    train_dl, val_dl = loaders(orchestrator.split_seed())
    callback = OrchCallback(metrics=["val_loss", "val_acc"])
    trainer = L.Trainer(max_epochs=int(config.get("epochs", 5)), callbacks=[callback],
                        accelerator="auto", devices=1, enable_checkpointing=False,
                        logger=False, enable_progress_bar=False, enable_model_summary=False)
    model = DigitsNet(lr=float(config.get("lr", 1e-3)), width=int(config.get("width", 64)))
    trainer.fit(model, train_dl, val_dl, ckpt_path=callback.resume_path())
