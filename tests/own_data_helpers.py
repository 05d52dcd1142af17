"""Writers of test data on disk: class-per-folder PNG trees and CIFAR-10/100 in torchvision's pickle format."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from conftest import HAS_REAL_MNIST, REAL_DATA_DIR, synthetic_digits
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from cgan_lightning.data.export import export_image_folder
from cgan_lightning.data.mnist import MNISTDataModule

#: Folder names of the digit tree: sorted, "eight" is class 0 and "zero" class 9, so ids and digits differ.
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _first_per_class(images: torch.Tensor, labels: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.cat([(labels == k).nonzero().flatten()[:n] for k in range(10)])
    return images[idx], labels[idx]


def write_digit_tree(root: Path, n_train: int = 30, n_eval: int = 10) -> Path:
    """``root/train/<digit name>/*.png`` and ``root/test/...``: real MNIST digits when present, else synthetic."""
    if HAS_REAL_MNIST:
        data = MNISTDataModule(str(REAL_DATA_DIR), download=False)
        train, test = data.split("train"), data.split("test")
    else:
        train, test = synthetic_digits(20 * n_train, 0), synthetic_digits(20 * n_eval, 1)
    export_image_folder(*_first_per_class(*train, n_train), DIGIT_NAMES, root / "train")
    export_image_folder(*_first_per_class(*test, n_eval), DIGIT_NAMES, root / "test")
    return root


#: Classes of the synthetic RGB set and the colour of their blob.
RGB_CLASSES = {"blue_blob": (40, 60, 230), "green_blob": (40, 220, 60), "red_blob": (230, 40, 40)}


def rgb_images(n_per_class: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, size, size, 3]`` images: a coloured square (the class) at a random place on noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, colour in enumerate(RGB_CLASSES.values()):
        for _ in range(n_per_class):
            image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            y, x = rng.integers(0, size // 2, 2)
            image[y : y + size // 2, x : x + size // 2] = colour
            images.append(image)
            labels.append(label)
    return np.stack(images), np.array(labels)


def write_rgb_tree(root: Path, n_per_class: int = 24, size: int = 20) -> Path:
    """``root/<colour>_blob/*.png`` (and ``.jpg`` for every third image) of ``size x size`` RGB images."""
    images, labels = rgb_images(n_per_class, size, seed=0)
    names = list(RGB_CLASSES)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".jpg" if i % 3 == 0 else ".png"
        Image.fromarray(image).save(folder / f"{i:04d}{suffix}", quality=95)
    return root


def _pickle(path: Path, payload: dict) -> None:
    with path.open("wb") as f:
        pickle.dump(payload, f)


def write_cifar10(root: Path, per_batch: int = 30, n_test: int = 40, classes: Sequence[str] | None = None) -> Path:
    """``root/cifar-10-batches-py/``: five ``data_batch_<k>``, ``test_batch`` and ``batches.meta`` as CIFAR ships
    them (latin1-pickled dicts with ``data`` uint8 ``[N, 3072]`` in CHW order and ``labels``)."""
    classes = list(classes or ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                               "truck"])
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def batch(n: int) -> dict:
        labels = [int(v) for v in np.arange(n) % len(classes)]
        data = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        for i, label in enumerate(labels):  # a class-dependent bright row, so the classes differ
            data[i, :, 2 + 3 * label] = 255
        return {"batch_label": "synthetic", "labels": labels, "data": data.reshape(n, 3072),
                "filenames": [f"{i}.png" for i in range(n)]}

    for k in range(1, 6):
        _pickle(folder / f"data_batch_{k}", batch(per_batch))
    _pickle(folder / "test_batch", batch(n_test))
    _pickle(folder / "batches.meta", {"label_names": classes, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return root


def write_cifar100(root: Path, n_train: int = 60, n_test: int = 30) -> Path:
    """``root/cifar-100-python/``: ``train``, ``test`` and ``meta`` as CIFAR-100 ships them (fine and coarse labels)."""
    fine = [f"class_{k:02d}" for k in range(100)]
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", n_test)):
        labels = [int(v) for v in np.arange(n) % 100]
        _pickle(folder / name, {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": labels,
                                "coarse_labels": [v // 5 for v in labels], "filenames": [f"{i}" for i in range(n)]})
    _pickle(folder / "meta", {"fine_label_names": fine, "coarse_label_names": [f"super_{k}" for k in range(20)]})
    return root


class PlainDataModule(LightningDataModule):
    """A user's own data module: ``num_classes`` and ``image_shape`` but no ``class_names``, DataLoader batches."""

    num_classes = 3
    image_shape = (1, 8, 8)

    def train_dataloader(self) -> DataLoader:
        labels = torch.arange(12) % 3
        return DataLoader(TensorDataset(torch.rand(12, 1, 8, 8) * 2 - 1, labels), batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return self.train_dataloader()
