"""The in-memory fast path shared by every data module: uint8 splits held once, batches sliced from them.

A data module decodes each split once into a uint8 tensor ``[N, C, H, W]`` (or ``[N, H, W]``);
:class:`InMemoryBatches` then serves shuffled, normalized batches by indexing that tensor, so there is no
per-image PIL transform per step (the reference loop spends about a third of its time there).
:class:`InMemoryDataModule` holds the splits, the device-resident copies and the loaders; a subclass only says how
to read a split (:meth:`InMemoryDataModule.load_split`) and what its classes are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from typing_extensions import override

from cgan_lightning.utilities.argument_checks import check_int

#: ``train`` feeds training; ``test`` (the evaluation split) feeds validation, test and the evaluation callbacks.
SplitName = Literal["train", "test"]


def normalize(images: Tensor) -> Tensor:
    """uint8 ``[B, H, W]`` or ``[B, C, H, W]`` in 0..255 -> float ``[B, C, H, W]`` in ``[-1, 1]``.

    Same values as the reference's ``ToTensor()`` then ``Normalize([0.5], [0.5])``.
    """
    if images.dim() == 3:
        images = images.unsqueeze(1)
    return images.float().div_(127.5).sub_(1.0)


class InMemoryBatches:
    """Iterates ``(images, labels)`` batches from in-memory tensors.

    Each epoch draws a fresh permutation from ``seed + epoch`` (so runs are reproducible and every epoch is
    shuffled differently), keeps this rank's shard of it and yields normalized float images ``[B, C, H, W]``
    with int64 labels ``[B]``. The shard is ``rank::world_size`` of the permutation cut to a multiple of
    ``world_size`` (as ``DistributedSampler(drop_last=True)``): no sample is served twice in an epoch, and the
    at most ``world_size - 1`` samples left out change every epoch.

    It is stateful in Lightning's sense (``state_dict``/``load_state_dict``): the fit loop saves the epoch and
    the number of batches served in checkpoints, so resuming from a mid-epoch checkpoint continues with the
    next batch of the same permutation instead of restarting the epoch.

    Batches are indexed where ``images`` live: tensors already on a GPU give batches on that GPU with no
    host-to-device copy per step (only the epoch's permutation, drawn on the CPU, is copied once per epoch).

    Args:
        images: uint8 images ``[N, H, W]`` or ``[N, C, H, W]`` (on any device; ``labels`` on the same one).
        labels: int64 labels ``[N]``.
        batch_size: images per batch.
        shuffle: draw a new permutation each epoch; otherwise keep the stored order.
        drop_last: skip the final, smaller batch.
        seed: base seed of the shuffling.
        rank: this process's index among ``world_size`` data-parallel processes.
        world_size: number of data-parallel processes; each sees ``1 / world_size`` of every epoch.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_int(batch_size, "batch_size")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if len(labels) < world_size:
            raise ValueError(f"{len(labels)} samples can't be shared among {world_size} processes: each needs one")
        self.world_size = world_size
        self.epoch = 0
        self._position = 0  # batches served in the current epoch
        self._resume_at: tuple[int, int] | None = None  # (epoch, position) from load_state_dict

    @property
    def sampler(self) -> InMemoryBatches:
        # Lightning calls ``loader.sampler.set_epoch(epoch)`` at every epoch start (also after a resume).
        return self

    #: No torch BatchSampler: batches are sliced here (Lightning inspects this attribute).
    batch_sampler = None

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch`` (Lightning calls this at each epoch start)."""
        self.epoch = epoch
        self._position = 0

    def state_dict(self) -> dict[str, int]:
        """The epoch, how many of its batches were served, and the batching that defines them (Lightning stores
        this in checkpoints)."""
        return {"epoch": self.epoch, "position": self._position, "batch_size": self.batch_size,
                "batches": len(self), "world_size": self.world_size}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Continue after the saved batch when the next iteration is over the saved epoch.

        Lightning restores the state before calling :meth:`set_epoch`: for an end-of-epoch checkpoint the
        epoch then moves on and the saved position no longer applies, so it is only used by ``__iter__``.

        Raises:
            ValueError: the checkpoint stopped mid-epoch and this loader batches differently (another batch size
                or number of processes): its saved position would skip or repeat images of that epoch.
        """
        epoch, position = int(state_dict["epoch"]), int(state_dict["position"])
        saved = {key: state_dict.get(key) for key in ("batch_size", "world_size")}
        now = {"batch_size": self.batch_size, "world_size": self.world_size}
        batches = state_dict.get("batches")
        mid_epoch = 0 < position and (batches is None or position < int(batches))
        changed = [key for key, value in saved.items() if value is not None and int(value) != now[key]]
        if mid_epoch and changed:
            was = ", ".join(f"{key} {saved[key]}" for key in changed)
            raise ValueError(
                f"the checkpoint stopped in the middle of epoch {epoch}, after {position} of {batches} batches "
                f"made with {was}; this run uses {', '.join(f'{key} {now[key]}' for key in changed)}, so it cannot "
                f"continue from the right image (it would skip or repeat part of the epoch). Resume with the "
                f"checkpoint's setting (e.g. --data.batch_size {saved['batch_size']}); change it from a checkpoint "
                "saved at the end of an epoch"
            )
        self._resume_at = (epoch, position)

    def _indices(self) -> Tensor:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(n)
        # Cut (rather than pad by wrapping around) so every rank gets the same number of batches, which DDP
        # needs, without serving any sample twice in an epoch.
        return order[: self._num_samples() * self.world_size][self.rank :: self.world_size]

    def _num_samples(self) -> int:
        return len(self.labels) // self.world_size

    def __len__(self) -> int:
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # A generator: this body runs at the first next(), after Lightning's set_epoch().
        start = 0
        if self._resume_at is not None:
            epoch, position = self._resume_at
            self._resume_at = None
            if epoch == self.epoch:
                start = position
        order = self._indices().to(self.images.device)  # the same permutation wherever the data lives
        self._position = start
        for i in range(start, len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            self._position = i + 1
            yield normalize(self.images[idx]), self.labels[idx]


class InMemoryDataModule(LightningDataModule):
    """Base of the data modules whose splits fit in memory as uint8 tensors (MNIST, image folders, CIFAR, ...).

    Subclasses implement :meth:`load_split` and the ``num_classes`` / ``image_shape`` / ``class_names``
    properties; this class caches the splits, optionally copies them to the trainer's device and serves them with
    :class:`InMemoryBatches` (training: shuffled each epoch; validation and test: the evaluation split in order).

    Args:
        batch_size: images per training (and evaluation) batch.
        seed: base seed of the per-epoch shuffling.
        drop_last: drop the last, smaller training batch of each epoch.
        device_resident: copy each split once to the trainer's device (e.g. the GPU) and index batches there, so
            no batch crosses the host-device link. The batches are the same as without it.
    """

    def __init__(self, batch_size: int = 64, seed: int = 0, drop_last: bool = False,
                 device_resident: bool = False) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("seed", seed)):
            check_int(value, name, minimum=None)  # the type here; the range below
        for name, flag in (("drop_last", drop_last), ("device_resident", device_resident)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be true or false, got {flag!r} ({type(flag).__name__})")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.device_resident = device_resident
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}
        self._device_splits: dict[tuple[str, torch.device], tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------------------------- for subclasses
    def load_split(self, name: SplitName) -> tuple[Tensor, Tensor]:
        """Read split ``name``: uint8 images ``[N, C, H, W]`` (or ``[N, H, W]``) and int64 labels ``[N]``."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of labels."""
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the images served."""
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        """One name per label, in label order (the CLI links it into the model's ``class_names``)."""
        return [str(k) for k in range(self.num_classes)]

    # ------------------------------------------------------------------------------------ shared
    def split(self, name: SplitName) -> tuple[Tensor, Tensor]:
        """The uint8 images and int64 labels of a split, read once (:meth:`load_split`) and cached."""
        if name not in self._splits:
            images, labels = self.load_split(name)
            self._splits[name] = (images.contiguous(), labels.long().contiguous())
        return self._splits[name]

    @override
    def setup(self, stage: str | None = None) -> None:
        """Read the splits this stage needs."""
        if stage in ("fit", None):
            self.split("train")
        self.split("test")

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)  # LightningDataModule.trainer: set by Trainer.fit/validate/...
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _resident_split(self, name: SplitName) -> tuple[Tensor, Tensor]:
        """The split on the trainer's device (the CPU without a trainer), copied once and cached."""
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if (name, device) not in self._device_splits:
            images, labels = self.split(name)
            self._device_splits[(name, device)] = (images.to(device), labels.to(device))
        return self._device_splits[(name, device)]

    def _batches(self, name: SplitName, shuffle: bool, drop_last: bool) -> InMemoryBatches:
        images, labels = self._resident_split(name) if self.device_resident else self.split(name)
        rank, world_size = self._world()
        return InMemoryBatches(images, labels, self.batch_size, shuffle=shuffle, drop_last=drop_last,
                               seed=self.seed, rank=rank, world_size=world_size)

    @override
    def train_dataloader(self) -> InMemoryBatches:
        return self._batches("train", shuffle=True, drop_last=self.drop_last)

    @override
    def val_dataloader(self) -> InMemoryBatches:
        return self._batches("test", shuffle=False, drop_last=False)

    @override
    def test_dataloader(self) -> InMemoryBatches:
        return self._batches("test", shuffle=False, drop_last=False)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = state_dict.get("seed", self.seed)


__all__ = ["InMemoryBatches", "InMemoryDataModule", "SplitName", "normalize"]
