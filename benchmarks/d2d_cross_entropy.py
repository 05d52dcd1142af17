"""A probe, not a model option: ReACGAN's data-to-data cross-entropy (D2D-CE, Kang et al. 2021) as D's class term.

:class:`D2DCEDiscriminator` is :class:`~cgan_lightning.nn.dcgan.ACGANDiscriminator` with the class head's
cross-entropy replaced by D2D-CE: a linear head embeds D's features, and each sample is pulled towards its class's
proxy until their cosine reaches ``m_p`` and pushed away from samples of other classes whose cosine exceeds
``1 - m_p``; easy pairs give no gradient. ``ConditionalGAN`` adds the term to D's loss on real pairs and to G's on
generated ones, as it does the cross-entropy. The runs of ``docs/evidence.md`` ("ReACGAN's data-to-data
cross-entropy"), from the repository root:

    sed 's/cgan_lightning.nn.dcgan.ACGANDiscriminator/d2d_cross_entropy.D2DCEDiscriminator/' examples/mnist.yaml \\
        > /tmp/mnist_d2dce.yaml
    PYTHONPATH=benchmarks python benchmarks/quality_runs.py --variants --seeds 42 1 --jobs 2 --no_seed_loop \\
        --variant "d2dce=--config /tmp/mnist_d2dce.yaml"
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cgan_lightning.nn.dcgan import ACGANDiscriminator, _layer


def d2d_cross_entropy(embed: Tensor, proxy: Tensor, labels: Tensor, temperature: float, m_p: float) -> Tensor:
    """Mean D2D-CE of embeddings ``[B, E]`` against their labels' proxies ``[B, E]``.

    >>> labels = torch.tensor([0, 1])
    >>> far = d2d_cross_entropy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]]),
    ...                         labels, 0.5, 0.98)
    >>> near = d2d_cross_entropy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
    ...                          labels, 0.5, 0.98)
    >>> bool(far > near), round(near.item(), 4)  # at its proxy, orthogonal to the other class: log 2
    (True, 0.6931)
    """
    f, v = F.normalize(embed, dim=1), F.normalize(proxy, dim=1)
    positive = F.relu((m_p - (f * v).sum(dim=1)) / temperature)  # [B]; 0 once within m_p of the proxy
    negatives = F.relu((f @ f.T - (1.0 - m_p)) / temperature)  # [B, B]; 0 when already apart
    other_class = labels[:, None] != labels[None, :]  # drops the diagonal and same-class pairs
    terms = torch.cat((-positive[:, None], negatives.masked_fill(~other_class, float("-inf"))), dim=1)
    return (positive + torch.logsumexp(terms, dim=1)).mean()


class D2DCEDiscriminator(ACGANDiscriminator):
    """:class:`ACGANDiscriminator` whose class term is D2D-CE (the ``classifier`` head is left unused)."""

    def __init__(self, num_classes: int = 10, image_shape: tuple[int, int, int] = (1, 28, 28),
                 base_channels: int = 64, conditioning: str = "projection", aux_weight: float = 1.0,
                 spectral_norm: bool = False, feature_critic: str | None = None, embed_dim: int = 512,
                 temperature: float = 0.5, m_p: float = 0.98) -> None:
        super().__init__(num_classes, image_shape, base_channels=base_channels, conditioning=conditioning,
                         aux_weight=aux_weight, spectral_norm=spectral_norm, feature_critic=feature_critic)
        self.embed_head = _layer(nn.Linear(self.feature_dim, embed_dim), spectral_norm)
        self.proxies = nn.Embedding(num_classes, embed_dim)
        self.temperature, self.m_p = temperature, m_p

    def logits_and_aux_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Adversarial logits ``[B]`` and ``aux_weight`` x D2D-CE of the batch."""
        logits, h = self._judge(images, labels)
        loss = d2d_cross_entropy(self.embed_head(h), self.proxies(labels), labels, self.temperature, self.m_p)
        return logits, self.aux_weight * loss
