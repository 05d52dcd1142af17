"""Weights on D's real terms that lean towards each class's atypical training images.

A GAN trained on a few hundred images per class reproduces the bulk of each class and misses its outskirts: the
digits written unusually, far from their class's centroid in a classifier's feature space, are the ones every run
leaves uncovered. :class:`AtypicalRealWeighting` weighs each real image's term in D's loss by how far it lies from
its class's centroid, standardized per class, so D insists more on the rare styles and G is pushed towards them
(the reverse of instance selection, DeVries et al. 2020, which drops them).

For a real image ``x`` of class ``c`` with features ``f(x)`` of a frozen classifier:

``t = (||f(x) - centroid_c|| - mean_c) / std_c``, ``w = clip(1 + strength * t, min_weight, max_weight)``,

normalized to a mean of 1 over the batch (the loss keeps its scale). ``centroid_c``, ``mean_c`` and ``std_c`` come
from the training split at the start of ``fit`` and are kept in checkpoints.

>>> distances = torch.tensor([1.0, 3.0, 2.0, 2.0])
>>> labels = torch.tensor([0, 0, 1, 1])
>>> atypical_weights(distances, labels, torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0]), strength=0.5)
tensor([0.5000, 1.5000, 1.0000, 1.0000])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from cgan_lightning.metrics.classifier import check_classifier_matches
from cgan_lightning.nn.feature_critic import freeze_as_buffers, load_critic_features


def class_distance_statistics(features: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per class: the centroid of ``features`` ``[N, F]``, and the mean and standard deviation of the distances to it.

    Returns:
        ``(centroids [K, F], mean distance [K], standard deviation of the distance [K])``.

    Raises:
        ValueError: a class has fewer than two images (its spread is undefined).
    """
    counts = torch.bincount(labels, minlength=num_classes)
    if counts.numel() > num_classes or bool((counts < 2).any()):
        raise ValueError(f"atypical weighting needs at least two training images of each of the {num_classes} "
                         f"classes, got counts {counts.tolist()} (labels must lie in [0, {num_classes}))")
    features = features.double()  # sums over thousands of images
    centroids = torch.zeros(num_classes, features.size(1), dtype=torch.float64, device=features.device)
    centroids.index_add_(0, labels, features)
    centroids /= counts.unsqueeze(1)
    distances = (features - centroids[labels]).norm(dim=1)
    mean = torch.zeros(num_classes, dtype=torch.float64, device=features.device).index_add_(0, labels, distances)
    mean /= counts
    squares = torch.zeros_like(mean).index_add_(0, labels, (distances - mean[labels]).square())
    std = (squares / (counts - 1)).sqrt()
    return centroids.float(), mean.float(), std.float()


def atypical_weights(distances: Tensor, labels: Tensor, mean: Tensor, std: Tensor, strength: float,
                     min_weight: float = 0.25, max_weight: float = 3.0) -> Tensor:
    """``clip(1 + strength * (distance - mean[label]) / std[label], min_weight, max_weight)``, scaled to mean 1."""
    spread = (distances - mean[labels]) / std[labels].clamp_min(1e-12)
    weights = (1 + strength * spread).clamp(min_weight, max_weight)
    return weights / weights.mean()


class AtypicalRealWeighting(nn.Module):
    """Per-image weights ``[B]`` (mean 1) for D's real terms, larger for images far from their class's centroid.

    The feature network is a frozen classifier's penultimate layer, kept as buffers (no optimizer or EMA sees it;
    checkpoints hold it), as :class:`~cgan_lightning.nn.feature_critic.FrozenFeatureCritic` keeps its conv blocks.
    Call :meth:`fit` on the training split once before training (``ConditionalGAN`` does so at the start of
    ``fit`` unless a checkpoint restored the statistics).

    Args:
        weights: ``"mnist"`` (the critic's shipped classifier, not the one that scores runs) or the path of a
            classifier written by ``cgan-lightning train-classifier`` on the same images.
        num_classes: labels of the GAN; must match the classifier's.
        image_shape: ``(C, H, W)`` of the images; must match the classifier's.
        strength: how much one standard deviation of distance changes the weight (``a`` above); > 0.
        min_weight: lower bound of a weight before the batch normalization.
        max_weight: upper bound of a weight before the batch normalization.

    Raises:
        ValueError: ``strength`` <= 0, bounds not ``0 < min_weight <= 1 <= max_weight``, or a classifier trained
            for other classes or another image shape.
        FileNotFoundError: ``weights`` does not exist.
    """

    centroids: Tensor
    distance_mean: Tensor
    distance_std: Tensor
    fitted: Tensor

    def __init__(self, weights: str | Path, num_classes: int, image_shape: Sequence[int], strength: float,
                 min_weight: float = 0.25, max_weight: float = 3.0) -> None:
        super().__init__()
        if not strength > 0:
            raise ValueError(f"the atypical weighting's strength must be > 0, got {strength}")
        if not 0 < min_weight <= 1 <= max_weight:
            raise ValueError(f"atypical weights need 0 < min_weight <= 1 <= max_weight, got {min_weight} and "
                             f"{max_weight}")
        classifier = load_critic_features(weights)
        check_classifier_matches(classifier, num_classes, image_shape,
                                 pass_as="`model.atypical_features: classifier.pt`")
        fused = classifier.fuse_batch_norm()
        self.features: nn.Sequential = freeze_as_buffers(nn.Sequential(fused.conv, fused.embed))
        self.num_classes = num_classes
        self.strength = float(strength)
        self.min_weight, self.max_weight = float(min_weight), float(max_weight)
        dim = classifier.feature_dim
        self.register_buffer("centroids", torch.zeros(num_classes, dim))
        self.register_buffer("distance_mean", torch.zeros(num_classes))
        self.register_buffer("distance_std", torch.ones(num_classes))
        self.register_buffer("fitted", torch.tensor(False))
        self._known_fitted = False  # read `fitted` once, not at every step (a host sync on a GPU)

    def _features(self, images: Tensor, batch_size: int = 512) -> Tensor:
        return torch.cat([self.features(chunk) for chunk in images.split(batch_size)])

    @torch.no_grad()
    def fit(self, images: Tensor, labels: Tensor, batch_size: int = 512) -> None:
        """Compute each class's centroid and distance statistics from ``images`` ``[N, C, H, W]`` in ``[-1, 1]``."""
        images, labels = images.to(self.centroids.device), labels.to(self.centroids.device)
        centroids, mean, std = class_distance_statistics(self._features(images, batch_size), labels,
                                                         self.num_classes)
        self.centroids.copy_(centroids)
        self.distance_mean.copy_(mean)
        self.distance_std.copy_(std)
        self.fitted.fill_(True)

    @torch.no_grad()
    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        """Weights ``[B]`` with mean 1 for real images ``[B, C, H, W]`` of labels ``[B]``."""
        if not self._known_fitted:
            self._known_fitted = bool(self.fitted)
        if not self._known_fitted:
            raise RuntimeError("AtypicalRealWeighting.fit(images, labels) must run on the training split first")
        distances = (self._features(images) - self.centroids[labels]).norm(dim=1)
        return atypical_weights(distances, labels, self.distance_mean, self.distance_std, self.strength,
                                self.min_weight, self.max_weight)


__all__ = ["AtypicalRealWeighting", "atypical_weights", "class_distance_statistics"]
