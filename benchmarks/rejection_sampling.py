"""Sampling with wider latents and rejection by D's own class head: what it does to the evidence (not a test).

Scores a checkpoint's generator (EMA weights when it keeps them) with the evidence bundle (``PerClassFID``,
``SampleQuality`` and ``ClassificationAccuracyScore``, as ``benchmarks/quality_runs.py`` runs them after the last
epoch) through ``Trainer.validate``, with the model loaded with ``sample_latent_scale=--latent_scale`` and
``sample_min_class_prob=--min_prob`` (``ConditionalGAN``'s sampling options, :mod:`cgan_lightning.sampling`).
Prints the scores and the share of first draws that were redrawn.

    python benchmarks/rejection_sampling.py --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt \
        --data_dir ../shared/data --latent_scale 1.1 --min_prob 0.7
"""

from __future__ import annotations

import argparse
import tempfile

from fid_terms import add_generator_arguments
from lightning.pytorch import Trainer, seed_everything

from cgan_lightning import ConditionalGAN, MNISTDataModule, SamplerModule
from cgan_lightning.callbacks import ClassificationAccuracyScore, PerClassFID, SampleQuality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_generator_arguments(parser)  # --ckpt, --data_dir, --samples_per_class, --seed, --latent_scale
    parser.add_argument("--min_prob", type=float, default=0.0, help="redraw under this class-head probability")
    args = parser.parse_args()

    seed_everything(0)
    model = ConditionalGAN.load_from_checkpoint(args.ckpt, map_location="cpu", sample_latent_scale=args.latent_scale,
                                                sample_min_class_prob=args.min_prob)
    callbacks = [PerClassFID(samples_per_class=args.samples_per_class, seed=args.seed),
                 SampleQuality(samples_per_class=args.samples_per_class, seed=args.seed, nearest_k=5),
                 ClassificationAccuracyScore(epochs=3)]
    with tempfile.TemporaryDirectory() as root:  # SampleQuality's closest-pairs PNG goes there
        trainer = Trainer(callbacks=callbacks, logger=False, default_root_dir=root, enable_progress_bar=False,
                          enable_model_summary=False, limit_val_batches=1)
        trainer.validate(SamplerModule(model.eval()), datamodule=MNISTDataModule(args.data_dir, download=False),
                         verbose=False)
    scores = {key: float(value) for key, value in trainer.callback_metrics.items()}
    coverage = [value for key, value in scores.items() if key.startswith("val/coverage/class_")]
    print(f"| FID mean | FID worst | accuracy | CAS (real {scores['val/cas/real']:.3f}) | coverage worst | precision "
          "| recall | redrawn |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {scores['val/fid/mean']:.2f} | {scores['val/fid/worst']:.2f} | {scores['val/acc/mean']:.4f} | "
          f"{scores['val/cas/mean']:.3f} | "
          f"{min(coverage):.3f} | {scores['val/precision/mean']:.3f} | {scores['val/recall/mean']:.3f} | "
          f"{model.sample_redraws['redrawn'] / max(model.sample_redraws['drawn'], 1):.1%} |")


if __name__ == "__main__":
    main()
