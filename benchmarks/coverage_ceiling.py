"""How much coverage copies of the training split reach: a ceiling for a generator that learned from it (not a test).

Coverage (Naeem et al. 2020, k = 5, as ``SampleQuality`` logs it) is scored against the real evaluation split, class
by class, in the shipped classifier's feature space, for sample sets built from the training split alone:

- ``training split``: its 500 digits per class as they are (the real-data floor's row);
- ``training split + a copy shifted by one pixel``: the same digits and one copy of each moved by one pixel in one
  of the 8 directions at random (no resampling, so no blur);
- ``training split + a jittered copy``: the same digits and one copy of each, shifted, rotated and scaled at random
  (``--jitter SHIFT,DEGREES,SCALE``, bilinear resampling as the classifier's training augments; repeatable).

Both are 1,000 digits per class, as many as the evaluation callbacks draw from a generator, each a real digit or a
near-copy of one: what a generator that reproduced its training data, with small variations of each digit, would be
scored.

With ``--ckpt`` a generator's row is added (its EMA weights, ``PerClassFID``'s samples, drawn with the checkpoint's
own sampling options or with latents ``--latent_scale`` times N(0, I)). Each row ends with the worst class, the mean,
and the mean intra-class FID of the same sets.

    python benchmarks/coverage_ceiling.py --data_dir ../shared/data
    python benchmarks/coverage_ceiling.py --data_dir ../shared/data --jitter 1,5,0.05 \
        --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from coverage_sources import covered
from fid_terms import generated_images, load_generator, mean_class_fid
from torch import Tensor

from cgan_lightning.data.mnist import MNISTDataModule, normalize
from cgan_lightning.metrics.classifier_training import random_affine
from cgan_lightning.metrics.features import ClassifierFeatures

DEFAULT_JITTERS = ("0.5,3,0.03", "1,5,0.05", "2,10,0.1")


def parse_jitter(text: str) -> tuple[float, float, float]:
    """``"SHIFT,DEGREES,SCALE"`` (pixels, degrees, fraction) as floats."""
    try:
        shift, degrees, scale = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jitter takes SHIFT,DEGREES,SCALE, e.g. 1,5,0.05; got {text!r}") from None
    return shift, degrees, scale


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
    coverage = [float(covered(real[real_labels == k], samples[sample_labels == k]).double().mean())
                for k in range(10)]
    fid = mean_class_fid(samples, sample_labels, real, real_labels)
    cells = " | ".join(f"{value:.3f}" for value in coverage)
    print(f"| {name} | {cells} | **{min(coverage):.3f}** | {sum(coverage) / 10:.3f} | {fid:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    default_jitters = " ".join(DEFAULT_JITTERS)
    parser.add_argument("--jitter", action="append", type=parse_jitter,
                        help=f"SHIFT,DEGREES,SCALE of a jittered copy; repeatable (default: {default_jitters})")
    parser.add_argument("--seed", type=int, default=0, help="of the jitter (and of the generator's samples)")
    parser.add_argument("--ckpt", help="also score this checkpoint's generator")
    parser.add_argument("--latent_scale", type=float, default=None,
                        help="its latents this many times N(0, I) (default: the checkpoint's own scale)")
    args = parser.parse_args()
    jitters = args.jitter or [parse_jitter(text) for text in DEFAULT_JITTERS]

    data = MNISTDataModule(args.data_dir, download=False)
    (train_images, train_labels), (eval_images, eval_labels) = data.split("train"), data.split("test")
    extractor = ClassifierFeatures()
    train = normalize(train_images)
    train_features, eval_features = extractor(train), extractor(normalize(eval_images))

    print("| samples per class | " + " | ".join(f"class {k}" for k in range(10)) + " | worst | mean | FID mean |")
    print("|---|" + "---:|" * 13)
    row("training split (500)", train_features, train_labels, eval_features, eval_labels)
    rng = torch.Generator().manual_seed(args.seed)
    both_labels = torch.cat([train_labels, train_labels])
    copies = extractor(shifted_by_one_pixel(train, rng))
    row("training split + a copy shifted by one pixel (1,000)", torch.cat([train_features, copies]), both_labels,
        eval_features, eval_labels)
    for shift, degrees, scale in jitters:
        copies = extractor(random_affine(train, rng, shift=shift, degrees=degrees, scale=scale))
        row(f"training split + a copy jittered by {shift:g} px, {degrees:g} degrees, {scale:g} scale (1,000)",
            torch.cat([train_features, copies]), both_labels, eval_features, eval_labels)
    if args.ckpt:
        model = load_generator(args.ckpt, args.latent_scale)
        images, labels = generated_images(model, 1000, args.seed)
        row("the generator (1,000)", extractor(images), labels, eval_features, eval_labels)


if __name__ == "__main__":
    main()
