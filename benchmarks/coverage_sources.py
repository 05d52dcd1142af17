"""Which real evaluation digits a generator covers, next to the ones the real training split covers.

Coverage (Naeem et al. 2020, k = 5, as ``SampleQuality`` logs it) is the share of real evaluation samples whose
k-NN ball (radius: the distance to the k-th nearest other evaluation sample of the class) holds a generated sample.
The generator learned from the training split only; the split's own coverage of the evaluation split, at its own
count and at as many samples on each side, says how much of the target real data reaches. Per class, in the
shipped classifier's feature space, on ``PerClassFID``'s samples (``--samples_per_class`` per class from ``--seed``,
EMA weights; ``--latent_scale`` samples with latents that many times N(0, I) in place of the checkpoint's own scale):

- ``G``: coverage by the generated samples; ``train``: by the training split (the real-data floor's row);
- ``G only`` / ``train only``: evaluation samples covered by one of the two and not the other;
- ``G covers train``: the training split's own balls that hold a generated sample (how fully G reproduces the data
  it saw);
- ``train, 1 : 1``: the training split against half of the evaluation split (as many samples on each side), which
  shows how much of the ``train`` figure is the smaller set's handicap rather than a difference of distribution.

    python benchmarks/coverage_sources.py --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt \
        --data_dir ../shared/data
"""

from __future__ import annotations

import argparse

import torch
from fid_terms import add_generator_arguments, score_generator
from torch import Tensor

from cgan_lightning.metrics.prdc import DEFAULT_NEAREST_K, kth_neighbour_distances, pairwise_distances


def covered(real: Tensor, other: Tensor, nearest_k: int = DEFAULT_NEAREST_K) -> Tensor:
    """Boolean ``[N]``: which rows of ``real`` have a row of ``other`` inside their k-NN ball (coverage's count)."""
    radii = kth_neighbour_distances(real, nearest_k)
    return pairwise_distances(real, other).min(dim=1).values < radii


def coverage_per_class(real: Tensor, real_labels: Tensor, samples: Tensor, sample_labels: Tensor) -> list[float]:
    """Each class's coverage of its real rows by its sample rows (features ``[N, D]``), as ``SampleQuality`` logs it."""
    classes = real_labels.unique().tolist()
    return [float(covered(real[real_labels == k], samples[sample_labels == k]).double().mean()) for k in classes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_generator_arguments(parser)
    args = parser.parse_args()
    run = score_generator(args)

    columns = ("G", "train", "G only", "train only", "G covers train", "train, 1 : 1")
    print("| class | " + " | ".join(columns) + " |\n|---|" + "---:|" * len(columns))
    rows = []
    for k in range(run.model.num_classes):
        real, train = run.eval[run.eval_labels == k], run.train[run.train_labels == k]
        fake = run.generated[run.labels == k]
        by_g, by_train = covered(real, fake), covered(real, train)
        half = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(args.seed))[: len(real) // 2]]
        rows.append([by_g.double().mean(), by_train.double().mean(), (by_g & ~by_train).double().mean(),
                     (by_train & ~by_g).double().mean(), covered(train, fake).double().mean(),
                     covered(half, train).double().mean()])
        print(f"| {k} | " + " | ".join(f"{float(v):.3f}" for v in rows[-1]) + " |")
    means = torch.tensor(rows).mean(0).tolist()
    print("| mean | " + " | ".join(f"**{v:.3f}**" for v in means) + " |")


if __name__ == "__main__":
    main()
