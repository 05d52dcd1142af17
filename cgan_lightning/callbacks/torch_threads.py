"""A callback that sets torch's CPU thread count for a run and restores it afterwards."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class TorchThreads(Callback):
    """Run ``fit`` / ``validate`` / ``test`` with ``torch.set_num_threads(num_threads)``; restore the old count after.

    On some machines, notably when other jobs share the cores, fewer intra-op threads are faster: each small op of
    the reference MLPs then waits for a descheduled second OpenMP thread.

    Under DDP each process sets its own count (``num_threads`` per process). Not exact: another thread count sums
    floats in another order, so losses and weights differ in the last bits and drift apart over a run.

    Args:
        num_threads: intra-op threads for the run (``torch.set_num_threads``); must be >= 1.

    Example (YAML)::

        trainer:
          callbacks:
            - class_path: cgan_lightning.callbacks.torch_threads.TorchThreads
              init_args: {num_threads: 1}
    """

    def __init__(self, num_threads: int = 1) -> None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be an integer >= 1 (torch's intra-op threads), got {num_threads!r}")
        self.num_threads = num_threads
        self._previous: int | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._previous is None:
            self._previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._previous is not None:
            torch.set_num_threads(self._previous)
            self._previous = None
