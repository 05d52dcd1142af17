"""Classification accuracy score (CAS; Ravuri & Vinyals 2019, "GAN-train" of Shmelkov et al. 2018).

Train a fresh classifier of the shipped architecture on *generated* images only, then measure its accuracy on
*real* held-out images, per class. The same recipe trained on the real training split gives the reference
(``val/cas/real``): a generator whose samples are as useful as real data closes the gap. The recipe is small on
purpose (a few epochs, no augmentation by default), so it costs seconds at MNIST scale on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from cgan_lightning.metrics.classifier import MNISTClassifier
from cgan_lightning.metrics.classifier_training import random_affine


def fit_classifier(images: Tensor, labels: Tensor, num_classes: int, epochs: int = 3, batch_size: int = 128,
                   lr: float = 3e-3, seed: int = 0, augment: bool = False) -> MNISTClassifier:
    """Train :class:`MNISTClassifier` on ``images`` ``[N, 1, 28, 28]`` in ``[-1, 1]`` with labels ``[N]``.

    The shipped classifier's recipe (AdamW, one-cycle schedule, label smoothing 0.05), shortened. Runs on the
    images' device with gradients enabled even inside Lightning's validation (inference mode), and on a forked
    random state, so the caller's random stream is unchanged.

    Args:
        images: training images.
        labels: their labels.
        num_classes: outputs of the classifier.
        epochs: passes over the images.
        batch_size: images per step.
        lr: peak learning rate.
        seed: seeds the weights, the order and the augmentation.
        augment: random shifts, small rotations and scaling (the shipped classifier's jitter).

    Returns:
        The classifier in eval mode, without gradients.

    Raises:
        ValueError: bad sizes or hyperparameters.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    if images.dim() != 4 or len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"expected images [N, 1, 28, 28] and labels [N] with N > 0, got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    device = images.device
    devices = [device] if device.type == "cuda" else []
    with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        # Inference tensors (made under Lightning's validation) cannot be saved for backward: copy them.
        images, labels = images.detach().clone().float(), labels.detach().clone().long().to(device)
        gen = torch.Generator().manual_seed(seed)
        model = MNISTClassifier(num_classes=num_classes).to(device)
        steps_per_epoch = -(-len(labels) // batch_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(labels), generator=gen).to(device)
            for i in range(steps_per_epoch):
                idx = order[i * batch_size : (i + 1) * batch_size]
                batch = images[idx]
                if augment:
                    batch = random_affine(batch.cpu(), gen).to(device)
                loss = F.cross_entropy(model(batch), labels[idx], label_smoothing=0.05)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def class_hits(model: MNISTClassifier, batches: Iterable[tuple[Tensor, Tensor]],
               device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Correct predictions and images per true class, ``([K], [K])`` int64, over ``(images, labels)`` batches."""
    correct = torch.zeros(model.num_classes, dtype=torch.long, device=device)
    total = torch.zeros(model.num_classes, dtype=torch.long, device=device)
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        hit = model(images).argmax(1) == labels
        total += torch.bincount(labels, minlength=model.num_classes)
        correct += torch.bincount(labels[hit], minlength=model.num_classes)
    return correct, total


def accuracy_scores(correct: Tensor, total: Tensor, prefix: str = "cas") -> dict[str, float]:
    """``<prefix>/class_<k>`` (``nan`` for a class without images) and ``<prefix>/mean`` over known classes."""
    per_class = [float(c) / float(t) if int(t) else math.nan for c, t in zip(correct.tolist(), total.tolist(),
                                                                                strict=True)]
    out = {f"{prefix}/class_{k}": v for k, v in enumerate(per_class)}
    known = [v for v in per_class if not math.isnan(v)]
    out[f"{prefix}/mean"] = sum(known) / len(known) if known else math.nan
    return out
