"""Sampling with wider latents and rejection by D's own class head: what it does to the evidence (not a test).

Scores a checkpoint's generator (EMA weights when it keeps them) with the evidence bundle (``PerClassFID``,
``SampleQuality`` and ``ClassificationAccuracyScore``, as ``benchmarks/quality_runs.py`` runs them after the last
epoch) through ``Trainer.validate``, with the model loaded with ``sample_latent_scale=--latent_scale`` and
``sample_min_class_prob=--min_prob`` (``ConditionalGAN``'s sampling options, :mod:`cgan_lightning.sampling`).
Prints the scores and the share of first draws that were redrawn.

``--candidates K`` (a probe, not a model option) also picks each sample among K candidates, its latent and K - 1
fixed permutations of it, with probability proportional to ``exp(score / --temperature)``, the score being D's
adversarial logit (``--score adv``) or its frozen-feature critic's alone (``--score critic``): sampling-importance
resampling with D's score, as in discriminator rejection sampling (Azadi et al. 2019) without its calibration.

``--langevin_steps N`` (a probe) moves each first draw's latent by N steps of Langevin dynamics on the energy
``|z|^2 / (2 s^2) - d(G(z), y)`` (``s`` the latent scale, ``d`` D's adversarial logit, with its frozen-feature critic):
discriminator-driven latent sampling (Che et al. 2020), whose stationary distribution is G's tilted by
``exp(d)``, i.e. towards what D judges real, before the class head's redraws. ``--langevin_step`` is the step size
``eps`` (``z += eps / 2 * -grad E + sqrt(eps) * noise``; the noise seeded by the batch's latents).

``--neighbour_ratio W`` (a probe; needs ``--tilt_temperature``) adds ``W * (log r_G - log r_train)`` to the tilt's
Gaussian log-ratio of each candidate: ``r_G`` the distance to its 5th nearest among G's calibration samples of its
class, ``r_train`` to its 3rd nearest training digit of its class, both in the tilt's projected critic features. A
k-NN density-ratio estimate (density falls as the k-th distance to the power of the dimension grows): it favours
candidates near training digits that G draws too rarely, which a Gaussian cannot see. ``--sharpen S`` (a probe; needs
``--tilt_temperature``, with or without ``--neighbour_ratio``) adds ``-S * log r_train`` too: ``S > 0`` favours
candidates where the training digits lie densely (a target sharper than the training split's density), ``S < 0``
where they lie sparsely (a flatter one).

``--standing_stats N`` (a probe) first recomputes the sampled generator's BatchNorm running statistics from N batches
of 64 of its own samples (N(0, I) latents, uniform labels), instead of the live G's that the EMA copies ("standing
statistics", Brock et al. 2019).

    python benchmarks/rejection_sampling.py --ckpt runs/mnist/lightning_logs/version_0/checkpoints/last.ckpt \
        --data_dir ../shared/data --latent_scale 1.1 --min_prob 0.7
    python benchmarks/rejection_sampling.py --ckpt ... --data_dir ../shared/data --candidates 4 --temperature 1
    python benchmarks/rejection_sampling.py --ckpt ... --data_dir ../shared/data --latent_scale 1.1 --min_prob 0.7 \
        --standing_stats 200
    python benchmarks/rejection_sampling.py --ckpt ... --data_dir ../shared/data --latent_scale 1.05 --min_prob 0.7 \
        --langevin_steps 20 --langevin_step 0.05
    python benchmarks/rejection_sampling.py --ckpt ... --data_dir ../shared/data --latent_scale 1.05 --min_prob 0.7 \
        --tilt_temperature 6 --tilt_candidates 4 --neighbour_ratio 96 --sharpen 32
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable

import torch
from fid_terms import add_generator_arguments
from lightning.pytorch import Trainer, seed_everything

from cgan_lightning import ConditionalGAN, MNISTDataModule, SamplerModule
from cgan_lightning.callbacks import ClassificationAccuracyScore, PerClassFID, SampleQuality
from cgan_lightning.data.mnist import normalize
from cgan_lightning.feature_tilt import FeatureTilt
from cgan_lightning.utilities.eval_mode import eval_mode


@torch.no_grad()
def recompute_norm_statistics(model: ConditionalGAN, batches: int, batch_size: int = 64) -> None:
    """Replace the sampled generator's BatchNorm running statistics by their average over its own samples."""
    network = model.generator_ema.module if model.generator_ema is not None else model.generator
    norms = [m for m in network.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        raise ValueError("--standing_stats recomputes BatchNorm running statistics, and this generator keeps none")
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over all the batches below
    rng = torch.Generator().manual_seed(0)
    was_training = network.training
    network.train()  # batch statistics, accumulated into the running ones
    try:
        for _ in range(batches):
            z = torch.randn(batch_size, model.latent_dim, generator=rng)
            network(z, torch.randint(0, model.num_classes, (batch_size,), generator=rng))
    finally:
        network.train(was_training)


class NeighbourRatioTilt(FeatureTilt):
    """:class:`FeatureTilt` whose log-ratio adds ``weight * (log r_G - log r_train) - sharpen * log r_train``.

    The first term is a k-NN density-ratio estimate, the second a k-NN estimate of the training split's log-density.
    ``r_G``: the distance of a candidate to its ``k_generated``-th nearest calibration sample of G in its class,
    ``r_train``: to its ``k_real``-th nearest training digit, both in the class's projected features.
    """

    def __init__(self, num_classes: int, weight: float, k_generated: int = 5, k_real: int = 3,
                 sharpen: float = 0.0) -> None:
        super().__init__(num_classes)
        self.weight, self.k_generated, self.k_real, self.sharpen = weight, k_generated, k_real, sharpen
        self.real_rows: list[torch.Tensor] = []
        self.generated_rows: list[torch.Tensor] = []

    def _projected_per_class(self, features: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        per_class = self._per_class(features, labels, "images", minimum=1)  # checked more strictly by the fits
        return [self._project(rows, c, self._fitted_real()) for c, rows in enumerate(per_class)]

    def fit_real(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        super().fit_real(features, labels)
        self.real_rows = self._projected_per_class(features, labels)

    def fit_generated(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        super().fit_generated(features, labels)
        self.generated_rows = self._projected_per_class(features, labels)

    def log_ratio(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = super().log_ratio(features, labels).double()
        features, labels = features.detach().cpu().double(), labels.cpu()
        for c in labels.unique().tolist():
            rows = labels == c
            x = self._project(features[rows], c, self._fitted_real())
            r_generated = torch.cdist(x, self.generated_rows[c]).kthvalue(self.k_generated, dim=1).values
            log_r_real = torch.cdist(x, self.real_rows[c]).kthvalue(self.k_real, dim=1).values.log()
            out[rows] += self.weight * (r_generated.log() - log_r_real) - self.sharpen * log_r_real
        return out.float()


#: What a probe does with a batch's first draws: ``(labels, z, ema) -> images``.
FirstDraws = Callable[[torch.Tensor, torch.Tensor, "bool | None"], torch.Tensor]


def wrap_first_draws(model: ConditionalGAN, draw: FirstDraws) -> Callable[..., torch.Tensor]:
    """A stand-in for ``model.sample`` that hands the first draws (labels, latents) to ``draw``.

    The interference and traversal grids (``redraw=False``) keep ``model.sample``'s fixed latents untouched.
    """
    sample = model.sample

    def wrapped(labels: torch.Tensor, z: torch.Tensor | None = None, generator: torch.Generator | None = None,
                ema: bool | None = None, redraw: bool = True) -> torch.Tensor:
        if not redraw:
            return sample(labels, z=z, generator=generator, ema=ema, redraw=False)
        labels = torch.as_tensor(labels)
        return draw(labels, model.draw_latents(labels.numel(), generator) if z is None else z, ema)

    return wrapped


def latent_seeded_generator(z: torch.Tensor) -> torch.Generator:
    """A random stream seeded by a batch's latents: the same latents get the same noise (reproducible samples)."""
    return torch.Generator().manual_seed(int((z[:, :4].abs().sum() * 1e6).item()) % (2**31))


def resample_by_score(model: ConditionalGAN, candidates: int, temperature: float, score: str,
                      first_scores: list[torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``model.sample`` picking each image among ``candidates`` by D's score; ``first_scores`` gets the first draws'."""
    sample, discriminator = model.sample, model.discriminator
    permutations = [torch.randperm(model.latent_dim, generator=torch.Generator().manual_seed(100 + i))
                    for i in range(candidates - 1)]

    def scored(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), eval_mode(discriminator):
            if score == "critic":
                return discriminator.feature_critic(images, labels)
            return discriminator(images, labels)

    def resampled(labels: torch.Tensor, z: torch.Tensor, ema: bool | None) -> torch.Tensor:
        redraw_doubted = model.sample_min_class_prob > 0
        images = torch.stack([sample(labels, z=z if p is None else z[:, p], ema=ema, redraw=redraw_doubted)
                              for p in [None, *permutations]], dim=1)  # [B, K, C, H, W]
        scores = torch.stack([scored(images[:, k], labels) for k in range(candidates)], dim=1)  # [B, K]
        first_scores.append(scores[:, 0])
        # Gumbel-max: a draw proportional to exp(score / T), its noise seeded by the batch's latents (reproducible)
        gumbel = -torch.log(-torch.log(torch.rand(scores.shape, generator=latent_seeded_generator(z)).clamp_min(1e-12)))
        pick = (scores / temperature + gumbel).argmax(dim=1)
        return images[torch.arange(len(pick)), pick]

    return wrap_first_draws(model, resampled)


def langevin_energy_gradient(model: ConditionalGAN, z: torch.Tensor, labels: torch.Tensor, scale: float,
                              ema: bool | None = None) -> torch.Tensor:
    """``grad_z E`` for ``E(z) = |z|^2 / (2 scale^2) - d(G(z), y)``, D and G in eval mode, no weight touched."""
    network = model.generator_ema.module if model.generator_ema is not None and ema is not False else model.generator
    # Trainer.validate runs the callbacks under inference mode, which enable_grad alone does not lift.
    with torch.inference_mode(False), torch.enable_grad(), eval_mode(network), eval_mode(model.discriminator):
        z, labels = z.detach().clone().requires_grad_(True), labels.clone()
        logits = model.discriminator(network(z, labels), labels)
        (grad,) = torch.autograd.grad(logits.sum(), z)
    return z.detach() / scale**2 - grad


def langevin_refined(model: ConditionalGAN, steps: int, step_size: float) -> Callable[..., torch.Tensor]:
    """``model.sample`` whose first draws' latents first take ``steps`` Langevin steps on D's energy."""
    sample, scale = model.sample, model.sample_latent_scale

    def refined(labels: torch.Tensor, z: torch.Tensor, ema: bool | None) -> torch.Tensor:
        scaled = z * scale  # sample() scales its latents: refine in that space, hand back unscaled
        rng = latent_seeded_generator(z)
        for _ in range(steps):
            noise = torch.randn(scaled.shape, generator=rng)
            scaled = scaled - step_size / 2 * langevin_energy_gradient(model, scaled, labels, scale, ema) \
                + step_size**0.5 * noise
        return sample(labels, z=scaled / scale, ema=ema, redraw=True)

    return wrap_first_draws(model, refined)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_generator_arguments(parser)  # --ckpt, --data_dir, --samples_per_class, --seed, --latent_scale
    parser.set_defaults(latent_scale=1.0)  # like --min_prob, in place of the checkpoint's own: plain by default
    parser.add_argument("--min_prob", type=float, default=0.0, help="redraw under this class-head probability")
    parser.add_argument("--tilt_temperature", type=float, default=0.0,
                        help="ConditionalGAN's sample_tilt_temperature (0: off); a checkpoint without the tilt's "
                             "training statistics gets them fitted on --data_dir's training split")
    parser.add_argument("--tilt_candidates", type=int, default=4, help="ConditionalGAN's sample_tilt_candidates")
    parser.add_argument("--neighbour_ratio", type=float, default=0.0,
                        help="add this weight times a k-NN density-ratio term to the tilt's log-ratio (probe; 0: off)")
    parser.add_argument("--sharpen", type=float, default=0.0,
                        help="add -S * log r_train to the tilt's log-ratio: > 0 favours dense training regions, < 0 "
                             "sparse ones (probe; 0: off)")
    parser.add_argument("--candidates", type=int, default=1, help="resample among this many by D's score (probe)")
    parser.add_argument("--temperature", type=float, default=1.0, help="of the resampling: exp(score / T)")
    parser.add_argument("--score", choices=["adv", "critic"], default="adv",
                        help="D's adversarial logit, or its frozen-feature critic's alone")
    parser.add_argument("--standing_stats", type=int, default=0,
                        help="recompute G's BatchNorm statistics from this many batches of its samples (probe)")
    parser.add_argument("--langevin_steps", type=int, default=0,
                        help="Langevin steps on D's energy for each first draw's latent (probe; 0: off)")
    parser.add_argument("--langevin_step", type=float, default=0.01, help="the Langevin step size eps")
    args = parser.parse_args()
    if args.langevin_steps < 0 or args.langevin_step <= 0:
        parser.error(f"--langevin_steps must be >= 0 and --langevin_step > 0, got {args.langevin_steps} and "
                     f"{args.langevin_step}")
    if args.langevin_steps > 0 and args.candidates > 1:
        parser.error("--langevin_steps and --candidates are two probes of the sampling: give one of them")
    if args.candidates < 1 or args.temperature <= 0:
        parser.error(f"--candidates must be >= 1 and --temperature > 0, got {args.candidates} and {args.temperature}")
    if args.neighbour_ratio < 0 or (args.neighbour_ratio > 0 and args.tilt_temperature <= 0):
        parser.error(f"--neighbour_ratio adds a term to the tilt's log-ratio: give a weight >= 0 and "
                     f"--tilt_temperature > 0, got {args.neighbour_ratio} and {args.tilt_temperature}")
    if args.sharpen != 0 and args.tilt_temperature <= 0:
        parser.error(f"--sharpen adds a term to the tilt's log-ratio: give --tilt_temperature > 0 too, got "
                     f"{args.tilt_temperature}")
    if args.standing_stats < 0:
        parser.error(f"--standing_stats must be >= 0 (0: off), got {args.standing_stats}")

    seed_everything(0)
    try:
        model = ConditionalGAN.load_from_checkpoint(
            args.ckpt, map_location="cpu", sample_latent_scale=args.latent_scale, sample_min_class_prob=args.min_prob,
            sample_tilt_temperature=args.tilt_temperature, sample_tilt_candidates=args.tilt_candidates)
    except ValueError as error:
        parser.error(str(error))
    if args.neighbour_ratio > 0 or args.sharpen != 0:  # the training statistics are refitted below, as the checkpoint's
        model.sample_tilt = NeighbourRatioTilt(model.num_classes, args.neighbour_ratio, sharpen=args.sharpen)
    if model.sample_tilt is not None and model.sample_tilt.real is None:
        train_images, train_labels = MNISTDataModule(args.data_dir, download=False).split("train")
        model.fit_sample_tilt(normalize(train_images), train_labels)
    if args.score == "critic" and getattr(model.discriminator, "feature_critic", None) is None:
        parser.error("--score critic needs a discriminator with a frozen-feature critic (feature_critic: mnist)")
    if args.standing_stats > 0:
        try:
            recompute_norm_statistics(model, args.standing_stats)
        except ValueError as error:
            parser.error(str(error))
    first_scores: list[torch.Tensor] = []
    if args.candidates > 1:
        model.sample = resample_by_score(model, args.candidates, args.temperature, args.score,  # type: ignore[method-assign]
                                         first_scores)
    if args.langevin_steps > 0:
        model.sample = langevin_refined(model, args.langevin_steps, args.langevin_step)  # type: ignore[method-assign]
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
    print(f"| FID mean | FID worst | accuracy | CAS (real {scores['val/cas/real']:.3f}) | coverage worst "
          "| coverage mean | precision | recall | redrawn |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {scores['val/fid/mean']:.2f} | {scores['val/fid/worst']:.2f} | {scores['val/acc/mean']:.4f} | "
          f"{scores['val/cas/mean']:.3f} | {min(coverage):.3f} | {sum(coverage) / len(coverage):.3f} | "
          f"{scores['val/precision/mean']:.3f} | {scores['val/recall/mean']:.3f} | "
          f"{model.sample_redraws['redrawn'] / max(model.sample_redraws['drawn'], 1):.1%} |")
    if first_scores:
        first = torch.cat(first_scores)
        print(f"D's score of the first draws: mean {first.mean():.2f}, standard deviation {first.std():.2f}")


if __name__ == "__main__":
    main()
