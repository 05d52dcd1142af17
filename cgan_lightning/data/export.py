"""Write an in-memory data module's splits as class-per-folder PNG trees (``<out>/<split>/<class>/<n>.png``).

Handy to try :class:`~cgan_lightning.data.ImageFolderDataModule` on known data, e.g. the local MNIST copy::

    python -m cgan_lightning.data.export --data_dir ../shared/data --out mnist_folders
    # -> mnist_folders/train/<class>/*.png and mnist_folders/test/<class>/*.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from torch import Tensor

from cgan_lightning.data.in_memory import InMemoryDataModule
from cgan_lightning.data.mnist import MNISTDataModule


def export_image_folder(images: Tensor, labels: Tensor, class_names: Sequence[str], out: str | Path) -> int:
    """Save uint8 images ``[N, H, W]`` or ``[N, C, H, W]`` as ``out/<class_names[label]>/<index>.png``.

    Returns:
        The number of files written.
    """
    out = Path(out)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    for name in class_names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels.tolist(), strict=True)):
        array = image.permute(1, 2, 0).squeeze(2).cpu().numpy()
        Image.fromarray(array).save(out / class_names[label] / f"{i:05d}.png")
    return len(labels)


def export_data_module(data: InMemoryDataModule, out: str | Path, class_names: Sequence[str] | None = None) -> dict:
    """Export both splits of ``data`` to ``out/train`` and ``out/test``; returns ``{split: files written}``."""
    names = list(class_names) if class_names is not None else data.class_names
    if len(names) != data.num_classes or len(set(names)) != len(names):
        raise ValueError(f"need {data.num_classes} distinct class names, got {names}")
    return {split: export_image_folder(*data.split(split), names, Path(out) / split)
            for split in ("train", "test")}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export MNIST-family data to class-per-folder PNG trees.")
    parser.add_argument("--data_dir", required=True, help="folder holding MNIST/raw/ (e.g. ../shared/data)")
    parser.add_argument("--out", required=True, help="output folder (train/ and test/ are created in it)")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "kmnist"])
    parser.add_argument("--class_names", nargs="+", default=None,
                        help="folder name of each label (default: the data module's class names)")
    args = parser.parse_args(argv)
    data = MNISTDataModule(args.data_dir, download=False, dataset=args.dataset)
    counts = export_data_module(data, args.out, args.class_names)
    print(f"wrote {counts['train']} train and {counts['test']} test PNGs under {args.out}")


if __name__ == "__main__":  # pragma: no cover
    main()
