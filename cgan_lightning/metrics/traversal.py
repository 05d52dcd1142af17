"""The latent traversal's maths: slerp rows within each label, and their score."""


from __future__ import annotations

import torch
from torch import Tensor

from cgan_lightning.metrics.protocol import ConditionalSampler, sample_fixed_latents
from cgan_lightning.metrics.sample_checks import check_samples
from cgan_lightning.metrics.sampling import slerp


def traversal_images(model: ConditionalSampler, endpoints: Tensor, steps: int, device: torch.device | str) -> Tensor:
    """One slerp row per label between ``endpoints[k, 0]`` and ``endpoints[k, 1]``: ``[num_classes * steps, C, H, W]``.

    Args:
        model: the sampler.
        endpoints: ``[num_classes, 2, latent_dim]``.
        steps: frames per row, both ends included.
        device: where to generate.
    """
    k = model.num_classes
    if endpoints.shape[0] != k or endpoints.shape[1] != 2:
        raise ValueError(f"endpoints must be [num_classes={k}, 2, latent_dim], got {tuple(endpoints.shape)}")
    z = slerp(endpoints[:, 0], endpoints[:, 1], steps).reshape(k * steps, -1)
    labels = torch.arange(k).repeat_interleave(steps).to(device)
    return check_samples(sample_fixed_latents(model, labels, z.to(device)), labels)


def traversal_scores(predictions: Tensor, num_classes: int, steps: int) -> dict[str, float]:
    """``traversal/acc``: share of frames (row-major, one row per label) predicted as their row's label."""
    rows = torch.arange(num_classes, device=predictions.device).repeat_interleave(steps)
    return {"traversal/acc": float((predictions == rows).double().mean())}
