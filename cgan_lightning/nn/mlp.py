"""Generator and discriminator networks.

Every generator is an ``nn.Module`` built as ``Generator(latent_dim, num_classes, image_shape, **options)``
whose ``forward(z, labels)`` returns images in ``[-1, 1]``; every discriminator is built as
``Discriminator(num_classes, image_shape, **options)`` and its ``forward(images, labels)`` returns one
**logit** per image (shape ``[B]``). The :class:`~cgan_lightning.ConditionalGAN` only relies on these
signatures; a config's ``class_path`` names a subclass of :class:`~cgan_lightning.nn.base.ConditionalGenerator`
or :class:`~cgan_lightning.nn.base.ConditionalDiscriminator`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from cgan_lightning.nn.base import ConditionalDiscriminator, ConditionalGenerator
from cgan_lightning.utilities.argument_checks import ImageShape, check_images


def _mlp_block(in_features: int, out_features: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    if batch_norm:
        # momentum=0.8 is the reference's (Keras-style) value, kept for faithfulness.
        layers.append(nn.BatchNorm1d(out_features, momentum=0.8))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


def check_layer_sizes(hidden_dims: Sequence[int], embedding_dim: int | None) -> None:
    """Raise ``ValueError`` unless every hidden width (and the embedding size, when set) is a positive integer."""
    bad = [w for w in hidden_dims if isinstance(w, bool) or not isinstance(w, int) or w <= 0]
    if bad:
        raise ValueError(f"hidden_dims must be positive integers, got {list(hidden_dims)} (bad: {bad})")
    if embedding_dim is not None and (isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int)
                                      or embedding_dim <= 0):
        raise ValueError(f"embedding_dim must be a positive integer or None, got {embedding_dim!r}")


class MLPGenerator(ConditionalGenerator):
    """The reference generator: label embedding concatenated to z, then an MLP.

    ``[z ‖ embed(y)] -> Linear 128 (no norm) -> 256 -> 512 -> 1024 (BatchNorm1d, LeakyReLU 0.2) -> C*H*W -> Tanh``.

    Args:
        latent_dim: size of the noise vector z.
        num_classes: number of labels; the embedding is ``num_classes x embedding_dim``.
        image_shape: ``(channels, height, width)`` of the images produced.
        hidden_dims: widths of the hidden layers; the first has no batch norm.
        embedding_dim: size of the label embedding (``None``: ``num_classes``, as in the reference).
    """

    def __init__(
        self,
        latent_dim: int = 100,
        num_classes: int = 10,
        image_shape: ImageShape = (1, 28, 28),
        hidden_dims: Sequence[int] = (128, 256, 512, 1024),
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if latent_dim <= 0 or num_classes <= 0:
            raise ValueError(f"latent_dim and num_classes must be positive, got {latent_dim} and {num_classes}")
        check_layer_sizes(hidden_dims, embedding_dim)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.image_shape = cast(ImageShape, tuple(image_shape))  # a (C, H, W) sequence, as annotated
        embedding_dim = embedding_dim or num_classes
        self.label_embedding = nn.Embedding(num_classes, embedding_dim)
        layers: list[nn.Module] = []
        in_features = latent_dim + embedding_dim
        for i, width in enumerate(hidden_dims):
            layers += _mlp_block(in_features, width, batch_norm=i > 0)
            in_features = width
        layers += [nn.Linear(in_features, math.prod(self.image_shape)), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        """Map latents ``[B, latent_dim]`` and labels ``[B]`` to images ``[B, C, H, W]`` in ``[-1, 1]``."""
        x = torch.cat((z, self.label_embedding(labels)), dim=1)
        return self.model(x).view(z.size(0), *self.image_shape)


class MLPDiscriminator(ConditionalDiscriminator):
    """The reference discriminator: flattened image concatenated to a label embedding, then an MLP.

    ``[flatten(x) ‖ embed(y)] -> 512 -> 256 -> 1`` with LeakyReLU(0.2); returns a logit (no Sigmoid: the loss
    applies it, which is the reference's objective computed stably).

    Args:
        num_classes: number of labels.
        image_shape: ``(channels, height, width)`` of the images judged.
        hidden_dims: widths of the hidden layers.
        embedding_dim: size of the label embedding (``None``: ``num_classes``, as in the reference).
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: ImageShape = (1, 28, 28),
        hidden_dims: Sequence[int] = (512, 256),
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_layer_sizes(hidden_dims, embedding_dim)
        self.num_classes = num_classes
        self.image_shape = cast(ImageShape, tuple(image_shape))  # a (C, H, W) sequence, as annotated
        embedding_dim = embedding_dim or num_classes
        self.label_embedding = nn.Embedding(num_classes, embedding_dim)
        layers: list[nn.Module] = []
        in_features = math.prod(self.image_shape) + embedding_dim
        for width in hidden_dims:
            layers += [nn.Linear(in_features, width), nn.LeakyReLU(0.2, inplace=True)]
            in_features = width
        layers.append(nn.Linear(in_features, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        """Score (image, label) pairs: images ``[B, C, H, W]``, labels ``[B]`` -> logits ``[B]``."""
        check_images(images, self.image_shape)
        x = torch.cat((images.flatten(1), self.label_embedding(labels)), dim=1)
        return self.model(x).squeeze(1)
