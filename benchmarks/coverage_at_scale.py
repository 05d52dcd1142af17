"""What fresh digits of the training split's writers would cover at the callbacks' count (not a test).

The callbacks score coverage (Naeem et al. 2020, k = 5, as ``SampleQuality`` logs it) with 1,000 samples per class
against the evaluation split's roughly 1,000 digits of that class, 1 : 1. A generator learns from the training split,
whose writers the evaluation split does not share, and which holds 500 digits per class: too few to score at that
count. So this script scores real digits 1 : 1 at smaller counts and follows the trend upwards:

- ``training -> evaluation``: ``s`` random evaluation digits of a class, covered by ``s`` random training digits of
  the same class (two writer populations, as for a generator and the evaluation split);
- ``evaluation -> evaluation``: ``s`` evaluation digits covered by ``s`` other evaluation digits (one writer
  population; where the class holds ``2 s`` digits): the reference, ``expected_coverage(s, s)``, about 0.969 at
  any ``s``.

Each cell is the mean of ``--repeats`` random draws. The last row fits each class's ``training -> evaluation``
figures with a line in ``log2 s`` (least squares over the scales from ``--fit_from`` up; all by default) and reads it
at ``s`` = the class's evaluation count: what as many fresh digits of the training writers as the callbacks draw
would score, if the trend holds for one more doubling. It is the coverage of a generator that drew like those
writers, no better and no worse.

    python benchmarks/coverage_at_scale.py --data_dir ../shared/data
"""

from __future__ import annotations

import argparse
import math

import torch
from coverage_sources import covered
from torch import Tensor

from cgan_lightning.data.mnist import MNISTDataModule, normalize
from cgan_lightning.metrics.features import ClassifierFeatures
from cgan_lightning.metrics.prdc import DEFAULT_NEAREST_K

DEFAULT_SCALES = (62, 88, 125, 177, 250, 354, 500)


def matched_coverage(real: Tensor, other: Tensor | None, size: int, repeats: int, generator: torch.Generator) -> float:
    """Mean coverage of ``size`` random rows of ``real`` by ``size`` random rows of ``other`` over ``repeats`` draws.

    With ``other=None`` the covering rows are ``real``'s too: the two sides are disjoint halves of one permutation, so
    no point covers itself.

    >>> points = torch.arange(20.0).unsqueeze(1)
    >>> matched_coverage(points, points + 1000, 10, 3, torch.Generator().manual_seed(0))
    0.0
    """
    if size <= DEFAULT_NEAREST_K:
        raise ValueError(f"size must exceed nearest_k={DEFAULT_NEAREST_K} (a ball needs k other real points), "
                         f"got {size}")
    needed = size if other is not None else 2 * size
    if len(real) < needed or (other is not None and len(other) < size):
        sides = f"{size} of other" if other is not None else "none of other (halves of real)"
        raise ValueError(f"size {size} needs {needed} rows of real and {sides}, got {len(real)} rows of real"
                         + (f" and {len(other)} of other" if other is not None else ""))
    total = 0.0
    for _ in range(repeats):
        order = torch.randperm(len(real), generator=generator)
        picked = real[order[:size]]
        if other is None:
            others = real[order[size:needed]]
        else:
            others = other[torch.randperm(len(other), generator=generator)[:size]]
        total += float(covered(picked, others).double().mean())
    return total / repeats


def extrapolate_log2(scales: list[int], values: list[float], target: float) -> float:
    """The least-squares line of ``values`` against ``log2(scales)``, read at ``log2(target)``.

    >>> round(extrapolate_log2([100, 200, 400], [0.95, 0.94, 0.93], 800), 6)
    0.92
    """
    if len(scales) != len(values) or len(set(scales)) < 2:
        raise ValueError(f"need values at two or more distinct scales, got scales {scales} and {len(values)} values")
    xs = [math.log2(s) for s in scales]
    x_mean, y_mean = sum(xs) / len(xs), sum(values) / len(values)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, values)) / sum((x - x_mean) ** 2 for x in xs)
    return y_mean + slope * (math.log2(target) - x_mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--scales", type=int, nargs="+", default=list(DEFAULT_SCALES),
                        help="digits per class on each side of a row (each > 5 and at most the training split's "
                             "smallest class)")
    parser.add_argument("--repeats", type=int, default=20, help="random draws averaged in each cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit_from", type=int, default=0, help="fit the trend to the scales from this count up")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if len(set(args.scales)) < 2 or min(args.scales) <= DEFAULT_NEAREST_K:
        parser.error(f"--scales needs two or more distinct counts, each > {DEFAULT_NEAREST_K}, got {args.scales}")
    fitted = [size for size in sorted(set(args.scales)) if size >= args.fit_from]
    if len(fitted) < 2:
        parser.error(f"--fit_from {args.fit_from} leaves {len(fitted)} of --scales {args.scales} to fit a line to: "
                     "it needs two or more")

    data = MNISTDataModule(args.data_dir, download=False)
    train_images, train_labels = data.split("train")
    eval_images, eval_labels = data.split("test")
    smallest = int(torch.bincount(train_labels).min())
    if max(args.scales) > smallest:
        parser.error(f"--scales goes up to {max(args.scales)}, but the training split's smallest class holds "
                     f"{smallest} digits: drop the larger scales")
    extractor = ClassifierFeatures()
    train, real = extractor(normalize(train_images)), extractor(normalize(eval_images))
    classes = range(data.num_classes)
    eval_counts = [int((eval_labels == k).sum()) for k in classes]
    generator = torch.Generator().manual_seed(args.seed)

    scales = sorted(set(args.scales))
    by_class: list[list[float]] = [[] for _ in classes]
    header = " | ".join(f"class {k}" for k in classes)
    print(f"| digits per class, each side | {header} | worst | mean | evaluation -> evaluation: worst, mean |")
    print("|---:|" + "---:|" * (data.num_classes + 3))
    for size in scales:
        cells = []
        for k in classes:
            value = matched_coverage(real[eval_labels == k], train[train_labels == k], size, args.repeats, generator)
            by_class[k].append(value)
            cells.append(value)
        same = [matched_coverage(real[eval_labels == k], None, size, args.repeats, generator)
                for k in classes if eval_counts[k] >= 2 * size]
        reference = f"{min(same):.3f}, {sum(same) / len(same):.3f}" if len(same) == len(cells) else "n/a"
        print(f"| {size} | " + " | ".join(f"{v:.3f}" for v in cells)
              + f" | **{min(cells):.3f}** | {sum(cells) / len(cells):.3f} | {reference} |")
    first = scales.index(fitted[0])
    # A line can run past a fraction's bounds; coverage cannot.
    predicted = [min(1.0, max(0.0, extrapolate_log2(fitted, by_class[k][first:], eval_counts[k]))) for k in classes]
    print(f"| fitted over {fitted[0]}-{fitted[-1]}, read at {min(eval_counts)}-{max(eval_counts)} "
          "(the class's evaluation count) | "
          + " | ".join(f"{v:.3f}" for v in predicted)
          + f" | **{min(predicted):.3f}** | {sum(predicted) / len(predicted):.3f} | |")


if __name__ == "__main__":
    main()
