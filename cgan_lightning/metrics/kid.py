"""Per-class KID: ``torchmetrics``' ``KernelInceptionDistance`` in the classifier's feature space, one per class.

KID (Bińkowski et al. 2018) is the squared MMD with the cubic polynomial kernel, averaged over random subsets; it
is unbiased, so unlike FID it does not grow when a class has few samples. Each class holds about a tenth of the
evaluation split, so the subset size is capped at the smaller of the class's real and generated counts.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities import dim_zero_cat

from cgan_lightning.metrics.features import PrecomputedFeatures

#: Subset size and count used by default. KID is unbiased: they change the estimate's variance, not its mean.
#: torchmetrics' defaults (1000 x 100) cost about 0.8 TFLOP in float64 for ten classes of 1000 samples, these 20x less.
DEFAULT_SUBSET_SIZE = 500
DEFAULT_SUBSETS = 20


class _CappedKID(KernelInceptionDistance):
    """KID whose subset size shrinks to the number of samples gathered (on all processes) when that is smaller."""

    def __init__(self, num_features: int, max_subset_size: int, subsets: int) -> None:
        super().__init__(feature=PrecomputedFeatures(num_features), subsets=subsets, subset_size=max_subset_size,
                         reset_real_features=False)
        self.max_subset_size = max_subset_size

    def compute(self) -> tuple[Tensor, Tensor]:
        # Runs after torchmetrics gathered the states of every process.
        counts = [len(dim_zero_cat(s)) if len(s) else 0 for s in (self.real_features, self.fake_features)]
        self.subset_size = min(self.max_subset_size, *counts)
        if self.subset_size < 2:
            nan = torch.tensor(math.nan)
            return nan, nan
        return super().compute()


class PerClassKID(nn.Module):
    """One KID per class, fed precomputed features; real features survive :meth:`reset_fake`.

    Args:
        num_classes: number of labels.
        num_features: width of the features.
        max_subset_size: samples per KID subset, capped per class at the smaller of its real and generated counts.
        subsets: number of random subsets averaged.
        seed: seed of the subset draws (taken from a private generator state, so training's random stream is
            untouched).
    """

    def __init__(self, num_classes: int, num_features: int, max_subset_size: int = DEFAULT_SUBSET_SIZE,
                 subsets: int = DEFAULT_SUBSETS, seed: int = 0) -> None:
        super().__init__()
        if max_subset_size < 2 or subsets < 1:
            raise ValueError(f"max_subset_size must be >= 2 and subsets >= 1, got {max_subset_size} and {subsets}")
        self.num_classes = num_classes
        self.seed = seed
        self.kid = nn.ModuleList(_CappedKID(num_features, max_subset_size, subsets) for _ in range(num_classes))

    def update(self, features: Tensor, labels: Tensor, real: bool) -> None:
        """Add features ``[B, D]`` of images with labels ``[B]``."""
        labels = labels.to(features.device)
        for k in labels.unique().tolist():
            self.kid[k].update(features[labels == k], real=real)

    def reset_fake(self) -> None:
        """Forget the generated features; keep the real ones."""
        for metric in cast("list[_CappedKID]", list(self.kid)):
            metric.reset()

    def compute(self) -> dict[str, float]:
        """``kid/class_<k>`` (the subset mean) and ``kid/mean`` over classes (``nan`` classes left out)."""
        values = []
        # KID draws its subsets from the global generator: fork it, so evaluating never shifts training's stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for metric in cast("list[_CappedKID]", list(self.kid)):
                values.append(float(metric.compute()[0]))
        out = {f"kid/class_{k}": v for k, v in enumerate(values)}
        known = [v for v in values if not math.isnan(v)]
        out["kid/mean"] = sum(known) / len(known) if known else math.nan
        return out
