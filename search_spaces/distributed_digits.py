"""Example: a trial that is a data-parallel job of several workers (``resources.workers``).

Reference it in a spec as ``trainable: search_spaces.distributed_digits:train`` (see
``distributed.yaml``). The same function runs as one process (``workers: 1``) and on
every worker of a Ray Train job: Ray Train sets up ``torch.distributed`` (gloo between
CPU workers, NCCL between GPUs), the model is wrapped in ``DistributedDataParallel`` so
gradients are averaged across workers every step, and each worker trains on its own
share of every epoch's shuffled samples. Every worker calls ``orchestrator.report``
each epoch (Ray Train needs all of them to); orch keeps rank 0's numbers and checkpoint,
and a retried trial resumes from that checkpoint.

Searchable keys: ``lr``, ``width`` (hidden units), ``batch_size`` (samples per worker
per step) and ``epochs``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import orchestrator
from orchestrator.toolkit import holdout_split, seed_everything, split_fingerprint
from trainables.digits import N_CLASSES, load_digits_arrays

DEFAULT_LR = 0.01  # Adam's learning rate
DEFAULT_WIDTH = 64  # hidden units
DEFAULT_BATCH_SIZE = 32  # samples per worker per step: the global batch is workers times this
DEFAULT_EPOCHS = 5


def _world() -> tuple[int, int]:
    """(this worker's rank, how many workers): (0, 1) outside a distributed job."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device() -> torch.device:
    """The GPU Ray Train gave this worker (its local rank's), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _shard(train: np.ndarray, *, seed: int, epoch: int, rank: int, world: int) -> np.ndarray:
    """This worker's samples for one epoch: every worker draws the same permutation and
    takes an equal share (DDP needs the same number of steps on every worker)."""
    order = np.random.default_rng([seed, epoch]).permutation(train)
    per_worker = len(order) // world
    return order[rank * per_worker:(rank + 1) * per_worker]


def _mean_over_workers(total: float, count: int, world: int) -> float:
    if world == 1:
        return total / count
    both = torch.tensor([total, float(count)], dtype=torch.float64)
    dist.all_reduce(both)  # sums over workers (gloo on CPU tensors)
    return float(both[0] / both[1])


@torch.no_grad()
def _evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(X)
    loss = nn.functional.cross_entropy(logits, y).item()
    return loss, float((logits.argmax(dim=1) == y).float().mean())


def train(config: Mapping[str, Any]) -> None:
    rank, world = _world()
    device = _device()
    lr = float(config.get("lr", DEFAULT_LR))
    width = int(config.get("width", DEFAULT_WIDTH))
    batch_size = int(config.get("batch_size", DEFAULT_BATCH_SIZE))
    epochs = int(config.get("epochs", DEFAULT_EPOCHS))

    X, y = load_digits_arrays()
    train_idx, val_idx = holdout_split(y, seed=orchestrator.split_seed())  # same in every trial
    orchestrator.set_tag("split_fingerprint", split_fingerprint(X, y, [(train_idx, val_idx)]))
    features, labels = torch.tensor(X, device=device), torch.tensor(y, device=device)

    seed = orchestrator.trial_seed()
    seed_everything(seed)  # the same initial weights on every worker
    model = nn.Sequential(nn.Linear(X.shape[1], width), nn.ReLU(),
                          nn.Linear(width, N_CLASSES)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    state = orchestrator.load_checkpoint()  # rank 0's last checkpoint, after a retry
    first = 1
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first = state["epoch"] + 1
    # Averages the gradients across workers in every backward pass.
    step_model = DistributedDataParallel(model, device_ids=[device.index] if device.index
                                         is not None else None) if world > 1 else model

    for epoch in range(first, epochs + 1):
        step_model.train()
        total, count = 0.0, 0
        mine = _shard(train_idx, seed=seed, epoch=epoch, rank=rank, world=world)
        for start in range(0, len(mine), batch_size):
            batch = torch.from_numpy(mine[start:start + batch_size]).to(device)
            loss = nn.functional.cross_entropy(step_model(features[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        val_loss, val_acc = _evaluate(model, features[val_idx], labels[val_idx])
        orchestrator.report(
            {"epoch": epoch, "train_loss": _mean_over_workers(total, count, world),
             "val_loss": val_loss, "val_acc": val_acc, "workers": world},
            checkpoint={"epoch": epoch, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict()})
