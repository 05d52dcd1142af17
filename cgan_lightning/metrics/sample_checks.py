"""Checks on what a sampler (or a data loader) hands to the evaluation and to ``cgan-lightning sample``.

Generated images must be finite and lie in ``[-1, 1]`` (the range of the data module and of a ``tanh`` output).
Garbage is refused with a :class:`BadSamplesError` that names what is wrong (which classes, how many images, what
range) instead of being scored: a NaN image would reach the FID's matrix square root (LAPACK can crash the process
on NaN input), and images 5x too large or in ``0..255`` give meaningless FIDs (964, 662,491) without a word.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: How far outside ``[-1, 1]`` a pixel may lie (rounding of a ``tanh`` in low precision, interpolation overshoot).
RANGE_TOLERANCE = 0.05


class BadSamplesError(ValueError):
    """Images that cannot be scored or written: not finite, out of ``[-1, 1]``, or of the wrong shape or dtype."""


def _classes(labels: Tensor | None, bad: Tensor) -> str:
    if labels is None or labels.numel() != bad.numel():
        return ""
    classes = sorted({int(v) for v in labels[bad.to(labels.device)].tolist()})
    shown = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
    return f" (class{'es' if len(classes) > 1 else ''} {shown})"


def check_samples(images: object, labels: Tensor | None = None, image_shape: tuple[int, ...] | None = None,
                  what: str = "generated images", tolerance: float = RANGE_TOLERANCE) -> Tensor:
    """Return ``images`` after checking they are float ``[B, C, H, W]``, finite and within ``[-1, 1]``.

    Reads the values (one host sync on a GPU): call it once per generated batch, not inside a training step.

    Args:
        images: what the sampler returned.
        labels: the requested labels ``[B]``, to name the classes of bad images.
        image_shape: the expected ``(C, H, W)``, when known.
        what: how the message names the images (``"generated images"``, ``"real images"``).
        tolerance: allowed overshoot beyond ``[-1, 1]``.

    Raises:
        BadSamplesError: (a ``ValueError``) not a float tensor ``[B, C, H, W]`` (of ``image_shape``), empty, with
            NaN/inf values, or with values outside ``[-1 - tolerance, 1 + tolerance]``. The message says how many
            images and which classes are affected, and the range found.
    """
    if not isinstance(images, Tensor):
        raise BadSamplesError(f"{what} must be a tensor [batch, C, H, W], got {type(images).__name__}")
    if images.is_meta:
        raise BadSamplesError(f"{what} are on the 'meta' device (shapes without values)")
    if images.dtype == torch.bool or not (images.is_floating_point() or images.dtype == torch.uint8):
        raise BadSamplesError(f"{what} must be float in [-1, 1], got dtype {images.dtype}")
    if images.dim() != 4 or images.numel() == 0:
        raise BadSamplesError(f"{what} must be a non-empty tensor [batch, C, H, W], got shape {tuple(images.shape)}")
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise BadSamplesError(f"{what} must have shape [batch, {', '.join(map(str, image_shape))}], got "
                              f"{tuple(images.shape)}")
    if labels is not None and labels.numel() != images.shape[0]:
        raise BadSamplesError(f"{what}: got {images.shape[0]} images for {labels.numel()} labels (expected one each)")
    if images.dtype == torch.uint8:
        raise BadSamplesError(f"{what} are uint8 (0..255); expected float images in [-1, 1]: convert with "
                              "images.float() / 127.5 - 1")
    flat = images.detach().reshape(images.shape[0], -1)
    finite = torch.isfinite(flat).all(dim=1)
    n_bad = int((~finite).sum())
    if n_bad:
        kinds = [name for name, mask in (("NaN", torch.isnan(flat)), ("inf", torch.isinf(flat))) if bool(mask.any())]
        raise BadSamplesError(
            f"{n_bad} of {images.shape[0]} {what}{_classes(labels, ~finite)} hold {' and '.join(kinds)} values: the "
            "generator's weights or inputs are not finite (a diverged run? train with check_finite=true, or use an "
            "earlier checkpoint); nothing was scored or written"
        )
    low, high = float(flat.min()), float(flat.max())
    if low < -1 - tolerance or high > 1 + tolerance:
        per_image = (flat.amin(dim=1) < -1 - tolerance) | (flat.amax(dim=1) > 1 + tolerance)
        looks_0_255 = high > 2 and low >= -tolerance
        hint = (" (they look like 0..255 pixel values: divide by 127.5 and subtract 1)" if looks_0_255
                else " (does the generator end in tanh?)")
        raise BadSamplesError(
            f"{int(per_image.sum())} of {images.shape[0]} {what}{_classes(labels, per_image)} lie outside [-1, 1]: "
            f"values span [{_fmt(low)}, {_fmt(high)}]{hint}; expected images in [-1, 1] (tolerance {tolerance})"
        )
    return images


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def check_finite_features(features: Tensor, what: str = "features") -> None:
    """Raise :class:`BadSamplesError` when ``features`` hold NaN/inf (they must never reach the FID's sqrtm)."""
    if not bool(torch.isfinite(features).all()):
        n_bad = int((~torch.isfinite(features.reshape(features.shape[0], -1))).any(dim=1).sum())
        raise BadSamplesError(f"the feature extractor returned non-finite {what} for {n_bad} of {features.shape[0]} "
                              "images; nothing was scored (is the extractor's input in [-1, 1]?)")


__all__ = ["BadSamplesError", "RANGE_TOLERANCE", "check_finite_features", "check_samples"]
