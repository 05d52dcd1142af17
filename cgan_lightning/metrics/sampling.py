"""Seeded latents, batched generation through the sampler protocol, slerp, and the real evaluation images."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from cgan_lightning.metrics.protocol import ConditionalSampler
from cgan_lightning.metrics.sample_checks import check_samples


def seeded_normal(shape: tuple[int, ...], seed: int) -> Tensor:
    """Standard normal draws on the CPU from ``seed`` alone: identical on every device and process."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def class_balanced_latents(num_classes: int, per_class: int, latent_dim: int, seed: int) -> tuple[Tensor, Tensor]:
    """``per_class`` latents for each label, label-major: z ``[num_classes * per_class, latent_dim]`` and labels."""
    if per_class < 1:
        raise ValueError(f"samples per class must be >= 1, got {per_class}")
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return seeded_normal((len(labels), latent_dim), seed), labels


def generate(model: ConditionalSampler, z: Tensor, labels: Tensor, batch_size: int,
             device: torch.device | str) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(images, labels)`` batches of ``model.sample(labels, z=z)`` on ``device``; z and labels from the CPU.

    Raises:
        BadSamplesError: (a ``ValueError``) ``sample`` returned something that is not one finite image in
            ``[-1, 1]`` per label (see :func:`~cgan_lightning.metrics.sample_checks.check_samples`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(labels), batch_size):
        lab = labels[start : start + batch_size].to(device)
        images = model.sample(lab, z=z[start : start + batch_size].to(device))
        yield check_samples(images, lab, getattr(model, "image_shape", None)), lab


def slerp(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    """Spherical interpolation from ``z0`` to ``z1`` (both ``[D]`` or ``[..., D]``): ``[..., steps, D]``, ends included.

    Falls back to linear interpolation when the two vectors are (nearly) parallel.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (both ends are included), got {steps}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).view(*([1] * (z0.dim() - 1)), steps, 1)
    a, b = z0.unsqueeze(-2), z1.unsqueeze(-2)
    cos = ((a / a.norm(dim=-1, keepdim=True)) * (b / b.norm(dim=-1, keepdim=True))).sum(-1, keepdim=True)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    sin = torch.sin(omega)
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / sin
    linear = (1 - t) * a + t * b
    return torch.where(sin.abs() < 1e-4, linear, spherical)


def evaluation_loader(trainer: Any, stage: str) -> Iterable[Any]:
    """The real images to compare with: the data module's val (or, for ``test``, test) loader, else the trainer's.

    Raises:
        ValueError: neither a data module nor evaluation dataloaders are attached.
    """
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        return datamodule.test_dataloader() if stage == "test" else datamodule.val_dataloader()
    loaders = trainer.test_dataloaders if stage == "test" else trainer.val_dataloaders
    if loaders is None:
        raise ValueError("per-class FID needs real images: pass a datamodule (or val/test dataloaders yielding "
                         "(images, labels)) to the Trainer")
    if isinstance(loaders, list | tuple):
        return itertools.chain.from_iterable(loaders)
    return loaders


def image_label_batches(loader: Iterable[Any], max_batches: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(images, labels)`` from a loader of such pairs; stop after ``max_batches`` when given.

    Raises:
        ValueError: a batch is not an ``(images [B, C, H, W], labels [B])`` pair.
    """
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            return
        if not (isinstance(batch, list | tuple) and len(batch) == 2):
            raise ValueError("evaluation batches must be (images, labels) pairs with images in [-1, 1], got "
                             f"{type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, list | tuple)
                                                          else ""))
        images, labels = batch
        if not isinstance(images, Tensor) or images.dim() != 4 or not isinstance(labels, Tensor):
            raise ValueError("evaluation batches must be (images [B, C, H, W], labels [B]) tensors")
        yield images, labels


def rebatch(batches: Iterable[tuple[Tensor, Tensor]], size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Concatenate consecutive ``(images, labels)`` batches into batches of about ``size`` images.

    A feature extractor runs several times faster per image on batches of 1000 than on a data loader's 64.
    """
    images: list[Tensor] = []
    labels: list[Tensor] = []
    count = 0
    for batch_images, batch_labels in batches:
        images.append(batch_images)
        labels.append(batch_labels)
        count += len(batch_labels)
        if count >= size:
            yield torch.cat(images), torch.cat(labels)
            images, labels, count = [], [], 0
    if images:
        yield torch.cat(images), torch.cat(labels)


def training_images(trainer: Any, max_images: int | None = None) -> tuple[Tensor, Tensor]:
    """The real training split as ``(images in [-1, 1] [N, C, H, W], labels [N])`` on the CPU.

    A data module with ``split("train")`` (:class:`~cgan_lightning.data.MNISTDataModule`) gives it unsharded on
    every process; otherwise the data module's (or trainer's) train loader is read once.

    Args:
        trainer: the Lightning trainer.
        max_images: keep only the first this many images (smoke tests); ``None``: all.

    Raises:
        ValueError: neither a data module nor a train dataloader is attached, or it yields nothing.
    """
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None and callable(getattr(datamodule, "split", None)):
        from cgan_lightning.data.mnist import normalize

        images, labels = datamodule.split("train")
        return normalize(images[:max_images]), labels[:max_images]
    if datamodule is not None:
        loader = datamodule.train_dataloader()
    elif getattr(trainer, "train_dataloader", None) is not None:
        loader = trainer.train_dataloader
    else:
        raise ValueError("the evidence callbacks need the real training split: pass a datamodule (or a train "
                         "dataloader yielding (images, labels)) to the Trainer")
    images, labels, count = [], [], 0
    for batch_images, batch_labels in image_label_batches(loader):
        images.append(batch_images.cpu())
        labels.append(batch_labels.cpu())
        count += len(batch_labels)
        if max_images is not None and count >= max_images:
            break
    if not images:
        raise ValueError("the training dataloader yielded no batches")
    return torch.cat(images)[:max_images], torch.cat(labels)[:max_images]
