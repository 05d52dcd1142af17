"""Training probes of docs/evidence.md that are not model options: callbacks added on the command line (not a test).

Each changes what one training run does, to measure an idea on the quality target before (or instead of) making it
an option. They reach into the model's private methods, so they are tied to this version of ``ConditionalGAN`` and
are not part of the library. Add one to a run with ``PYTHONPATH=benchmarks``:

    PYTHONPATH=benchmarks python benchmarks/quality_runs.py --variants --seeds 42 --jobs 2 --no_seed_loop \
        --variant "imle2=--config examples/mnist.yaml \
'--trainer.callbacks+={class_path: probe_callbacks.IMLECoverage, init_args: {weight: 2.0}}'"

- :class:`RealAffine`: small random affine deformations of the real training digits (not of the generated ones);
- :class:`IMLECoverage`: an IMLE term on G (Li & Malik 2018) in the frozen critic's features;
- :class:`FeatureModeSeeking`: the mode-seeking term measured in the frozen critic's features instead of pixels;
- :class:`MomentMatching`: per-class feature means and spreads of G's digits matched to the training digits';
- :class:`ConsistencyRegularization`: D's logits made the same on a digit and on a shifted copy of it (bCR);
- :class:`TopKGenerator`: G's adversarial term over the generated digits D scores highest only (top-k training);
- :class:`DiscriminatorDropout`: dropout on D's shared features, before its adversarial, projection and class heads.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from cgan_lightning.data.in_memory import normalize
from cgan_lightning.lr_decay import planned_training_batches
from cgan_lightning.nn.augment import translation
from cgan_lightning.nn.class_moments import ClassMomentMatching, class_covariance_terms, class_moment_terms
from cgan_lightning.nn.feature_critic import FrozenFeatureCritic, load_critic_features


def _critic(pl_module: LightningModule) -> FrozenFeatureCritic:
    critic = getattr(pl_module.discriminator, "feature_critic", None)
    if critic is None:
        raise ValueError("this probe needs a discriminator with a frozen-feature critic (feature_critic: mnist)")
    return critic


class RealAffine(Callback):
    """Deforms a share ``p`` of each real batch in place, before the training step, by a random affine map.

    Rotation within ``±degrees``, scale within ``1 ± scale``, shear within ``±shear``, shift within ``±translate``
    pixels, each uniform; bilinear resampling, the border's value outside. G then learns the widened distribution:
    the question is whether its variety gains more than its fidelity loses.
    """

    def __init__(self, p: float = 0.5, degrees: float = 8.0, scale: float = 0.08, shear: float = 0.1,
                 translate: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0 or min(degrees, scale, shear, translate) < 0:
            raise ValueError("RealAffine needs 0 <= p <= 1 and non-negative ranges, got "
                             f"p={p}, degrees={degrees}, scale={scale}, shear={shear}, translate={translate}")
        self.p, self.degrees, self.scale, self.shear, self.translate = p, degrees, scale, shear, translate
        self.generator: torch.Generator | None = None

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        images: Tensor = batch[0]  # a fresh tensor per batch (the in-memory loader normalizes a copy)
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(1234 + trainer.global_rank)
        n, g = images.size(0), self.generator

        def uniform() -> Tensor:  # in [-1, 1)
            return torch.rand(n, generator=g) * 2 - 1

        angle = uniform() * math.radians(self.degrees)
        s = 1 + uniform() * self.scale
        sh = uniform() * self.shear
        step = self.translate * 2 / images.size(-1)  # pixels in affine_grid's [-1, 1] coordinates
        tx, ty = uniform() * step, uniform() * step
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(n, 2, 3)  # output -> input coordinates: rotation times shear, over the scale
        theta[:, 0, 0] = cos / s
        theta[:, 0, 1] = (-sin + sh * cos) / s
        theta[:, 1, 0] = sin / s
        theta[:, 1, 1] = (cos + sh * sin) / s
        theta[:, 0, 2], theta[:, 1, 2] = tx, ty
        chosen = torch.rand(n, generator=g) < self.p
        if not chosen.any():
            return
        x = images[chosen]
        grid = F.affine_grid(theta[chosen].to(x), list(x.shape), align_corners=False)
        images[chosen] = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class IMLECoverage(Callback):
    """Adds ``weight`` times an IMLE term to G's loss on the first G step of each batch.

    For each real digit of the batch, ``k`` digits generated with its label (one extra G forward of ``k`` times the
    batch); the nearest of them in the frozen critic's last conv block is pulled towards it. The distance is the
    mean squared feature difference over the real features' mean square. Aims at coverage: every real digit gets a
    generated neighbour.
    """

    def __init__(self, weight: float = 0.5, k: int = 4) -> None:
        if weight < 0 or k < 1:
            raise ValueError(f"IMLECoverage needs weight >= 0 and k >= 1 candidates, got weight={weight}, k={k}")
        self.weight, self.k = weight, k
        self.batch: Any = None
        self.calls = 0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self.batch, self.calls = batch, 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        critic = _critic(pl_module)
        original = pl_module._g_regularized
        rng = torch.Generator().manual_seed(4321)

        def features(x: Tensor) -> Tensor:
            return critic._taps(x)[-1].flatten(1)

        def patched(g_loss: Tensor, fake: Tensor, z: Tensor) -> Tensor:
            out = original(g_loss, fake, z)
            self.calls += 1
            if self.batch is None or self.calls > 1:
                return out
            real, labels = self.batch
            n, k = real.size(0), self.k
            zk = torch.randn(n * k, pl_module.latent_dim, generator=rng).to(real)
            generated = pl_module.generator(zk, labels.repeat(k))
            with torch.no_grad():
                f_real = features(real)
                scale = f_real.pow(2).mean()
            f_generated = features(generated).view(k, n, -1)
            distance = (f_generated - f_real.unsqueeze(0)).pow(2).mean(dim=2) / (scale + 1e-8)  # [k, n]
            return out + self.weight * distance.min(dim=0).values.mean()

        pl_module._g_regularized = patched


_original_taps = FrozenFeatureCritic._taps


def _stashing_taps(self: FrozenFeatureCritic, images: Tensor) -> list[Tensor]:
    taps = _original_taps(self, images)
    self._last_taps = taps  # type: ignore[attr-defined]
    return taps


class FeatureModeSeeking(Callback):
    """The mode-seeking term (MSGAN) on the frozen critic's conv features of the two digits of a pair.

    Reuses the critic's features of the G step's own D forward (no extra pass): ``weight / (feature distance /
    latent distance + 1e-5)``, the feature distance over the mean feature magnitude. With ``pixel`` the model's pixel
    term (``mode_seeking_weight``) stays and this one is added; without it this one replaces it (the model's
    ``mode_seeking_weight`` must stay above 0 so that its generated batches come in same-label pairs).
    """

    def __init__(self, weight: float = 0.3, pixel: bool = False) -> None:
        if weight < 0:
            raise ValueError(f"FeatureModeSeeking needs weight >= 0, got {weight}")
        self.weight, self.pixel = weight, pixel

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        critic = _critic(pl_module)
        if not pl_module.mode_seeking_weight > 0:
            raise ValueError("FeatureModeSeeking pairs the generated batch's halves, which the model draws with equal "
                             "labels only while mode_seeking_weight > 0: set --model.mode_seeking_weight (the "
                             "pixel term stays only with pixel: true)")
        FrozenFeatureCritic._taps = _stashing_taps  # type: ignore[method-assign]  # for the rest of the process
        original = pl_module._g_regularized

        def patched(g_loss: Tensor, fake: Tensor, z: Tensor) -> Tensor:
            out = original(g_loss, fake, z) if self.pixel else g_loss
            taps = getattr(critic, "_last_taps", None)
            if fake.size(0) < 2 or taps is None or taps[0].size(0) != fake.size(0):
                raise RuntimeError("no critic features of this generated batch")
            f = torch.cat([t.flatten(1) for t in taps], dim=1)
            pairs = f.size(0) // 2
            second = f.size(0) - pairs
            scale = f.abs().mean().detach() + 1e-8
            feature_distance = (f[:pairs] - f[second:]).abs().mean() / scale
            latent_distance = (z[:pairs] - z[second:]).abs().mean()
            return out + self.weight * (1.0 / (feature_distance / latent_distance + 1e-5))

        pl_module._g_regularized = patched


class MomentMatching(Callback):
    """Adds to G's loss the distance between G's and the training digits' per-class moments in the critic's features.

    The features are the frozen critic's last conv block (576 values on MNIST), reused from the G step's own D
    forward. The training split's per-class mean and per-feature standard deviation are computed once at fit start;
    G's are running averages (``momentum`` per G step) in which the current batch's digits of each class carry the
    gradient. The term is the mean over the batch's classes of the squared mean difference (plus, with ``std``, the
    squared difference of the standard deviations), over the training digits' mean feature variance, times
    ``weight``. Needs an in-memory data module (its ``split("train")``). ``vectorized`` computes the same term with
    one-hot products instead of a Python loop over the batch's classes (no read back to the host); equal to float
    rounding, so a run follows another trajectory. ``covariance_rank`` r > 0 (vectorized only) adds, per class, the
    squared Frobenius distance between G's running covariance and the training digits' in the class's top r
    principal directions, over the latter's squared Frobenius norm: the shape of the variation, which the per-feature
    spreads do not see. ``penultimate`` matches the moments one layer up instead: the shipped critic classifier's own
    penultimate layer (128 values) applied to the same block, the kind of space FID is measured in (another
    classifier's). ``tap`` picks another of the critic's tapped blocks: 0 is its shallower one (block 2 of the
    shipped critic, 1,568 values), so that the probe, added to ``class_moment_weight``'s term on the deepest block,
    matches both. ``real_shear`` s > 0 takes the real moments over the training digits and one copy of each slanted
    by a shear uniform in ``±s`` (``coverage_ceiling.sheared``): the distribution D sees under
    ``RealAffine(p=0.5, shear=s)`` with no other deformation.
    """

    def __init__(self, weight: float = 1.0, momentum: float = 0.9, std: bool = True, vectorized: bool = False,
                 covariance_rank: int = 0, penultimate: bool = False, tap: int = -1, real_shear: float = 0.0) -> None:
        if weight < 0 or not 0.0 <= momentum < 1.0:
            raise ValueError(f"MomentMatching needs weight >= 0 and 0 <= momentum < 1, got {weight} and {momentum}")
        if covariance_rank < 0 or (covariance_rank > 0 and not vectorized):
            raise ValueError(f"MomentMatching's covariance_rank must be >= 0 and needs vectorized: true, got "
                             f"covariance_rank={covariance_rank}, vectorized={vectorized}")
        self.weight, self.momentum, self.std, self.vectorized = weight, momentum, std, vectorized
        self.rank = covariance_rank
        self.penultimate, self.tap = penultimate, tap
        if not 0.0 <= real_shear <= 1.0:
            raise ValueError(f"MomentMatching's real_shear must be in [0, 1], got {real_shear}")
        self.real_shear = real_shear

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        critic = _critic(pl_module)
        FrozenFeatureCritic._taps = _stashing_taps  # type: ignore[method-assign]  # for the rest of the process
        split = getattr(trainer.datamodule, "split", None)  # type: ignore[attr-defined]
        if split is None:
            raise ValueError("MomentMatching reads the training split's moments through the data module's "
                             "split('train'): use an in-memory data module (MNISTDataModule, ImageFolderDataModule)")
        images, labels = split("train")
        images = normalize(images)
        if self.real_shear:
            from coverage_ceiling import sheared

            copies = sheared(images, torch.Generator().manual_seed(0), self.real_shear)
            images, labels = torch.cat([images, copies]), torch.cat([labels, labels])
        # With penultimate: the critic classifier's own penultimate layer on top of the same block (128 values).
        embed = load_critic_features("mnist").embed[0] if self.penultimate else None

        def space(block: Tensor) -> Tensor:
            flat = block.flatten(1)
            return flat if embed is None else F.relu(F.linear(flat, embed.weight.detach(), embed.bias.detach()))

        with torch.no_grad():
            f = torch.cat([space(critic._taps(images[i:i + 500])[self.tap])
                           for i in range(0, len(images), 500)])
        # The library's fit (ConditionalGAN(class_moment_weight=...)): real moments, and G's running ones start there.
        fitted = ClassMomentMatching(pl_module.num_classes, f.size(1), weight=1.0, momentum=self.momentum,
                                     covariance_rank=self.rank, covariance_weight=1.0 if self.rank else 0.0)
        fitted.fit(f, labels)
        self.real_mean, self.real_std, self.scale = fitted.real_mean, fitted.real_std, fitted.scale
        self.g_mean, self.g_m2 = fitted.g_mean.clone(), fitted.g_square.clone()
        if self.rank:
            self.basis, self.real_variances = fitted.basis, fitted.real_variances  # [K, D, r], [K, r]
            self.g_mean_pc, self.g_m2_pc = fitted.g_mean_pc.clone(), fitted.g_square_pc.clone()
        original_batch, original_regularized = pl_module._fake_batch, pl_module._g_regularized
        last_labels: dict[str, Tensor] = {}

        def fake_batch(n: int) -> tuple[Tensor, Tensor, Tensor]:
            out = original_batch(n)
            last_labels["labels"] = out[1]
            return out

        def vectorized_term(features: Tensor, labels: Tensor) -> Tensor:
            keep = self.momentum
            # The library's term (ConditionalGAN(class_moment_weight=...)); without std, its mean part alone.
            term, present, mean, m2 = class_moment_terms(features, labels, self.g_mean, self.g_m2, self.real_mean,
                                                         self.real_std, keep)
            if not self.std:
                term = (mean - self.real_mean).pow(2).mean(1)
            self.g_mean, self.g_m2 = mean.detach(), m2.detach()
            if self.rank:
                # The library's covariance term (class_covariance_weight), added unweighted to the moment term.
                covariance_terms, mean_pc, m2_pc = class_covariance_terms(
                    features, labels, self.g_mean_pc, self.g_m2_pc, self.basis, self.real_variances, keep)
                term = term + covariance_terms
                self.g_mean_pc, self.g_m2_pc = mean_pc.detach(), m2_pc.detach()
            return (term * present).sum() / present.sum()

        def regularized(g_loss: Tensor, fake: Tensor, z: Tensor) -> Tensor:
            out = original_regularized(g_loss, fake, z)
            taps = getattr(critic, "_last_taps", None)
            if taps is None or taps[-1].size(0) != fake.size(0):
                raise RuntimeError("no critic features of this generated batch")
            features, labels, keep = space(taps[self.tap]), last_labels["labels"], self.momentum
            if self.vectorized:
                return out + self.weight * vectorized_term(features, labels) / self.scale
            terms = []
            for c in labels.unique().tolist():
                of_class = features[labels == c]
                mean = keep * self.g_mean[c] + (1 - keep) * of_class.mean(0)
                m2 = keep * self.g_m2[c] + (1 - keep) * of_class.pow(2).mean(0)
                term = (mean - self.real_mean[c]).pow(2).mean()
                if self.std:
                    std = (m2 - mean.pow(2)).clamp_min(1e-6).sqrt()
                    term = term + (std - self.real_std[c]).pow(2).mean()
                terms.append(term)
                self.g_mean[c] = mean.detach()
                self.g_m2[c] = m2.detach()
            return out + self.weight * torch.stack(terms).mean() / self.scale

        pl_module._fake_batch = fake_batch
        pl_module._g_regularized = regularized


class ConsistencyRegularization(Callback):
    """Balanced consistency regularization on D (bCR, Zhao et al. 2021), added to D's loss at each D step.

    ``weight_real`` times the mean squared difference between D's logit on each real digit (the D step's own forward,
    with its graph) and on a copy shifted by up to ``shift`` pixels (integer shifts, the background filled in: no
    resampling, so the copy is the same digit); ``weight_fake`` the same on the generated digits of that D step, with
    their labels. One more D forward per term and D step. D learns that a digit moved by a pixel or two is judged
    alike, which is meant to keep it from learning the 500 training digits of each class by heart.
    """

    def __init__(self, weight_real: float = 10.0, weight_fake: float = 0.0, shift: int = 2) -> None:
        if weight_real < 0 or weight_fake < 0 or shift < 0:
            raise ValueError("ConsistencyRegularization needs non-negative weights and shift, got "
                             f"weight_real={weight_real}, weight_fake={weight_fake}, shift={shift}")
        self.weight_real, self.weight_fake, self.shift = weight_real, weight_fake, shift

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        original_loss, original_batch = pl_module._d_loss, pl_module._fake_batch
        rng = torch.Generator().manual_seed(2468)
        last_labels: dict[str, Tensor] = {}

        def fake_batch(n: int) -> tuple[Tensor, Tensor, Tensor]:
            fake, labels, z = original_batch(n)
            last_labels["labels"] = labels  # under d_first, the D step scores the batch drawn last before it
            return fake, labels, z

        def shifted(images: Tensor) -> Tensor:
            ratio = self.shift / images.size(-2)  # translation() shifts by int(size * ratio + 0.5) at most
            moved = translation(images, ratio, 1.0, rng)
            channels_last = images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last)
            return moved.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

        def term(images: Tensor, labels: Tensor, logits: Tensor) -> Tensor:
            moved, _ = pl_module._discriminate(shifted(images), labels)
            return (moved - logits).pow(2).mean()

        def d_loss(real_logits: Tensor, fake_logits: Tensor, real_aux: Tensor | None, d_real: Tensor,
                   d_fake: Tensor, real_labels: Tensor, real_weights: Tensor | None = None) -> Tensor:
            loss = original_loss(real_logits, fake_logits, real_aux, d_real, d_fake, real_labels, real_weights)
            if self.weight_real > 0:
                loss = loss + self.weight_real * term(d_real, real_labels, real_logits)
            if self.weight_fake > 0:
                loss = loss + self.weight_fake * term(d_fake.detach(), last_labels["labels"], fake_logits)
            return loss

        pl_module._fake_batch = fake_batch
        pl_module._d_loss = d_loss


class TopKGenerator(Callback):
    """Top-k training (Sinha et al. 2020): G's adversarial term reads only the ``k`` generated digits of each G step
    that D scores as most real, ``k`` falling linearly from the whole batch to ``keep`` of it over the run.

    The paper's reasoning: the digits D rejects outright pull G towards the average of what D likes, and dropping
    their gradient lets G refine the digits that are nearly right. The other terms of G's loss (class head, mode
    seeking, moments) still read the whole batch. Refused for a relativistic loss, whose G term pairs each generated
    logit with a real one.
    """

    def __init__(self, keep: float = 0.75) -> None:
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"TopKGenerator needs 0 < keep <= 1, got {keep}")
        self.keep = keep
        self.progress = 0.0  # the share of the run's batches done
        self.total: int | None = None  # the run's planned batches, read at its first batch

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.total is None:
            self.total = planned_training_batches(trainer, pl_module.d_steps_per_g_step + pl_module.g_steps_per_batch)
        done = trainer.current_epoch * trainer.num_training_batches + batch_idx
        self.progress = min(1.0, done / self.total)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.total = None
        if pl_module.adversarial_loss.relativistic:
            raise ValueError("TopKGenerator drops generated logits, which a relativistic loss pairs with real ones: "
                             "use bce, hinge or another non-relativistic loss")
        original = pl_module._g_adversarial

        def g_adversarial(fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
            n = fake_logits.size(0)
            k = max(1, round(n * (1 - (1 - self.keep) * self.progress)))
            if k >= n:
                return original(fake_logits, real_logits)
            return original(fake_logits.topk(k).values, real_logits)

        pl_module._g_adversarial = g_adversarial


class DiscriminatorDropout(Callback):
    """Dropout with probability ``p`` on D's shared features ``h(x)``, which its adversarial logit, its projection term
    and an AC head read (the frozen-feature critic reads the images and is untouched).

    A regularizer of D against learning the 500 training digits of each class by heart, as in the DCGAN
    discriminators of many MNIST tutorials. Dropout is active in training mode only: sampling and evaluation run D in
    eval mode. Its masks come from torch's global RNG (seeded by ``seed_everything``).
    """

    def __init__(self, p: float = 0.2) -> None:
        if not 0.0 < p < 1.0:
            raise ValueError(f"DiscriminatorDropout needs 0 < p < 1, got {p}")
        self.p = p

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        features = getattr(pl_module.discriminator, "features", None)
        if not isinstance(features, torch.nn.Sequential):
            raise ValueError("DiscriminatorDropout needs a DCGANDiscriminator or ACGANDiscriminator (features in an "
                             f"nn.Sequential), got {type(pl_module.discriminator).__name__}")
        if not any(isinstance(m, torch.nn.Dropout) for m in features):
            features.append(torch.nn.Dropout(self.p).train(features.training))  # a new module starts in train mode
