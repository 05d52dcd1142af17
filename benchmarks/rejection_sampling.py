"""Sampling with wider latents and rejection by D's own class head: what it does to the evidence (not a test).

Scores a checkpoint's generator (EMA weights when it keeps them) with the evidence bundle (``PerClassFID``,
``SampleQuality`` and ``ClassificationAccuracyScore``, as ``benchmarks/quality_runs.py`` runs them after the last
epoch) through ``Trainer.validate``, drawing every sample with latents ``--latent_scale`` times wider than N(0, I).
With ``--rule prob``, a sample to which the discriminator's auxiliary class head (``ACGANDiscriminator``) gives
its label a probability under ``--min_prob`` is redrawn from a fixed permutation of its latent, up to ``--tries``
times; with ``--rule argmax``, a sample whose label the head does not pick. A sample still depends only on its
``(z, label)``, as the callbacks require. Prints the scores and the share of first draws that were redrawn.

    python benchmarks/rejection_sampling.py --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt \
        --data_dir ../shared/data --latent_scale 1.1 --min_prob 0.7
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence

import torch
from fid_terms import add_generator_arguments
from lightning.pytorch import Trainer, seed_everything
from torch import Tensor

from cgan_lightning import ConditionalGAN, MNISTDataModule, SamplerModule
from cgan_lightning.callbacks import ClassificationAccuracyScore, PerClassFID, SampleQuality
from cgan_lightning.nn.dcgan import ACGANDiscriminator
from cgan_lightning.utilities.argument_checks import as_label_tensor


class HeadRejectionSampler:
    """``model.sample`` with wider latents, redrawing the samples D's class head doubts (see the module docstring)."""

    def __init__(self, model: ConditionalGAN, latent_scale: float, rule: str, min_prob: float, tries: int) -> None:
        if not isinstance(model.discriminator, ACGANDiscriminator):
            raise SystemExit(f"rejection needs D's class head: the checkpoint's D is a "
                             f"{type(model.discriminator).__name__}, not an ACGANDiscriminator")
        self.model, self.latent_scale, self.rule, self.min_prob = model.eval(), latent_scale, rule, min_prob
        self.num_classes, self.latent_dim, self.image_shape = model.num_classes, model.latent_dim, model.image_shape
        permutations = torch.Generator().manual_seed(1234)
        self.permutations = [torch.randperm(model.latent_dim, generator=permutations) for _ in range(tries)]
        self.first_draws = self.redrawn = 0

    def _doubted(self, images: Tensor, labels: Tensor) -> Tensor:
        discriminator = self.model.discriminator
        _, features = discriminator._judge(images, labels)  # the features both of D's heads read
        class_logits = discriminator.classifier(features)
        if self.rule == "argmax":
            return class_logits.argmax(dim=1) != labels
        return class_logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1) < self.min_prob

    @torch.no_grad()
    def sample(self, labels: Tensor | Sequence[int] | int, z: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        labels = as_label_tensor(labels, self.num_classes, device=self.model.device)
        if z is None:
            z = self.model.draw_latents(labels.numel(), generator)
        z = z.to(self.model.device) * self.latent_scale
        images = self.model.sample(labels, z=z)
        doubted = self._doubted(images, labels)
        self.first_draws += labels.numel()
        self.redrawn += int(doubted.sum())
        for permutation in self.permutations:
            rows = doubted.nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            images[rows] = self.model.sample(labels[rows], z=z[rows][:, permutation])
            doubted[rows] = self._doubted(images[rows], labels[rows])
        return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_generator_arguments(parser)  # --ckpt, --data_dir, --samples_per_class, --seed, --latent_scale
    parser.add_argument("--rule", choices=("prob", "argmax"), default="prob")
    parser.add_argument("--min_prob", type=float, default=0.0, help="--rule prob: redraw under this probability")
    parser.add_argument("--tries", type=int, default=3, help="redraws per sample at most")
    args = parser.parse_args()
    if args.latent_scale <= 0 or not 0 <= args.min_prob < 1 or args.tries < 0:
        parser.error("--latent_scale must be > 0, --min_prob in [0, 1) and --tries >= 0")

    seed_everything(0)
    model = ConditionalGAN.load_from_checkpoint(args.ckpt, map_location="cpu")
    sampler = HeadRejectionSampler(model, args.latent_scale, args.rule, args.min_prob, args.tries)
    callbacks = [PerClassFID(samples_per_class=args.samples_per_class, seed=args.seed),
                 SampleQuality(samples_per_class=args.samples_per_class, seed=args.seed, nearest_k=5),
                 ClassificationAccuracyScore(epochs=3)]
    with tempfile.TemporaryDirectory() as root:  # SampleQuality's closest-pairs PNG goes there
        trainer = Trainer(callbacks=callbacks, logger=False, default_root_dir=root, enable_progress_bar=False,
                          enable_model_summary=False, limit_val_batches=1)
        trainer.validate(SamplerModule(sampler), datamodule=MNISTDataModule(args.data_dir, download=False),
                         verbose=False)
    scores = {key: float(value) for key, value in trainer.callback_metrics.items()}
    coverage = [value for key, value in scores.items() if key.startswith("val/coverage/class_")]
    print(f"| FID mean | accuracy | CAS (real {scores['val/cas/real']:.3f}) | coverage worst | precision | recall "
          "| redrawn |\n|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {scores['val/fid/mean']:.2f} | {scores['val/acc/mean']:.4f} | {scores['val/cas/mean']:.3f} | "
          f"{min(coverage):.3f} | {scores['val/precision/mean']:.3f} | {scores['val/recall/mean']:.3f} | "
          f"{sampler.redrawn / max(sampler.first_draws, 1):.1%} |")


if __name__ == "__main__":
    main()
