"""When the evaluation callbacks run, and how small they get under ``fast_dev_run``."""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from cgan_lightning.metrics.sample_checks import BadSamplesError

#: Samples per class (and real batches) under ``fast_dev_run``: enough to exercise every code path in a second.
FAST_DEV_SAMPLES_PER_CLASS = 4
FAST_DEV_REAL_BATCHES = 4


def check_every_n_epochs(every_n_epochs: int) -> int:
    """Return ``every_n_epochs`` if it is a positive integer, else raise ``ValueError``."""
    if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
        raise ValueError(f"every_n_epochs must be a positive integer, got {every_n_epochs!r}")
    return every_n_epochs


def due(trainer: Any, every_n_epochs: int) -> bool:
    """Whether an evaluation callback runs at the end of this validation.

    Never during the sanity check; during ``fit`` after epochs ``n, 2n, ...`` (1-based) and after the last epoch;
    always under ``validate`` and ``test``.
    """
    if trainer.sanity_checking:
        return False
    if trainer.state.fn != TrainerFn.FITTING:
        return True
    epoch = trainer.current_epoch + 1
    last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch >= trainer.max_epochs
    return epoch % every_n_epochs == 0 or last


def evaluated_epoch(trainer: Any, checkpoint_epoch: int | None) -> int:
    """The epoch the evaluated weights come from, for file names and tables.

    During ``fit``: the current epoch. Under ``validate`` / ``test`` Lightning restores no training loop, so
    ``trainer.current_epoch`` says nothing about the weights: use the loaded checkpoint's epoch when there is one.
    """
    if trainer.state.fn == TrainerFn.FITTING or checkpoint_epoch is None:
        return int(trainer.current_epoch)
    return int(checkpoint_epoch)


def is_fast_dev_run(trainer: Any) -> bool:
    """``Trainer(fast_dev_run=...)`` is on: callbacks shrink to smoke-test sizes and write no files."""
    return bool(trainer.fast_dev_run)


def nan_scores_or_raise(trainer: Any, error: BadSamplesError, keys: list[str], who: str) -> dict[str, float]:
    """The policy for samples that cannot be scored: during ``fit`` warn and log NaN, otherwise raise.

    A run trained with ``check_finite=False`` asked not to be stopped by NaN; its evaluation then logs ``nan``
    (never a score of garbage, never a crash in the FID) and warns with the reason. Under ``validate`` / ``test``
    the scores are the point of the call, so the error propagates (one line from the CLI).
    """
    if trainer.state.fn != TrainerFn.FITTING:
        raise error
    rank_zero_warn(f"{who}: logging nan at epoch {trainer.current_epoch}: {error}")
    return dict.fromkeys(keys, math.nan)


class ScheduledEvaluation(Callback):
    """An evaluation callback's schedule: after every ``every_n_epochs``-th validation (:func:`due`) and after
    every test (sanity checks excluded), it calls :meth:`_evaluate` with the split, ``"val"`` or ``"test"``."""

    every_n_epochs: int

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        raise NotImplementedError

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if due(trainer, self.every_n_epochs):
            self._evaluate(trainer, pl_module, "val")

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._evaluate(trainer, pl_module, "test")

