"""Train the evaluation classifier (the shipped MNIST one here; any dataset: ``cgan-lightning train-classifier``).

Example (the command that made ``cgan_lightning/metrics/weights/mnist_classifier.pt``)::

    python -m cgan_lightning.metrics.classifier_training --data_dir ../shared/data

It trains :class:`~cgan_lightning.metrics.classifier.ImageClassifier` on the train split (random affine jitter:
shifts of up to 2 pixels, small rotations and scaling, applied to whole batches at once), then reports the accuracy
on the official 10k test split and stores it in the weights file (the shipped weights: 98.88 % test accuracy with
the defaults).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from cgan_lightning.data.in_memory import normalize
from cgan_lightning.data.mnist import RAW_FILES, MNISTDataModule
from cgan_lightning.metrics.classifier import ImageClassifier, save_classifier
from cgan_lightning.utilities.output_paths import check_output_path

DEFAULT_OUT = Path(__file__).resolve().parent / "weights" / "mnist_classifier.pt"


def random_affine(images: Tensor, generator: torch.Generator, shift: float = 2.0, degrees: float = 10.0,
                  scale: float = 0.1) -> Tensor:
    """Jitter a batch ``[B, C, H, W]`` in ``[-1, 1]``: random shift (pixels), rotation (degrees) and scale."""
    b, _, h, w = images.shape
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(degrees)
    factor = 1 + (torch.rand(b, generator=generator) * 2 - 1) * scale
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size.
    tx = (torch.rand(b, generator=generator) * 2 - 1) * shift * 2 / w
    ty = (torch.rand(b, generator=generator) * 2 - 1) * shift * 2 / h
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # Pad with the background value (-1) by shifting to [0, 2] where zero padding is black.
    return F.grid_sample(images + 1, grid, align_corners=False, padding_mode="zeros") - 1


@torch.no_grad()
def accuracy(model: ImageClassifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (switched to eval mode) on uint8 images ``[N, H, W]`` or ``[N, C, H, W]``."""
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch_size):
        logits = model(normalize(images[i : i + batch_size]))
        correct += int((logits.argmax(1) == labels[i : i + batch_size]).sum())
    return correct / len(labels)


def fit_classifier(train_images: Tensor, train_labels: Tensor, num_classes: int, epochs: int = 12,
                   batch_size: int = 128, lr: float = 3e-3, seed: int = 0, hflip: bool = False,
                   affine: bool = True) -> ImageClassifier:
    """Train an :class:`ImageClassifier` on uint8 images ``[N, C, H, W]`` (or ``[N, H, W]``) and int64 labels.

    One-cycle AdamW, label smoothing 0.05, and per-batch augmentation (random affine jitter; horizontal flips
    when ``hflip``, for natural images, not digits). Prints the train loss of each epoch.

    Args:
        train_images: uint8 images, 0..255.
        train_labels: labels in ``[0, num_classes)``.
        num_classes: outputs of the classifier.
        epochs: passes over the images.
        batch_size: images per step.
        lr: peak learning rate of the one-cycle schedule.
        seed: seeds the weights, the shuffling and the augmentation.
        hflip: flip half of each batch left-right.
        affine: random shifts, rotations and scaling.

    Returns:
        The model in eval mode, without gradients.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    if train_images.dim() == 3:
        train_images = train_images.unsqueeze(1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ImageClassifier(num_classes=num_classes, image_shape=tuple(train_images.shape[1:]))
    steps_per_epoch = -(-len(train_labels) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_labels), generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            images = normalize(train_images[idx])
            if affine:
                images = random_affine(images, gen)
            if hflip:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            loss = F.cross_entropy(model(images), train_labels[idx], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1:2d}/{epochs}  train loss {total / len(train_labels):.4f}", flush=True)
    return model.eval().requires_grad_(False)


def train(data_dir: str, epochs: int = 12, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
          dataset: str = "mnist") -> tuple[ImageClassifier, float]:
    """Train on the train split and return the model (eval mode) and its test-split accuracy.

    Args:
        data_dir: folder holding ``MNIST/raw/`` (torchvision's layout); nothing is downloaded.
        epochs: passes over the train split.
        batch_size: images per step.
        lr: peak learning rate of the one-cycle AdamW schedule.
        seed: seeds the weights, the shuffling and the augmentation.
        dataset: ``mnist``, ``fashion_mnist`` or ``kmnist``.
    """
    # ignore: ``dataset`` is a plain str here (a Literal there); MNISTDataModule rejects unknown names itself.
    data = MNISTDataModule(data_dir=data_dir, download=False, dataset=dataset)  # type: ignore[arg-type]
    train_images, train_labels = data.split("train")
    test_images, test_labels = data.split("test")
    model = fit_classifier(train_images, train_labels, data.num_classes, epochs, batch_size, lr, seed)
    test_acc = accuracy(model, test_images, test_labels)
    return model.eval().requires_grad_(False), test_acc


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="folder holding MNIST/raw/ (e.g. ../shared/data)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where to write the weights (default: the package's)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "kmnist"])
    args = parser.parse_args(argv)
    raw = MNISTDataModule(data_dir=args.data_dir, download=False, dataset=args.dataset).raw_folder
    try:  # never write the weights over the data being read or over a GAN checkpoint
        check_output_path(args.out, [raw / name for name in RAW_FILES], lightning_only=True)
    except ValueError as error:
        parser.error(str(error))
    start = time.perf_counter()
    model, test_acc = train(args.data_dir, args.epochs, args.batch_size, args.lr, args.seed, args.dataset)
    seconds = time.perf_counter() - start
    save_classifier(model, args.out, {"test_accuracy": test_acc, "dataset": args.dataset, "epochs": args.epochs,
                                      "seed": args.seed, "train_seconds": round(seconds, 1)})
    size_kb = Path(args.out).stat().st_size / 1024
    print(f"test accuracy {test_acc:.4f} ({args.dataset}, official test split); {seconds:.0f} s; "
          f"wrote {args.out} ({size_kb:.0f} KiB)")


if __name__ == "__main__":  # pragma: no cover
    main()
