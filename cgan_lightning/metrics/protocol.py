"""The protocol a LightningModule offers so that the evaluation callbacks can drive it."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Protocol, cast, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class ConditionalSampler(Protocol):
    """What the evaluation callbacks need from a model (``ConditionalGAN`` offers it).

    Attributes:
        num_classes: labels are ``0 .. num_classes - 1``.
        latent_dim: size of one latent vector z.

    ``sample(labels, z=None, generator=None)`` returns one image per label, ``[B, C, H, W]`` in ``[-1, 1]``, without
    gradients and in eval mode; with ``z`` ``[B, latent_dim]`` given, the images depend only on ``(z, labels)``. The
    callbacks always pass ``z`` (drawn on the CPU from their own seed), so their samples do not depend on the model's
    device or random state. A model that keeps an EMA copy of its generator uses it inside ``sample``.
    """

    num_classes: int
    latent_dim: int

    def sample(
        self, labels: Tensor | Sequence[int] | int, z: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor: ...


def check_sampler(module: object) -> ConditionalSampler:
    """Return ``module`` if it offers :class:`ConditionalSampler`, else raise ``TypeError`` naming what is missing."""
    missing = [name for name in ("num_classes", "latent_dim") if not isinstance(getattr(module, name, None), int)]
    if not callable(getattr(module, "sample", None)):
        missing.append("sample(labels, z=None, generator=None)")
    if missing:
        raise TypeError(
            f"{type(module).__name__} cannot be evaluated: it lacks {', '.join(missing)}. The evaluation callbacks "
            "need `num_classes: int`, `latent_dim: int` and `sample(labels, z=None, generator=None)` returning images "
            "in [-1, 1] (see cgan_lightning.metrics.ConditionalSampler)."
        )
    return cast(ConditionalSampler, module)  # checked attribute by attribute above


def takes_redraw(sampler: object) -> bool:
    """Whether ``sampler.sample`` takes ``redraw`` (``ConditionalGAN`` does: its class-head redraws and tilt)."""
    return "redraw" in inspect.signature(getattr(sampler, "sample")).parameters


def sample_fixed_latents(model: ConditionalSampler, labels: Tensor, z: Tensor) -> Tensor:
    """``model.sample(labels, z=z)`` with every image drawn from its own row of ``z``.

    A sampler that may redraw doubted images (``ConditionalGAN`` with ``sample_min_class_prob``) takes
    ``redraw=False``: the interference test and the traversal compare images of the same ``z``.
    """
    if takes_redraw(model):
        return model.sample(labels, z=z, redraw=False)  # type: ignore[call-arg]  # checked just above
    return model.sample(labels, z=z)
