"""Where a per-class FID comes from: the mean term, the covariance term and the spread of the samples.

FID = ||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2)). The first term says the generated class sits in the wrong
place of the classifier's feature space (a style shift); the second that its shape is wrong. The spread ratio
Tr(S_g) / Tr(S_r) tells the common case of the second apart: below 1, the generated digits of the class vary less
than real ones (missing variety, as a low recall says); above 1, more.

Scores a checkpoint's generator (EMA weights when it keeps them; ``--raw`` for the raw ones) against the real
evaluation split, class by class, in the shipped classifier's feature space, on the same samples as ``PerClassFID``
(``--samples_per_class`` per class drawn from ``--seed``; ``--latent_scale`` samples with latents that many times
N(0, I) in place of the checkpoint's own ``sample_latent_scale``), and the real training split the same way as the
floor. ``--against train`` scores both against the training split instead (the floor columns: the evaluation split
against the training split). Ends with the classifier's accuracy on the samples (``acc/mean``).

    python benchmarks/fid_terms.py --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt \
        --data_dir ../shared/data
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torchmetrics.image.fid import _compute_fid

from cgan_lightning import ConditionalGAN
from cgan_lightning.data.mnist import MNISTDataModule, normalize
from cgan_lightning.metrics.features import ClassifierFeatures
from cgan_lightning.metrics.sampling import class_balanced_latents


def fid_terms(generated: Tensor, real: Tensor) -> tuple[float, float, float, float]:
    """(FID, mean term, covariance term, spread ratio) of two feature sets ``[N, D]``, in float64."""
    g, r = generated.double(), real.double()
    mu_g, mu_r, cov_g, cov_r = g.mean(0), r.mean(0), torch.cov(g.T), torch.cov(r.T)
    fid = float(_compute_fid(mu_g, cov_g, mu_r, cov_r))
    mean_term = float((mu_g - mu_r).square().sum())
    return fid, mean_term, fid - mean_term, float(cov_g.trace() / cov_r.trace())


def mean_class_fid(features: Tensor, labels: Tensor, real: Tensor, real_labels: Tensor) -> float:
    """The mean over classes of each class's FID against its own real features (``fid/mean``)."""
    classes = real_labels.unique().tolist()
    return sum(fid_terms(features[labels == k], real[real_labels == k])[0] for k in classes) / len(classes)


def load_generator(ckpt: str, latent_scale: float | None = None) -> ConditionalGAN:
    """A checkpoint's model on the CPU, sampling with latents ``latent_scale`` times N(0, I) (``None``: its own)."""
    scale = {} if latent_scale is None else {"sample_latent_scale": latent_scale}
    return ConditionalGAN.load_from_checkpoint(ckpt, map_location="cpu", **scale)


def quasi_random_latents(num_classes: int, per_class: int, latent_dim: int, seed: int) -> tuple[Tensor, Tensor]:
    """As :func:`class_balanced_latents`, but each class's latents are a scrambled Sobol sequence mapped through the
    normal's inverse CDF: N(0, I) in each entry, spread more evenly over the latent space than independent draws.

    >>> z, labels = quasi_random_latents(2, 4, 3, seed=0)
    >>> tuple(z.shape), labels.tolist()
    ((8, 3), [0, 0, 0, 0, 1, 1, 1, 1])
    """
    if per_class < 1:
        raise ValueError(f"samples per class must be >= 1, got {per_class}")
    latents = []
    for label in range(num_classes):
        engine = torch.quasirandom.SobolEngine(latent_dim, scramble=True, seed=seed * num_classes + label)
        uniform = engine.draw(per_class, dtype=torch.float64).clamp(1e-7, 1 - 1e-7)  # ndtri(0) is -inf
        latents.append(torch.special.ndtri(uniform).float())
    return torch.cat(latents), torch.arange(num_classes).repeat_interleave(per_class)


def generated_images(model: ConditionalGAN, samples_per_class: int, seed: int,
                     raw: bool = False, quasi_random: bool = False) -> tuple[Tensor, Tensor]:
    """``PerClassFID``'s samples: ``samples_per_class`` per class from ``seed``, with G's EMA weights unless ``raw``.

    They are drawn as ``model.sample`` draws, with the model's own sampling options (its latent scale and rejection).
    ``quasi_random`` draws the first latents from :func:`quasi_random_latents` instead (other samples than the
    callbacks').
    """
    draw_latents = quasi_random_latents if quasi_random else class_balanced_latents
    z, labels = draw_latents(model.num_classes, samples_per_class, model.latent_dim, seed)
    ema = False if raw else None  # None: the EMA weights when the model keeps them
    images = torch.cat([model.sample(labels[i : i + 1000], z=z[i : i + 1000], ema=ema)
                        for i in range(0, len(labels), 1000)])
    return images, labels


@dataclass
class ScoredGenerator:
    """A checkpoint's samples and the real splits, in the shipped classifier's feature space."""

    model: ConditionalGAN
    generated: Tensor  # features [N, D] of the samples
    generated_logits: Tensor
    labels: Tensor  # the samples' labels
    train: Tensor
    train_labels: Tensor
    eval: Tensor
    eval_labels: Tensor


def seeded_draws(model: ConditionalGAN, extractor: Callable[[Tensor], Tensor], draws: int, seed: int,
                 quasi_random: bool = False) -> list[tuple[Tensor, Tensor]]:
    """``draws`` sets of ``PerClassFID``'s 1,000 samples per class, from seeds ``seed``, ``seed + 1``, ...: each set's
    features and labels."""
    sets = (generated_images(model, 1000, seed + offset, quasi_random=quasi_random) for offset in range(draws))
    return [(extractor(images), labels) for images, labels in sets]


def positive_latent_scale(text: str) -> float:
    """``--latent_scale``'s type: a number above 0 (argparse reports the refusal as the argument's error)."""
    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (1: latents as trained), got {text!r}") from None
    if not scale > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be > 0 (1: latents as trained), got {scale}")
    return scale


def add_latent_scale_argument(parser: argparse.ArgumentParser) -> None:
    """``--latent_scale``: sample with latents that many times N(0, I) instead of the checkpoint's own scale."""
    parser.add_argument("--latent_scale", type=positive_latent_scale, default=None,
                        help="sample with latents this many times N(0, I) (default: the checkpoint's own scale)")


def add_generator_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint, data and sampling arguments of the benchmarks that score one generator."""
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--samples_per_class", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    add_latent_scale_argument(parser)


@torch.no_grad()
def score_generator(args: argparse.Namespace, raw: bool = False) -> ScoredGenerator:
    """Load ``args.ckpt``, draw ``PerClassFID``'s samples and extract their features and the real splits'."""
    model = load_generator(args.ckpt, args.latent_scale)
    data = MNISTDataModule(args.data_dir, download=False)
    extractor = ClassifierFeatures()  # splits large batches into cache-sized chunks itself
    (train_images, train_labels), (eval_images, eval_labels) = data.split("train"), data.split("test")
    generated, labels = generated_images(model, args.samples_per_class, args.seed, raw=raw)
    generated_f, logits = extractor.features_and_logits(generated)
    return ScoredGenerator(model, generated_f, logits, labels, extractor(normalize(train_images)), train_labels,
                           extractor(normalize(eval_images)), eval_labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_generator_arguments(parser)
    parser.add_argument("--raw", action="store_true", help="score G's raw weights instead of its EMA")
    parser.add_argument("--against", choices=("eval", "train"), default="eval",
                        help="the real split the samples are scored against (the floor: the other split against it)")
    args = parser.parse_args()
    run = score_generator(args, raw=args.raw)
    if args.against == "train":
        run.eval, run.eval_labels, run.train, run.train_labels = run.train, run.train_labels, run.eval, run.eval_labels

    print("| class | FID | mean term | covariance term | spread ratio | floor FID | floor mean | floor covariance "
          "| floor spread |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for k in range(run.model.num_classes):
        real, generated, train = (run.eval[run.eval_labels == k], run.generated[run.labels == k],
                                  run.train[run.train_labels == k])
        rows.append((*fid_terms(generated, real), *fid_terms(train, real)))
        print(f"| {k} | " + " | ".join(f"{value:.2f}" for value in rows[-1]) + " |")
    means = torch.tensor(rows).mean(0).tolist()
    print("| mean | " + " | ".join(f"**{value:.2f}**" for value in means) + " |")
    accuracy = float((run.generated_logits.argmax(dim=1) == run.labels).double().mean())
    print(f"\nThe shipped classifier's accuracy on the generated samples: {accuracy:.4f}")


if __name__ == "__main__":
    main()
