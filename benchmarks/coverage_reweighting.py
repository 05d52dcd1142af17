"""How far could a reweighting of a generator's own samples take its coverage (not a test)?

At 1,000 samples per class G misses evaluation digits that its support reaches (`coverage_vs_samples.py`): it draws
near them too rarely. A sampler may reweight what G draws, as the shipped tilt and redraws do. This asks how much any
reweighting could gain. The checkpoint's generator draws a pool of ``--pool`` samples per class with its own sampling
(1,000 per seed from ``--seed`` on, ``PerClassFID``'s draw first; ``--latent_scale`` samples with latents that many
times N(0, I) in place of the checkpoint's own scale). For weights ``q`` over a class's pool, ``M`` independent draws
from ``q`` miss a real digit whose k-NN ball holds pool samples of total weight ``a`` with probability
``(1 - a)^M``, so the expected coverage is concave in ``q``; its maximum is found by gradient ascent on softmax
logits. The rows:

- ``uniform``: ``q`` uniform, i.e. G's own sampling (its figures at 1,000 draws match the callbacks' up to the draw);
- ``training balls``: ``q`` maximizing the expected coverage of the *training* split's balls, as many draws as the
  class has training digits (1 : 1, as the callbacks score), then scored on the evaluation split at 1,000 draws. A
  sampler could do this: it reads only the training split, as the tilt does. ``--kl`` adds ``lambda KL(q || uniform)``
  as a penalty, one row per value, to keep ``q`` near G's own sampling;
- ``evaluation balls (bound)``: ``q`` maximizing the evaluation split's own coverage at 1,000 draws. It reads the
  split it is scored on, so it is no sampler: it bounds what any reweighting of this pool could reach.

Each row gives the expected coverage per class (worst and mean), then one draw of 1,000 per class from ``q`` scored as
the callbacks score it (worst coverage, FID), and the effective sample size of ``q`` (``1 / sum q^2``) as a share of
the pool: how far the weights move from G's own sampling.

    python benchmarks/coverage_reweighting.py --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt \
        --data_dir ../shared/data --pool 8000 --kl 0 0.01
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from coverage_sources import covered
from fid_terms import add_latent_scale_argument, fid_terms, load_generator, seeded_draws
from torch import Tensor

from cgan_lightning.data.mnist import MNISTDataModule, normalize
from cgan_lightning.metrics.features import ClassifierFeatures
from cgan_lightning.metrics.prdc import DEFAULT_NEAREST_K, kth_neighbour_distances, pairwise_distances


def ball_members(real: Tensor, pool: Tensor, nearest_k: int = DEFAULT_NEAREST_K) -> Tensor:
    """Boolean ``[N real, M pool]``: which pool rows lie inside each real row's k-NN ball (among the real rows)."""
    radii = kth_neighbour_distances(real, nearest_k)
    return pairwise_distances(real, pool) < radii.unsqueeze(1)


def expected_coverage_of(members: Tensor, weights: Tensor, draws: int) -> Tensor:
    """Expected coverage of ``draws`` independent draws from ``weights`` over the pool: ``mean(1 - (1 - a)^draws)``.

    ``a`` is each real ball's weight, ``members.double() @ weights``.

    >>> members = torch.tensor([[True, False], [False, True]])
    >>> round(float(expected_coverage_of(members, torch.tensor([0.5, 0.5]), draws=2)), 4)  # each ball: 1 - 0.5^2
    0.75
    """
    ball_weight = members.double() @ weights.double()
    return (1.0 - (1.0 - ball_weight).clamp(min=0.0).pow(draws)).mean()


def coverage_weights(members: Tensor, draws: int, kl: float = 0.0, steps: int = 600, lr: float = 0.05) -> Tensor:
    """Weights over the pool that maximize :func:`expected_coverage_of` minus ``kl * KL(q || uniform)``.

    The objective is concave in the weights; Adam on softmax logits, started from uniform weights, climbs it.
    """
    if draws < 1 or kl < 0:
        raise ValueError(f"need draws >= 1 and kl >= 0, got draws={draws}, kl={kl}")
    logits = torch.zeros(members.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    uniform_log = -math.log(members.shape[1])
    for _ in range(steps):
        log_q = torch.log_softmax(logits, dim=0)
        q = log_q.exp()
        loss = -expected_coverage_of(members, q, draws) + kl * (q * (log_q - uniform_log)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.softmax(logits.detach(), dim=0)


def effective_share(weights: Tensor) -> float:
    """The effective sample size ``1 / sum q^2`` as a share of the pool: 1 for uniform weights."""
    return float(1.0 / weights.double().square().sum() / len(weights))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--pool", type=int, default=8000, help="samples per class to reweight: a multiple of 1,000")
    parser.add_argument("--draws", type=int, default=1000, help="samples per class scored, as the callbacks draw")
    parser.add_argument("--seed", type=int, default=0, help="of the pool's first 1,000 per class, and of the draws")
    parser.add_argument("--kl", type=float, nargs="+", default=[0.0],
                        help="penalties KL(q || uniform) of the training-balls rows, one row each")
    parser.add_argument("--steps", type=int, default=600, help="gradient steps of each fit")
    add_latent_scale_argument(parser)
    parser.add_argument("--train_k", type=int, default=DEFAULT_NEAREST_K,
                        help="k of the training split's balls (the evaluation split's stay at k = 5)")
    parser.add_argument("--train_draws", type=int, default=None,
                        help="draws the training-balls fit scores (default: the class's count of training digits)")
    parser.add_argument("--pool_cache", default=None,
                        help="a .pt file: the pool's features are read from it if it holds this --ckpt's pool of this "
                             "--pool, --seed and --latent_scale, else saved to it")
    args = parser.parse_args()
    if args.pool < 1000 or args.pool % 1000:
        parser.error(f"--pool takes a multiple of 1,000 (each 1,000 is one seed's draw), got {args.pool}")
    if args.draws < 1 or any(value < 0 for value in args.kl):
        parser.error(f"--draws must be >= 1 and every --kl >= 0, got {args.draws} and {args.kl}")
    if args.train_k < 1 or (args.train_draws is not None and args.train_draws < 1):
        parser.error(f"--train_k and --train_draws must be >= 1, got {args.train_k} and {args.train_draws}")

    data = MNISTDataModule(args.data_dir, download=False)
    extractor = ClassifierFeatures()
    (train_images, train_labels), (eval_images, eval_labels) = data.split("train"), data.split("test")
    train, real = extractor(normalize(train_images)), extractor(normalize(eval_images))
    model = load_generator(args.ckpt, args.latent_scale)
    source = {"ckpt": str(Path(args.ckpt).resolve()), "pool": args.pool, "seed": args.seed,
              "latent_scale": args.latent_scale}
    if args.pool_cache and Path(args.pool_cache).exists():
        cached = torch.load(args.pool_cache)
        held = cached.get("source") if isinstance(cached, dict) else "no pool of this script"
        if held != source:
            parser.error(f"--pool_cache {args.pool_cache} holds the pool of {held}, not of {source}: "
                         "name another file, or delete this one to sample the pool again")
        pool, pool_labels = cached["features"], cached["labels"]
    else:
        pool_sets = seeded_draws(model, extractor, args.pool // 1000, args.seed)
        pool, pool_labels = torch.cat([f for f, _ in pool_sets]), torch.cat([y for _, y in pool_sets])
        if args.pool_cache:
            torch.save({"source": source, "features": pool, "labels": pool_labels}, args.pool_cache)

    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for k in range(model.num_classes):
        class_pool, class_real = pool[pool_labels == k], real[eval_labels == k]
        class_train = train[train_labels == k]
        on_eval, on_train = ball_members(class_real, class_pool), ball_members(class_train, class_pool, args.train_k)
        fits = {"uniform": torch.full((len(class_pool),), 1.0 / len(class_pool), dtype=torch.float64)}
        train_draws = args.train_draws or len(class_train)
        for value in args.kl:
            fits[f"training balls, kl {value:g}"] = coverage_weights(on_train, train_draws, value, args.steps)
        fits["evaluation balls (bound)"] = coverage_weights(on_eval, args.draws, 0.0, args.steps)
        for name, weights in fits.items():
            draw_seed = torch.Generator().manual_seed(args.seed * 1000 + k)  # the same stream for every row
            drawn = class_pool[torch.multinomial(weights, args.draws, replacement=True, generator=draw_seed)]
            rows.setdefault(name, []).append((float(expected_coverage_of(on_eval, weights, args.draws)),
                                              float(covered(class_real, drawn).double().mean()),
                                              fid_terms(drawn, class_real)[0], effective_share(weights)))

    print(f"{args.pool:,} samples per class reweighted; {args.draws:,} drawn per class\n")
    print("| weights | " + " | ".join(f"class {k}" for k in range(model.num_classes))
          + " | worst (expected) | mean (expected) | one draw: worst | one draw: mean | one draw: FID"
          + " | effective share |")
    print("|---|" + "---:|" * (model.num_classes + 6))
    for name, per_class in rows.items():
        expected, drawn_cov, fid, share = (torch.tensor(column) for column in zip(*per_class, strict=True))
        cells = " | ".join(f"{value:.3f}" for value in expected.tolist())
        print(f"| {name} | {cells} | **{expected.min():.3f}** | {expected.mean():.3f} | {drawn_cov.min():.3f} | "
              f"{drawn_cov.mean():.3f} | {fid.mean():.2f} | {share.mean():.2f} |")


if __name__ == "__main__":
    main()
