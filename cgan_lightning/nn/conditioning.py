"""Ways for a class label to enter a convolutional network's normalization layers.

Every layer here is called as ``norm(x, condition)`` with feature maps ``x`` of shape ``[B, C, H, W]``, so a
generator can swap them without changing its forward pass. What ``condition`` holds depends on the layer:

- :class:`LabelFreeBatchNorm2d`: nothing (``None``); the plain BatchNorm of the ``concat`` generator.
- :class:`ConditionalBatchNorm2d`: the labels ``[B]``; each class owns its gain and bias (de Vries et al. 2017,
  Miyato & Koyama 2018).
- :class:`FiLM2d`: a label embedding ``[B, E]`` shared by all layers; each layer maps it linearly to its own
  scale and shift (Perez et al. 2018), so classes share structure through the embedding.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

#: How the generator's label enters: embedding concatenated to z, conditional BatchNorm, or FiLM.
GeneratorConditioning = Literal["concat", "cbn", "film"]
GENERATOR_CONDITIONINGS: tuple[str, ...] = ("concat", "cbn", "film")


class LabelFreeBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with the ``norm(x, condition)`` call signature; the condition is ignored."""

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        return super().forward(x)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose affine gain and bias are looked up per class: ``gain[y] * BN(x) + bias[y]``.

    The normalization statistics are shared by all classes; only the affine part is per class. Gains start
    at 1 and biases at 0, so at initialization the layer equals a plain BatchNorm.

    Args:
        num_features: channels ``C`` of the feature maps.
        num_classes: number of labels; the layer holds ``num_classes x C`` gains and as many biases.
        momentum: running-statistics momentum of the underlying BatchNorm.
        eps: added to the variance for numerical stability.
    """

    def __init__(self, num_features: int, num_classes: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False, momentum=momentum, eps=eps)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """Normalize ``x`` ``[B, C, H, W]`` and apply the affine transform of each sample's class ``labels[b]``."""
        return self.norm(x) * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class FiLM2d(nn.Module):
    """BatchNorm followed by a feature-wise affine map predicted from a conditioning vector.

    ``(1 + scale(e)) * BN(x) + shift(e)`` where ``[scale, shift] = Linear(e)``. The linear map starts at zero,
    so at initialization the layer equals a plain BatchNorm.

    Args:
        num_features: channels ``C`` of the feature maps.
        condition_dim: size ``E`` of the conditioning vector (the generator's shared label embedding).
        momentum: running-statistics momentum of the underlying BatchNorm.
        eps: added to the variance for numerical stability.
    """

    def __init__(self, num_features: int, condition_dim: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False, momentum=momentum, eps=eps)
        self.to_scale_shift = nn.Linear(condition_dim, 2 * num_features)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        """Normalize ``x`` ``[B, C, H, W]`` and modulate it with ``condition`` ``[B, E]``."""
        scale, shift = self.to_scale_shift(condition)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift


def make_norm(
    conditioning: GeneratorConditioning, num_features: int, num_classes: int, embedding_dim: int
) -> nn.Module:
    """Build the ``norm(x, condition)`` layer that ``conditioning`` calls for.

    Args:
        conditioning: ``concat`` (plain BatchNorm), ``cbn`` (per-class gain and bias) or ``film``.
        num_features: channels of the feature maps.
        num_classes: number of labels (used by ``cbn``).
        embedding_dim: size of the shared label embedding (used by ``film``).

    Raises:
        ValueError: an unknown ``conditioning``.
    """
    if conditioning == "concat":
        return LabelFreeBatchNorm2d(num_features)
    if conditioning == "cbn":
        return ConditionalBatchNorm2d(num_features, num_classes)
    if conditioning == "film":
        return FiLM2d(num_features, embedding_dim)
    raise ValueError(f"unknown generator conditioning {conditioning!r}: choose one of {list(GENERATOR_CONDITIONINGS)}")


def label_maps(labels: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """One-hot label planes ``[B, num_classes, H, W]`` with the size, dtype and device of images ``like``."""
    one_hot = F.one_hot(labels, num_classes).to(like.dtype)
    return one_hot[:, :, None, None].expand(-1, -1, like.size(2), like.size(3))


__all__ = [
    "ConditionalBatchNorm2d",
    "FiLM2d",
    "GENERATOR_CONDITIONINGS",
    "GeneratorConditioning",
    "LabelFreeBatchNorm2d",
    "label_maps",
    "make_norm",
]
