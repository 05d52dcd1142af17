"""How much coverage copies of the training split reach: a ceiling for a generator that learned from it (not a test).

Coverage (Naeem et al. 2020, k = 5, as ``SampleQuality`` logs it) is scored against the real evaluation split, class
by class, in the shipped classifier's feature space, for sample sets built from the training split alone:

- ``training split``: its 500 digits per class as they are (the real-data floor's row);
- ``training split + a copy shifted by one pixel``: the same digits and one copy of each moved by one pixel in one
  of the 8 directions at random (no resampling, so no blur);
- ``training split + a jittered copy``: the same digits and one copy of each, shifted, rotated and scaled at random
  (``--jitter SHIFT,DEGREES,SCALE``, bilinear resampling as the classifier's training augments; repeatable);
- ``training split + an elastically deformed copy``: the same digits and one copy of each under a smooth random
  displacement field (Simard et al. 2003: uniform noise smoothed by a Gaussian of ``SIGMA`` pixels, scaled here to a
  root-mean-square displacement of ``RMS`` pixels; ``--elastic RMS,SIGMA``, repeatable): strokes bent, not just moved;
- ``training split + a slanted copy``: the same digits and one copy of each sheared horizontally by a factor drawn
  uniformly from ``±AMOUNT`` (``--shear AMOUNT``, repeatable; none by default): the slant changed and nothing else.
- ``training split + a copy with thicker or thinner strokes``: the same digits and one copy of each blended towards its
  3 x 3 dilation or erosion by a factor drawn uniformly from ``±AMOUNT`` (``--thickness AMOUNT``, repeatable; none by
  default): the pen's width changed, nothing moved.

The sets with copies are 1,000 digits per class, as many as the evaluation callbacks draw from a generator, each a
real digit or a near-copy of one: what a generator that reproduced its training data, with small variations of each
digit, would be scored.

With ``--ckpt`` a generator's row is added (its EMA weights, ``PerClassFID``'s samples, drawn with the checkpoint's
own sampling options or with latents ``--latent_scale`` times N(0, I)). Each row ends with the worst class, the mean,
and the mean intra-class FID of the same sets.

    python benchmarks/coverage_ceiling.py --data_dir ../shared/data
    python benchmarks/coverage_ceiling.py --data_dir ../shared/data --jitter 1,5,0.05 --elastic 0.5,4 \
        --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from coverage_sources import coverage_per_class
from fid_terms import add_latent_scale_argument, generated_images, load_generator, mean_class_fid
from torch import Tensor

from cgan_lightning.data.mnist import MNISTDataModule, normalize
from cgan_lightning.metrics.classifier_training import random_affine
from cgan_lightning.metrics.features import ClassifierFeatures

DEFAULT_JITTERS = ("0.5,3,0.03", "1,5,0.05", "2,10,0.1")
DEFAULT_ELASTIC = ("0.33,4", "0.65,4", "1,4")


def parse_jitter(text: str) -> tuple[float, float, float]:
    """``"SHIFT,DEGREES,SCALE"`` (pixels, degrees, fraction) as floats."""
    try:
        shift, degrees, scale = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jitter takes SHIFT,DEGREES,SCALE, e.g. 1,5,0.05; got {text!r}") from None
    return shift, degrees, scale


def parse_elastic(text: str) -> tuple[float, float]:
    """``"RMS,SIGMA"`` (pixels, pixels) as floats; RMS >= 0, SIGMA > 0."""
    try:
        rms, sigma = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--elastic takes RMS,SIGMA in pixels, e.g. 0.5,4; got {text!r}") from None
    if rms < 0 or sigma <= 0:
        raise argparse.ArgumentTypeError(f"--elastic needs RMS >= 0 and SIGMA > 0, got {text!r}")
    return rms, sigma


def elastic_deformation(images: Tensor, generator: torch.Generator, rms: float, sigma: float) -> Tensor:
    """Each image ``[B, C, H, W]`` in ``[-1, 1]`` resampled (bilinear) along its own smooth random displacement field,
    whose root-mean-square length over the batch is ``rms`` pixels; the border is filled with -1."""
    b, _, h, w = images.shape
    noise = torch.rand(b * 2, 1, h, w, generator=generator) * 2 - 1
    radius = min(max(1, math.ceil(3 * sigma)), min(h, w) - 1)  # reflect padding needs it under the size
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-taps.pow(2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    field = F.conv2d(F.pad(noise, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    field = F.conv2d(F.pad(field, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    field = field.view(b, 2, h, w)
    field = field * (rms / field.pow(2).sum(1).mean().sqrt().clamp_min(1e-12))
    rows, cols = torch.meshgrid(torch.arange(h, dtype=images.dtype), torch.arange(w, dtype=images.dtype),
                                indexing="ij")
    # grid_sample's coordinates with align_corners=True: -1 and 1 are the centres of the first and last pixels.
    grid = torch.stack([(cols + field[:, 0]) * 2 / (w - 1) - 1, (rows + field[:, 1]) * 2 / (h - 1) - 1], dim=-1)
    return F.grid_sample(images + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=True) - 1


def sheared(images: Tensor, generator: torch.Generator, amount: float) -> Tensor:
    """Each image ``[B, C, H, W]`` in ``[-1, 1]`` slanted about its centre: the pixel at ``(x, y)`` is read from
    ``(x + s * y, y)`` (coordinates in ``[-1, 1]``), ``s`` uniform in ``±amount`` per image; bilinear, border -1."""
    factor = (torch.rand(len(images), generator=generator) * 2 - 1) * amount
    theta = torch.zeros(len(images), 2, 3, dtype=images.dtype)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 1] = 1.0, 1.0, factor
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


def thickened(images: Tensor, generator: torch.Generator, amount: float) -> Tensor:
    """Each image ``[B, C, H, W]`` in ``[-1, 1]`` with its strokes made thicker or thinner: a factor ``t`` uniform in
    ``±amount`` per image blends it towards its 3 x 3 dilation (``t > 0``: max-pooling, so a bright stroke grows by a
    pixel on each side at ``t = 1``) or its 3 x 3 erosion (``t < 0``); no pixel moves."""
    factor = ((torch.rand(len(images), generator=generator) * 2 - 1) * amount).view(-1, 1, 1, 1)
    dilated = F.max_pool2d(images, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-images, 3, stride=1, padding=1)
    return images + factor.clamp_min(0) * (dilated - images) + (-factor).clamp_min(0) * (eroded - images)


def shifted_by_one_pixel(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each image ``[B, C, H, W]`` in ``[-1, 1]`` moved one pixel in one of 8 directions, the border filled with -1."""
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    picks = torch.randint(len(offsets), (len(images),), generator=generator).tolist()
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)
    h, w = images.shape[-2:]
    windows = [(1 + offsets[p][0], 1 + offsets[p][1]) for p in picks]
    return torch.stack([padded[i, :, top : top + h, left : left + w] for i, (top, left) in enumerate(windows)])


def row(name: str, samples: Tensor, sample_labels: Tensor, real: Tensor, real_labels: Tensor) -> None:
    """Print one table row: coverage of each class's real digits by the samples of that class, then FID."""
    coverage = coverage_per_class(real, real_labels, samples, sample_labels)
    fid = mean_class_fid(samples, sample_labels, real, real_labels)
    cells = " | ".join(f"{value:.3f}" for value in coverage)
    print(f"| {name} | {cells} | **{min(coverage):.3f}** | {sum(coverage) / 10:.3f} | {fid:.2f} |")


def per_class(labels: Tensor) -> str:
    """How many digits each class holds, for a row's label: ``1,000``, or the range ``946-1,067`` when uneven."""
    counts = torch.bincount(labels)
    low, high = int(counts.min()), int(counts.max())
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    default_jitters = " ".join(DEFAULT_JITTERS)
    parser.add_argument("--jitter", action="append", type=parse_jitter,
                        help=f"SHIFT,DEGREES,SCALE of a jittered copy; repeatable (default: {default_jitters})")
    default_elastic = " ".join(DEFAULT_ELASTIC)
    parser.add_argument("--elastic", action="append", type=parse_elastic,
                        help=f"RMS,SIGMA of an elastically deformed copy; repeatable (default: {default_elastic})")
    parser.add_argument("--shear", action="append", type=float, default=[],
                        help="AMOUNT of a slanted copy (shear factor uniform in ±AMOUNT); repeatable (default: none)")
    parser.add_argument("--thickness", action="append", type=float, default=[],
                        help="AMOUNT of a copy with thicker or thinner strokes (blend towards the 3 x 3 dilation or "
                             "erosion, factor uniform in ±AMOUNT); repeatable (default: none)")
    parser.add_argument("--seed", type=int, default=0,
                        help="of the jitter and the deformations (and of the generator's samples)")
    parser.add_argument("--ckpt", help="also score this checkpoint's generator")
    add_latent_scale_argument(parser)  # for --ckpt's samples
    args = parser.parse_args()
    if any(not 0 <= amount <= 1 for amount in args.shear):
        parser.error(f"--shear takes a factor in [0, 1], e.g. 0.3; got {args.shear}")
    if any(not 0 <= amount <= 1 for amount in args.thickness):
        parser.error(f"--thickness takes a blend factor in [0, 1], e.g. 0.3; got {args.thickness}")
    jitters = args.jitter or [parse_jitter(text) for text in DEFAULT_JITTERS]
    elastic = args.elastic or [parse_elastic(text) for text in DEFAULT_ELASTIC]

    data = MNISTDataModule(args.data_dir, download=False)
    (train_images, train_labels), (eval_images, eval_labels) = data.split("train"), data.split("test")
    extractor = ClassifierFeatures()
    train = normalize(train_images)
    train_features, eval_features = extractor(train), extractor(normalize(eval_images))

    print("| samples per class | " + " | ".join(f"class {k}" for k in range(10)) + " | worst | mean | FID mean |")
    print("|---|" + "---:|" * 13)
    row(f"training split ({per_class(train_labels)})", train_features, train_labels, eval_features, eval_labels)
    rng = torch.Generator().manual_seed(args.seed)
    both_labels = torch.cat([train_labels, train_labels])
    doubled = per_class(both_labels)

    def with_copies(what: str, copies: Tensor) -> None:  # the training split and one copy of each digit
        row(f"training split + a copy {what} ({doubled})", torch.cat([train_features, extractor(copies)]), both_labels,
            eval_features, eval_labels)

    with_copies("shifted by one pixel", shifted_by_one_pixel(train, rng))
    for shift, degrees, scale in jitters:
        with_copies(f"jittered by {shift:g} px, {degrees:g} degrees, {scale:g} scale",
                    random_affine(train, rng, shift=shift, degrees=degrees, scale=scale))
    for rms, sigma in elastic:
        with_copies(f"deformed elastically by {rms:g} px RMS, smoothed over {sigma:g} px",
                    elastic_deformation(train, rng, rms=rms, sigma=sigma))
    for amount in args.shear:
        with_copies(f"slanted by a shear of up to {amount:g}", sheared(train, rng, amount))
    for amount in args.thickness:
        with_copies(f"with strokes thickened or thinned by up to {amount:g}", thickened(train, rng, amount))
    if args.ckpt:
        model = load_generator(args.ckpt, args.latent_scale)
        images, labels = generated_images(model, 1000, args.seed)
        row("the generator (1,000)", extractor(images), labels, eval_features, eval_labels)


if __name__ == "__main__":
    main()
