"""Test callbacks that record what a training run did."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class LossRecorder(Callback):
    """Keeps ``(d_loss, g_loss)`` as logged at every training batch, as floats (needs ``log_every_n_steps=1``)."""

    def __init__(self) -> None:
        self.losses: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: object,
                           batch_idx: int) -> None:
        metrics = trainer.callback_metrics
        self.losses.append((metrics["train/d_loss_step"].item(), metrics["train/g_loss_step"].item()))


class ThreadsSeen(Callback):
    """Records ``torch.get_num_threads()`` at every training batch."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int) -> None:
        self.seen.add(torch.get_num_threads())
