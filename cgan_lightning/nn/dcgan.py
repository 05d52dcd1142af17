"""DCGAN-style convolutional generator and discriminator with a choice of label conditioning.

Both follow the package's network protocol (see :mod:`cgan_lightning.nn.mlp`), so a config picks them with
``class_path: cgan_lightning.nn.dcgan.DCGANGenerator`` / ``DCGANDiscriminator``. They work for any channel
count and any height and width divisible by 4 (two stride-2 stages), e.g. 1x28x28 MNIST or 3x32x32.

:class:`ACGANDiscriminator` adds an auxiliary classifier (AC-GAN). Its classification loss is returned by
:meth:`ACGANDiscriminator.logits_and_aux_loss`, which :class:`~cgan_lightning.ConditionalGAN` calls when a
discriminator defines it; ``forward`` always returns the adversarial logits ``[B]`` alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from cgan_lightning.nn.base import ConditionalDiscriminator, ConditionalGenerator
from cgan_lightning.nn.conditioning import GENERATOR_CONDITIONINGS, GeneratorConditioning, label_maps, make_norm
from cgan_lightning.nn.feature_critic import FrozenFeatureCritic
from cgan_lightning.utilities.argument_checks import ImageShape, check_bool, check_images, check_int

#: How the discriminator uses the label: one-hot maps concatenated to the image, the projection
#: ``<embed(y), h(x)>`` added to the logit, or not at all (only :class:`ACGANDiscriminator`, whose head uses it).
DiscriminatorConditioning = Literal["concat", "projection", "none"]


def _layer(module: nn.Module, enabled: bool) -> nn.Module:
    """DCGAN-initialize ``module``, then wrap its weight in spectral normalization when ``enabled``.

    The DCGAN init (weights N(0, 0.02), biases 0; Radford et al. 2016) matters here: PyTorch's default gives the
    last transposed convolution (fan-in from its single output channel) weights large enough to saturate the Tanh.
    """
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return _spectral_norm(module) if enabled else module


def _to_channels_last(network: nn.Module, enabled: bool) -> None:
    """Keep ``network``'s 4-d weights (hence its conv activations) in channels-last memory order when ``enabled``.

    PyTorch's CPU max-pooling (the feature critic's) runs several times faster on channels-last tensors than on
    NCHW ones, and GPUs' tensor cores prefer them for convolutions; the maths is the same up to floating-point
    rounding. Checkpoints, ``.to(device)`` and copies keep the order.
    """
    if enabled:
        network.to(memory_format=torch.channels_last)


def _check_shape(image_shape: ImageShape, base_channels: int) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in image_shape)
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(f"image_shape must be (channels, height, width) of positive ints, got {image_shape}")
    if shape[1] % 4 or shape[2] % 4:
        raise ValueError(f"the DCGAN networks need height and width divisible by 4, got {shape[1]}x{shape[2]}")
    if base_channels <= 0:
        raise ValueError(f"base_channels must be a positive integer, got {base_channels}")
    return shape


class _GeneratorResBlock(nn.Module):
    """``x + Conv3x3(ReLU(norm(x, condition)))``: one more layer at a resolution, same channels and size."""

    def __init__(self, channels: int, conditioning: GeneratorConditioning, num_classes: int, embedding_dim: int,
                 spectral_norm: bool) -> None:
        super().__init__()
        self.norm = make_norm(conditioning, channels, num_classes, embedding_dim)
        self.conv = _layer(nn.Conv2d(channels, channels, 3, padding=1), spectral_norm)

    def forward(self, x: Tensor, condition: Tensor | None) -> Tensor:
        return x + self.conv(F.relu(self.norm(x, condition)))


class _DiscriminatorResBlock(nn.Module):
    """``h + LeakyReLU(Conv3x3(h))``: one more layer at a resolution, same channels and size."""

    def __init__(self, channels: int, spectral_norm: bool, negative_slope: float) -> None:
        super().__init__()
        self.conv = _layer(nn.Conv2d(channels, channels, 3, padding=1), spectral_norm)
        self.negative_slope = negative_slope

    def forward(self, h: Tensor) -> Tensor:
        return h + F.leaky_relu(self.conv(h), self.negative_slope)


class DCGANGenerator(ConditionalGenerator):
    """DCGAN-style generator: ``Linear -> [2b, H/4, W/4] -> ConvT x2 (to H/2, then H) -> Tanh``.

    ``z (‖ embed(y)) -> Linear -> norm, ReLU -> ConvT(2b, b, 4, 2, 1) -> norm, ReLU -> ConvT(b, C, 4, 2, 1) -> Tanh``
    where ``b = base_channels`` and every ``norm`` is conditioned as ``conditioning`` says. With ``res_blocks = n``,
    ``n`` residual blocks ``x + Conv3x3(ReLU(norm(x)))`` follow the linear map (at ``H/4``) and the first
    transposed convolution (at ``H/2``): a deeper network at the same resolutions.

    Args:
        latent_dim: size of the noise vector z.
        num_classes: number of labels.
        image_shape: ``(channels, height, width)`` of the images produced; height and width divisible by 4.
        base_channels: ``b``; the two stages have ``2b`` and ``b`` channels (64 gives 128/64).
        conditioning: ``concat`` (label embedding concatenated to z, plain BatchNorm), ``cbn`` (conditional
            BatchNorm: per-class gain and bias in every norm layer) or ``film`` (every norm layer modulated by
            a linear map of one shared label embedding).
        embedding_dim: size of the label embedding used by ``concat`` and ``film`` (unused by ``cbn``).
        spectral_norm: wrap the linear and (transposed) convolution weights in spectral normalization.
        res_blocks: residual 3x3-convolution blocks at each of the two inner resolutions (0: the plain DCGAN).
        channels_last: keep the convolutions' weights and activations in channels-last memory order, which GPUs'
            tensor cores prefer; the same maths up to rounding.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        num_classes: int = 10,
        image_shape: ImageShape = (1, 28, 28),
        base_channels: int = 64,
        conditioning: GeneratorConditioning = "cbn",
        embedding_dim: int = 32,
        spectral_norm: bool = False,
        res_blocks: int = 0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        check_bool(channels_last, "channels_last")
        if latent_dim <= 0 or num_classes <= 0 or embedding_dim <= 0:
            raise ValueError(f"latent_dim, num_classes and embedding_dim must be positive, got {latent_dim}, "
                             f"{num_classes} and {embedding_dim}")
        if conditioning not in GENERATOR_CONDITIONINGS:
            raise ValueError(f"unknown generator conditioning {conditioning!r}: choose one of "
                             f"{list(GENERATOR_CONDITIONINGS)}")
        channels, height, width = self.image_shape = _check_shape(image_shape, base_channels)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.conditioning = conditioning
        self.start_shape = (2 * base_channels, height // 4, width // 4)
        # cbn keeps its per-class tables inside the norm layers; concat and film share one embedding.
        self.label_embedding = nn.Embedding(num_classes, embedding_dim) if conditioning != "cbn" else None
        in_features = latent_dim + (embedding_dim if conditioning == "concat" else 0)
        self.project = _layer(nn.Linear(in_features, math.prod(self.start_shape)), spectral_norm)
        widths = (2 * base_channels, base_channels, channels)
        self.norms = nn.ModuleList(make_norm(conditioning, w, num_classes, embedding_dim) for w in widths[:2])
        self.upsample = nn.ModuleList(
            _layer(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), spectral_norm)
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.res_blocks = nn.ModuleList(
            nn.ModuleList(_GeneratorResBlock(w, conditioning, num_classes, embedding_dim, spectral_norm)
                          for _ in range(check_int(res_blocks, "res_blocks", minimum=0)))
            for w in widths[:2]
        )
        _to_channels_last(self, channels_last)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        """Map latents ``[B, latent_dim]`` and labels ``[B]`` to images ``[B, C, H, W]`` in ``[-1, 1]``."""
        condition: Tensor | None = labels if self.conditioning == "cbn" else None
        if self.label_embedding is not None:
            embedding = self.label_embedding(labels)
            if self.conditioning == "concat":
                z = torch.cat((z, embedding), dim=1)
            else:
                condition = embedding
        x = self.project(z).view(z.size(0), *self.start_shape)
        for blocks, norm, up in zip(self.res_blocks, self.norms, self.upsample):
            for block in cast(nn.ModuleList, blocks):
                x = block(x, condition)
            x = up(F.relu(norm(x, condition)))
        return torch.tanh(x)


class DCGANDiscriminator(ConditionalDiscriminator):
    """DCGAN-style discriminator: ``Conv(4, 2, 1) x2 -> features h(x) [2b * H/4 * W/4] -> logit``.

    ``x (‖ label maps) -> Conv(C, b) -> LeakyReLU -> Conv(b, 2b) -> LeakyReLU -> flatten = h(x)`` then
    ``logit = w·h(x) + c`` plus, with ``projection``, ``<embed(y), h(x)>`` (Miyato & Koyama 2018). By default
    there is no normalization layer, so the network suits every loss including WGAN-GP. With ``res_blocks = n``,
    ``n`` residual blocks ``h + LeakyReLU(Conv3x3(h))`` follow each strided convolution.

    Args:
        num_classes: number of labels.
        image_shape: ``(channels, height, width)`` of the images judged; height and width divisible by 4.
        base_channels: ``b``; the two convolutions have ``b`` and ``2b`` channels.
        conditioning: ``concat`` (one-hot label maps concatenated to the image) or ``projection``.
        spectral_norm: wrap every convolution, linear and projection-embedding weight in spectral normalization.
        batch_norm: BatchNorm after the second convolution, as in DCGAN. It couples the samples of a batch, so
            leave it off with ``wgan-gp`` and R1 (their per-sample gradient penalties assume independent samples).
        negative_slope: slope of the LeakyReLU activations.
        res_blocks: residual 3x3-convolution blocks after each strided convolution (0: the plain DCGAN).
        feature_critic: add the score of a :class:`~cgan_lightning.nn.feature_critic.FrozenFeatureCritic` on this
            pretrained classifier's conv features to the logit: ``"mnist"`` (shipped weights) or a classifier file
            written by ``cgan-lightning train-classifier`` (``None``: off).
        feature_critic_blocks: which of that classifier's conv blocks (1-3) the critic reads.
        channels_last: keep the convolutions' weights and activations (the feature critic's too) in channels-last
            memory order: the critic's max-pooling runs several times faster on a CPU, and GPUs' tensor cores prefer
            it; the same maths up to rounding.
    """

    #: The ``conditioning`` values this class accepts.
    conditionings: tuple[str, ...] = ("concat", "projection")

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: ImageShape = (1, 28, 28),
        base_channels: int = 64,
        conditioning: DiscriminatorConditioning = "projection",
        spectral_norm: bool = False,
        batch_norm: bool = False,
        negative_slope: float = 0.2,
        res_blocks: int = 0,
        feature_critic: str | None = None,
        feature_critic_blocks: Sequence[int] = (2, 3),
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        check_bool(channels_last, "channels_last")
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if conditioning not in self.conditionings:
            hint = " ('none' needs the auxiliary classifier: use ACGANDiscriminator)" if conditioning == "none" else ""
            raise ValueError(f"unknown discriminator conditioning {conditioning!r} for {type(self).__name__}: "
                             f"choose one of {list(self.conditionings)}{hint}")
        channels, height, width = self.image_shape = _check_shape(image_shape, base_channels)
        self.num_classes = num_classes
        self.conditioning = conditioning
        in_channels = channels + (num_classes if conditioning == "concat" else 0)
        n_blocks = check_int(res_blocks, "res_blocks", minimum=0)

        def blocks(width: int) -> list[nn.Module]:
            return [_DiscriminatorResBlock(width, spectral_norm, negative_slope) for _ in range(n_blocks)]

        self.features = nn.Sequential(
            _layer(nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1), spectral_norm),
            nn.LeakyReLU(negative_slope, inplace=True),
            *blocks(base_channels),
            _layer(nn.Conv2d(base_channels, 2 * base_channels, 4, stride=2, padding=1), spectral_norm),
            nn.BatchNorm2d(2 * base_channels) if batch_norm else nn.Identity(),
            nn.LeakyReLU(negative_slope, inplace=True),
            *blocks(2 * base_channels),
            nn.Flatten(),
        )
        self.feature_dim = 2 * base_channels * (height // 4) * (width // 4)
        self.to_logit = _layer(nn.Linear(self.feature_dim, 1), spectral_norm)
        self.projection: nn.Module | None = None
        if conditioning == "projection":
            embedding = nn.Embedding(num_classes, self.feature_dim)
            # Embedding's default N(0, 1) init would make <embed(y), h> dwarf the linear term at the start.
            nn.init.xavier_uniform_(embedding.weight)
            self.projection = _layer(embedding, spectral_norm)
        self.feature_critic = (FrozenFeatureCritic(feature_critic, num_classes, self.image_shape,
                                                   feature_critic_blocks, spectral_norm=spectral_norm)
                               if feature_critic is not None else None)
        _to_channels_last(self, channels_last)

    def _shared_features(self, images: Tensor, labels: Tensor) -> Tensor:
        """The features ``h(x)`` ``[B, feature_dim]`` the adversarial logit (and an AC head) read."""
        check_images(images, self.image_shape)
        x = images
        if self.conditioning == "concat":
            x = torch.cat((x, label_maps(labels, self.num_classes, images)), dim=1)
        return self.features(x)

    def _judge(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Adversarial logits ``[B]`` and the features ``h(x)`` ``[B, feature_dim]`` they were computed from."""
        h = self._shared_features(images, labels)
        logits = self.to_logit(h).squeeze(1)
        if self.projection is not None:
            logits = logits + (self.projection(labels) * h).sum(dim=1)
        if self.feature_critic is not None:
            logits = logits + self.feature_critic(images, labels)
        return logits, h

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        """Score (image, label) pairs: images ``[B, C, H, W]``, labels ``[B]`` -> logits ``[B]``."""
        return self._judge(images, labels)[0]


class ACGANDiscriminator(DCGANDiscriminator):
    """:class:`DCGANDiscriminator` plus an auxiliary classifier head (AC-GAN, Odena et al. 2017).

    A linear head on the shared features ``h(x)`` predicts the class. :class:`~cgan_lightning.ConditionalGAN`
    calls :meth:`logits_and_aux_loss` (instead of ``forward``) for any discriminator that defines it, and adds
    the returned loss to D's loss on real pairs and to G's loss on generated pairs.

    Args:
        num_classes: as in :class:`DCGANDiscriminator`.
        image_shape: as in :class:`DCGANDiscriminator`.
        base_channels: as in :class:`DCGANDiscriminator`.
        conditioning: ``none`` (the original AC-GAN: the adversarial logit ignores the label), ``concat`` or
            ``projection`` (the head is added to a conditional discriminator).
        aux_weight: weight of the classification loss.
        spectral_norm: as in :class:`DCGANDiscriminator`.
        batch_norm: as in :class:`DCGANDiscriminator`.
        negative_slope: as in :class:`DCGANDiscriminator`.
        res_blocks: as in :class:`DCGANDiscriminator`.
        feature_critic: as in :class:`DCGANDiscriminator`.
        feature_critic_blocks: as in :class:`DCGANDiscriminator`.
        channels_last: as in :class:`DCGANDiscriminator`.
    """

    conditionings = ("concat", "projection", "none")

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: ImageShape = (1, 28, 28),
        base_channels: int = 64,
        conditioning: DiscriminatorConditioning = "none",
        aux_weight: float = 1.0,
        spectral_norm: bool = False,
        batch_norm: bool = False,
        negative_slope: float = 0.2,
        res_blocks: int = 0,
        feature_critic: str | None = None,
        feature_critic_blocks: Sequence[int] = (2, 3),
        channels_last: bool = False,
    ) -> None:
        super().__init__(num_classes, image_shape, base_channels, conditioning, spectral_norm, batch_norm,
                         negative_slope, res_blocks, feature_critic, feature_critic_blocks, channels_last)
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight}")
        self.aux_weight = aux_weight
        self.classifier = _layer(nn.Linear(self.feature_dim, num_classes), spectral_norm)

    def logits_and_aux_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Adversarial logits ``[B]`` and ``aux_weight`` x the head's mean cross-entropy against ``labels``.

        One pass through the shared features serves both heads. ``F.cross_entropy`` takes the raw class
        logits and applies log-softmax itself: no softmax layer comes first (a known AC-GAN bug).
        """
        logits, h = self._judge(images, labels)
        return logits, self.aux_weight * F.cross_entropy(self.classifier(h), labels)

    def label_probability(self, images: Tensor, labels: Tensor) -> Tensor:
        """The class head's probability ``[B]`` that each image is of its label (rejection when sampling).

        Only the shared features and the head run: the adversarial logit and any feature critic are skipped.
        """
        class_logits = self.classifier(self._shared_features(images, labels))
        return class_logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1)


__all__ = ["ACGANDiscriminator", "DCGANDiscriminator", "DCGANGenerator", "DiscriminatorConditioning"]
