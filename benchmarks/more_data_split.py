"""Data folders for the question "does coverage grow with more training digits?" (not a test).

The coverage target asks for digits like the evaluation split's atypical ones, and the training split holds 500
digits per class. This script splits the official 10,000-image evaluation split into two halves A and B, class by
class (alternate digits of each class, in file order), and writes three MNIST folders in torchvision's layout that
score against B alone:

- ``<out>/base``: the training split as it is (500 per class) for training, B for evaluation;
- ``<out>/more``: the training split plus half A (about 1,000 per class) for training, B for evaluation;
- ``<out>/half_a``: half A alone (about 500 per class, fresh digits of the evaluation's own source) for training, B
  for evaluation: the reference of real digits that no generator saw.

A generator trained on ``more`` and scored against B, beside one trained on ``base``, tells how much of the coverage
gap closes with twice the training digits. Half A is never scored, and B is never trained on.
``benchmarks/coverage_ceiling.py --data_dir <out>/<folder>`` scores each folder's training digits against B.

    python benchmarks/more_data_split.py --data_dir ../shared/data --out /tmp/more_data
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np

from cgan_lightning import DataNotFoundError, MNISTDataModule

IMAGES, LABELS = "images-idx3-ubyte", "labels-idx1-ubyte"


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (magic 0x0803 for images, 0x0801 for labels)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def halves(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of halves A and B: within each class, in file order, the even-numbered digits go to A, the odd to B."""
    a, b = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        a.append(members[0::2])
        b.append(members[1::2])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def write_folder(root: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in (("train", train), ("t10k", test)):
        write_idx(raw / f"{split}-{IMAGES}", images)
        write_idx(raw / f"{split}-{LABELS}", labels)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="../shared/data", help="folder holding MNIST/raw/")
    parser.add_argument("--out", required=True, help="folder to write base/, more/ and half_a/ into")
    args = parser.parse_args(argv)
    data = MNISTDataModule(args.data_dir, download=False)
    try:
        train = tuple(t.numpy() for t in data.load_split("train"))
        test_images, test_labels = (t.numpy() for t in data.load_split("test"))
    except DataNotFoundError as error:
        parser.error(str(error))
    a, b = halves(test_labels)
    half_b = test_images[b], test_labels[b]
    more = np.concatenate([train[0], test_images[a]]), np.concatenate([train[1], test_labels[a]])
    write_folder(Path(args.out) / "base", train, half_b)
    write_folder(Path(args.out) / "more", more, half_b)
    write_folder(Path(args.out) / "half_a", (test_images[a], test_labels[a]), half_b)
    counts = np.bincount(test_labels[b])
    print(f"training digits: base {len(train[1])}, more {len(more[1])}, half_a {len(a)}; all scored against half B "
          f"({len(b)} digits, {counts.min()}-{counts.max()} per class)")


if __name__ == "__main__":
    main()
