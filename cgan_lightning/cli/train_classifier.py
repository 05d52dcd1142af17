"""``cgan-lightning train-classifier``: train the evaluation classifier for any data module.

It takes the data module exactly as ``fit`` does (``--data`` class path and init args, or a ``fit`` config), trains
an :class:`~cgan_lightning.metrics.classifier.ImageClassifier` on the train split, prints its accuracy on the
evaluation split and saves the weights with metadata: ``num_classes``, ``image_shape``, ``class_names``,
``eval_accuracy`` and a fingerprint of the data. Every evaluation callback and ``evaluate_generator`` then take the
file (``classifier: classifier.pt``) and check it against the model.

Examples::

    cgan-lightning train-classifier --data cgan_lightning.data.ImageFolderDataModule \\
        --data.root my_images/train --data.eval_root my_images/test --out classifier.pt
    cgan-lightning train-classifier --config examples/cifar10.yaml --out cifar10_classifier.pt --hflip true
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from lightning.pytorch import LightningDataModule
from torch import Tensor

from cgan_lightning.cli.errors import user_error_line
from cgan_lightning.data.in_memory import InMemoryDataModule
from cgan_lightning.metrics.classifier import ImageClassifier, save_classifier
from cgan_lightning.metrics.classifier_training import accuracy, fit_classifier

PROG = "cgan-lightning train-classifier"

#: Sections of a ``fit`` config that this command reads past (it uses only ``data``).
FIT_SECTIONS = ("trainer", "model", "seed_everything", "checkpoint", "ckpt_path", "optimizer", "lr_scheduler")


def build_parser() -> ArgumentParser:
    """The parser: ``--data`` as in ``fit`` (MNIST by default), ``--config`` (a fit config works), and options."""
    parser = ArgumentParser(prog=PROG, description="Train the evaluation classifier on a data module's train split.")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML config, e.g. the one given to fit")
    parser.add_subclass_arguments(LightningDataModule, "data", required=True,
                                  help="the data module, as in `cgan-lightning fit --data ...`")
    parser.set_defaults({"data": {"class_path": "cgan_lightning.data.MNISTDataModule"}})
    parser.add_argument("--out", type=str, default="classifier.pt", help="where to write the weights")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the train split")
    parser.add_argument("--batch_size", type=int, default=128, help="images per training step")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle AdamW)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, the shuffling and the augmentation")
    parser.add_argument("--hflip", type=bool, default=False, help="random left-right flips (natural images)")
    parser.add_argument("--affine", type=bool, default=True, help="random shift, rotation and scale jitter")
    for section in FIT_SECTIONS:  # a fit config carries these; they are read and ignored
        parser.add_argument(f"--{section}", type=Any, default=None, help="(fit config section; ignored)")
    return parser


def data_splits(data: LightningDataModule) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(train images, train labels, eval images, eval labels)``; uint8 from an in-memory module, else from loaders.

    A data module that is not an :class:`~cgan_lightning.data.InMemoryDataModule` is read through its
    ``train_dataloader()`` and ``val_dataloader()`` (batches of images in ``[-1, 1]`` and labels).
    """
    if isinstance(data, InMemoryDataModule):
        return (*data.split("train"), *data.split("test"))
    data.prepare_data()
    data.setup("fit")

    def gather(loader: Any) -> tuple[Tensor, Tensor]:
        images, labels = zip(*((x, y) for x, y, *_ in loader), strict=True)
        uint8 = torch.cat(images).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        return uint8, torch.cat(labels).long()

    return (*gather(data.train_dataloader()), *gather(data.val_dataloader()))


def fingerprint(*tensors: Tensor, extra: Sequence[str] = ()) -> str:
    """First 16 hex digits of the SHA-256 of the tensors' shapes and bytes and of ``extra`` strings."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().cpu().numpy().tobytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def per_class_accuracy(model: ImageClassifier, images: Tensor, labels: Tensor) -> list[float]:
    """Accuracy of ``model`` on the images of each class (``nan`` for a class with none)."""
    out = []
    for k in range(model.num_classes):
        mask = labels == k
        out.append(accuracy(model, images[mask], labels[mask]) if bool(mask.any()) else float("nan"))
    return out


def run(argv: Sequence[str]) -> dict[str, Any]:
    """Parse, train, report and save; returns the metadata written beside the weights."""
    parser = build_parser()
    config = parser.parse_args(list(argv))
    data = parser.instantiate_classes(config).data
    train_images, train_labels, eval_images, eval_labels = data_splits(data)
    names = [str(n) for n in getattr(data, "class_names", None) or range(int(train_labels.max()) + 1)]
    num_classes = int(getattr(data, "num_classes", len(names)))
    if train_images.dim() == 3:
        train_images, eval_images = train_images.unsqueeze(1), eval_images.unsqueeze(1)
    print(f"{type(data).__name__}: {len(train_labels)} train and {len(eval_labels)} evaluation images of "
          f"{'x'.join(map(str, train_images.shape[1:]))}, {num_classes} classes", flush=True)
    start = time.perf_counter()
    model = fit_classifier(train_images, train_labels, num_classes, config.epochs, config.batch_size, config.lr,
                           config.seed, hflip=config.hflip, affine=config.affine)
    seconds = time.perf_counter() - start
    eval_acc = accuracy(model, eval_images, eval_labels)
    per_class = per_class_accuracy(model, eval_images, eval_labels)
    metadata = {
        "class_names": names,
        "eval_accuracy": eval_acc,
        "per_class_eval_accuracy": per_class,
        "data_fingerprint": fingerprint(train_images, train_labels, eval_images, eval_labels, extra=names),
        "data_config": config.data.as_dict(),
        "epochs": config.epochs,
        "seed": config.seed,
        "train_seconds": round(seconds, 1),
    }
    save_classifier(model, config.out, metadata)
    width = max(len(n) for n in names)
    for name, acc in zip(names, per_class, strict=True):
        print(f"  {name:>{width}}  {acc:.4f}")
    print(f"eval accuracy {eval_acc:.4f} on {len(eval_labels)} evaluation images; {seconds:.0f} s; wrote "
          f"{config.out} ({Path(config.out).stat().st_size / 1024:.0f} KiB); use it as `classifier: {config.out}`")
    return metadata


USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point (``cgan-lightning train-classifier ...``): one line on stderr and exit status 1 on user errors."""
    try:
        run(sys.argv[1:] if argv is None else argv)
    except USER_ERRORS as error:
        print(f"{PROG}: error: {user_error_line(error)}", file=sys.stderr)
        raise SystemExit(1) from None


__all__ = ["build_parser", "data_splits", "fingerprint", "main", "run"]
