"""Every optimiser and LR schedule builds from config and steps; bad values fail clearly."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrator.toolkit import (
    LR_SCHEDULES,
    OPTIMIZERS,
    LRSchedule,
    TrainSettings,
    build_optimizer,
)

STEPS_PER_EPOCH = 3
EPOCHS = 6


@pytest.mark.parametrize("warmup", [0, 2])
@pytest.mark.parametrize("schedule", LR_SCHEDULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_and_schedule_steps(optimizer: str, schedule: str, warmup: int) -> None:
    settings = TrainSettings.from_config(
        {
            "optimizer": optimizer,
            "lr_schedule": schedule,
            "warmup_epochs": warmup,
            "epochs": EPOCHS,
            "lr": 0.1,
            "lr_step_size": 2,
            "lr_patience": 0,
        }
    )
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model.parameters(), settings)
    sched = LRSchedule(opt, settings, steps_per_epoch=STEPS_PER_EPOCH)
    before = model.weight.detach().clone()
    lrs = []
    for _ in range(EPOCHS):
        for _ in range(STEPS_PER_EPOCH):
            opt.zero_grad()
            model(torch.ones(4, 3)).pow(2).mean().backward()
            lrs.append(sched.lr)
            opt.step()
            sched.after_batch()
        sched.after_epoch(val_loss=1.0)  # a flat loss: plateau must decay
    assert not torch.equal(before, model.weight)
    assert all(math.isfinite(lr) and 0 < lr <= 0.1 + 1e-12 for lr in lrs)
    if warmup and schedule != "onecycle":
        assert lrs[0] == pytest.approx(0.1 / (warmup + 1))
        assert lrs[warmup * STEPS_PER_EPOCH] == pytest.approx(0.1)
    if schedule == "none" and not warmup:
        assert set(lrs) == {0.1}
    if schedule in ("step", "exponential", "cosine", "onecycle", "plateau"):
        assert lrs[-1] < 0.1


def test_sgd_uses_momentum_default_and_adamw_weight_decay() -> None:
    params = torch.nn.Linear(2, 2).parameters()
    assert build_optimizer(params, TrainSettings(optimizer="sgd")).defaults["momentum"] == 0.9
    adamw = build_optimizer(
        torch.nn.Linear(2, 2).parameters(), TrainSettings(optimizer="adamw", weight_decay=0.1)
    )
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"optimizer": "adamm"},
            r"`optimizer` must be one of 'adam', 'adamw', 'sgd', "
            r"but got 'adamm' \(did you mean 'adam'\?\)",
        ),
        (
            {"lr_schedule": "cosin"},
            r"`lr_schedule` must be one of 'none', .*but got 'cosin' \(did you mean 'cosine'\?\)",
        ),
        ({"lr": 0}, r"`lr` must be a number in \(0, inf\], but got 0"),
        ({"batch_size": 12.5}, r"`batch_size` must be a whole number in \[1, inf\], but got 12.5"),
        ({"dropout": 1.0}, r"`dropout` must be a number in \[0, 1\), but got 1.0"),
        (
            {"epochs": 3, "warmup_epochs": 3},
            r"`warmup_epochs` must be smaller than `epochs` \(3\), but got 3",
        ),
    ],
)
def test_bad_config_values_name_the_key_value_and_rule(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainSettings.from_config(config)


def test_all_problems_are_reported_at_once_and_defaults_fill_gaps() -> None:
    with pytest.raises(ValueError, match=r"2 problem\(s\)"):
        TrainSettings.from_config({"lr": -1, "optimizer": "rmsprop"})
    settings = TrainSettings.from_config({"batch_size": 32.0, "grad_clip": None, "width": 5})
    assert settings.batch_size == 32 and settings.grad_clip == 0.0
    assert settings == TrainSettings(batch_size=32)
