"""The base classes of the package's networks, which a config's ``class_path`` must name a subclass of.

:class:`~cgan_lightning.ConditionalGAN` types its ``generator`` and ``discriminator`` arguments with these
classes, so ``cgan-lightning fit --help`` lists only the package's networks (and yours, once imported) instead
of every ``nn.Module`` in torch. Subclass them to plug your own network into a config::

    class MyGenerator(ConditionalGenerator):
        def __init__(self, latent_dim: int, num_classes: int, image_shape: tuple[int, int, int], width: int = 64):
            ...

    # model:
    #   generator: {class_path: my_package.MyGenerator, init_args: {width: 128}}

In Python any callable with the same signature works; subclassing is only needed for the CLI.
"""

from __future__ import annotations

from torch import Tensor, nn


class ConditionalGenerator(nn.Module):
    """A generator ``G(z, labels)``: built as ``Generator(latent_dim, num_classes, image_shape, **options)``.

    ``forward(z, labels)`` takes latents ``[B, latent_dim]`` and integer labels ``[B]`` and returns images
    ``[B, C, H, W]`` in ``[-1, 1]``.
    """

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:  # pragma: no cover - subclasses implement it
        raise NotImplementedError(f"{type(self).__name__} must implement forward(z, labels)")


class ConditionalDiscriminator(nn.Module):
    """A discriminator ``D(images, labels)``: built as ``Discriminator(num_classes, image_shape, **options)``.

    ``forward(images, labels)`` takes images ``[B, C, H, W]`` and integer labels ``[B]`` and returns one logit
    per image (``[B]``). Optionally ``logits_and_aux_loss(images, labels) -> (logits, aux_loss | None)`` adds an
    auxiliary classifier loss (see :class:`~cgan_lightning.nn.dcgan.ACGANDiscriminator`).
    """

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:  # pragma: no cover - subclasses implement it
        raise NotImplementedError(f"{type(self).__name__} must implement forward(images, labels)")


__all__ = ["ConditionalDiscriminator", "ConditionalGenerator"]
