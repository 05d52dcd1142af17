"""Which real evaluation digits two generators miss: the same ones (a systematic gap) or different ones (chance)?

A real digit is missed when no generated sample of its class lies in its k-NN ball (coverage's count, as
``SampleQuality`` logs it: k = 5, in the shipped classifier's feature space, ``PerClassFID``'s samples). Per class,
for the generator of ``--ckpt`` (A) and of ``--other_ckpt`` (B, e.g. the same config trained with another seed):

- ``missed by A`` / ``missed by B``: real evaluation digits outside every sample's reach;
- ``by both`` against ``if independent`` (``missed by A * missed by B / digits``): far more shared misses than chance
  says both generators lack the same digits;
- ``distance, missed`` / ``distance, covered``: mean distance of A's missed and covered digits to their class's
  centroid: atypical digits lie further out.

    python benchmarks/missed_digits.py --data_dir ../shared/data \
        --ckpt runs/seed42/lightning_logs/version_0/checkpoints/last.ckpt \
        --other_ckpt runs/seed1/lightning_logs/version_0/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
from dataclasses import astuple, dataclass

from coverage_sources import covered
from fid_terms import add_generator_arguments, score_generator
from torch import Tensor

from cgan_lightning.metrics.prdc import DEFAULT_NEAREST_K


@dataclass
class MissOverlap:
    """Counts and centroid distances of one class's real digits missed by two generators (A and B)."""

    digits: int
    missed_a: int
    missed_b: int
    missed_both: int
    if_independent: float
    distance_missed: float
    distance_covered: float


def miss_overlap(real: Tensor, generated_a: Tensor, generated_b: Tensor,
                 nearest_k: int = DEFAULT_NEAREST_K) -> MissOverlap:
    """How many of the ``real`` features ``[N, D]`` each generated set misses, both miss, and chance would share."""
    missed_a, missed_b = ~covered(real, generated_a, nearest_k), ~covered(real, generated_b, nearest_k)
    distance = (real - real.mean(0)).norm(dim=1)
    n, count_a, count_b = len(real), int(missed_a.sum()), int(missed_b.sum())
    return MissOverlap(n, count_a, count_b, int((missed_a & missed_b).sum()), count_a * count_b / n,
                       float(distance[missed_a].mean()) if count_a else float("nan"),
                       float(distance[~missed_a].mean()) if count_a < n else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_generator_arguments(parser)
    parser.add_argument("--other_ckpt", required=True, help="the second generator (B)")
    args = parser.parse_args()
    run_a = score_generator(args)
    run_b = score_generator(argparse.Namespace(**{**vars(args), "ckpt": args.other_ckpt}))

    columns = ("digits", "missed by A", "missed by B", "by both", "if independent", "distance, missed",
               "distance, covered")
    print("| class | " + " | ".join(columns) + " |\n|---|" + "---:|" * len(columns))
    rows = []
    for k in range(run_a.model.num_classes):
        real = run_a.eval[run_a.eval_labels == k]
        rows.append(miss_overlap(real, run_a.generated[run_a.labels == k], run_b.generated[run_b.labels == k]))
        row = astuple(rows[-1])
        print(f"| {k} | " + " | ".join(f"{v}" if isinstance(v, int) else f"{v:.2f}" for v in row) + " |")
    totals = [sum(getattr(r, f) for r in rows) for f in ("digits", "missed_a", "missed_b", "missed_both")]
    expected = sum(r.if_independent for r in rows)
    print(f"| all | {' | '.join(str(t) for t in totals)} | {expected:.0f} | | |")


if __name__ == "__main__":
    main()
