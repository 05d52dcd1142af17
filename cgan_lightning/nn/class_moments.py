"""Per-class moment matching on G in a frozen classifier's features.

GAN samples of a class tend to sit near its bulk and vary less than the real digits (their FID is mostly the
covariance term). :class:`ClassMomentMatching` adds to G's loss, for each class in the generated batch, the distance
between G's feature mean and per-feature standard deviation and the training split's, in the conv features of the
frozen classifier that the feature critic already reads
(:class:`~cgan_lightning.nn.feature_critic.FrozenFeatureCritic`, its deepest tapped block): G is pulled towards each
class's real spread as well as its centre.
It is feature matching (Salimans et al. 2016) per class, against fixed real statistics. With ``covariance_rank``
r > 0 it matches the shape of each class's variation as well, which the per-feature spreads do not see: the
covariance of G's features in the class's r leading principal directions of the training features, against the
training split's (diagonal there), by their relative squared Frobenius distance, at ``covariance_weight``.

A batch holds a few images per class, so G's moments are running averages (``momentum`` per G step) in which only the
current batch's images carry the gradient. For the classes ``c`` present in the batch:

``term_c = mean_f (m_c - mu_c)^2 + mean_f (s_c - sigma_c)^2``, ``loss = weight * mean_c term_c / mean(sigma^2)``,

``m_c = momentum * m_c' + (1 - momentum) * batch mean``, ``s_c`` likewise from the second moment, ``mu_c`` and
``sigma_c`` the training split's per-feature mean and standard deviation. The covariance term adds
``covariance_weight * mean_c ||C_c - diag(lambda_c)||^2 / ||lambda_c||^2``, ``C_c`` G's running covariance of the
features projected on the class's leading directions, ``lambda_c`` the training split's variances along them.

>>> matching = ClassMomentMatching(num_classes=2, feature_dim=3, weight=1.0, momentum=0.0)
>>> real, labels = torch.tensor([[0., 0, 0], [2, 2, 2], [4, 4, 4], [6, 6, 6]]), torch.tensor([0, 0, 1, 1])
>>> matching.fit(real, labels)  # class means 1 and 5, spreads 1.41
>>> matching(real, labels)  # the real digits themselves: a batch's spread (1) is a little narrower
tensor(0.0858)
>>> matching(torch.tensor([[1., 1, 1], [1, 1, 1]]), torch.tensor([0, 0]))  # class 0 collapsed onto its mean
tensor(0.9986)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cgan_lightning.nn.feature_critic import FrozenFeatureCritic


def class_averaging(labels: Tensor, num_classes: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(per_class [K, B], present [K] bool)``: the weights that average a batch's rows within each class (no host
    read), and the classes the batch holds."""
    one_hot = F.one_hot(labels, num_classes).to(dtype)  # [B, K]
    counts = one_hot.sum(0)
    return one_hot.t() / counts.clamp_min(1).unsqueeze(1), counts > 0


def class_moment_terms(features: Tensor, labels: Tensor, g_mean: Tensor, g_square: Tensor, real_mean: Tensor,
                       real_std: Tensor, momentum: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The per-class terms, which classes the batch holds, and G's updated running moments.

    Args:
        features: ``[B, F]`` features of the generated batch (carrying G's gradient).
        labels: ``[B]`` their labels.
        g_mean: ``[K, F]`` G's running feature means.
        g_square: ``[K, F]`` G's running means of the squared features.
        real_mean: ``[K, F]`` the training split's per-class feature means.
        real_std: ``[K, F]`` the training split's per-class feature standard deviations.
        momentum: weight of the running moments against the batch's.

    Returns:
        ``(terms [K], present [K] bool, new g_mean, new g_square)``; absent classes keep their moments and a term
        that the caller leaves out.
    """
    per_class, present = class_averaging(labels, real_mean.size(0), features.dtype)
    rows = present.unsqueeze(1)
    mean = torch.where(rows, momentum * g_mean + (1 - momentum) * (per_class @ features), g_mean)
    square = torch.where(rows, momentum * g_square + (1 - momentum) * (per_class @ features.pow(2)), g_square)
    std = (square - mean.pow(2)).clamp_min(1e-6).sqrt()
    terms = (mean - real_mean).pow(2).mean(1) + (std - real_std).pow(2).mean(1)
    return terms, present, mean, square


def class_covariance_terms(features: Tensor, labels: Tensor, g_mean: Tensor, g_square: Tensor, basis: Tensor,
                           real_variances: Tensor, momentum: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per class, the relative squared Frobenius distance of G's running covariance from the real one, in a basis.

    Args:
        features: ``[B, F]`` features of the generated batch (carrying G's gradient).
        labels: ``[B]`` their labels.
        g_mean: ``[K, r]`` G's running means of the projected features.
        g_square: ``[K, r, r]`` G's running means of their outer products.
        basis: ``[K, F, r]`` each class's leading principal directions of the training features.
        real_variances: ``[K, r]`` the training features' variances along them.
        momentum: weight of the running moments against the batch's.

    Returns:
        ``(terms [K], new g_mean, new g_square)``; absent classes keep their moments.
    """
    per_class, present = class_averaging(labels, basis.size(0), features.dtype)
    projected = torch.einsum("bd,kdr->kbr", features, basis)  # every image in every class's basis
    mean = torch.where(present.unsqueeze(1), momentum * g_mean + (1 - momentum) * torch.einsum(
        "kb,kbr->kr", per_class, projected), g_mean)
    square = torch.where(present.view(-1, 1, 1), momentum * g_square + (1 - momentum) * torch.einsum(
        "kb,kbi,kbj->kij", per_class, projected, projected), g_square)
    real = torch.diag_embed(real_variances)
    covariance = square - mean.unsqueeze(2) * mean.unsqueeze(1)
    terms = (covariance - real).pow(2).sum((1, 2)) / real_variances.pow(2).sum(1)
    return terms, mean, square


class ClassMomentMatching(nn.Module):
    """G's loss term pulling each class's feature mean and spread towards the training split's.

    Call :meth:`fit` once on the training split's features before training (``ConditionalGAN`` does so at the
    start of ``fit`` unless a checkpoint restored the statistics); the running moments are buffers, so checkpoints
    hold them and a resumed run continues exactly.

    Args:
        num_classes: number of labels.
        feature_dim: size of a flattened feature vector.
        weight: the term's weight in G's loss (> 0).
        momentum: weight of G's running moments against the current batch's, in ``[0, 1)``.
        covariance_rank: principal directions per class in which the covariance term compares (0: no such term).
        covariance_weight: the covariance term's weight in G's loss (> 0 when ``covariance_rank`` > 0).

    Raises:
        ValueError: ``weight`` <= 0, ``momentum`` outside ``[0, 1)``, ``covariance_rank`` < 0 or above
            ``feature_dim``, a covariance rank without a positive finite weight, or a weight without a rank.
    """

    real_mean: Tensor
    real_std: Tensor
    scale: Tensor
    g_mean: Tensor
    g_square: Tensor
    fitted: Tensor
    basis: Tensor  # these four with the covariance term only
    real_variances: Tensor
    g_mean_pc: Tensor
    g_square_pc: Tensor

    def __init__(self, num_classes: int, feature_dim: int, weight: float, momentum: float = 0.9,
                 covariance_rank: int = 0, covariance_weight: float = 0.0) -> None:
        super().__init__()
        if not weight > 0:
            raise ValueError(f"the class moment matching's weight must be > 0, got {weight}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"the class moment matching's momentum must lie in [0, 1), got {momentum}")
        if not 0 <= covariance_rank <= feature_dim:
            raise ValueError(f"the class moment matching's covariance_rank must lie in [0, {feature_dim}] (the "
                             f"feature size), got {covariance_rank}")
        if covariance_rank > 0 and not 0 < covariance_weight < math.inf:
            raise ValueError(f"the class moment matching's covariance term needs a finite covariance_weight > 0, got "
                             f"{covariance_weight} (or set covariance_rank=0)")
        if covariance_rank == 0 and covariance_weight != 0:
            raise ValueError(f"the class moment matching's covariance_weight {covariance_weight} needs "
                             f"covariance_rank > 0, the directions per class it compares in (e.g. 8)")
        self.weight, self.momentum = float(weight), float(momentum)
        self.covariance_rank, self.covariance_weight = int(covariance_rank), float(covariance_weight)
        for name in ("real_mean", "g_mean", "g_square"):
            self.register_buffer(name, torch.zeros(num_classes, feature_dim))
        if covariance_rank > 0:  # only then: checkpoints without the term keep their keys
            self.register_buffer("basis", torch.zeros(num_classes, feature_dim, covariance_rank))
            self.register_buffer("real_variances", torch.ones(num_classes, covariance_rank))
            self.register_buffer("g_mean_pc", torch.zeros(num_classes, covariance_rank))
            self.register_buffer("g_square_pc", torch.zeros(num_classes, covariance_rank, covariance_rank))
        self.register_buffer("real_std", torch.ones(num_classes, feature_dim))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("fitted", torch.tensor(False))
        self._known_fitted = False  # read `fitted` once, not at every step (a host sync on a GPU)

    @torch.no_grad()
    def fit(self, features: Tensor, labels: Tensor) -> None:
        """The training split's per-class moments from its features ``[N, F]``; G's running moments start there.

        Raises:
            ValueError: a class has fewer than two images (its spread is undefined), or, with the covariance term,
                no more images than ``covariance_rank`` (too few for that many directions).
        """
        classes = self.real_mean.size(0)
        counts = torch.bincount(labels, minlength=classes)
        if counts.numel() > classes or bool((counts < 2).any()):
            raise ValueError(f"class moment matching needs at least two training images of each of the {classes} "
                             f"classes, got counts {counts.tolist()} (labels must lie in [0, {classes}))")
        if bool((counts <= self.covariance_rank).any()):
            raise ValueError(f"class moment matching's covariance_rank {self.covariance_rank} needs more training "
                             f"images than that in every class, got counts {counts.tolist()}: lower "
                             f"covariance_rank (or set it to 0)")
        features, labels = features.to(self.real_mean), labels.to(self.real_mean.device)
        mean = torch.stack([features[labels == c].mean(0) for c in range(classes)])
        std = torch.stack([features[labels == c].std(0) for c in range(classes)])
        self.real_mean.copy_(mean)
        self.real_std.copy_(std)
        self.scale.copy_(std.pow(2).mean())  # the terms in units of the real features' mean variance
        self.g_mean.copy_(mean)
        self.g_square.copy_(mean.pow(2) + std.pow(2))
        if self.covariance_rank:
            self._fit_covariance(features, labels)
        self.fitted.fill_(True)

    def _fit_covariance(self, features: Tensor, labels: Tensor) -> None:
        """Each class's leading principal directions and variances; G's running moments start at the real ones."""
        rank = self.covariance_rank
        for c in range(self.real_mean.size(0)):
            values, vectors = torch.linalg.eigh(torch.cov(features[labels == c].t()))  # ascending
            self.basis[c].copy_(vectors[:, -rank:])
            self.real_variances[c].copy_(values[-rank:])
        mean = torch.einsum("kd,kdr->kr", self.real_mean, self.basis)
        self.g_mean_pc.copy_(mean)
        self.g_square_pc.copy_(torch.diag_embed(self.real_variances) + mean.unsqueeze(2) * mean.unsqueeze(1))

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """The weighted term for a generated batch's features ``[B, F]`` and labels ``[B]``; updates G's moments."""
        if not self._known_fitted:
            self._known_fitted = bool(self.fitted)
        if not self._known_fitted:
            raise RuntimeError("ClassMomentMatching.fit(features, labels) must run on the training split first")
        terms, present, mean, square = class_moment_terms(features, labels, self.g_mean, self.g_square,
                                                          self.real_mean, self.real_std, self.momentum)
        self.g_mean.copy_(mean.detach())
        self.g_square.copy_(square.detach())
        loss = self.weight * ((terms * present).sum() / present.sum()) / self.scale
        if not self.covariance_rank:
            return loss
        shape_terms, mean_pc, square_pc = class_covariance_terms(features, labels, self.g_mean_pc, self.g_square_pc,
                                                                 self.basis, self.real_variances, self.momentum)
        self.g_mean_pc.copy_(mean_pc.detach())
        self.g_square_pc.copy_(square_pc.detach())
        return loss + self.covariance_weight * (shape_terms * present).sum() / present.sum()


def feature_critic_of(discriminator: nn.Module, option: str = "class_moment_weight") -> FrozenFeatureCritic:
    """The discriminator's frozen-feature critic, whose features ``option`` (the moment matching, the tilt) reads.

    Raises:
        ValueError: the discriminator has none; the message names ``option``.
    """
    critic = getattr(discriminator, "feature_critic", None)
    if not isinstance(critic, FrozenFeatureCritic):
        raise ValueError(f"{option} > 0 reads the features of the discriminator's frozen-feature critic, "
                         f"but {type(discriminator).__name__} has none: use DCGANDiscriminator or ACGANDiscriminator "
                         f"with feature_critic: mnist (or a classifier path), or set {option}=0")
    return critic


def build_class_moments(discriminator: nn.Module, num_classes: int, weight: float, covariance_weight: float = 0.0,
                        covariance_rank: int = 8) -> ClassMomentMatching | None:
    """The term for ``ConditionalGAN(class_moment_weight=weight)`` (``None`` at 0), reading ``discriminator``'s critic.

    ``covariance_weight`` > 0 adds the covariance term in ``covariance_rank`` directions per class. Turns on the
    critic's ``keep_features``, so that each G step's D forward leaves the features the term reads.

    Raises:
        ValueError: ``covariance_weight`` > 0 at ``weight`` 0 (the covariance term is part of the moment matching).
    """
    if weight == 0:
        if covariance_weight > 0:
            raise ValueError(f"class_covariance_weight > 0 is a term of the class moment matching, which is off: set "
                             f"class_moment_weight > 0 as well, or class_covariance_weight=0 (got "
                             f"{covariance_weight})")
        return None
    critic = feature_critic_of(discriminator)
    critic.keep_features = True
    return ClassMomentMatching(num_classes, critic.feature_dim, weight, covariance_rank=covariance_rank if
                               covariance_weight > 0 else 0, covariance_weight=covariance_weight)


__all__ = ["ClassMomentMatching", "build_class_moments", "class_averaging", "class_covariance_terms",
           "class_moment_terms", "feature_critic_of"]
