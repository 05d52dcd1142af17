"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020) with an adaptive probability (ADA).

With few training images, D memorizes them and its feedback to G degrades. Augmenting *every* image D sees,
real and generated alike, with differentiable transforms keeps D from memorizing while G still gets gradients
through the transform. Only digit-safe transforms are offered: a translation (a few pixels) and a cutout (a
square set to the background); no flips and no 90-degree rotations, which turn a 6 into a 9 or a 2 into a
mirror glyph and would teach D and G that those are the same class.

ADA (Karras et al. 2020): each transform is applied to each image with probability ``p``. With ``ada_target``
set, ``p`` starts at 0 and follows D's overfitting signal ``r_t = E[sign(D(real))]`` (share of real images D
is sure of, rescaled to ``[-1, 1]``): every ``ada_interval`` D steps, ``p`` grows by
``images seen / (ada_kimg * 1000)`` when ``r_t > ada_target`` and shrinks by as much otherwise, within ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

#: The background value of images in ``[-1, 1]`` (MNIST's black): what translation and cutout fill in.
BACKGROUND = -1.0
#: The transforms that cannot change a digit's class.
DIGIT_SAFE = ("translation", "cutout")
#: Transforms other libraries offer that change a digit's class: named in the error message.
DIGIT_UNSAFE = ("flip", "hflip", "vflip", "rot90", "rotate90", "xflip", "yflip")


def _selected(n: int, p: float | Tensor, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """``[n]`` booleans, each true with probability ``p``."""
    return torch.rand(n, device=device, generator=generator) < p


def translation(images: Tensor, ratio: float = 0.125, p: float | Tensor = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by up to ``ratio`` of its size (integer pixels, both axes), filling with the background.

    With probability ``1 - p`` an image is left unshifted. Differentiable in ``images`` (a gather).
    """
    n, _, h, w = images.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    keep = ~_selected(n, p, images.device, generator).view(n, 1, 1)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=images.device, generator=generator).masked_fill(keep, 0)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=images.device, generator=generator).masked_fill(keep, 0)
    batch, rows, cols = torch.meshgrid(torch.arange(n, device=images.device), torch.arange(h, device=images.device),
                                       torch.arange(w, device=images.device), indexing="ij")
    # One background pixel of padding; indices shifted out of the image land on it.
    rows = (rows + dy + 1).clamp(0, h + 1)
    cols = (cols + dx + 1).clamp(0, w + 1)
    padded = nn.functional.pad(images, (1, 1, 1, 1), value=BACKGROUND)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(images: Tensor, ratio: float = 0.5, p: float | Tensor = 1.0,
           generator: torch.Generator | None = None) -> Tensor:
    """Set a random square of side ``ratio`` times the image size to the background (probability ``p`` per image)."""
    n, _, h, w = images.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), device=images.device, generator=generator)
    cx = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), device=images.device, generator=generator)
    rows = torch.arange(h, device=images.device).view(1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    row_offset, col_offset = rows - cy + size_h // 2, cols - cx + size_w // 2  # position inside the square
    hole = (row_offset >= 0) & (row_offset < size_h) & (col_offset >= 0) & (col_offset < size_w)
    hole = hole & _selected(n, p, images.device, generator).view(n, 1, 1)
    return torch.where(hole.unsqueeze(1), images.new_full((), BACKGROUND), images)


TRANSFORMS: dict[str, Callable[..., Tensor]] = {"translation": translation, "cutout": cutout}


def check_policy(policy: Sequence[str]) -> tuple[str, ...]:
    """Return the transform names if all are digit-safe, else raise ``ValueError`` naming the bad one."""
    if isinstance(policy, str):
        policy = [policy]
    for name in policy:
        if name not in TRANSFORMS:
            why = " (it can change a digit's class)" if name.lower() in DIGIT_UNSAFE else ""
            raise ValueError(f"augmentation {name!r} is not offered{why}: choose from {list(DIGIT_SAFE)}")
    if not policy:
        raise ValueError(f"augment needs at least one transform from {list(DIGIT_SAFE)} (or null to turn it off)")
    return tuple(policy)


class DiscriminatorAugment(nn.Module):
    """Augments every image D sees: ``policy`` transforms in order, each with probability :attr:`p` per image.

    ``p`` and ADA's accumulators are buffers, so checkpoints carry them and a resumed run continues the schedule.

    Args:
        policy: transform names from :data:`DIGIT_SAFE`.
        p: fixed probability (1.0: DiffAugment, always on); ignored when ``ada_target`` is set (``p`` starts at 0).
        ada_target: target of D's overfitting signal ``r_t = E[sign(D(real))]`` (ADA: 0.6); ``None``: fixed ``p``.
        ada_interval: D steps between adjustments of ``p``.
        ada_kimg: thousands of real images over which ``p`` can move from 0 to 1.
        translation_ratio: largest shift, as a share of the image size (DiffAugment: 1/8).
        cutout_ratio: side of the cut square, as a share of the image size (DiffAugment: 1/2).

    Raises:
        ValueError: an unknown or digit-unsafe transform, or values out of range.
    """

    # Buffers (registered in __init__), typed for the type checker.
    p: Tensor
    sign_sum: Tensor
    seen: Tensor
    steps: Tensor

    def __init__(self, policy: Sequence[str] = DIGIT_SAFE, p: float = 1.0, ada_target: float | None = None,
                 ada_interval: int = 4, ada_kimg: float = 100.0, translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.5) -> None:
        super().__init__()
        self.policy = check_policy(policy)
        if not 0 <= p <= 1:
            raise ValueError(f"augment_p must be in [0, 1], got {p}")
        if ada_target is not None and not -1 < ada_target < 1:
            raise ValueError(f"ada_target must be in (-1, 1) (ADA uses 0.6), got {ada_target}")
        if ada_interval < 1 or ada_kimg <= 0:
            raise ValueError(f"ada_interval must be >= 1 and ada_kimg > 0, got {ada_interval} and {ada_kimg}")
        if not 0 < translation_ratio < 1 or not 0 < cutout_ratio < 1:
            raise ValueError(f"translation_ratio and cutout_ratio must be in (0, 1), got {translation_ratio} and "
                             f"{cutout_ratio}")
        self.ada_target = ada_target
        self.ada_interval = ada_interval
        self.ada_kimg = ada_kimg
        self.ratios = {"translation": translation_ratio, "cutout": cutout_ratio}
        self.register_buffer("p", torch.tensor(0.0 if ada_target is not None else float(p)))
        self.register_buffer("sign_sum", torch.zeros(()))  # ADA: sum of sign(D(real)) since the last adjustment
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))  # ... over this many real images
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # ... in this many D steps

    @property
    def adaptive(self) -> bool:
        """Whether ``p`` follows D's overfitting signal."""
        return self.ada_target is not None

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment ``images``, drawing from ``generator`` (the model's training stream, so resuming stays exact)."""
        for name in self.policy:
            images = TRANSFORMS[name](images, self.ratios[name], self.p, generator)
        return images

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        """ADA: record D's logits on (augmented) real images; every ``ada_interval`` calls, move ``p``."""
        if self.ada_target is None:
            return
        self.sign_sum += torch.sign(real_logits.float()).sum()
        self.seen += real_logits.numel()
        self.steps += 1
        if int(self.steps) % self.ada_interval == 0:
            r_t = self.sign_sum / self.seen.clamp(min=1)
            step = torch.sign(r_t - self.ada_target) * self.seen / (self.ada_kimg * 1000)
            self.p.copy_((self.p + step).clamp(0.0, 1.0))
            self.sign_sum.zero_()
            self.seen.zero_()


def build_d_augment(policy: Sequence[str] | None, p: float = 1.0, ada_target: float | None = None,
                    ada_kimg: float = 100.0) -> DiscriminatorAugment | None:
    """The module for ``ConditionalGAN(augment=..., augment_p=..., ada_target=..., ada_kimg=...)``; ``None`` if off.

    Raises:
        ValueError: ``ada_target`` without ``augment``; see :class:`DiscriminatorAugment`.
    """
    if policy is None:
        if ada_target is not None:
            raise ValueError("ada_target adapts the augmentation probability, but augment is off: set augment, e.g. "
                             "[translation, cutout]")
        return None
    return DiscriminatorAugment(policy, p=p, ada_target=ada_target, ada_kimg=ada_kimg)
