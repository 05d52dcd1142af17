"""Coverage of a generator as its samples per class grow: does it reach the digits it misses at all (not a test)?

Coverage (Naeem et al. 2020, k = 5, as ``SampleQuality`` logs it) counts the real evaluation digits whose k-NN ball
holds a generated sample. At 1,000 samples per class, as the callbacks score it, a digit is missed either because G
never draws near it (its support ends short of it) or because G draws near it too rarely (its density there is too
low). Drawing more samples tells the two apart: coverage keeps rising where G's support reaches.

The checkpoint's generator (EMA weights, its own sampling options) draws ``PerClassFID``'s 1,000 samples per class
with seed ``--seed``, then 1,000 more with seed ``--seed + 1``, and so on; the row for ``M`` samples scores the first
``M / 1,000`` of those sets, so its first row repeats the run's own ``val/coverage/class_<k>``. Beside each row, the
mean coverage a generator drawing fresh digits of the evaluation split's own distribution would expect at that count
(:func:`expected_coverage`). ``--latents sobol`` draws each set's latents as a scrambled Sobol sequence per class
(:func:`fid_terms.quasi_random_latents`) instead of independently: the same distribution, spread more evenly, so a
generator whose misses are a matter of its samples clumping would cover more with them. ``--latent_scale`` samples
with latents that many times N(0, I) in place of the checkpoint's own ``sample_latent_scale``.

    python benchmarks/coverage_vs_samples.py --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt \
        --data_dir ../shared/data --counts 1000 2000 4000 8000 16000
    python benchmarks/coverage_vs_samples.py --ckpt ... --data_dir ../shared/data --counts 1000 --latents sobol
"""

from __future__ import annotations

import argparse
import math

import torch
from coverage_sources import coverage_per_class
from fid_terms import add_latent_scale_argument, load_generator, seeded_draws

from cgan_lightning.data.mnist import MNISTDataModule, normalize
from cgan_lightning.metrics.features import ClassifierFeatures
from cgan_lightning.metrics.prdc import DEFAULT_NEAREST_K


def expected_coverage(real_count: int, sample_count: int, nearest_k: int = DEFAULT_NEAREST_K) -> float:
    """Coverage expected of ``sample_count`` samples drawn from the same distribution as ``real_count`` real points.

    A real point's ball reaches its k-th nearest other real point, so it holds no sample exactly when its k nearest
    among the other ``real_count - 1 + sample_count`` points are all real: for exchangeable points, probability
    ``C(real_count - 1, k) / C(real_count - 1 + sample_count, k)``.

    >>> round(expected_coverage(1000, 1000), 3)
    0.969
    >>> round(expected_coverage(1000, 500), 3)
    0.869
    """
    if real_count <= nearest_k or sample_count < 0:
        raise ValueError(f"need more than nearest_k={nearest_k} real points and a count of samples >= 0, got "
                         f"{real_count} and {sample_count}")
    return 1.0 - math.comb(real_count - 1, nearest_k) / math.comb(real_count - 1 + sample_count, nearest_k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 2000, 4000, 8000, 16000],
                        help="samples per class of each row: multiples of 1,000")
    parser.add_argument("--seed", type=int, default=0, help="of the first 1,000 samples per class (then seed + 1, ...)")
    parser.add_argument("--latents", choices=["normal", "sobol"], default="normal",
                        help="independent N(0, I) draws, as the callbacks', or a scrambled Sobol sequence per class")
    add_latent_scale_argument(parser)
    args = parser.parse_args()
    if any(count < 1000 or count % 1000 for count in args.counts):
        parser.error(f"--counts takes multiples of 1,000 (each set of 1,000 is one seed's draw), got {args.counts}")

    data = MNISTDataModule(args.data_dir, download=False)
    eval_images, eval_labels = data.split("test")
    extractor = ClassifierFeatures()
    real = extractor(normalize(eval_images))
    real_counts = torch.bincount(eval_labels).tolist()
    model = load_generator(args.ckpt, latent_scale=args.latent_scale)
    sets = seeded_draws(model, extractor, max(args.counts) // 1000, args.seed, quasi_random=args.latents == "sobol")

    print("| samples per class | " + " | ".join(f"class {k}" for k in range(len(real_counts)))
          + " | worst | mean | fresh digits would cover |")
    print("|---:|" + "---:|" * (len(real_counts) + 3))
    for count in sorted(args.counts):
        used = sets[: count // 1000]
        samples, sample_labels = torch.cat([f for f, _ in used]), torch.cat([y for _, y in used])
        coverage = coverage_per_class(real, eval_labels, samples, sample_labels)
        expected = sum(expected_coverage(n, count) for n in real_counts) / len(real_counts)
        cells = " | ".join(f"{value:.3f}" for value in coverage)
        mean = sum(coverage) / len(coverage)
        print(f"| {count:,} | {cells} | **{min(coverage):.3f}** | {mean:.3f} | {expected:.3f} |")


if __name__ == "__main__":
    main()
