"""Class-per-folder images (``root/<class_name>/*.png|jpg``, torchvision's ``ImageFolder`` convention) in memory.

Every image is decoded once into one uint8 tensor, converted to grayscale or RGB and brought to one size; training
then runs on the shared in-memory fast path (:mod:`cgan_lightning.data.in_memory`). The evaluation split is a
second folder with the same class folders, or a seeded held-out fraction of each class.

Example config::

    data:
      class_path: cgan_lightning.data.ImageFolderDataModule
      init_args: {root: my_images/train, eval_root: my_images/test, image_size: 32, channels: 3}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from cgan_lightning.data.image_ops import (
    IMAGE_EXTENSIONS,
    ResizeMode,
    check_channels,
    check_resize_mode,
    convert_channels,
    decode_image,
    fit_size,
    parse_size,
)
from cgan_lightning.data.in_memory import InMemoryDataModule, SplitName


def find_classes(root: Path, what: str = "root") -> list[str]:
    """The class folder names under ``root``, sorted (hidden folders skipped).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        ValueError: fewer than 2 class folders, or a class folder with no files.
    """
    if not root.exists():
        raise FileNotFoundError(f"{what} folder {root} does not exist; point it at a folder holding one "
                                "sub-folder of images per class (root/<class_name>/*.png)")
    if not root.is_dir():
        raise NotADirectoryError(f"{what} {root} is a file; it must be a folder holding one sub-folder of images "
                                 "per class (root/<class_name>/*.png)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise ValueError(f"{what} {root} must hold at least 2 class folders (root/<class_name>/*.png), found {found}")
    for name in classes:
        if not any(_image_candidates(root / name)):
            raise ValueError(f"class folder {root / name} is empty: every class needs at least one image")
    return classes


def _image_candidates(folder: Path) -> list[Path]:
    """Every non-hidden file under ``folder`` (recursively), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".")
                                                                           for part in p.relative_to(folder).parts))


def read_image_tree(root: Path, classes: Sequence[str], channels: int | None, size: tuple[int, int] | None,
                    resize_mode: str) -> tuple[Tensor, Tensor]:
    """Decode every image of ``root/<class>/`` into uint8 ``[N, C, H, W]`` and int64 labels (class index).

    Raises:
        ValueError: a file that is not an image (wrong extension or undecodable), or images of different sizes
            when no ``size`` is given; the message names the file.
    """
    images: list[Tensor] = []
    labels: list[int] = []
    paths: list[Path] = []
    for label, name in enumerate(classes):
        for path in _image_candidates(root / name):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ValueError(f"{path} is not an image file (extension {path.suffix or 'none'}; expected one of "
                                 f"{', '.join(IMAGE_EXTENSIONS)}); move it out of the class folder")
            images.append(fit_size(decode_image(path), size, resize_mode, source=str(path)))
            labels.append(label)
            paths.append(path)
    target = channels if channels is not None else (3 if any(im.shape[0] == 3 for im in images) else 1)
    images = [convert_channels(im, target) for im in images]
    first = images[0].shape[-2:]
    odd = next((i for i, im in enumerate(images) if im.shape[-2:] != first), None)
    if odd is not None:
        raise ValueError(f"images have different sizes and no image_size is set: {paths[0]} is "
                         f"{first[0]}x{first[1]} but {paths[odd]} is {images[odd].shape[1]}x{images[odd].shape[2]}; "
                         "set image_size (e.g. --data.init_args.image_size 32) to resize them")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices ``(train, eval)``: ``fraction`` of each class held out (at least one image of every class that has
    two or more), chosen by a permutation seeded with ``seed``; both sorted."""
    gen = torch.Generator().manual_seed(seed)
    train, held = [], []
    for k in labels.unique().tolist():
        idx = (labels == k).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_eval = min(max(round(len(idx) * fraction), 1), len(idx) - 1) if len(idx) >= 2 else 0
        held.append(idx[:n_eval])
        train.append(idx[n_eval:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


class ImageFolderDataModule(InMemoryDataModule):
    """Labelled images in class folders (``root/<class_name>/*.png``), decoded once and served from memory.

    Class ids follow the sorted folder names (as torchvision's ``ImageFolder``); the names themselves become
    :attr:`class_names`, which the CLI links into the model (tables, grids and ``sample --labels`` use them).

    Args:
        root: the training folder: one sub-folder of images per class.
        eval_root: a separate evaluation folder with the same class folders; when unset, ``eval_fraction`` of each
            class of ``root`` is held out instead.
        eval_fraction: share of each class held out for evaluation when there is no ``eval_root`` (0 < f < 1).
        split_seed: seed of the held-out selection (the same seed always holds out the same files).
        image_size: ``H`` (square) or ``[H, W]``; every image is brought to it as ``resize_mode`` says.
            Unset: all images must already have one size.
        resize_mode: ``resize_crop`` (shorter side scaled to fit, then center-cropped), ``resize`` (scaled to
            exactly the size) or ``center_crop`` (cropped, not scaled).
        channels: 1 (grayscale) or 3 (RGB); unset: grayscale when every image is grayscale, RGB otherwise.
        batch_size, seed, drop_last, device_resident: as in :class:`~cgan_lightning.data.InMemoryDataModule`.

    Raises:
        FileNotFoundError: a folder that does not exist. ``ValueError``: fewer than 2 classes, an empty class
            folder, ``eval_root`` with other class folders, bad options; later, when the images are read, a
            non-image or unreadable file, or mixed sizes with no ``image_size`` (each names the file or folder).
    """

    def __init__(
        self,
        root: str,
        eval_root: str | None = None,
        eval_fraction: float = 0.1,
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
        self.size = parse_size(image_size)
        self.resize_mode = check_resize_mode(resize_mode)
        self.channels = check_channels(channels)
        if eval_root is None and not 0 < eval_fraction < 1:
            raise ValueError(f"eval_fraction must lie in (0, 1) when no eval_root is given, got {eval_fraction}")
        self.root = Path(root)
        self.eval_root = Path(eval_root) if eval_root is not None else None
        self.eval_fraction = eval_fraction
        self.split_seed = split_seed
        self._classes = find_classes(self.root)
        if self.eval_root is not None:
            eval_classes = find_classes(self.eval_root, "eval_root")
            if eval_classes != self._classes:
                raise ValueError(f"eval_root {self.eval_root} has class folders {eval_classes} but root {self.root} "
                                 f"has {self._classes}; both need the same class folders")
        self._trees: dict[Path, tuple[Tensor, Tensor]] = {}

    @property
    def num_classes(self) -> int:
        """Number of class folders."""
        return len(self._classes)

    @property
    def class_names(self) -> list[str]:
        """The class folder names, in label order (sorted)."""
        return list(self._classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)``; reads the training images when the options do not fix it."""
        if self.size is not None and self.channels is not None:
            return (self.channels, *self.size)
        images = self._tree(self.root)[0]
        return (int(images.shape[1]), int(images.shape[2]), int(images.shape[3]))

    def _tree(self, root: Path) -> tuple[Tensor, Tensor]:
        if root not in self._trees:
            channels = self.channels
            if channels is None and root != self.root:  # the eval folder follows the training images' channels
                channels = self.image_shape[0]
            self._trees[root] = read_image_tree(root, self._classes, channels, self.size, self.resize_mode)
        return self._trees[root]

    def load_split(self, name: SplitName) -> tuple[Tensor, Tensor]:
        """``train``: ``root`` (less the held-out share); ``test``: ``eval_root`` or the held-out share."""
        if self.eval_root is not None:
            images, labels = self._tree(self.root if name == "train" else self.eval_root)
            if name == "test" and tuple(images.shape[1:]) != self.image_shape:
                raise ValueError(f"eval_root {self.eval_root} images are {tuple(images.shape[1:])}, the training "
                                 f"images {self.image_shape}; set image_size so both are brought to one size")
            return images, labels
        images, labels = self._tree(self.root)
        train, held = stratified_split(labels, self.eval_fraction, self.split_seed)
        idx = train if name == "train" else held
        return images[idx], labels[idx]


__all__ = ["ImageFolderDataModule", "find_classes", "read_image_tree", "stratified_split"]
