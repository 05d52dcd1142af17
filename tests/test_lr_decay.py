"""``lr_decay``: both learning rates fall linearly to zero over the last part of training, per batch, and resume."""

from __future__ import annotations

import csv
import doctest
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from cgan_lightning import ConditionalGAN, MLPDiscriminator, MLPGenerator, lr_decay
from cgan_lightning.lr_decay import linear_decay_factor

LR = 1e-3
BATCHES_PER_EPOCH = 4


class RecordLRs(Callback):
    """The (G, D) learning rates each training batch runs with."""

    def __init__(self) -> None:
        self.lrs: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer: Trainer, *args: Any) -> None:
        g, d = (opt.param_groups[0]["lr"] for opt in trainer.optimizers)
        self.lrs.append((g, d))


class StopAfterFirstEpoch(Callback):
    """Saves a checkpoint after the first epoch and stops there, as an interrupted run would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer: Trainer, *args: Any) -> None:
        trainer.save_checkpoint(self.path)
        trainer.should_stop = True


def _model(**kwargs: Any) -> ConditionalGAN:
    seed_everything(0)
    adam = partial(torch.optim.Adam, lr=LR, betas=(0.5, 0.999))
    return ConditionalGAN(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16,)),
                          discriminator=partial(MLPDiscriminator, hidden_dims=(16,)), optimizer_g=adam,
                          optimizer_d=adam, **kwargs)


def _loader() -> DataLoader[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16 * BATCHES_PER_EPOCH, 1, 28, 28, generator=generator) * 2 - 1
    return DataLoader(TensorDataset(images, torch.arange(len(images)) % 10), batch_size=16)


def _fit(model: ConditionalGAN, callbacks: list[Callback], ckpt_path: Path | None = None,
         **trainer_kwargs: Any) -> Trainer:
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0, callbacks=callbacks, **trainer_kwargs)
    trainer.fit(model, train_dataloaders=_loader(), ckpt_path=ckpt_path)
    return trainer


def test_the_factor_is_one_then_falls_linearly_to_zero() -> None:
    assert [linear_decay_factor(b, 10, 0.4) for b in range(10)] == pytest.approx(
        [1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25])
    assert [linear_decay_factor(b, 4, 1.0) for b in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert linear_decay_factor(7, 8, 0.0) == 1.0


def test_the_docstring_example_holds() -> None:
    result = doctest.testmod(lr_decay)
    assert result.attempted > 0 and result.failed == 0


def test_both_rates_follow_the_schedule_over_the_planned_batches() -> None:
    record = RecordLRs()
    trainer = _fit(_model(lr_decay=0.5), [record], max_epochs=2)
    expected = [LR * f for f in (1, 1, 1, 1, 1, 0.75, 0.5, 0.25)]
    assert [g for g, _ in record.lrs] == pytest.approx(expected)
    assert [d for _, d in record.lrs] == pytest.approx(expected)
    assert [opt.param_groups[0]["lr"] for opt in trainer.optimizers] == [0.0, 0.0]  # stepped after the last batch


def test_without_lr_decay_the_rates_stay_constant() -> None:
    record = RecordLRs()
    _fit(_model(), [record], max_epochs=2)
    assert record.lrs == [(LR, LR)] * 2 * BATCHES_PER_EPOCH


def test_max_steps_counts_every_optimizer_step_of_a_batch() -> None:
    # One D and two G steps a batch: max_steps=12 is 4 batches, the whole decay (fraction 1) within them.
    record = RecordLRs()
    _fit(_model(lr_decay=1.0, g_steps_per_batch=2), [record], max_epochs=10, max_steps=12)
    assert [g for g, _ in record.lrs] == pytest.approx([LR * f for f in (1, 0.75, 0.5, 0.25)])


def test_a_resumed_run_continues_the_schedule(tmp_path: Path) -> None:
    straight = RecordLRs()
    _fit(_model(lr_decay=0.75), [straight], max_epochs=2)
    checkpoint = tmp_path / "epoch1.ckpt"
    _fit(_model(lr_decay=0.75), [StopAfterFirstEpoch(checkpoint)], max_epochs=2)
    resumed = RecordLRs()
    _fit(_model(lr_decay=0.75), [resumed], ckpt_path=checkpoint, max_epochs=2)
    assert resumed.lrs == straight.lrs[BATCHES_PER_EPOCH:]  # the same factors of the same base rates
    assert resumed.lrs[0][0] < LR  # the second epoch starts inside the decay


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "half"])
def test_lr_decay_outside_zero_to_one_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match=r"lr_decay must be a fraction of training in \[0, 1\]"):
        _model(lr_decay=value)


def test_lr_decay_needs_a_known_training_length() -> None:
    with pytest.raises(ValueError, match="lr_decay needs to know how long training runs: set trainer.max_epochs"):
        _fit(_model(lr_decay=0.5), [], max_epochs=-1)


def test_learning_rate_monitor_logs_both_rates(tmp_path: Path) -> None:
    monitor = LearningRateMonitor(logging_interval="step")
    logger = CSVLogger(tmp_path)
    trainer = Trainer(accelerator="cpu", logger=logger, log_every_n_steps=1, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, max_epochs=2, callbacks=[monitor])
    trainer.fit(_model(lr_decay=0.5), train_dataloaders=_loader())
    rows = list(csv.DictReader((Path(logger.log_dir) / "metrics.csv").open()))
    logged = [float(row["lr-Adam"]) for row in rows if row.get("lr-Adam")]
    assert logged[0] == LR and min(logged) == pytest.approx(0.25 * LR)
    assert any(row.get("lr-Adam-1") for row in rows)  # D's optimizer, the second Adam
