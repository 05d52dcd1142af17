"""A second critic on a frozen classifier's features: the vision-aided discriminator (Kumari et al. 2022).

:class:`FrozenFeatureCritic` scores (image, label) pairs from the convolutional features of a pretrained
:class:`~cgan_lightning.metrics.ImageClassifier` that never trains: one small head per tapped block, each a linear
logit plus a projection of the label (Miyato & Koyama 2018). A discriminator adds its score to its own logit
(``DCGANDiscriminator(feature_critic=...)``), so G is also judged in a feature space learned on the training images,
and its gradients pass through the frozen network into the images.

The frozen network is kept as buffers, not parameters: no optimizer, gradient reduction or EMA sees it, it moves with
``.to(device)``, and checkpoints hold it (a run can be sampled and resumed without the weights file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from cgan_lightning.metrics.classifier import (
    ImageClassifier,
    check_classifier_matches,
    load_classifier,
    load_packaged_classifier,
)

#: ``feature_critic: mnist`` names these weights, shipped in the package: an ImageClassifier trained on the
#: 5,000-image MNIST train split with seed 1 (the evaluation classifier is a separate one, seed 0).
MNIST_CRITIC_FEATURES = "weights/mnist_critic_features.pt"
_PACKAGE = "cgan_lightning.nn"
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def load_critic_features(weights: str | Path) -> ImageClassifier:
    """The classifier ``weights`` names: ``"mnist"`` (the shipped file) or a path written by ``save_classifier``."""
    if str(weights) != "mnist":
        return load_classifier(weights)
    return load_packaged_classifier(_PACKAGE, MNIST_CRITIC_FEATURES, "the shipped MNIST critic features")


def freeze_as_buffers(module: ModuleT) -> ModuleT:
    """Turn every parameter of ``module`` into a buffer of the same name (frozen, yet moved and saved with it)."""
    for layer in module.modules():
        for name, param in list(layer.named_parameters(recurse=False)):
            del layer._parameters[name]
            layer.register_buffer(name, param.detach().clone())
    return module


class FrozenFeatureCritic(nn.Module):
    """Scores ``(image, label)`` pairs from the conv blocks of a frozen classifier; returns logits ``[B]``.

    Args:
        weights: ``"mnist"`` (the shipped features, see :data:`MNIST_CRITIC_FEATURES`) or the path of a classifier
            written by ``cgan-lightning train-classifier`` on the same images. Use another classifier than the
            one that scores the run, so the evaluation's feature space is not the one G is trained against.
        num_classes: labels of the GAN; must match the classifier's.
        image_shape: ``(C, H, W)`` of the images judged; must match the classifier's.
        blocks: which of the classifier's three conv blocks (1, 2, 3) feed a head.
        width: hidden width of each head.
        spectral_norm: spectral normalization on the heads' weights.

    Raises:
        ValueError: the classifier was trained for other classes or another image shape, or ``blocks`` is empty or
            names a block other than 1, 2, 3.
        FileNotFoundError: ``weights`` does not exist.
    """

    def __init__(self, weights: str | Path, num_classes: int, image_shape: Sequence[int],
                 blocks: Sequence[int] = (2, 3), width: int = 256, spectral_norm: bool = True) -> None:
        super().__init__()
        blocks = tuple(int(b) for b in blocks)
        if not blocks or any(b not in (1, 2, 3) for b in blocks) or len(set(blocks)) != len(blocks):
            raise ValueError(f"feature_critic_blocks must name distinct conv blocks among 1, 2, 3, got {list(blocks)}")
        if width <= 0:
            raise ValueError(f"the critic's head width must be positive, got {width}")
        classifier = load_critic_features(weights)
        check_classifier_matches(classifier, num_classes, image_shape,
                                 pass_as="`feature_critic: classifier.pt` (the discriminator's init_args)")
        # Batch norm folded into the convs: each block is conv, ReLU, max-pool.
        self.features: nn.Sequential = freeze_as_buffers(classifier.fuse_batch_norm().conv)
        self.blocks = blocks
        self._last_block = max(blocks)  # the blocks after it would be wasted work
        with torch.no_grad():
            dims = [tap.flatten(1).size(1) for tap in self._taps(torch.zeros(1, *classifier.image_shape))]
        #: Size of the flattened features of the deepest tapped block (what :attr:`last_features` holds).
        self.feature_dim = dims[-1]
        #: Set ``keep_features`` to have each forward under autograd keep the deepest tapped block's features
        #: ``[B, feature_dim]`` (with their graph) in ``last_features``, for a loss on G that reads them without a
        #: second pass (``ConditionalGAN(class_moment_weight=...)``); the reader clears it.
        self.keep_features = False
        self.last_features: Tensor | None = None

        def maybe_sn(module: nn.Module) -> nn.Module:
            return _spectral_norm(module) if spectral_norm else module

        self.hidden = nn.ModuleList(maybe_sn(nn.Linear(d, width)) for d in dims)
        self.to_logit = nn.ModuleList(maybe_sn(nn.Linear(width, 1)) for _ in dims)
        embeddings = [nn.Embedding(num_classes, width) for _ in dims]
        for embedding in embeddings:
            # N(0, 1) would make the projection dwarf the linear logit at the start.
            nn.init.xavier_uniform_(embedding.weight)
        self.projection = nn.ModuleList(maybe_sn(e) for e in embeddings)

    @torch.no_grad()
    def features_of(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """The deepest tapped block's flattened features ``[N, feature_dim]`` of images in ``[-1, 1]``, in chunks."""
        return torch.cat([self._taps(chunk)[-1].flatten(1) for chunk in images.split(batch_size)])

    def _taps(self, images: Tensor) -> list[Tensor]:
        taps, block, x = [], 0, images
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                block += 1
                if block in self.blocks:
                    taps.append(x)
                if block == self._last_block:
                    break
        return taps

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        """Logits ``[B]`` of images ``[B, C, H, W]`` in ``[-1, 1]`` with labels ``[B]``."""
        logits = images.new_zeros(images.size(0))
        taps = self._taps(images)
        if self.keep_features and torch.is_grad_enabled():
            self.last_features = taps[-1].flatten(1)
        for tap, hidden, to_logit, projection in zip(taps, self.hidden, self.to_logit, self.projection,
                                                     strict=True):
            h = F.leaky_relu(hidden(tap.flatten(1)), 0.2)
            logits = logits + to_logit(h).squeeze(1) + (projection(labels) * h).sum(dim=1)
        return logits


__all__ = ["MNIST_CRITIC_FEATURES", "FrozenFeatureCritic", "freeze_as_buffers", "load_critic_features"]
