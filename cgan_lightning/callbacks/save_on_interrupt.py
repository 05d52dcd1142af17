"""Save the run when it is stopped on purpose (SIGTERM, Ctrl-C), so that ``--ckpt_path last.ckpt`` loses nothing.

On SIGTERM Lightning sets a flag and raises ``SIGTERMException`` once the current batch is complete. Ctrl-C,
left alone, raises ``KeyboardInterrupt`` wherever Python happens to be, e.g. between the D and the G update
of a batch, and a checkpoint of that state does not resume exactly. :class:`SaveOnInterrupt` therefore
catches Ctrl-C during ``fit`` itself and stops at the next batch boundary, as SIGTERM does; a second Ctrl-C
aborts at once, without saving.

Lightning's ``OnExceptionCheckpoint`` does not fit: it saves after *any* exception (a NaN loss, a bug), into
a folder fixed at construction, and deletes its file again at teardown. ``ModelCheckpoint(save_on_exception=
True)`` also saves after any error.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from typing_extensions import override

from cgan_lightning.callbacks.run_summary import saved_config_path
from cgan_lightning.utilities.lightning_internals import fast_dev_run


class InterruptRequested(KeyboardInterrupt):
    """Raised by :class:`SaveOnInterrupt` at the batch boundary after a Ctrl-C (a ``KeyboardInterrupt``)."""


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
    """On SIGTERM or Ctrl-C during ``fit``, finish the current batch, write ``last.ckpt`` and stop.

    The file goes where the first ``ModelCheckpoint`` writes. It is a full training checkpoint of the last
    completed batch (weights, both optimizers, loop and data position, the model's training RNG), so
    ``fit --ckpt_path .../last.ckpt`` continues mid-epoch and ends with the same weights, bit for bit, as an
    uninterrupted run. It replaces an older ``last.ckpt`` (through the trainer's checkpoint IO, atomically with
    :class:`~cgan_lightning.plugins.checkpoint_io.AtomicCheckpointIO`); a ``save_last="link"`` symlink is
    replaced by a file rather than written through. Nothing is saved after other exceptions (a NaN loss, a
    bug): the last periodic checkpoint stays the newest good one.

    Ctrl-C: during ``fit`` the callback replaces Python's SIGINT handler (the previous one is restored when
    ``fit`` ends): the first Ctrl-C asks to stop after the running batch; a second one aborts at once without
    saving. This works in single-process runs (in the main thread); in DDP, Ctrl-C may reach the ranks at
    different batches, so there Lightning's own handling stays and nothing is saved. SIGTERM, which Lightning
    forwards to every rank, is handled always.

    The ``cgan-lightning`` CLI adds this callback by default (``--save_on_interrupt false`` turns it off);
    with a Python ``Trainer``, pass ``callbacks=[SaveOnInterrupt(), ...]``.
    """

    def __init__(self) -> None:
        self._previous_handler: Any = None
        self._installed = False
        self.stop_requested = False

    # ---------------------------------------------------------------------------------------------- SIGINT
    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.stop_requested = False
        if trainer.world_size > 1 or threading.current_thread() is not threading.main_thread():
            return
        self._previous_handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_sigint)
        self._installed = True

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested:  # the second Ctrl-C: the user does not want to wait
            self._restore_handler()
            raise KeyboardInterrupt
        self.stop_requested = True
        print("\nCtrl-C: stopping after the current batch and saving last.ckpt (Ctrl-C again: abort, no save).",
              file=sys.stderr, flush=True)

    def _restore_handler(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._installed = False

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Both updates of the batch are applied and it counts as done: a checkpoint from here resumes exactly.
        if self.stop_requested:
            raise InterruptRequested

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handler()

    # ---------------------------------------------------------------------------------------------- saving
    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning ignores SIGINT while it shuts down after a KeyboardInterrupt; put the user's handler back.
        self._restore_handler()
        sigterm = isinstance(exception, SIGTERMException)
        if not (sigterm or isinstance(exception, InterruptRequested)):
            return
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or fast_dev_run(trainer):
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
        config = saved_config_path(trainer)
        rank_zero_info(
            f"Interrupted by {cause} at epoch {trainer.current_epoch}, global step {trainer.global_step}: saved "
            f"{path}. Continue with: cgan-lightning fit --config {config or '<the same config>'} --ckpt_path {path}"
        )


__all__ = ["InterruptRequested", "SaveOnInterrupt", "interrupt_checkpoint_path"]
