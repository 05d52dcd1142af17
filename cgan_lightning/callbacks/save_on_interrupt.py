"""Save the run when it is stopped on purpose (SIGTERM, Ctrl-C), so that ``--ckpt_path last.ckpt`` loses nothing.

On SIGTERM Lightning 2.6 sets a flag and raises ``SIGTERMException`` once the current batch is complete; on
Ctrl-C it catches ``KeyboardInterrupt``. In both cases it calls every callback's ``on_exception`` and then
stops, but ``ModelCheckpoint`` saves nothing unless ``save_on_exception=True``, which would also save after
*any* error, a NaN loss or a bug included. :class:`SaveOnInterrupt` saves only after these two deliberate
stops, when the loop state is consistent (the last batch finished, its optimizer steps applied).
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn


def _first_model_checkpoint(trainer: pl.Trainer) -> ModelCheckpoint | None:
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is not None:
            return callback
    return None


def interrupt_checkpoint_path(trainer: pl.Trainer) -> Path | None:
    """Where :class:`SaveOnInterrupt` writes: ``last.ckpt`` in the first ``ModelCheckpoint``'s folder, if any."""
    callback = _first_model_checkpoint(trainer)
    if callback is None or callback.dirpath is None:
        return None
    return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"


class SaveOnInterrupt(Callback):
    """On SIGTERM or Ctrl-C during ``fit``, write ``last.ckpt`` where the ``ModelCheckpoint`` writes.

    The file is a full training checkpoint of the last completed batch (weights, both optimizers, loop and
    data position, RNG state), so ``fit --ckpt_path .../last.ckpt`` continues mid-epoch. It replaces an older
    ``last.ckpt`` (through the trainer's checkpoint IO, atomically with the CLI's default
    :class:`~cgan_lightning.plugins.checkpoint_io.AtomicCheckpointIO`); a ``save_last="link"`` symlink is replaced by a
    file rather than written through. Nothing is saved after other exceptions (a NaN loss, a bug): the last
    periodic checkpoint stays the newest good one.

    Ctrl-C is handled only in single-process runs: in DDP it may reach the processes at different batches, and
    the collective save could wait forever. SIGTERM, which Lightning forwards to every rank, is handled always.
    """

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        sigterm = isinstance(exception, SIGTERMException)
        if not (sigterm or (isinstance(exception, KeyboardInterrupt) and trainer.world_size == 1)):
            return
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or trainer.fast_dev_run:
            return
        path = interrupt_checkpoint_path(trainer)
        callback = _first_model_checkpoint(trainer)
        if path is None or callback is None:
            rank_zero_warn("Training was interrupted but no ModelCheckpoint has a folder: nothing was saved.")
            return
        if trainer.is_global_zero and path.is_symlink():
            path.unlink()
        # Recorded in the checkpoint's ModelCheckpoint state: the resumed run then keeps writing last.ckpt,
        # where an unknown existing last.ckpt would make it write last-v1.ckpt instead.
        callback.last_model_path = str(path)
        trainer.save_checkpoint(path, weights_only=False)  # a full checkpoint: optimizers, loops, callbacks
        cause = "SIGTERM" if sigterm else "Ctrl-C"
        rank_zero_info(
            f"Interrupted by {cause} at epoch {trainer.current_epoch}, global step {trainer.global_step}: saved "
            f"{path}. Continue with: fit --ckpt_path {path} (same config)."
        )


__all__ = ["SaveOnInterrupt", "interrupt_checkpoint_path"]
