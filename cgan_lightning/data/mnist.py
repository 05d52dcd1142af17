"""MNIST-family data served from memory as shuffled, normalized batches.

torchvision reads each split once into a uint8 tensor; :class:`InMemoryBatches` then serves batches by
indexing that tensor, so there is no per-image PIL transform (the reference loop spends about a third of
its time there).
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torchvision import datasets
from typing_extensions import override

from cgan_lightning.utilities.argument_checks import check_int

DatasetName = Literal["mnist", "fashion_mnist", "kmnist"]

_DATASETS: dict[str, type[datasets.MNIST]] = {
    "mnist": datasets.MNIST,
    "fashion_mnist": datasets.FashionMNIST,
    "kmnist": datasets.KMNIST,
}

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataNotFoundError(FileNotFoundError):
    """The dataset files are not in ``data_dir`` and could not be downloaded."""


class CorruptDataError(ValueError):
    """A dataset file is truncated or corrupted (the message names it and says how to replace it)."""


#: Bytes per value for the IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_ITEM_SIZES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def check_idx_file(path: Path) -> tuple[int, ...]:
    """Return the dimensions an IDX file's header declares, after checking the file holds all of them.

    torchvision reports a truncated file as missing ("Dataset not found") or fails on an assertion; this
    reads only the header and the file size, and names the file.

    Raises:
        CorruptDataError: (a ``ValueError``) the magic number is not an IDX one, or the file is shorter than its
            header promises.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
        ndim = magic[3] if len(magic) == 4 else 0
        dims_bytes = f.read(4 * ndim)
    fix = "delete it and download again (--data.download true), or copy it again from a complete dataset"
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_ITEM_SIZES or ndim == 0:
        raise CorruptDataError(f"{path} is not an IDX file ({size} bytes, bad header): it is truncated or "
                               f"corrupted; {fix}")
    if len(dims_bytes) < 4 * ndim:
        raise CorruptDataError(f"{path} is truncated inside its header ({size} bytes); {fix}")
    dims = struct.unpack(f">{ndim}I", dims_bytes)
    expected = 4 + 4 * ndim + math.prod(dims) * _IDX_ITEM_SIZES[magic[2]]
    if size < expected:
        raise CorruptDataError(f"{path} is truncated: its header declares {'x'.join(map(str, dims))} values "
                         f"({expected:,} bytes) but the file has {size:,} bytes; {fix}")
    return dims


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


class MNISTDataModule(LightningDataModule):
    """MNIST, Fashion-MNIST or KMNIST for conditional GAN training.

    Training uses the official train split; validation and test use the official test split. Each split is
    read once into memory and served by :class:`InMemoryBatches` (images normalized to ``[-1, 1]``).

    Args:
        data_dir: folder holding ``<Dataset>/raw/`` (torchvision's layout), e.g. ``../shared/data``.
        download: fetch the files when missing. Offline, set ``false`` and point ``data_dir`` at a local copy.
        batch_size: images per training (and evaluation) batch.
        num_workers: kept for API compatibility with DataLoader-based modules; batches are sliced from
            memory in the main process, which is faster than worker processes for 28x28 images.
        dataset: ``mnist``, ``fashion_mnist`` or ``kmnist`` (same format in torchvision).
        seed: base seed of the per-epoch shuffling.
        drop_last: drop the last, smaller training batch of each epoch.
        device_resident: copy each split once to the trainer's device (e.g. the GPU) and index batches there,
            so no batch crosses the host-device link (uint8: 47 MB for the full 60k MNIST train split). The
            batches are the same as without it. On the CPU this changes nothing.
    """

    def __init__(
        self,
        data_dir: str = "./data",
        download: bool = True,
        batch_size: int = 64,
        num_workers: int = 0,
        dataset: DatasetName = "mnist",
        seed: int = 0,
        drop_last: bool = False,
        device_resident: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("num_workers", num_workers), ("seed", seed)):
            check_int(value, name, minimum=None)  # the type here; the ranges below
        for name, flag in (("download", download), ("drop_last", drop_last), ("device_resident", device_resident)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be true or false, got {flag!r} ({type(flag).__name__})")
        if not isinstance(data_dir, str | os.PathLike):
            raise ValueError(f"data_dir must be a folder path, got {data_dir!r} ({type(data_dir).__name__})")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if dataset not in _DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}: choose one of {sorted(_DATASETS)}")
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.download = download
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dataset = dataset
        self.seed = seed
        self.drop_last = drop_last
        self.device_resident = device_resident
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}
        self._device_splits: dict[tuple[str, torch.device], tuple[Tensor, Tensor]] = {}

    @property
    def num_classes(self) -> int:
        """Number of labels (10 for all three datasets)."""
        return 10

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the images."""
        return (1, 28, 28)

    @property
    def raw_folder(self) -> Path:
        """Where torchvision looks for the four IDX files."""
        return Path(self.data_dir) / _DATASETS[self.dataset].__name__ / "raw"

    def _missing_data_error(self, cause: BaseException | None = None) -> DataNotFoundError:
        # One line (the CLI prints only the first): the download's own multi-line report is folded into it.
        reason = (f" (download failed: {'; '.join(line.strip() for line in str(cause).splitlines() if line.strip())})"
                  if cause is not None else " (download is off)")
        mirrors = " or ".join(_DATASETS[self.dataset].mirrors)
        return DataNotFoundError(
            f"{self.dataset} not found in {self.raw_folder.resolve()}{reason}. Expected the files "
            f"{', '.join(RAW_FILES)} there, or their .gz archives (they are extracted on first use): download them "
            f"by hand (e.g. from {mirrors}) into that folder, or point --data.data_dir at a folder holding "
            f"{_DATASETS[self.dataset].__name__}/raw/ (e.g. --data.data_dir ../shared/data --data.download false)"
            + (", or allow network access with --data.download true." if cause is None else ".")
        )

    def _extract_archives(self) -> None:
        """Extract ``<file>.gz`` archives whose extracted file is missing (torchvision only reads extracted files).

        Raises:
            CorruptDataError: an archive is not a readable gzip file.
            PermissionError: the raw folder is not writable (the message says to extract the files elsewhere).
        """
        for name in RAW_FILES:  # all four: torchvision wants both splits present to read either
            target, archive = self.raw_folder / name, self.raw_folder / f"{name}.gz"
            if target.exists() or not archive.is_file():
                continue
            partial = target.with_name(f".{name}.partial")
            try:
                with gzip.open(archive, "rb") as src, partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(partial, target)
            except (OSError, EOFError, zlib.error) as err:
                partial.unlink(missing_ok=True)
                if isinstance(err, PermissionError):
                    raise PermissionError(f"cannot extract {archive} into {self.raw_folder}: permission denied; "
                                          "extract it yourself (gunzip -k) or copy the folder somewhere writable"
                                          ) from err
                raise CorruptDataError(f"{archive} is not a readable gzip archive ({err}): it is truncated or "
                                       "corrupted; download it again") from err

    def _load(self, train: bool) -> datasets.MNIST:
        if Path(self.data_dir).is_file():
            raise NotADirectoryError(f"data_dir {self.data_dir!r} is a file; it must be a folder holding "
                                     f"{_DATASETS[self.dataset].__name__}/raw/")
        cls = _DATASETS[self.dataset]
        self._extract_archives()
        self._check_raw_files(train)
        try:
            return cls(self.data_dir, train=train, download=False)
        except RuntimeError as missing:
            if not self.download:
                raise self._missing_data_error() from missing
        try:
            return cls(self.data_dir, train=train, download=True)
        except Exception as failed:  # torchvision raises several types when offline
            raise self._missing_data_error(failed) from failed

    def _check_raw_files(self, train: bool) -> None:
        """Check the split's IDX files that exist (missing ones are torchvision's and the download's business)."""
        prefix = "train" if train else "t10k"
        paths = [self.raw_folder / f"{prefix}-{kind}" for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
        if not all(p.is_file() for p in paths):
            return
        images, labels = (check_idx_file(p) for p in paths)
        if images[0] != labels[0]:
            raise CorruptDataError(f"{paths[0]} holds {images[0]} images but {paths[1]} holds {labels[0]} labels; "
                             "expected one label per image (are the files from different datasets or splits?)")

    @override
    def prepare_data(self) -> None:
        """Check (and when allowed, download) both splits on one process before ``setup``."""
        for train in (True, False):
            self._load(train)

    def split(self, name: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        """Return the uint8 images ``[N, 28, 28]`` and int64 labels ``[N]`` of a split, read once and cached."""
        if name not in self._splits:
            try:
                ds = self._load(train=name == "train")
            except (ValueError, IndexError, EOFError, OSError, AssertionError) as corrupt:
                if isinstance(corrupt, DataNotFoundError | NotADirectoryError | CorruptDataError):
                    raise
                raise ValueError(f"could not read the {name} split from {self.raw_folder.resolve()}: {corrupt}. "
                                 "The IDX files may be truncated; delete them and download again.") from corrupt
            self._splits[name] = (ds.data.contiguous(), ds.targets.long().contiguous())
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

    def _resident_split(self, name: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        """The split on the trainer's device (the CPU without a trainer), copied once and cached."""
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if (name, device) not in self._device_splits:
            images, labels = self.split(name)
            self._device_splits[(name, device)] = (images.to(device), labels.to(device))
        return self._device_splits[(name, device)]

    def _batches(self, name: Literal["train", "test"], shuffle: bool, drop_last: bool) -> InMemoryBatches:
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


__all__ = ["MNISTDataModule", "InMemoryBatches", "DataNotFoundError", "CorruptDataError", "check_idx_file",
           "normalize", "RAW_FILES"]
