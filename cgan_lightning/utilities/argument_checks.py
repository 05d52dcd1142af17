"""Input checks shared by the networks and the LightningModule.

Each check raises ``ValueError`` with what was wrong and what is expected, so a user's mistake never
surfaces as an ``IndexError`` from an embedding or a CUDA device-side assert.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

ImageShape = tuple[int, int, int]


def as_label_tensor(
    labels: Tensor | Sequence[int] | int, num_classes: int, device: torch.device | None = None
) -> Tensor:
    """Return ``labels`` as a 1-D int64 tensor on ``device``, checking dtype and range.

    Args:
        labels: class ids: an int, a sequence of ints (numpy integers too), or an integer tensor of shape ``[B]``.
        num_classes: labels must lie in ``[0, num_classes)``.
        device: where the returned tensor lives (``None`` keeps the tensor's own device).

    Raises:
        ValueError: on float or bool labels, labels that are not 1-D, an empty batch, labels out of range, or a
            tensor on the ``meta`` device.
    """
    if isinstance(labels, bool):
        raise ValueError(f"labels must be integers in [0, {num_classes}), got a bool")
    if isinstance(labels, numbers.Integral):
        labels = [cast(int, labels)]  # a Python or numpy integer (typing does not model the numbers tower)
    if not isinstance(labels, Tensor):
        try:
            labels = list(cast("Iterable[int]", labels))  # anything else raises the TypeError handled here
        except TypeError:
            raise ValueError(f"labels must be an int, a sequence of ints or an integer tensor with values in "
                             f"[0, {num_classes}), got {type(labels).__name__}") from None
        # numbers.Integral admits numpy integers; range is checked here, before a huge int overflows torch.long.
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_) for v in labels):
            raise ValueError(f"labels must be integers in [0, {num_classes}), got {labels!r}")
        bad = next((int(v) for v in labels if not 0 <= v < num_classes), None)
        if bad is not None:
            raise ValueError(f"label {bad} is out of range: labels must lie in [0, {num_classes - 1}]")
        labels = torch.tensor([int(v) for v in labels], dtype=torch.long)
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
    check_has_data(labels, "labels")
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D of shape [batch], got shape {tuple(labels.shape)}")
    if labels.numel() == 0:
        raise ValueError("labels is empty: pass at least one label")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"label {bad} is out of range: labels must lie in [0, {num_classes - 1}]")


def check_has_data(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` for a tensor without values: on the ``meta`` device (shapes only, e.g. from
    ``torch.device("meta")`` model initialization), so neither readable nor copyable to a real device."""
    if tensor.is_meta:
        raise ValueError(f"{name} is on the 'meta' device, which holds shapes but no values; "
                         "expected a tensor on the CPU or the model's device")


def check_latents(z: Tensor, batch_size: int, latent_dim: int) -> None:
    """Raise ``ValueError`` unless ``z`` is a floating tensor of shape ``[batch_size, latent_dim]``."""
    if not isinstance(z, Tensor) or not z.is_floating_point():
        raise ValueError(f"z must be a float tensor of shape [{batch_size}, {latent_dim}], got {type(z).__name__}"
                         + (f" of dtype {z.dtype}" if isinstance(z, Tensor) else ""))
    check_has_data(z, "z")
    if tuple(z.shape) != (batch_size, latent_dim):
        raise ValueError(f"z must have shape [{batch_size}, {latent_dim}] (one latent per label), got {tuple(z.shape)}")


def build_optimizer(factory: Callable[[Any], torch.optim.Optimizer], params: Iterable[Tensor], name: str
                    ) -> torch.optim.Optimizer:
    """Build an optimizer with ``factory(params)`` and refuse negative learning rates, naming the setting.

    Args:
        factory: e.g. the ``OptimizerCallable`` the CLI builds from ``model.optimizer_g``.
        params: the parameters to optimize.
        name: the setting's name for the message, e.g. ``model.optimizer_g``.

    Raises:
        ValueError: the optimizer rejected its arguments, or a parameter group has a negative learning rate.
    """
    try:
        optimizer = factory(params)
    except ValueError as err:  # torch's own checks say "Invalid learning rate: -1.0" but not which optimizer
        raise ValueError(f"{name}: {err}; expected a positive learning rate (e.g. 2e-4) and valid settings "
                         "for this optimizer") from err
    for i, group in enumerate(optimizer.param_groups):
        lr = group.get("lr")
        if isinstance(lr, Tensor):
            lr = lr.item()
        if isinstance(lr, int | float) and not lr >= 0:  # also catches NaN
            raise ValueError(f"{name}: learning rate of parameter group {i} is {lr}; expected a positive "
                             "learning rate (e.g. 2e-4)")
    return optimizer


def check_images(images: Tensor, image_shape: ImageShape) -> None:
    """Raise ``ValueError`` unless ``images`` has shape ``[B, C, H, W]`` matching ``image_shape``."""
    check_has_data(images, "images")
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        c, h, w = image_shape
        raise ValueError(f"images must have shape [batch, {c}, {h}, {w}], got {tuple(images.shape)}")


def check_int(value: object, name: str, minimum: int | None = 1) -> int:
    """Return ``value`` if it is an integer (not a bool) ``>= minimum``; else raise ``ValueError`` naming ``name``.

    Args:
        value: what the user passed.
        name: the argument's name for the message, e.g. ``latent_dim``.
        minimum: the smallest value allowed (``None``: any integer).

    Raises:
        ValueError: ``value`` is a float, a string, a bool or another type, or below ``minimum``.
    """
    kind = "a positive integer" if minimum == 1 else "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {kind}, got {value}")
    return int(value)


def check_number(value: object, name: str, minimum: float | None = None) -> float:
    """Return ``value`` as a float if it is a finite real number ``>= minimum``; else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return float(value)


def check_sample_inputs(z: object, generator: object) -> None:
    """Raise ``ValueError`` for a ``generator`` that is not a ``torch.Generator`` or a ``z`` with NaN/inf values."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(42)) or None, got "
                         f"{generator!r} ({type(generator).__name__})")
    if isinstance(z, Tensor) and z.is_floating_point() and not z.is_meta and not bool(torch.isfinite(z).all()):
        rows = int((~torch.isfinite(z.reshape(z.shape[0], -1) if z.dim() else z.reshape(1, 1))).any(dim=1).sum())
        raise ValueError(f"z holds NaN or inf values in {rows} of its {len(z) if z.dim() else 1} rows; latents must "
                         "be finite (e.g. drawn with torch.randn)")


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool; else raise ``ValueError`` (a string ``"false"`` would count as true)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_image_shape(image_shape: object) -> tuple[int, int, int]:
    """Return ``image_shape`` as ``(channels, height, width)`` of positive ints; else raise ``ValueError``."""
    values = list(image_shape) if isinstance(image_shape, list | tuple) else None
    if (values is None or len(values) != 3 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                                                   for v in values) or min(values) <= 0):
        raise ValueError(f"image_shape must be (channels, height, width) of positive ints, e.g. (1, 28, 28); got "
                         f"{image_shape!r}")
    return (int(values[0]), int(values[1]), int(values[2]))
