"""The per-class FID engine shared by the ``PerClassFID`` callback and ``evaluate_generator``."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from cgan_lightning.metrics.classifier import check_classifier_matches
from cgan_lightning.metrics.features import (
    ClassifierFeatures,
    FeatureChoice,
    build_feature_extractor,
    feature_dim,
    to_unit_float,
)
from cgan_lightning.metrics.per_class_scores import PerClassScores, features_of
from cgan_lightning.metrics.protocol import ConditionalSampler
from cgan_lightning.metrics.sample_checks import BadSamplesError, check_samples
from cgan_lightning.metrics.sampling import class_balanced_latents, generate, rebatch


class GeneratedFeatures(NamedTuple):
    """The generated samples of one :meth:`PerClassEvaluator.evaluate` call on this process, for reuse."""

    features: Tensor
    labels: Tensor
    #: Positions in the label-major list of all ``num_classes * samples_per_class`` latents drawn from ``seed``.
    indices: Tensor
    seed: int
    samples_per_class: int


class PerClassEvaluator:
    """Real statistics accumulated once, then any number of evaluations of generators against them.

    One feature extractor serves every class (and the pooled FID); it lives here, never inside the model, so
    checkpoints do not grow. Generated samples come from latents drawn on the CPU from ``seed``: the same seed
    gives the same z on every device, and under DDP rank ``r`` generates samples ``r, r + world_size, ...``.

    Args:
        num_classes: number of labels.
        feature: ``"classifier"`` (the shipped MNIST classifier, offline), ``"inception"`` (torchmetrics'
            InceptionV3; needs the ``inception`` extra and local weights) or an ``nn.Module`` mapping images in
            ``[-1, 1]`` to ``[B, D]`` features.
        feature_weights: local InceptionV3 weights for ``feature="inception"``.
        classifier: weights of the classifier that judges generated images (``None``: the shipped MNIST one), as
            written by ``cgan-lightning train-classifier``.
        image_shape: the model's ``(C, H, W)``: checked against the classifier's, and used to probe a custom
            extractor without ``num_features`` (``None``: the classifier's).
        class_names: the model's class names, checked against those the classifier was trained with.

    Raises:
        ValueError: the classifier's classes, image shape or class names do not match.
    """

    def __init__(
        self,
        num_classes: int,
        feature: FeatureChoice | nn.Module = "classifier",
        feature_weights: str | Path | None = None,
        classifier: str | Path | None = None,
        image_shape: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.classifier = ClassifierFeatures(classifier)
        check_classifier_matches(self.classifier, num_classes, image_shape, class_names)
        image_shape = tuple(int(v) for v in image_shape) if image_shape is not None else self.classifier.image_shape
        self.extractor = self.classifier if feature == "classifier" else build_feature_extractor(feature,
                                                                                                  feature_weights)
        self.num_classes = num_classes
        # ignore: a tuple[int, ...] of length 3 (check_classifier_matches checked it); typing cannot see the length.
        self.num_features = feature_dim(self.extractor, image_shape)  # type: ignore[arg-type]
        self.scores = PerClassScores(num_classes, self.num_features)
        self.device = torch.device("cpu")
        #: This process's generated features from the latest :meth:`evaluate` (the evidence callbacks reuse them).
        self.last_generated: GeneratedFeatures | None = None

    def to(self, device: torch.device | str) -> PerClassEvaluator:
        """Move the extractor, the classifier and the metric states to ``device``."""
        self.device = torch.device(device)
        self.extractor.to(self.device)
        self.classifier.to(self.device)
        self.scores.to(self.device)
        return self

    @property
    def has_real(self) -> bool:
        """Whether real statistics were accumulated."""
        return self.scores.real_samples > 0

    def reset_real(self) -> None:
        """Forget the real statistics (e.g. before switching from the val to the test split)."""
        self.scores = PerClassScores(self.num_classes, self.num_features).to(self.device)

    @torch.no_grad()
    def add_real(self, batches: Iterable[tuple[Tensor, Tensor]], batch_size: int = 1000) -> int:
        """Accumulate real ``(images in [-1, 1], labels)`` batches; returns how many images were added.

        Small loader batches are merged into batches of about ``batch_size`` before feature extraction.

        Raises:
            ValueError: a label outside ``0 .. num_classes - 1``.
        """
        added = 0
        for images, labels in rebatch(batches, batch_size):
            if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes:
                raise ValueError(f"real labels must lie in 0..{self.num_classes - 1} (the model's classes), got "
                                 f"{int(labels.min())}..{int(labels.max())}: evaluate on data of the classes the "
                                 "model was trained on")
            images = check_samples(to_unit_float(images) if images.dtype == torch.uint8 else images, labels,
                                   what="real images")
            feats, _ = features_of(images.to(self.device), self.extractor, None)
            self.scores.update_real(feats, labels.to(self.device))
            added += len(labels)
        missing = self.scores.missing_classes()
        if missing:
            warnings.warn(f"fewer than two real images of classes {missing}: their FID will be nan", stacklevel=2)
        return added

    @torch.no_grad()
    def evaluate(self, model: ConditionalSampler, samples_per_class: int = 1000, seed: int = 0,
                 batch_size: int = 1000, rank: int = 0, world_size: int = 1) -> dict[str, float]:
        """Generate ``samples_per_class`` images per label and score them; keys as in ``PerClassScores.compute``.

        Raises:
            RuntimeError: no real statistics yet (call :meth:`add_real` first).
            BadSamplesError: (a ``ValueError``) the model's images are not finite or not in ``[-1, 1]`` (under
                DDP: on any rank; every rank raises, so none waits for the others in ``compute``).
        """
        if not self.has_real:
            raise RuntimeError("no real images were accumulated: call add_real() before evaluate()")
        if model.num_classes != self.num_classes:
            raise ValueError(f"the model has {model.num_classes} labels, the evaluator {self.num_classes}")
        self.scores.reset_fake()
        z, labels = class_balanced_latents(self.num_classes, samples_per_class, model.latent_dim, seed)
        indices = torch.arange(len(labels))[rank::world_size]
        z, labels = z[indices], labels[indices]
        kept: list[Tensor] = []
        error: BadSamplesError | None = None
        try:
            for images, batch_labels in generate(model, z, labels, batch_size, self.device):
                feats, preds = features_of(images, self.extractor, self.classifier)
                self.scores.update_fake(feats, batch_labels, preds)
                kept.append(feats)
        except BadSamplesError as bad:
            error = bad
        if world_size > 1 and _any_rank(error is not None, self.device):
            error = error or BadSamplesError("another process's generated images were not finite or not in [-1, 1] "
                                             "(its error names them); nothing was scored")
        if error is not None:
            self.scores.reset_fake()
            self.last_generated = None
            raise error
        features = torch.cat(kept) if kept else torch.zeros(0, self.num_features, device=self.device)
        self.last_generated = GeneratedFeatures(features, labels.to(self.device), indices, seed, samples_per_class)
        return self.scores.compute()


def _any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any process (all processes must call this together)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
