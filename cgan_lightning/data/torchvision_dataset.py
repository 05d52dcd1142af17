"""Any torchvision classification dataset (CIFAR-10, CIFAR-100, SVHN, ...) by class path, served from memory.

torchvision's own class reads the files (and downloads them when allowed); each split is then converted once into
a uint8 tensor ``[N, C, H, W]`` (directly from the dataset's ``data`` array when it has one, CIFAR's case, else image
by image) and served by the shared in-memory fast path.

Example config::

    data:
      class_path: cgan_lightning.data.TorchvisionDataModule
      init_args: {dataset_class: torchvision.datasets.CIFAR10, root: ./data, download: false}
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from typing_extensions import override

from cgan_lightning.data.image_folder import stratified_split
from cgan_lightning.data.image_ops import (
    ResizeMode,
    check_channels,
    check_resize_mode,
    convert_channels,
    fit_size,
    parse_size,
)
from cgan_lightning.data.in_memory import InMemoryDataModule, SplitName
from cgan_lightning.data.mnist import DataNotFoundError


def import_class(path: str) -> type:
    """``"torchvision.datasets.CIFAR10"`` -> the class (``CIFAR10`` alone means ``torchvision.datasets.CIFAR10``).

    Raises:
        ValueError: the module or the class cannot be found.
    """
    module_name, _, name = path.rpartition(".")
    module_name = module_name or "torchvision.datasets"
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as missing:
        raise ValueError(f"dataset_class {path!r} not found ({missing}); give a class path such as "
                         "torchvision.datasets.CIFAR10") from missing
    if not isinstance(cls, type):
        raise ValueError(f"dataset_class {path!r} is not a class")
    return cls


def _as_uint8_images(data: Any) -> Tensor | None:
    """A dataset's ``data`` array as uint8 ``[N, C, H, W]``, or ``None`` when it has no usable one."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if not isinstance(data, Tensor) or data.dtype != torch.uint8:
        return None
    if data.dim() == 3:
        return data.unsqueeze(1)
    if data.dim() == 4 and data.shape[-1] in (1, 3):  # N, H, W, C (CIFAR)
        return data.permute(0, 3, 1, 2).contiguous()
    if data.dim() == 4 and data.shape[1] in (1, 3):  # N, C, H, W (SVHN)
        return data
    return None


def _pil_to_uint8(image: Any) -> Tensor:
    if isinstance(image, Tensor):
        return image if image.dim() == 3 else image.unsqueeze(0)
    if not isinstance(image, Image.Image):
        raise ValueError(f"the dataset returned {type(image).__name__} images; expected PIL images or uint8 tensors")
    array = np.asarray(image.convert("L" if image.mode in ("1", "L", "I", "F") else "RGB"))
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)


class TorchvisionDataModule(InMemoryDataModule):
    """A torchvision classification dataset named by class path, decoded once and served from memory.

    The class must take the root folder first and a ``train: bool`` (CIFAR, MNIST-likes) or ``split: str``
    (``"train"`` / ``"test"``: SVHN, STL10) argument, and return ``(image, target)`` pairs.

    Args:
        dataset_class: e.g. ``torchvision.datasets.CIFAR10`` or ``torchvision.datasets.CIFAR100``.
        root: the folder torchvision reads (for CIFAR-10: the one holding ``cifar-10-batches-py/``).
        download: let torchvision fetch missing files. Offline, keep ``false`` and put the files in ``root``.
        dataset_kwargs: more arguments for the dataset class.
        eval_fraction: unset: evaluate on the official test split; a share in (0, 1): hold out that share of each
            class of the train split instead (seeded by ``split_seed``).
        split_seed: seed of the held-out selection.
        image_size: ``H`` or ``[H, W]``; unset keeps the dataset's size.
        resize_mode: ``resize_crop``, ``resize`` or ``center_crop`` (see :mod:`cgan_lightning.data.image_ops`).
        channels: 1 (grayscale) or 3 (RGB); unset keeps the dataset's channels.
        batch_size, seed, drop_last, device_resident: as in :class:`~cgan_lightning.data.InMemoryDataModule`.
    """

    def __init__(
        self,
        dataset_class: str = "torchvision.datasets.CIFAR10",
        root: str = "./data",
        download: bool = False,
        dataset_kwargs: dict[str, Any] | None = None,
        eval_fraction: float | None = None,
        split_seed: int = 0,
        image_size: int | list[int] | None = None,
        resize_mode: ResizeMode = "resize_crop",
        channels: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
        drop_last: bool = False,
        device_resident: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, drop_last=drop_last, device_resident=device_resident)
        self.save_hyperparameters()
        self.dataset_cls = import_class(dataset_class)
        self.root = root
        self.download = download
        self.dataset_kwargs = dict(dataset_kwargs or {})
        if eval_fraction is not None and not 0 < eval_fraction < 1:
            raise ValueError(f"eval_fraction must lie in (0, 1) or be null (the official test split), "
                             f"got {eval_fraction}")
        self.eval_fraction = eval_fraction
        self.split_seed = split_seed
        self.size = parse_size(image_size)
        self.resize_mode = check_resize_mode(resize_mode)
        self.channels = check_channels(channels)
        self._official: dict[bool, tuple[Tensor, Tensor, list[str]]] = {}

    def _open(self, train: bool) -> Any:
        params = inspect.signature(self.dataset_cls).parameters
        kwargs = dict(self.dataset_kwargs)
        if "train" in params:
            kwargs["train"] = train
        elif "split" in params:
            kwargs["split"] = "train" if train else "test"
        else:
            raise ValueError(f"{self.dataset_cls.__name__} takes neither `train` nor `split`: cannot pick its "
                             "train and test splits")
        if "download" in params:
            kwargs["download"] = self.download
        if Path(self.root).is_file():
            raise NotADirectoryError(f"root {self.root!r} is a file; it must be the folder torchvision reads")
        try:
            return self.dataset_cls(self.root, **kwargs)
        except RuntimeError as missing:  # torchvision: "Dataset not found or corrupted. You can use download=True"
            hint = "" if self.download else " or set --data.init_args.download true (needs network access)"
            folder = getattr(self.dataset_cls, "base_folder", None)  # e.g. CIFAR10's cifar-10-batches-py
            where = f" (in {folder}/ there, as torchvision extracts its archive)" if isinstance(folder, str) else ""
            raise DataNotFoundError(f"{self.dataset_cls.__name__} not found or corrupted in "
                                    f"{Path(self.root).resolve()} ({missing}); put its files there{where}{hint}"
                                    ) from missing
        except OSError as failed:  # download=True without network (URLError is an OSError), or a disk error
            raise DataNotFoundError(f"{self.dataset_cls.__name__} could not be downloaded into "
                                    f"{Path(self.root).resolve()} ({failed}); check the network, or put its files "
                                    "there yourself and set --data.init_args.download false") from failed

    def _read(self, train: bool) -> tuple[Tensor, Tensor, list[str]]:
        """The official split as uint8 ``[N, C, H, W]`` (after channels and size), labels and class names."""
        if train not in self._official:
            ds = self._open(train)
            images = _as_uint8_images(getattr(ds, "data", None))
            targets = getattr(ds, "targets", None)
            if targets is None:
                targets = getattr(ds, "labels", None)
            if images is None or targets is None or len(targets) != len(images):
                pairs = [ds[i] for i in range(len(ds))]
                images = torch.stack([_pil_to_uint8(image) for image, _ in pairs]) if pairs else None
                targets = [int(target) for _, target in pairs]
            if images is None or len(images) == 0:
                raise ValueError(f"{self.dataset_cls.__name__} in {self.root} has no images in its "
                                 f"{'train' if train else 'test'} split")
            labels = torch.as_tensor(np.asarray(targets), dtype=torch.long)
            images = fit_size(convert_channels(images, self.channels), self.size, self.resize_mode,
                              source=f"{self.dataset_cls.__name__} {'train' if train else 'test'} images")
            classes = [str(c) for c in getattr(ds, "classes", None) or []]
            if not classes:
                classes = [str(k) for k in range(int(labels.max()) + 1)]
            self._official[train] = (images, labels, classes)
        return self._official[train]

    @override
    def prepare_data(self) -> None:
        """Let torchvision check (and when allowed, download) the files once before ``setup``."""
        for train in (True, False) if self.eval_fraction is None else (True,):
            self._open(train)

    @property
    def num_classes(self) -> int:
        """The dataset's number of classes (``len(classes)``, else the largest label + 1)."""
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """The dataset's ``classes`` (e.g. CIFAR-10's ``airplane`` .. ``truck``)."""
        return list(self._read(True)[2])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` after ``channels`` and ``image_size``."""
        images = self._read(True)[0]
        return (int(images.shape[1]), int(images.shape[2]), int(images.shape[3]))

    def load_split(self, name: SplitName) -> tuple[Tensor, Tensor]:
        """``train``: the official train split (less the held-out share); ``test``: the test split or that share."""
        if self.eval_fraction is None:
            images, labels, _ = self._read(name == "train")
            return images, labels
        images, labels, _ = self._read(True)
        train, held = stratified_split(labels, self.eval_fraction, self.split_seed)
        idx = train if name == "train" else held
        return images[idx], labels[idx]


__all__ = ["TorchvisionDataModule", "import_class"]
