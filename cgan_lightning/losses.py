"""Adversarial losses as pure functions of discriminator logits.

A loss is a pair of functions: ``d_loss(real_logits, fake_logits, real_weights=None) -> Tensor`` for the
discriminator (``real_weights``: optional per-image weights ``[B]`` of the real terms, mean 1) and
``g_loss(fake_logits) -> Tensor`` for the generator, plus an optional ``penalty(discriminator, real, fake,
labels) -> Tensor`` added to the discriminator's loss (WGAN-GP's gradient penalty). A *relativistic* loss
(``AdversarialLoss.relativistic``) judges each generated pair against a real one, so its generator half is
``g_loss(fake_logits, real_logits)``. :data:`LOSSES` maps the names accepted by ``ConditionalGAN(loss=...)`` to
these pairs, so the training step only calls what was chosen.
:func:`r1_penalty` has the penalty signature too, so it can be added to any loss (``ConditionalGAN(r1_gamma=...)``).
:func:`lecam_penalty` with its moving-average anchors (:class:`LeCamEMA`) is ``ConditionalGAN(lecam_weight=...)``;
:func:`mode_seeking_loss`, a regularizer of G, is ``ConditionalGAN(mode_seeking_weight=...)``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DiscriminatorLoss(Protocol):
    def __call__(self, real_logits: Tensor, fake_logits: Tensor, real_weights: Tensor | None = None) -> Tensor: ...


class GeneratorLoss(Protocol):
    def __call__(self, fake_logits: Tensor) -> Tensor: ...


class RelativisticGeneratorLoss(Protocol):
    def __call__(self, fake_logits: Tensor, real_logits: Tensor) -> Tensor: ...


class DiscriminatorPenalty(Protocol):
    def __call__(self, discriminator: nn.Module, real: Tensor, fake: Tensor, labels: Tensor) -> Tensor: ...


class AdversarialLoss(NamedTuple):
    """The discriminator's and the generator's halves of one adversarial objective.

    ``penalty``, when set, is a regularizer of the discriminator that needs the network and the images rather
    than logits; the training step adds ``penalty(discriminator, real, fake, real_labels)`` to ``d_loss``.
    ``relativistic``: ``g_loss`` is a :class:`RelativisticGeneratorLoss`, called with D's logits of a real batch
    as well (the training step computes them when G's step has none at hand).
    """

    d_loss: DiscriminatorLoss
    g_loss: GeneratorLoss | RelativisticGeneratorLoss
    penalty: DiscriminatorPenalty | None = None
    relativistic: bool = False


def _mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """``values.mean()``, or ``(weights * values).mean()`` with per-image weights (the real terms' weighting)."""
    return values.mean() if weights is None else (weights.reshape(values.shape) * values).mean()


def bce_d_loss(real_logits: Tensor, fake_logits: Tensor, real_weights: Tensor | None = None) -> Tensor:
    """The reference D loss: ``(BCE(D(x,y), 1) + BCE(D(G(z,y),y), 0)) / 2``, computed on logits."""
    weight = None if real_weights is None else real_weights.reshape(real_logits.shape)
    real = F.binary_cross_entropy_with_logits(real_logits, real_logits.new_ones(()).expand_as(real_logits),
                                              weight=weight)
    fake = F.binary_cross_entropy_with_logits(fake_logits, fake_logits.new_zeros(()).expand_as(fake_logits))
    return (real + fake) / 2


def bce_g_loss(fake_logits: Tensor) -> Tensor:
    """The reference (non-saturating) G loss: ``BCE(D(G(z,y),y), 1)``, i.e. ``-log sigmoid(logit)``."""
    return F.binary_cross_entropy_with_logits(fake_logits, fake_logits.new_ones(()).expand_as(fake_logits))


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor, real_weights: Tensor | None = None) -> Tensor:
    """Hinge D loss (Lim & Ye 2017; Miyato et al. 2018): ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``."""
    return _mean(F.relu(1 - real_logits), real_weights) + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """Hinge G loss: ``-E[D(G(z))]`` (the generator raises the critic's score of its samples)."""
    return -fake_logits.mean()


def lsgan_d_loss(real_logits: Tensor, fake_logits: Tensor, real_weights: Tensor | None = None) -> Tensor:
    """Least-squares D loss (Mao et al. 2017, targets 1 and 0): ``(E[(D(x) - 1)^2] + E[D(G(z))^2]) / 2``."""
    return (_mean((real_logits - 1).square(), real_weights) + fake_logits.square().mean()) / 2


def lsgan_g_loss(fake_logits: Tensor) -> Tensor:
    """Least-squares G loss: ``E[(D(G(z)) - 1)^2] / 2``."""
    return (fake_logits - 1).square().mean() / 2


def wasserstein_d_loss(real_logits: Tensor, fake_logits: Tensor, real_weights: Tensor | None = None) -> Tensor:
    """Wasserstein critic loss: ``E[D(G(z))] - E[D(x)]`` (needs a Lipschitz constraint, e.g. the gradient penalty)."""
    return fake_logits.mean() - _mean(real_logits, real_weights)


def wasserstein_g_loss(fake_logits: Tensor) -> Tensor:
    """Wasserstein G loss: ``-E[D(G(z))]``."""
    return -fake_logits.mean()


def _check_pairs(real_logits: Tensor, fake_logits: Tensor) -> None:
    if real_logits.shape != fake_logits.shape:
        raise ValueError(f"the relativistic pairing loss compares real pair i with generated pair i, so it needs as "
                         f"many of each: got real logits of shape {tuple(real_logits.shape)} and generated "
                         f"{tuple(fake_logits.shape)}")


def rpgan_d_loss(real_logits: Tensor, fake_logits: Tensor, real_weights: Tensor | None = None) -> Tensor:
    """Relativistic pairing D loss (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024): ``E[softplus(D(G(z_i)) -
    D(x_i))]``, real pair ``i`` of the batch against generated pair ``i``.

    D is asked to score each real pair above its generated partner, not every real pair above a fixed threshold.
    ``real_weights`` weight the pairs.
    """
    _check_pairs(real_logits, fake_logits)
    return _mean(F.softplus(fake_logits - real_logits), real_weights)


def rpgan_g_loss(fake_logits: Tensor, real_logits: Tensor) -> Tensor:
    """Relativistic pairing G loss: ``E[softplus(D(x_i) - D(G(z_i)))]``; the real logits are constants for G."""
    _check_pairs(real_logits, fake_logits)
    return F.softplus(real_logits.detach() - fake_logits).mean()


def _input_gradients(discriminator: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """``d sum(D(x, y)) / dx`` with the graph kept, so a penalty on it trains D (double backpropagation)."""
    images = images.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(images, labels).sum(), images, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(
    discriminator: nn.Module, real: Tensor, fake: Tensor, labels: Tensor, weight: float = 10.0
) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): ``weight * E[(||grad_x D(x_hat, y)|| - 1)^2]``.

    ``x_hat`` is a uniformly random point on the segment between each real image and a fake one. The label
    of the interpolate is the real image's: the penalty keeps D 1-Lipschitz in the image for every class.

    Args:
        discriminator: the critic ``D(images, labels) -> [B]``.
        real: real images ``[B, C, H, W]``.
        fake: generated images of the same shape (detached here).
        labels: the real images' labels ``[B]``.
        weight: ``lambda`` (10 in the paper).
    """
    alpha = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    interpolates = torch.lerp(fake.detach(), real.detach(), alpha)
    grad = _input_gradients(discriminator, interpolates, labels)
    return weight * (grad.norm(dim=1) - 1).square().mean()


def r1_penalty(discriminator: nn.Module, real: Tensor, fake: Tensor, labels: Tensor, gamma: float = 10.0) -> Tensor:
    """R1 penalty on real data (Mescheder et al. 2018): ``gamma / 2 * E[||grad_x D(x, y)||^2]``; ``fake`` is unused.

    Args:
        discriminator: ``D(images, labels) -> [B]``.
        real: real images ``[B, C, H, W]``.
        fake: unused (present so the function has the :class:`DiscriminatorPenalty` signature).
        labels: the real images' labels ``[B]``.
        gamma: penalty weight.
    """
    grad = _input_gradients(discriminator, real, labels)
    return gamma / 2 * grad.square().sum(dim=1).mean()


def lecam_penalty(real_logits: Tensor, fake_logits: Tensor, anchor_real: Tensor, anchor_fake: Tensor) -> Tensor:
    """LeCam regularizer (Tseng et al. 2021): ``E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2]``.

    ``a_R`` and ``a_F`` are moving averages of D's mean output on real and generated images (constants here): D
    is penalized for pushing real outputs above the generated anchor and generated outputs below the real one,
    which keeps its predictions from diverging when it starts to memorize a small training set.

    Args:
        real_logits: D's outputs on real images ``[B]``.
        fake_logits: D's outputs on generated images ``[B]``.
        anchor_real: moving average of D's mean real output (no gradient flows into it).
        anchor_fake: moving average of D's mean generated output.
    """
    return (F.relu(real_logits - anchor_fake.detach()).square().mean()
            + F.relu(anchor_real.detach() - fake_logits).square().mean())


def mode_seeking_loss(images: Tensor, z: Tensor, eps: float = 1e-5) -> Tensor:
    """Mode-seeking regularizer of G (MSGAN, Mao et al. 2019): ``1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps)``.

    The batch's two halves are the pairs: ``images[i]`` and ``images[i + ceil(B / 2)]`` for ``i < B // 2``, generated
    for the same label (with an odd ``B`` the middle sample has no partner). Minimizing the inverse ratio rewards G
    for images that differ as much as their latents do, which counters collapse onto a few images per class.

    Args:
        images: generated images ``[B, ...]``, the second half drawn for the labels of the first.
        z: the latents they came from ``[B, latent_dim]``.
        eps: keeps the inverse finite when two images coincide.
    """
    pairs = images.size(0) // 2
    if pairs == 0:
        raise ValueError("the mode-seeking loss pairs the batch's two halves: it needs at least 2 images")
    second = images.size(0) - pairs  # where the partners start
    image_distance = (images[:pairs] - images[second:]).abs().mean()
    latent_distance = (z[:pairs] - z[second:]).abs().mean()
    return 1.0 / (image_distance / latent_distance + eps)


class LeCamEMA(nn.Module):
    """The anchors of :func:`lecam_penalty`: zero-debiased EMAs of D's mean real and generated outputs.

    As ``google/lecam-gan`` (``stylegan2/lecam_loss.py``): both averages start at 0 with ``decay`` 0.99, are
    updated with the current batch *before* the penalty is taken, and are divided by ``1 - decay^t`` (TensorFlow's
    ``zero_debias``) so the first steps are not pulled towards 0. The state is in buffers: checkpoints keep it.

    Args:
        decay: EMA decay.

    Raises:
        ValueError: ``decay`` outside ``[0, 1)``.
    """

    # Buffers (registered in __init__), typed for the type checker.
    real_biased: Tensor
    fake_biased: Tensor
    steps: Tensor

    def __init__(self, decay: float = 0.99) -> None:
        super().__init__()
        if not 0 <= decay < 1:
            raise ValueError(f"lecam_decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("real_biased", torch.zeros((), dtype=torch.float64))
        self.register_buffer("fake_biased", torch.zeros((), dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        """Add this batch's means; return the debiased averages ``(a_R, a_F)`` in the logits' dtype."""
        self.steps += 1
        self.real_biased.mul_(self.decay).add_((1 - self.decay) * real_logits.double().mean())
        self.fake_biased.mul_(self.decay).add_((1 - self.decay) * fake_logits.double().mean())
        debias = 1 - self.decay ** self.steps.double()
        return ((self.real_biased / debias).to(real_logits.dtype), (self.fake_biased / debias).to(fake_logits.dtype))

    def forward(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Update the anchors with this batch, then return :func:`lecam_penalty` (unweighted)."""
        anchor_real, anchor_fake = self.update(real_logits, fake_logits)
        return lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake)


LOSSES: dict[str, AdversarialLoss] = {
    "bce": AdversarialLoss(bce_d_loss, bce_g_loss),
    "hinge": AdversarialLoss(hinge_d_loss, hinge_g_loss),
    "lsgan": AdversarialLoss(lsgan_d_loss, lsgan_g_loss),
    "wgan-gp": AdversarialLoss(wasserstein_d_loss, wasserstein_g_loss, partial(gradient_penalty, weight=10.0)),
    "rpgan": AdversarialLoss(rpgan_d_loss, rpgan_g_loss, relativistic=True),
}


def get_loss(name: str) -> AdversarialLoss:
    """Return the loss pair registered under ``name``; ``ValueError`` listing the choices otherwise."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}: choose one of {sorted(LOSSES)}") from None
