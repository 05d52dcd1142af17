"""Rejection by D's class head when sampling: redraw the samples the discriminator doubts are of their label.

An AC-GAN discriminator (:class:`~cgan_lightning.nn.dcgan.ACGANDiscriminator`) learns a class head on real digits.
When a generated image gets its requested label a head probability under ``min_prob``, it is redrawn from a fixed
permutation of its own latent, up to ``len(permutations)`` times (the last draw stays, doubted or not). A redraw
is a function of ``(z, label)`` alone, so samples stay reproducible and independent of the batch they are drawn
in, as the evaluation callbacks require. In the spirit of discriminator rejection sampling (Azadi et al. 2019),
with the class head instead of the adversarial logit.

>>> import torch
>>> z = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
>>> generate = lambda z, labels: z.clone()                        # "images" that are their latents
>>> probability = lambda images, labels: (images[:, 0] > 2).float()  # doubts images whose first entry is <= 2
>>> images, doubted = redraw_doubted(z, torch.tensor([0, 1]), generate, probability, 0.5,
...                                  [torch.tensor([1, 0])])
>>> images, doubted
(tensor([[2., 1.],
        [3., 4.]]), 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from cgan_lightning.utilities.argument_checks import check_number

#: ``ConditionalGAN``'s hyperparameters that change how it samples and none of its weights.
SAMPLING_OPTIONS = ("sample_latent_scale", "sample_min_class_prob", "sample_tilt_temperature", "sample_tilt_candidates")
#: The seed of the redraws' latent permutations: fixed, so a model samples the same images on every run.
REDRAW_SEED = 1234
#: Redraws per sample at most.
MAX_REDRAWS = 3


@runtime_checkable
class ClassHead(Protocol):
    """A discriminator with a class head (:class:`~cgan_lightning.nn.dcgan.ACGANDiscriminator`)."""

    def label_probability(self, images: Tensor, labels: Tensor) -> Tensor:
        """The head's probability ``[B]`` that each image is of its label."""
        ...


def check_sampling_options(latent_scale: object, min_prob: object, discriminator: object) -> tuple[float, float]:
    """Return ``(latent_scale, min_prob)`` as floats, ``> 0`` and in ``[0, 1)``; ``min_prob > 0`` needs a class head."""
    scale = check_number(latent_scale, "sample_latent_scale")
    if scale <= 0:
        raise ValueError(f"sample_latent_scale must be > 0 (1: latents as trained), got {latent_scale}")
    threshold = check_number(min_prob, "sample_min_class_prob", minimum=0.0)
    if threshold >= 1:
        raise ValueError(f"sample_min_class_prob must be in [0, 1) (0: off; e.g. 0.7), got {min_prob}")
    if threshold > 0 and not isinstance(discriminator, ClassHead):
        raise ValueError(f"sample_min_class_prob={min_prob} redraws the samples D's class head doubts, but the "
                         f"discriminator ({type(discriminator).__name__}) has no class head: use "
                         "cgan_lightning.nn.dcgan.ACGANDiscriminator or set sample_min_class_prob to 0")
    return scale, threshold


def redraw_permutations(latent_dim: int, redraws: int = MAX_REDRAWS, seed: int = REDRAW_SEED) -> list[Tensor]:
    """The fixed permutations of a latent's entries that redraws use, one per redraw (on the CPU)."""
    rng = torch.Generator().manual_seed(seed)
    return [torch.randperm(latent_dim, generator=rng) for _ in range(redraws)]


def redraw_doubted(
    z: Tensor,
    labels: Tensor,
    generate: Callable[[Tensor, Tensor], Tensor],
    label_probability: Callable[[Tensor, Tensor], Tensor],
    min_prob: float,
    permutations: Sequence[Tensor],
) -> tuple[Tensor, int]:
    """Generate ``generate(z, labels)``, redrawing the images whose label gets a probability under ``min_prob``.

    Args:
        z: latents ``[B, latent_dim]``.
        labels: requested labels ``[B]``.
        generate: ``(z, labels) -> images``.
        label_probability: ``(images, labels) -> [B]``, the probability each image is of its label.
        min_prob: images under this probability are redrawn.
        permutations: one permutation of the latent's entries per redraw; redraw ``i`` of a sample uses
            ``z[:, permutations[i]]``.

    Returns:
        The images and how many of the first draws were redrawn.
    """
    images = generate(z, labels)
    doubted = label_probability(images, labels) < min_prob
    first_doubted = int(doubted.sum())
    for permutation in permutations:
        rows = doubted.nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        images[rows] = generate(z[rows][:, permutation.to(z.device)], labels[rows])
        doubted[rows] = label_probability(images[rows], labels[rows]) < min_prob
    return images, first_doubted


__all__ = ["MAX_REDRAWS", "REDRAW_SEED", "SAMPLING_OPTIONS", "ClassHead", "check_sampling_options", "redraw_doubted",
           "redraw_permutations"]
