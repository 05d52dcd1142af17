"""Memorization: is a generated image closer to a training image than real unseen images of its class are?

For a class ``k``, let ``t_k`` be the ``quantile`` (default 5th percentile) of the distances from each real
*evaluation* image of class ``k`` to its nearest *training* image (any class), in the classifier's feature space:
only 5% of unseen real digits lie that close to the training set. A generated image of class ``k`` counts as
*memorized* when its own nearest-training-image distance is below ``t_k``. The memorization rate of class ``k``
is the share of its generated images that count, so a generator that samples fresh digits like the real
distribution scores about ``quantile`` (0.05), and one that copies training images scores near 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from cgan_lightning.metrics.prdc import pairwise_distances

#: The eval -> train nearest-neighbour distance quantile under which a sample counts as memorized.
DEFAULT_QUANTILE = 0.05


def nearest_neighbours(queries: Tensor, reference: Tensor, chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """Distance ``[N]`` and index ``[N]`` of each query's nearest row of ``reference``, in chunks of queries.

    Raises:
        ValueError: an empty reference set.
    """
    if len(reference) == 0:
        raise ValueError("nearest neighbours need at least one reference sample")
    dists, idxs = [], []
    for start in range(0, len(queries), chunk):
        # Matrix-product distances: tens of millions of pairs; thresholds and samples are measured alike.
        d, i = pairwise_distances(queries[start : start + chunk], reference, exact=False).min(dim=1)
        dists.append(d)
        idxs.append(i)
    if not dists:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    return torch.cat(dists), torch.cat(idxs)


class MemorizationResult(NamedTuple):
    """What :func:`memorization` finds."""

    #: ``memorization/class_<k>`` and ``memorization/mean``.
    scores: dict[str, float]
    #: For each generated sample: distance to, and index of, its nearest training sample.
    distances: Tensor
    neighbours: Tensor
    #: Per-class thresholds ``t_k`` (``nan`` for a class without evaluation images).
    thresholds: Tensor


def memorization(fake: Tensor, fake_labels: Tensor, train: Tensor, evaluation: Tensor, evaluation_labels: Tensor,
                 num_classes: int, quantile: float = DEFAULT_QUANTILE) -> MemorizationResult:
    """The memorization rate per class (see the module docstring) and each generated sample's nearest training one.

    Args:
        fake: generated features ``[M, D]`` with labels ``fake_labels`` ``[M]``.
        train: training-set features ``[T, D]`` (all classes).
        evaluation: real held-out features ``[N, D]`` with labels ``evaluation_labels``.
        num_classes: number of labels.
        quantile: the eval -> train distance quantile that sets each class's threshold.

    Raises:
        ValueError: ``quantile`` outside ``(0, 1)``.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    fake_d, fake_nn = nearest_neighbours(fake, train)
    eval_d, _ = nearest_neighbours(evaluation, train)
    thresholds = torch.full((num_classes,), math.nan, dtype=torch.float64)
    scores: dict[str, float] = {}
    for k in range(num_classes):
        eval_k = eval_d[evaluation_labels.to(eval_d.device) == k]
        fake_k = fake_d[fake_labels.to(fake_d.device) == k]
        if len(eval_k) and len(fake_k):
            thresholds[k] = torch.quantile(eval_k.cpu(), quantile)
            scores[f"memorization/class_{k}"] = float((fake_k.cpu() < thresholds[k]).double().mean())
        else:
            scores[f"memorization/class_{k}"] = math.nan
    known = [v for v in scores.values() if not math.isnan(v)]
    scores["memorization/mean"] = sum(known) / len(known) if known else math.nan
    return MemorizationResult(scores, fake_d, fake_nn, thresholds)
