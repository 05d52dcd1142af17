"""Per-class FID and generated-digit accuracy, accumulated in torchmetrics metrics (so DDP sync is built in)."""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.image.fid import FrechetInceptionDistance

from cgan_lightning.metrics.features import PrecomputedFeatures
from cgan_lightning.metrics.sample_checks import BadSamplesError, check_finite_features


class PerClassScores(nn.Module):
    """One ``FrechetInceptionDistance`` per class plus one over all classes, and the classifier's accuracy per class.

    The metrics are fed features (see :class:`~cgan_lightning.metrics.features.PrecomputedFeatures`), computed
    once per batch by a single shared extractor. Real statistics survive :meth:`reset_fake`
    (``reset_real_features=False``), so they are accumulated once per run. Every state is a sum that torchmetrics
    reduces across processes in ``compute``: under DDP each rank feeds its shard and the scores cover all of them.

    Args:
        num_classes: number of labels.
        num_features: width of the features.
        with_accuracy: also track the classifier's accuracy on generated images.
    """

    def __init__(self, num_classes: int, num_features: int, with_accuracy: bool = True) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes

        def fid() -> FrechetInceptionDistance:
            return FrechetInceptionDistance(feature=PrecomputedFeatures(num_features), reset_real_features=False)

        self.class_fid = nn.ModuleList(fid() for _ in range(num_classes))
        self.overall_fid = fid()
        # average=None: one accuracy per class = the share of label-k samples classified as k.
        self.accuracy = MulticlassAccuracy(num_classes, average=None) if with_accuracy else None

    @property
    def real_samples(self) -> int:
        """Real images accumulated on this process."""
        return int(self.overall_fid.real_features_num_samples)

    def _update_fid(self, features: Tensor, labels: Tensor, real: bool) -> None:
        # The FID's matrix square root must never see NaN/inf (LAPACK may crash the process on them).
        check_finite_features(features, "features of real images" if real else "features of generated images")
        labels = labels.to(features.device)
        for k in labels.unique().tolist():  # one batched update per class present, not per image
            self.class_fid[k].update(features[labels == k], real=real)
        self.overall_fid.update(features, real=real)

    def update_real(self, features: Tensor, labels: Tensor) -> None:
        """Add real features ``[B, D]`` with their labels ``[B]``."""
        self._update_fid(features, labels, real=True)

    def update_fake(self, features: Tensor, labels: Tensor, predictions: Tensor | None = None) -> None:
        """Add generated features ``[B, D]`` for the requested labels ``[B]`` and the classifier's predictions."""
        self._update_fid(features, labels, real=False)
        if self.accuracy is not None:
            if predictions is None:
                raise ValueError("predictions are required when accuracy is tracked")
            self.accuracy.update(predictions.to(features.device), labels.to(features.device))

    def reset_fake(self) -> None:
        """Forget generated samples; keep the real statistics."""
        for metric in (*self.class_fid, self.overall_fid):
            metric.reset()
        if self.accuracy is not None:
            self.accuracy.reset()

    def _class_fids(self) -> list[FrechetInceptionDistance]:
        """:attr:`class_fid` with its element type (an ``nn.ModuleList`` is typed as holding any module)."""
        return cast("list[FrechetInceptionDistance]", list(self.class_fid))

    @staticmethod
    def _fid(metric: FrechetInceptionDistance) -> float:
        states = (metric.real_features_sum, metric.real_features_cov_sum, metric.fake_features_sum,
                  metric.fake_features_cov_sum)
        if not all(bool(torch.isfinite(s).all()) for s in states):  # last guard before the matrix square root
            raise BadSamplesError("the FID statistics hold NaN/inf values; refusing to compute the FID")
        try:
            return float(metric.compute())
        except RuntimeError:  # fewer than two real or fake samples of this class
            return math.nan

    def compute(self) -> dict[str, float]:
        """Scores ``fid/class_<k>``, ``fid/mean``, ``fid/worst``, ``fid/overall``, ``acc/class_<k>``, ``acc/mean``.

        A class with fewer than two real (or generated) samples gets ``nan`` and is left out of mean and worst.
        """
        per_class = [self._fid(m) for m in self._class_fids()]
        known = [v for v in per_class if not math.isnan(v)]
        out = {f"fid/class_{k}": v for k, v in enumerate(per_class)}
        out["fid/mean"] = sum(known) / len(known) if known else math.nan
        out["fid/worst"] = max(known) if known else math.nan
        out["fid/overall"] = self._fid(self.overall_fid)
        if self.accuracy is not None:
            acc = self.accuracy.compute().double()
            out.update({f"acc/class_{k}": float(v) for k, v in enumerate(acc)})
            out["acc/mean"] = float(acc.mean())
        return out

    def missing_classes(self) -> list[int]:
        """Classes with fewer than two real samples on this process (their FID will be ``nan``)."""
        return [k for k, m in enumerate(self._class_fids()) if int(m.real_features_num_samples) < 2]


def features_of(images: Tensor, extractor: nn.Module, classifier: nn.Module | None) -> tuple[Tensor, Tensor | None]:
    """FID features of ``images`` and the classifier's predicted labels (one pass when they share a network).

    Args:
        images: ``[B, C, H, W]`` in ``[-1, 1]``.
        extractor: maps images to ``[B, D]`` features.
        classifier: a module with ``features_and_logits`` (e.g. ``ClassifierFeatures``), or ``None``.
    """
    with torch.no_grad():
        # ignore[operator] below: nn.Module's __getattr__ is typed Tensor | Module; features_and_logits is a method.
        if classifier is not None and classifier is extractor:
            feats, logits = classifier.features_and_logits(images)  # type: ignore[operator]
            return feats, logits.argmax(1)
        feats = extractor(images)
        preds = classifier.features_and_logits(images)[1].argmax(1) if classifier is not None else None  # type: ignore[operator]
        return feats, preds
