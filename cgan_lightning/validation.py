"""Input checks shared by the networks and the LightningModule.

Each check raises ``ValueError`` with what was wrong and what is expected, so a user's mistake never
surfaces as an ``IndexError`` from an embedding or a CUDA device-side assert.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

ImageShape = tuple[int, int, int]


def as_label_tensor(
    labels: Tensor | Sequence[int] | int, num_classes: int, device: torch.device | None = None
) -> Tensor:
    """Return ``labels`` as a 1-D int64 tensor on ``device``, checking dtype and range.

    Args:
        labels: class ids: an int, a sequence of ints, or an integer tensor of shape ``[B]``.
        num_classes: labels must lie in ``[0, num_classes)``.
        device: where the returned tensor lives (``None`` keeps the tensor's own device).

    Raises:
        ValueError: on float or bool labels, labels that are not 1-D, an empty batch, or labels out of range.
    """
    if isinstance(labels, bool):
        raise ValueError(f"labels must be integers in [0, {num_classes}), got a bool")
    if isinstance(labels, int):
        labels = [labels]
    if not isinstance(labels, Tensor):
        labels = list(labels)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
            raise ValueError(f"labels must be integers in [0, {num_classes}), got {labels!r}")
        labels = torch.tensor(labels, dtype=torch.long)
    check_labels(labels, num_classes)
    labels = labels.long()
    return labels if device is None else labels.to(device)


def check_labels(labels: Tensor, num_classes: int) -> None:
    """Raise ``ValueError`` unless ``labels`` is a non-empty 1-D integer tensor with values in ``[0, num_classes)``.

    This reads the values (a host sync on GPU), so call it on user input, not inside the training step.
    """
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"labels must be an integer tensor (torch.long) with values in [0, {num_classes}), got dtype {labels.dtype}"
        )
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D of shape [batch], got shape {tuple(labels.shape)}")
    if labels.numel() == 0:
        raise ValueError("labels is empty: pass at least one label")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"label {bad} is out of range: labels must lie in [0, {num_classes - 1}]")


def check_latents(z: Tensor, batch_size: int, latent_dim: int) -> None:
    """Raise ``ValueError`` unless ``z`` is a floating tensor of shape ``[batch_size, latent_dim]``."""
    if not isinstance(z, Tensor) or not z.is_floating_point():
        raise ValueError(f"z must be a float tensor of shape [{batch_size}, {latent_dim}], got {type(z).__name__}"
                         + (f" of dtype {z.dtype}" if isinstance(z, Tensor) else ""))
    if tuple(z.shape) != (batch_size, latent_dim):
        raise ValueError(f"z must have shape [{batch_size}, {latent_dim}] (one latent per label), got {tuple(z.shape)}")


def check_images(images: Tensor, image_shape: ImageShape) -> None:
    """Raise ``ValueError`` unless ``images`` has shape ``[B, C, H, W]`` matching ``image_shape``."""
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        c, h, w = image_shape
        raise ValueError(f"images must have shape [batch, {c}, {h}, {w}], got {tuple(images.shape)}")
