"""``BestFIDCheckpoint``: keep the best few checkpoints by a :class:`PerClassFID` score (``val/fid/mean``)."""

from __future__ import annotations

import math
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override

from cgan_lightning.callbacks.per_class_fid import PerClassFID
from cgan_lightning.utilities.lightning_internals import trainer_callbacks

#: The default monitored score: the intra-class FID (mean over classes), lower is better.
DEFAULT_MONITOR = "val/fid/mean"


class BestFIDCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` for the best ``save_top_k`` evaluations of a :class:`PerClassFID` score.

    :class:`PerClassFID` evaluates every ``every_n_epochs`` epochs (and after the last), so most validations do not
    compute ``val/fid/mean``; a plain ``ModelCheckpoint(monitor="val/fid/mean")`` would stop the run there (the key
    is missing) or, once it has been logged, rank the stale score again. This one considers a validation only when
    a :class:`PerClassFID` of the trainer has just logged ``monitor``, and saves nothing otherwise. It writes no
    ``last.ckpt`` (``save_last=False``): the CLI's ``checkpoint`` section keeps that one.

    The CLI adds it to ``fit`` whenever ``trainer.callbacks`` holds a :class:`PerClassFID` (and none of these),
    into the ``checkpoint`` section's folder. Files: ``best-epoch=<n>-fid=<score>.ckpt``.

    Args:
        dirpath: folder of the files (``None``: ``<log dir>/checkpoints``, as ``ModelCheckpoint``).
        monitor: a key :class:`PerClassFID` logs, e.g. ``val/fid/mean`` or ``val/acc/mean``.
        mode: ``min`` for FIDs, ``max`` for accuracies.
        save_top_k: how many of the best to keep (``-1``: all evaluations).
        filename: ``ModelCheckpoint`` file name pattern.
        verbose: print each save.

    Raises:
        ValueError: ``monitor`` is empty or ``save_top_k`` is 0 (nothing would be kept).
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        monitor: str = DEFAULT_MONITOR,
        mode: str = "min",
        save_top_k: int = 3,
        filename: str = "best-epoch={epoch:03d}-fid={val/fid/mean:.2f}",
        verbose: bool = False,
    ) -> None:
        if not monitor:
            raise ValueError("BestFIDCheckpoint needs a monitor, e.g. 'val/fid/mean'")
        if save_top_k == 0:
            raise ValueError("BestFIDCheckpoint(save_top_k=0) keeps nothing: leave it out of the callbacks instead")
        if monitor != DEFAULT_MONITOR and filename == "best-epoch={epoch:03d}-fid={val/fid/mean:.2f}":
            filename = "best-epoch={epoch:03d}"
        super().__init__(dirpath=dirpath, filename=filename, monitor=monitor, mode=mode, save_top_k=save_top_k,
                         save_last=False, auto_insert_metric_name=False, verbose=verbose)

    def _scored_now(self, trainer: Trainer) -> bool:
        """Whether a :class:`PerClassFID` logged a finite ``monitor`` in the validation that just ended (a NaN score,
        e.g. classes with fewer than two real images, ranks no checkpoint as best)."""
        return any(
            isinstance(callback, PerClassFID)
            and callback.last_global_step == trainer.global_step
            and self.monitor in callback.last_scores
            and math.isfinite(float(callback.last_scores[self.monitor]))
            for callback in trainer_callbacks(trainer)
        )

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._scored_now(trainer):
            super().on_validation_end(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._scored_now(trainer):
            super().on_train_epoch_end(trainer, pl_module)


def best_fid_checkpoint_for(trainer: Trainer) -> BestFIDCheckpoint | None:
    """The :class:`BestFIDCheckpoint` the CLI adds to ``trainer``, or ``None`` when it adds none.

    One is added when checkpointing is on, a :class:`PerClassFID` is among the callbacks and no
    :class:`BestFIDCheckpoint` is; it writes into the folder of the trainer's first ``ModelCheckpoint``.
    """
    if not trainer.checkpoint_callbacks:
        return None
    if any(isinstance(c, BestFIDCheckpoint) for c in trainer_callbacks(trainer)):
        return None
    if not any(isinstance(c, PerClassFID) for c in trainer_callbacks(trainer)):
        return None
    first = trainer.checkpoint_callbacks[0]
    dirpath = first.dirpath if isinstance(first, ModelCheckpoint) else None
    return BestFIDCheckpoint(dirpath=dirpath)


__all__ = ["DEFAULT_MONITOR", "BestFIDCheckpoint", "best_fid_checkpoint_for"]
