"""The random stream a model draws its training noise from, kept in its checkpoints so that resuming is exact.

Lightning does not checkpoint torch's global RNG. A module that draws its training latents from a
``torch.Generator`` of its own, saves that generator's state with its weights and restores it on
``fit(ckpt_path=...)`` continues exactly as an uninterrupted run would, whatever else used the global RNG in
between, and without reseeding it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor

#: Spreads the per-rank seeds apart (the 64-bit golden-ratio constant).
_RANK_STRIDE = 0x9E3779B97F4A7C15


def rank_seed(base_seed: int, rank: int) -> int:
    """The seed of DDP rank ``rank``: ``base_seed`` itself on rank 0, far-apart values on the others."""
    return (base_seed + rank * _RANK_STRIDE) % 2**64


class TrainingRNG:
    """A ``torch.Generator`` on the training device whose state travels in checkpoints, one per DDP rank.

    Call :meth:`start` at the start of ``fit`` (seeds it unless a checkpoint was loaded), draw from
    :attr:`generator`, and pass the module's checkpoint dict to :meth:`save` / :meth:`load`.
    """

    #: Key of the entry in the Lightning checkpoint dict.
    CHECKPOINT_KEY = "training_rng"

    def __init__(self) -> None:
        self._generator: torch.Generator | None = None
        self._loaded: list[Tensor] | None = None  # per-rank states from a checkpoint, until start() uses them

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran (in this process's latest ``fit``)."""
        return self._generator is not None

    @property
    def generator(self) -> torch.Generator:
        """The generator to draw training noise from.

        Raises:
            RuntimeError: :meth:`start` was not called (the module draws training noise only during ``fit``).
        """
        if self._generator is None:
            raise RuntimeError("the training RNG is not started: it is seeded in on_fit_start (fit only)")
        return self._generator

    def start(self, device: torch.device, rank: int = 0, world_size: int = 1) -> None:
        """Set up the generator on ``device``: from a loaded checkpoint state, else continue the current stream
        (a second ``fit`` of the same model), else seed it from ``torch.initial_seed()``.

        Args:
            device: where the training noise is drawn (the module's device).
            rank: this process's global rank; each rank gets its own stream.
            world_size: number of processes.
        """
        states, self._loaded = self._loaded, None
        current = self._generator
        if states is None and current is not None and current.device == torch.device(device):
            return  # fit called again on the same model: go on drawing new numbers, do not replay the first fit's
        generator = torch.Generator(device=device)
        if states is not None and len(states) == world_size and _fits(generator, states[rank]):
            # A copy with its own storage: set_state reads a view into a shared storage (a row of a gathered or
            # loaded stack) from the storage's start, and crashes the process.
            generator.set_state(states[rank].detach().to("cpu", torch.uint8).clone())
        else:
            if states is not None:
                rank_zero_warn(f"The checkpoint's training RNG state ({len(states)} rank(s)) does not fit this run "
                               f"({world_size} rank(s) on {device.type}): the training noise is reseeded, so the "
                               "resumed run is not bit for bit an uninterrupted one.")
            generator.manual_seed(rank_seed(torch.initial_seed(), rank))
        self._generator = generator

    def state(self) -> Tensor:
        """This process's generator state (a uint8 tensor on the CPU)."""
        return self.generator.get_state()

    def save(self, checkpoint: dict[str, Any], all_states: Sequence[Tensor]) -> None:
        """Write every rank's state (``all_states``, indexed by rank) into ``checkpoint`` as plain tensors."""
        # One storage per state (not rows of one gathered tensor), so each loads back as an independent tensor.
        checkpoint[self.CHECKPOINT_KEY] = {"states": [s.detach().to("cpu", torch.uint8).clone() for s in all_states]}

    def load(self, checkpoint: dict[str, Any]) -> None:
        """Keep the checkpoint's states for the next :meth:`start`; a checkpoint without them is ignored."""
        entry = checkpoint.get(self.CHECKPOINT_KEY)
        self._loaded = list(entry["states"]) if isinstance(entry, dict) and entry.get("states") else None


def _fits(generator: torch.Generator, state: Tensor) -> bool:
    return state.numel() == generator.get_state().numel()


__all__ = ["TrainingRNG", "rank_seed"]
