"""The interference test's maths: one z rendered with every label, and its scores."""


from __future__ import annotations

import torch
from torch import Tensor

from cgan_lightning.metrics.protocol import ConditionalSampler, sample_fixed_latents
from cgan_lightning.metrics.sample_checks import check_samples


def interference_images(model: ConditionalSampler, z: Tensor, device: torch.device | str) -> Tensor:
    """Render every z ``[S, latent_dim]`` with every label: ``[S * num_classes, C, H, W]``, row-major (row = z)."""
    k = model.num_classes
    labels = torch.arange(k).repeat(len(z)).to(device)
    return check_samples(sample_fixed_latents(model, labels, z.repeat_interleave(k, dim=0).to(device)), labels)


def _mean_off_diagonal(distances: Tensor) -> Tensor:
    n = distances.shape[-1]
    return distances.sum() / (distances.numel() - distances.shape[0] * n)


def interference_scores(features: Tensor, predictions: Tensor, n_styles: int, num_classes: int) -> dict[str, float]:
    """``interference/acc`` and ``interference/style_spread`` of a row-major interference grid.

    Args:
        features: classifier features of the cells ``[n_styles * num_classes, D]``.
        predictions: predicted labels of the cells ``[n_styles * num_classes]``.
        n_styles: rows (one z each); must be >= 2.
        num_classes: columns (one label each).

    Returns:
        ``interference/acc``: share of cells classified as their column's label (chance: ``1 / num_classes``).
        ``interference/style_spread``: mean feature distance between cells of the same z with different labels,
        divided by the mean distance between cells of different z with the same label. About 0 when the generator
        ignores its label; well above 1 when the label decides the digit and z only its style.
    """
    if n_styles < 2:
        raise ValueError(f"n_styles must be >= 2 to compare styles, got {n_styles}")
    labels = torch.arange(num_classes, device=predictions.device).repeat(n_styles)
    acc = (predictions == labels).double().mean()
    grid = features.double().reshape(n_styles, num_classes, -1)
    across_labels = _mean_off_diagonal(torch.cdist(grid, grid))  # [S, K, K]: same z, label pairs
    columns = grid.transpose(0, 1)
    across_styles = _mean_off_diagonal(torch.cdist(columns, columns))  # [K, S, S]: same label, z pairs
    spread = across_labels / across_styles if across_styles > 0 else torch.tensor(float("inf"))
    return {"interference/acc": float(acc), "interference/style_spread": float(spread)}
