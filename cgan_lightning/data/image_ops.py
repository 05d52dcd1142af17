"""Decoding, colour and size handling for uint8 image tensors, applied once when a split is read.

Every function here works on uint8 tensors ``[C, H, W]`` or ``[N, C, H, W]`` and returns uint8, so the data
modules keep the in-memory fast path: images are prepared once, never per training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

#: ``resize_crop``: scale the shorter side to the target, then center-crop (torchvision ``Resize(int)`` +
#: ``CenterCrop``; keeps the aspect ratio); ``resize``: scale to exactly the target (may distort);
#: ``center_crop``: crop the center without scaling (every image must be at least the target size).
ResizeMode = Literal["resize_crop", "resize", "center_crop"]
RESIZE_MODES: tuple[str, ...] = ("resize_crop", "resize", "center_crop")

#: File extensions read as images (those torchvision's ``ImageFolder`` accepts that PIL decodes).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                                     ".pgm")


def parse_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``28`` -> ``(28, 28)``; ``[32, 48]`` -> ``(32, 48)`` (height, width); ``None`` stays ``None``.

    Raises:
        ValueError: not one or two positive integers.
    """
    if image_size is None:
        return None
    size = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ValueError(f"image_size must be a positive int or [height, width], got {image_size!r}")
    return size[0], size[1]


def check_channels(channels: int | None) -> int | None:
    """Accept ``1`` (grayscale), ``3`` (RGB) or ``None`` (keep the data's own).

    Raises:
        ValueError: any other value.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grayscale), 3 (RGB) or null (as stored), got {channels!r}")
    return channels


def check_resize_mode(mode: str) -> str:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`RESIZE_MODES`."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize_mode {mode!r}: choose one of {list(RESIZE_MODES)}")
    return mode


def decode_image(path: Path) -> Tensor:
    """Read an image file as uint8 ``[C, H, W]``: ``C = 1`` for grayscale files, 3 for everything else.

    Raises:
        ValueError: the file is not an image PIL can decode (the message names it).
    """
    try:
        with Image.open(path) as img:
            img.load()
            mode = "L" if img.mode in ("1", "L", "LA", "I", "I;16", "F") or (img.mode == "P" and _gray_palette(img)) \
                else "RGB"
            array = np.asarray(img.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as bad:
        raise ValueError(f"could not read image file {path}: {bad}; remove it or replace it with a "
                         "readable image") from bad
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def _gray_palette(img: Image.Image) -> bool:
    palette = img.getpalette() or []
    rgb = np.asarray(palette[: 3 * 256]).reshape(-1, 3)
    return bool((rgb == rgb[:, :1]).all())


def convert_channels(images: Tensor, channels: int | None) -> Tensor:
    """Grayscale <-> RGB for uint8 ``[..., C, H, W]`` (ITU-R 601 luma for RGB -> grayscale); ``None``: unchanged."""
    have = images.shape[-3]
    if channels is None or have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        return TF.rgb_to_grayscale(images, num_output_channels=1)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")


def fit_size(images: Tensor, size: tuple[int, int] | None, mode: str = "resize_crop", source: str = "") -> Tensor:
    """Bring uint8 ``[C, H, W]`` or ``[N, C, H, W]`` images to ``size = (height, width)`` as ``mode`` says.

    Args:
        images: uint8 images.
        size: the target; ``None`` returns the images unchanged.
        mode: one of :data:`RESIZE_MODES`.
        source: what the images are (a file or split), for the error message.

    Raises:
        ValueError: ``center_crop`` of an image smaller than ``size``.
    """
    if size is None or tuple(images.shape[-2:]) == size:
        return images
    if mode == "resize":
        return TF.resize(images, list(size), antialias=True)
    if mode == "resize_crop":
        h, w = images.shape[-2:]
        scale = max(size[0] / h, size[1] / w)
        scaled = (max(size[0], round(h * scale)), max(size[1], round(w * scale)))
        images = TF.resize(images, list(scaled), antialias=True)
    elif images.shape[-2] < size[0] or images.shape[-1] < size[1]:
        raise ValueError(f"{source or 'an image'} is {images.shape[-2]}x{images.shape[-1]}, smaller than the "
                         f"center crop {size[0]}x{size[1]}; use resize_mode: resize_crop or a smaller image_size")
    return TF.center_crop(images, list(size))


__all__ = [
    "IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "ResizeMode",
    "check_channels",
    "check_resize_mode",
    "convert_channels",
    "decode_image",
    "fit_size",
    "parse_size",
]
