"""MNIST-family data served from memory as shuffled, normalized batches.

torchvision reads each split once into a uint8 tensor; :class:`~cgan_lightning.data.in_memory.InMemoryBatches`
then serves batches by indexing that tensor (the shared fast path of :mod:`cgan_lightning.data.in_memory`).
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Literal

from torch import Tensor
from torchvision import datasets
from typing_extensions import override

from cgan_lightning.data.in_memory import InMemoryBatches, InMemoryDataModule, SplitName, normalize
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


class MNISTDataModule(InMemoryDataModule):
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
        super().__init__(batch_size=batch_size, seed=seed, drop_last=drop_last, device_resident=device_resident)
        check_int(num_workers, "num_workers", minimum=None)  # the type here; the range below
        if not isinstance(download, bool):
            raise ValueError(f"download must be true or false, got {download!r} ({type(download).__name__})")
        if not isinstance(data_dir, str | os.PathLike):
            raise ValueError(f"data_dir must be a folder path, got {data_dir!r} ({type(data_dir).__name__})")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if dataset not in _DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}: choose one of {sorted(_DATASETS)}")
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.download = download
        self.num_workers = num_workers
        self.dataset = dataset

    @property
    def num_classes(self) -> int:
        """Number of labels (10 for all three datasets)."""
        return 10

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the images."""
        return (1, 28, 28)

    @property
    def class_names(self) -> list[str]:
        """``"0"`` .. ``"9"`` for MNIST and KMNIST (label ids), torchvision's names for Fashion-MNIST."""
        if self.dataset == "fashion_mnist":
            return list(datasets.FashionMNIST.classes)
        return [str(k) for k in range(10)]

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

    def load_split(self, name: SplitName) -> tuple[Tensor, Tensor]:
        """Read the uint8 images ``[N, 28, 28]`` and int64 labels ``[N]`` of a split (``test``: the official one)."""
        try:
            ds = self._load(train=name == "train")
        except (ValueError, IndexError, EOFError, OSError, AssertionError) as corrupt:
            if isinstance(corrupt, DataNotFoundError | NotADirectoryError | CorruptDataError):
                raise
            raise ValueError(f"could not read the {name} split from {self.raw_folder.resolve()}: {corrupt}. "
                             "The IDX files may be truncated; delete them and download again.") from corrupt
        return ds.data, ds.targets


__all__ = ["MNISTDataModule", "InMemoryBatches", "InMemoryDataModule", "DataNotFoundError", "CorruptDataError",
           "check_idx_file", "normalize", "RAW_FILES"]
