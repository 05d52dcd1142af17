"""Where an epoch of ``cgan-lightning fit`` spends its time: training batches, the gaps between them, validation,
and the epoch's end (checkpoint, logging, hooks). A callback for the CLI, printing one line per epoch at exit:

    PYTHONPATH=benchmarks cgan-lightning fit --config examples/fast.yaml --data.data_dir ../shared/data \
        --data.download false --trainer.max_epochs 7 '--trainer.callbacks+=epoch_timer.EpochTimer'

An epoch is measured from its start to the next epoch's start, so the checkpoint written at its end is inside it;
the last epoch has no next start and is not reported.
"""

from __future__ import annotations

import atexit
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override


class EpochTimer(Callback):
    """Per epoch (seconds): ``wall``, ``batches`` (training steps), ``gaps`` (between batches: data and the loop),
    ``validation``, and ``epoch_end`` (from the last batch to the next epoch's start, less validation)."""

    def __init__(self, report_at_exit: bool = True) -> None:
        self.epochs: list[dict[str, float]] = []
        self._start: float | None = None
        self._last_batch_end: float | None = None
        self._totals = {"batches": 0.0, "gaps": 0.0, "validation": 0.0}
        if report_at_exit:
            atexit.register(self.report)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.perf_counter()
        if self._start is not None and self._last_batch_end is not None:
            epoch_end = now - self._last_batch_end - self._totals["validation"]
            self.epochs.append({"wall": now - self._start, **self._totals, "epoch_end": epoch_end})
        self._start, self._last_batch_end = now, None
        self._totals = {"batches": 0.0, "gaps": 0.0, "validation": 0.0}

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch_start = time.perf_counter()
        if self._last_batch_end is not None:
            self._totals["gaps"] += self._batch_start - self._last_batch_end

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._last_batch_end = time.perf_counter()
        self._totals["batches"] += self._last_batch_end - self._batch_start

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validation_start = time.perf_counter()

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._totals["validation"] += time.perf_counter() - self._validation_start

    def report(self) -> None:
        for number, epoch in enumerate(self.epochs):
            print(f"epoch {number}: " + ", ".join(f"{name} {seconds * 1e3:.0f} ms" for name, seconds in epoch.items()))
