"""Adversarial losses as pure functions of discriminator logits.

A loss is a pair of functions: ``d_loss(real_logits, fake_logits) -> Tensor`` for the discriminator and
``g_loss(fake_logits) -> Tensor`` for the generator. :data:`LOSSES` maps the names accepted by
``ConditionalGAN(loss=...)`` to these pairs, so the training step only calls what was chosen.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch.nn.functional as F
from torch import Tensor


class DiscriminatorLoss(Protocol):
    def __call__(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor: ...


class GeneratorLoss(Protocol):
    def __call__(self, fake_logits: Tensor) -> Tensor: ...


class AdversarialLoss(NamedTuple):
    """The discriminator's and the generator's halves of one adversarial objective."""

    d_loss: DiscriminatorLoss
    g_loss: GeneratorLoss


def bce_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The reference D loss: ``(BCE(D(x,y), 1) + BCE(D(G(z,y),y), 0)) / 2``, computed on logits."""
    real = F.binary_cross_entropy_with_logits(real_logits, real_logits.new_ones(()).expand_as(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, fake_logits.new_zeros(()).expand_as(fake_logits))
    return (real + fake) / 2


def bce_g_loss(fake_logits: Tensor) -> Tensor:
    """The reference (non-saturating) G loss: ``BCE(D(G(z,y),y), 1)``, i.e. ``-log sigmoid(logit)``."""
    return F.binary_cross_entropy_with_logits(fake_logits, fake_logits.new_ones(()).expand_as(fake_logits))


LOSSES: dict[str, AdversarialLoss] = {
    "bce": AdversarialLoss(bce_d_loss, bce_g_loss),
}


def get_loss(name: str) -> AdversarialLoss:
    """Return the loss pair registered under ``name``; ``ValueError`` listing the choices otherwise."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}: choose one of {sorted(LOSSES)}") from None
