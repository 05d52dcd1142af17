"""benchmarks/probe_callbacks.py: the training probes of docs/evidence.md do what their docstrings say."""

from __future__ import annotations

import sys
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import benchmark_module

from cgan_lightning import ConditionalGAN
from cgan_lightning.data.in_memory import normalize
from cgan_lightning.nn.dcgan import ACGANDiscriminator, DCGANGenerator
from cgan_lightning.nn.feature_critic import FrozenFeatureCritic, load_critic_features


def _probes() -> Any:
    return benchmark_module("probe_callbacks")


def _gan(mode_seeking_weight: float = 0.0, class_moment_weight: float = 0.0) -> ConditionalGAN:
    torch.manual_seed(0)
    return ConditionalGAN(latent_dim=8, mode_seeking_weight=mode_seeking_weight,
                          class_moment_weight=class_moment_weight,
                          generator=partial(DCGANGenerator, base_channels=4),
                          discriminator=partial(ACGANDiscriminator, base_channels=4, feature_critic="mnist"))


def _real_batch() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return images, torch.tensor([0, 1, 2, 3, 4, 5])


TRAINER = SimpleNamespace(global_rank=0)


def test_real_affine_without_range_is_the_identity_and_with_it_moves_the_chosen_digits() -> None:
    images, labels = _real_batch()
    still = images.clone()
    _probes().RealAffine(p=1.0, degrees=0, scale=0, shear=0, translate=0).on_train_batch_start(
        TRAINER, None, (still, labels), 0)
    torch.testing.assert_close(still, images, atol=1e-5, rtol=0)  # bilinear sampling at the pixel centres

    moved = images.clone()
    _probes().RealAffine(p=0.5, degrees=10, scale=0.1, shear=0.15, translate=1).on_train_batch_start(
        TRAINER, None, (moved, labels), 0)
    changed = (moved - images).flatten(1).abs().amax(dim=1) > 1e-3
    assert 0 < int(changed.sum()) < len(images)  # some digits deformed, the others left bit for bit
    assert torch.equal(moved[~changed], images[~changed])
    assert moved.min() >= -1 and moved.max() <= 1


def test_imle_term_vanishes_when_each_real_digit_is_one_of_its_candidates() -> None:
    gan = _gan()
    probe = _probes().IMLECoverage(weight=2.0, k=3)
    probe.setup(TRAINER, gan, "fit")
    fake, z = torch.zeros(4, 1, 28, 28), torch.zeros(4, 8)
    images, labels = _real_batch()

    probe.on_train_batch_start(TRAINER, gan, (images, labels), 0)
    term = gan._g_regularized(torch.tensor(0.0), fake, z)  # mode seeking off: the G loss itself is 0
    assert float(term.detach()) > 0
    assert term.requires_grad  # the nearest candidates carry G's gradient
    assert float(gan._g_regularized(torch.tensor(0.0), fake, z)) == 0.0  # only the first G step of a batch

    # The same candidates the probe draws (its generator restarts at its seed), the first k-slot as the real batch.
    probe = _probes().IMLECoverage(weight=2.0, k=3)
    probe.setup(TRAINER, gan, "fit")
    zk = torch.randn(len(labels) * 3, 8, generator=torch.Generator().manual_seed(4321))
    with torch.no_grad():
        candidates = gan.generator(zk, labels.repeat(3))
    probe.on_train_batch_start(TRAINER, gan, (candidates[: len(labels)], labels), 0)
    assert float(gan._g_regularized(torch.tensor(0.0), fake, z).detach()) == pytest.approx(0.0, abs=1e-6)


def test_feature_mode_seeking_is_msgan_on_the_critic_features(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FrozenFeatureCritic, "_taps", FrozenFeatureCritic._taps)  # the probe patches the class
    gan = _gan(mode_seeking_weight=0.3)
    _probes().FeatureModeSeeking(weight=0.5, pixel=False).setup(TRAINER, gan, "fit")
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([1, 2, 3, 1, 2, 3])  # pairs i and i + 3 share a label
    fake = gan.generator(z, labels)
    gan.discriminator(fake, labels)  # the G step's D forward, whose critic features the term reuses

    term = gan._g_regularized(torch.tensor(0.0), fake, z)

    critic = gan.discriminator.feature_critic
    assert critic is not None
    with torch.no_grad():
        f = torch.cat([t.flatten(1) for t in critic._taps(fake)], dim=1)
    ratio = ((f[:3] - f[3:]).abs().mean() / f.abs().mean()) / (z[:3] - z[3:]).abs().mean()
    assert float(term.detach()) == pytest.approx(0.5 / (float(ratio) + 1e-5), rel=1e-5)


def test_probes_that_read_the_critic_refuse_a_discriminator_without_one() -> None:
    gan = ConditionalGAN(latent_dim=8, mode_seeking_weight=0.3, generator=partial(DCGANGenerator, base_channels=4),
                         discriminator=partial(ACGANDiscriminator, base_channels=4))
    for probe in (_probes().IMLECoverage(), _probes().FeatureModeSeeking()):
        with pytest.raises(ValueError, match="frozen-feature critic"):
            probe.setup(TRAINER, gan, "fit")


def test_feature_mode_seeking_refuses_unpaired_generated_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FrozenFeatureCritic, "_taps", FrozenFeatureCritic._taps)
    with pytest.raises(ValueError, match="mode_seeking_weight > 0"):
        _probes().FeatureModeSeeking().setup(TRAINER, _gan(mode_seeking_weight=0.0), "fit")
    assert FrozenFeatureCritic._taps is not _probes()._stashing_taps  # refused before patching anything


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("RealAffine", {"p": 1.5}, "0 <= p <= 1"),
    ("RealAffine", {"degrees": -1.0}, "non-negative ranges"),
    ("IMLECoverage", {"k": 0}, "k >= 1"),
    ("IMLECoverage", {"weight": -1.0}, "weight >= 0"),
    ("FeatureModeSeeking", {"weight": -0.3}, "weight >= 0"),
    ("MomentMatching", {"momentum": 1.0}, "0 <= momentum < 1"),
    ("MomentMatching", {"covariance_rank": 4}, "needs vectorized: true"),
    ("MomentMatching", {"covariance_rank": -1, "vectorized": True}, "covariance_rank must be >= 0"),
])
def test_probes_refuse_bad_settings(name: str, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        getattr(_probes(), name)(**kwargs)


def test_standing_statistics_average_the_sampled_generators_own_batches() -> None:
    # benchmarks/rejection_sampling.py --standing_stats N: the EMA generator's BatchNorm statistics become the mean of
    # its batch statistics over N batches of its own samples, in place of the live G's copied ones.
    recompute = benchmark_module("rejection_sampling").recompute_norm_statistics
    gan = ConditionalGAN(latent_dim=8, ema_decay=0.99, generator=partial(DCGANGenerator, base_channels=4),
                         discriminator=partial(ACGANDiscriminator, base_channels=4))
    assert gan.generator_ema is not None
    sampled = gan.generator_ema.module
    norms = [m for m in sampled.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms
    batch_means: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(norms))}
    for i, norm in enumerate(norms):
        norm.running_mean.fill_(100.0)  # stale statistics, of a generator trained for 50 batches
        norm.num_batches_tracked.fill_(50)
        norm.register_forward_pre_hook(lambda _, args, i=i: batch_means[i].append(args[0].mean(dim=(0, 2, 3))))
    sampled.eval()

    recompute(gan, batches=3, batch_size=8)

    assert not sampled.training  # its mode is restored
    for i, norm in enumerate(norms):
        assert len(batch_means[i]) == 3
        torch.testing.assert_close(norm.running_mean, torch.stack(batch_means[i]).mean(0))


def test_standing_statistics_refuse_a_generator_without_running_statistics() -> None:
    recompute = benchmark_module("rejection_sampling").recompute_norm_statistics
    gan = ConditionalGAN(latent_dim=8, generator=partial(DCGANGenerator, base_channels=4),
                         discriminator=partial(ACGANDiscriminator, base_channels=4))
    for m in gan.generator.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
    with pytest.raises(ValueError, match="keeps none"):
        recompute(gan, batches=1)


class _EvalOnlyCritic(torch.nn.Module):
    """A stand-in D with a sizeable gradient: minus the squared distance to a per-label target image."""

    def __init__(self) -> None:
        super().__init__()
        self.targets = torch.nn.Parameter(torch.rand(10, 784, generator=torch.Generator().manual_seed(2)))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        assert not self.training, "sampling must score with D in eval mode"
        return -(images.flatten(1) - self.targets[labels]).pow(2).sum(1)


def test_langevin_gradient_is_the_prior_minus_ds_logit_gradient_and_the_refined_latents_move() -> None:
    # rejection_sampling.py --langevin_steps N: grad E = z / s^2 - grad_z d(G(z), y), with D and G in eval mode.
    sampling = benchmark_module("rejection_sampling")
    gan = ConditionalGAN(latent_dim=8, ema_decay=0.99, sample_latent_scale=1.5,
                         generator=partial(DCGANGenerator, base_channels=4),
                         discriminator=partial(ACGANDiscriminator, base_channels=4))
    gan.discriminator = _EvalOnlyCritic()
    z, labels = torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 4])
    assert gan.generator_ema is not None

    grad = sampling.langevin_energy_gradient(gan, z, labels, scale=1.5)

    leaf = z.clone().requires_grad_(True)
    gan.discriminator.eval()
    gan.generator_ema.module.eval()
    d_grad = torch.autograd.grad(gan.discriminator(gan.generator_ema.module(leaf, labels), labels).sum(), leaf)[0]
    gan.discriminator.train()
    assert d_grad.abs().max() > 1e-3  # far above the comparison's tolerance (1e-5)
    torch.testing.assert_close(grad, z / 1.5**2 - d_grad)
    assert gan.discriminator.training  # its mode is restored

    calls: list[torch.Tensor] = []
    gan.sample = lambda labels, z=None, generator=None, ema=None, redraw=True: calls.append(z) or z  # type: ignore
    refined = sampling.langevin_refined(gan, steps=2, step_size=0.01)
    refined(labels, z=z)
    refined(labels, z=z)
    assert not torch.allclose(calls[0], z)  # the latents moved
    torch.testing.assert_close(calls[0], calls[1])  # reproducibly: the noise is seeded by the latents
    assert torch.equal(refined(labels, z=z, redraw=False), z)  # the fixed-latent grids are left as drawn


def test_resampling_by_score_keeps_the_best_scored_of_the_candidates_at_a_low_temperature() -> None:
    # benchmarks/rejection_sampling.py --candidates K --temperature T: a draw among K candidates by exp(D's score / T).
    sampling = benchmark_module("rejection_sampling")
    gan = ConditionalGAN(latent_dim=8, ema_decay=0.99, generator=partial(DCGANGenerator, base_channels=4),
                         discriminator=partial(ACGANDiscriminator, base_channels=4))
    gan.discriminator = _EvalOnlyCritic()
    z, labels = torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), torch.arange(20) % 10
    first_scores: list[torch.Tensor] = []
    resampled = sampling.resample_by_score(gan, candidates=4, temperature=1e-6, score="adv", first_scores=first_scores)

    images = resampled(labels, z=z)

    with torch.no_grad():
        gan.discriminator.eval()
        first = gan.discriminator(gan.sample(labels, z=z), labels)
        picked = gan.discriminator(images, labels)
    torch.testing.assert_close(first_scores[0], first)  # the first draws' scores are reported
    assert bool((picked >= first).all()) and bool((picked > first).any())  # the best of four, not the first draw
    assert torch.equal(resampled(labels, z=z), images)  # reproducibly
    assert torch.equal(resampled(labels, z=z, redraw=False), gan.sample(labels, z=z, redraw=False))


@pytest.mark.parametrize(("argv", "message"), [
    (["--langevin_steps", "-1"], "--langevin_steps must be >= 0"),
    (["--langevin_steps", "5", "--langevin_step", "0"], "--langevin_step > 0"),
    (["--langevin_steps", "5", "--candidates", "4"], "give one of them"),
    (["--neighbour_ratio", "10"], "--neighbour_ratio adds a term to the tilt's log-ratio"),
    (["--neighbour_ratio", "-1", "--tilt_temperature", "6"], "give a weight >= 0"),
    (["--sharpen", "32"], "--sharpen adds a term to the tilt's log-ratio"),
])
def test_rejection_sampling_refuses_bad_probe_settings_before_loading_anything(
        argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    main = benchmark_module("rejection_sampling").main
    monkeypatch.setattr(sys, "argv", ["rejection_sampling.py", "--ckpt", "missing.ckpt", "--data_dir", "none", *argv])
    with pytest.raises(SystemExit):
        main()
    assert message in capsys.readouterr().err


def test_neighbour_ratio_tilt_adds_the_k_nn_log_distance_ratio_to_the_gaussian_one() -> None:
    # rejection_sampling.py --neighbour_ratio W: the training digits form two clusters, G draws from the first only.
    sampling = benchmark_module("rejection_sampling")
    rng = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0]])
    real = torch.cat([centres[0] + torch.randn(50, 2, generator=rng), centres[1] + torch.randn(50, 2, generator=rng)])
    generated = centres[0] + torch.randn(100, 2, generator=rng)
    zeros = torch.zeros(100, dtype=torch.long)
    tilt, plain = sampling.NeighbourRatioTilt(num_classes=1, weight=2.0), sampling.FeatureTilt(num_classes=1)
    for fitted in (tilt, plain):
        fitted.fit_real(real, zeros)
        fitted.fit_generated(generated, zeros)
    candidates = torch.tensor([[0.0, 0.5], [6.0, 0.5]])
    labels = torch.zeros(2, dtype=torch.long)

    # Both features kept (2 directions of 2): the projection is a rotation, so distances are the raw features'.
    r_generated = torch.cdist(candidates, generated).kthvalue(5, dim=1).values
    r_real = torch.cdist(candidates, real).kthvalue(3, dim=1).values
    added = tilt.log_ratio(candidates, labels) - plain.log_ratio(candidates, labels)
    torch.testing.assert_close(added, (2.0 * (r_generated.log() - r_real.log())).float(), rtol=1e-4, atol=1e-4)
    assert added[1] > added[0] + 1  # the training cluster G never draws gains


def test_sharpened_tilt_adds_the_training_digits_k_nn_log_density() -> None:
    # rejection_sampling.py --sharpen S: -S * log r_train, with or without the density-ratio term.
    sampling = benchmark_module("rejection_sampling")
    rng = torch.Generator().manual_seed(1)
    real = torch.cat([torch.randn(80, 2, generator=rng) * 0.5, torch.randn(20, 2, generator=rng) * 3.0])
    generated = torch.randn(100, 2, generator=rng)
    zeros = torch.zeros(100, dtype=torch.long)
    tilts = {(weight, sharpen): sampling.NeighbourRatioTilt(num_classes=1, weight=weight, sharpen=sharpen)
             for weight, sharpen in ((0.0, 0.0), (0.0, 4.0), (2.0, 0.0), (2.0, 4.0))}
    for tilt in tilts.values():
        tilt.fit_real(real, zeros)
        tilt.fit_generated(generated, zeros)
    candidates = torch.tensor([[0.0, 0.1], [4.0, 4.0]])  # in the dense core, and out where training digits are few
    labels = torch.zeros(2, dtype=torch.long)

    r_real = torch.cdist(candidates, real).kthvalue(3, dim=1).values
    for weight in (0.0, 2.0):
        added = tilts[(weight, 4.0)].log_ratio(candidates, labels) - tilts[(weight, 0.0)].log_ratio(candidates, labels)
        torch.testing.assert_close(added, (-4.0 * r_real.log()).float(), rtol=1e-4, atol=1e-4)
        assert added[0] > added[1] + 1  # the dense core gains


def _trainer_with_train_split() -> Any:
    """A stand-in trainer whose data module serves a 40-digit uint8 train split, 4 per class."""
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    labels = torch.arange(40) % 10
    return SimpleNamespace(global_rank=0, datamodule=SimpleNamespace(split=lambda name: (images, labels)))


@pytest.mark.parametrize(("penultimate", "tap"), [(False, -1), (True, -1), (False, 0)])
def test_moment_matching_without_memory_is_the_batch_class_means_distance(monkeypatch: pytest.MonkeyPatch,
                                                                          penultimate: bool, tap: int) -> None:
    monkeypatch.setattr(FrozenFeatureCritic, "_taps", FrozenFeatureCritic._taps)  # the probe patches the class
    gan = _gan()
    trainer = _trainer_with_train_split()
    train_images, train_labels = trainer.datamodule.split("train")
    probe = _probes().MomentMatching(weight=2.0, momentum=0.0, std=False, penultimate=penultimate, tap=tap)
    probe.on_fit_start(trainer, gan)

    gan.training_rng.start(torch.device("cpu"))
    fake, labels, z = gan._fake_batch(8)  # the wrapped draw remembers its labels
    gan.discriminator(fake, labels)  # the G step's D forward, whose critic features the term reuses
    term = gan._g_regularized(torch.tensor(0.0), fake, z)

    critic = gan.discriminator.feature_critic
    assert critic is not None
    with torch.no_grad():
        real = critic._taps(train_images.float() / 127.5 - 1)[tap].flatten(1)
        generated = critic._taps(fake)[tap].flatten(1)
        assert real.size(1) == (1568 if tap == 0 else 576)  # the shipped critic's blocks 2 and 3
        if penultimate:  # the critic classifier's own penultimate layer on top of its last conv block
            embed = load_critic_features("mnist").eval().features
            real = embed(train_images.float() / 127.5 - 1)
            generated = embed(fake)
    real_mean = torch.stack([real[train_labels == c].mean(0) for c in range(10)])
    scale = torch.stack([real[train_labels == c].std(0) for c in range(10)]).pow(2).mean()
    present = labels.unique().tolist()
    expected = torch.stack([(generated[labels == c].mean(0) - real_mean[c]).pow(2).mean() for c in present]).mean()
    assert float(term.detach()) == pytest.approx(2.0 * float(expected / scale), rel=1e-4)
    assert term.requires_grad
    for c in present:  # G's running means now hold this batch's
        torch.testing.assert_close(probe.g_mean[c], generated[labels == c].mean(0))


@pytest.mark.parametrize("std", [False, True])
def test_moment_matching_vectorized_equals_the_per_class_loop(monkeypatch: pytest.MonkeyPatch, std: bool) -> None:
    monkeypatch.setattr(FrozenFeatureCritic, "_taps", FrozenFeatureCritic._taps)
    trainer = _trainer_with_train_split()
    terms, means = [], []
    for vectorized in (False, True):
        gan = _gan()
        probe = _probes().MomentMatching(weight=3.0, momentum=0.9, std=std, vectorized=vectorized)
        probe.on_fit_start(trainer, gan)
        gan.training_rng.start(torch.device("cpu"))
        steps = []
        for _ in range(2):  # the second step reads the running moments the first one left
            fake, labels, z = gan._fake_batch(8)
            gan.discriminator(fake, labels)
            steps.append(gan._g_regularized(torch.tensor(0.0), fake, z).detach())
        terms.append(torch.stack(steps))
        means.append(probe.g_mean)
    torch.testing.assert_close(terms[1], terms[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(means[1], means[0], rtol=1e-5, atol=1e-6)


def test_moment_matching_with_real_shear_takes_the_moments_of_the_digits_and_their_slanted_copies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FrozenFeatureCritic, "_taps", FrozenFeatureCritic._taps)
    trainer = _trainer_with_train_split()
    train_images, train_labels = trainer.datamodule.split("train")
    plain, slanted = _probes().MomentMatching(), _probes().MomentMatching(real_shear=0.4)
    plain.on_fit_start(trainer, _gan())
    slanted.on_fit_start(trainer, gan := _gan())
    digits = normalize(train_images)
    copies = benchmark_module("coverage_ceiling").sheared(digits, torch.Generator().manual_seed(0), 0.4)
    critic = gan.discriminator.feature_critic
    assert critic is not None
    with torch.no_grad():
        features = critic._taps(torch.cat([digits, copies]))[-1].flatten(1)
    labels = torch.cat([train_labels, train_labels])
    expected = torch.stack([features[labels == c].mean(0) for c in range(10)])
    torch.testing.assert_close(slanted.real_mean, expected, rtol=1e-4, atol=1e-5)
    assert float((slanted.real_mean - plain.real_mean).abs().max()) > 1e-3  # the copies moved the moments
    with pytest.raises(ValueError, match="real_shear must be in"):
        _probes().MomentMatching(real_shear=1.5)


def test_moment_matching_refuses_a_data_module_without_splits() -> None:
    trainer = SimpleNamespace(datamodule=object())
    with pytest.raises(ValueError, match="in-memory data module"):
        _probes().MomentMatching().on_fit_start(trainer, _gan())


def test_the_models_class_moment_weight_is_the_vectorized_probe_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    # So the probe's published runs (docs/evidence.md) are runs of the option.
    monkeypatch.setattr(FrozenFeatureCritic, "_taps", FrozenFeatureCritic._taps)
    trainer = _trainer_with_train_split()
    probed = _gan()
    probe = _probes().MomentMatching(weight=30.0, vectorized=True)
    probe.on_fit_start(trainer, probed)
    option = _gan(class_moment_weight=30.0)
    images, labels = trainer.datamodule.split("train")
    assert option.class_moments is not None and option.discriminator.feature_critic is not None
    option.class_moments.fit(option.discriminator.feature_critic.features_of(normalize(images)), labels)
    for gan in (probed, option):
        gan.training_rng.start(torch.device("cpu"))
    for _ in range(3):  # each step reads the running moments the one before left
        fake, fake_labels, z = probed._fake_batch(8)
        probed.discriminator(fake, fake_labels)
        expected = probed._g_regularized(torch.tensor(0.5), fake, z)
        fake, fake_labels, z = option._fake_batch(8)
        option.discriminator(fake, fake_labels)
        assert torch.equal(option._g_moments_added(option._g_regularized(torch.tensor(0.5), fake, z), fake_labels),
                           expected)
    assert torch.equal(option.class_moments.g_mean, probe.g_mean)
    assert torch.equal(option.class_moments.g_square, probe.g_m2)


def test_the_models_class_covariance_weight_is_the_covariance_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    # The probe at weight w (covariance_rank r) beside class_moment_weight m is the option at moment weight m + w and
    # covariance weight w / scale (the probe divides its whole term by the real features' mean variance).
    monkeypatch.setattr(FrozenFeatureCritic, "_taps", FrozenFeatureCritic._taps)
    trainer = _trainer_with_train_split()
    probed = _gan(class_moment_weight=30.0)
    probe = _probes().MomentMatching(weight=5.0, vectorized=True, covariance_rank=3)
    probe.on_fit_start(trainer, probed)
    images, labels = trainer.datamodule.split("train")
    assert probed.class_moments is not None and probed.discriminator.feature_critic is not None
    features = probed.discriminator.feature_critic.features_of(normalize(images))
    probed.class_moments.fit(features, labels)
    torch.manual_seed(0)
    option = ConditionalGAN(latent_dim=8, class_moment_weight=35.0, class_covariance_weight=5.0 / float(probe.scale),
                            class_covariance_rank=3, generator=partial(DCGANGenerator, base_channels=4),
                            discriminator=partial(ACGANDiscriminator, base_channels=4, feature_critic="mnist"))
    assert option.class_moments is not None
    option.class_moments.fit(features, labels)
    for gan in (probed, option):
        gan.training_rng.start(torch.device("cpu"))
    for _ in range(3):  # each step reads the running moments the one before left
        losses = []
        for gan in (probed, option):
            fake, fake_labels, z = gan._fake_batch(8)
            gan.discriminator(fake, fake_labels)
            losses.append(gan._g_moments_added(gan._g_regularized(torch.tensor(0.5), fake, z), fake_labels))
        assert float(losses[1] - 0.5) > 0
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(option.class_moments.g_mean_pc, probe.g_mean_pc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(option.class_moments.g_square_pc, probe.g_m2_pc, rtol=1e-5, atol=1e-5)


def test_moment_matching_covariance_term_is_the_relative_frobenius_distance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FrozenFeatureCritic, "_taps", FrozenFeatureCritic._taps)
    trainer = _trainer_with_train_split()
    terms = []
    for rank in (0, 3):
        gan = _gan()
        probe = _probes().MomentMatching(weight=1.0, momentum=0.0, vectorized=True, covariance_rank=rank)
        probe.on_fit_start(trainer, gan)
        gan.training_rng.start(torch.device("cpu"))
        fake, labels, z = gan._fake_batch(8)
        gan.discriminator(fake, labels)
        terms.append(gan._g_regularized(torch.tensor(0.0), fake, z).detach())
    critic = gan.discriminator.feature_critic
    assert critic is not None
    images, train_labels = trainer.datamodule.split("train")
    with torch.no_grad():
        real = critic.features_of(normalize(images))
        generated = critic.features_of(fake)
    extra = []
    for c in labels.unique().tolist():
        values, vectors = torch.linalg.eigh(torch.cov(real[train_labels == c].t()))
        basis = vectors[:, -3:]
        projected = generated[labels == c] @ basis
        mean = projected.mean(0)
        covariance = (projected.t() @ projected) / len(projected) - torch.outer(mean, mean)  # momentum 0: the batch's
        extra.append((covariance - torch.diag(values[-3:])).pow(2).sum() / values[-3:].pow(2).sum())
    scale = torch.stack([real[train_labels == c].std(0) for c in range(10)]).pow(2).mean()
    assert float(terms[1] - terms[0]) == pytest.approx(float(torch.stack(extra).mean() / scale), rel=1e-3)


def test_consistency_regularization_adds_the_logit_change_under_a_shift() -> None:
    # benchmarks/probe_callbacks.py ConsistencyRegularization: D's loss plus weight x mean (D(shifted x) - D(x))^2,
    # nothing added at a zero shift, and the term trains D through both forwards.
    images, labels = _real_batch()
    fake = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    gan = _gan()
    plain = gan._d_loss
    logits, aux = gan._discriminate(images, labels)
    fake_logits, _ = gan._discriminate(fake, labels)
    base = plain(logits, fake_logits, aux, images, fake, labels)

    still = _gan()
    still._fake_batch = lambda n: (fake, labels, torch.zeros(n, 8))  # type: ignore[method-assign]
    _probes().ConsistencyRegularization(weight_real=10.0, weight_fake=10.0, shift=0).setup(TRAINER, still, "fit")
    still._fake_batch(6)  # the D step's generated batch, whose labels the fake term reads
    torch.testing.assert_close(still._d_loss(logits, fake_logits, aux, images, fake, labels), base)

    moved = _gan()
    _probes().ConsistencyRegularization(weight_real=10.0, shift=2).setup(TRAINER, moved, "fit")
    loss = moved._d_loss(logits, fake_logits, aux, images, fake, labels)
    shifted = _probes().translation(images, 2 / 28, 1.0, torch.Generator().manual_seed(2468))
    moved_logits, _ = moved._discriminate(shifted, labels)
    expected = base + 10.0 * (moved_logits - logits).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    assert float(loss) > float(base)
    weight = moved.discriminator.to_logit.weight
    grad_logits, grad_weight = torch.autograd.grad(loss - base, [logits, weight])
    assert float(grad_weight.abs().sum()) > 0  # the term reaches D's weights through the shifted copies' forward
    # and through the D step's own logits, both sides of the difference (as in the paper)
    torch.testing.assert_close(grad_logits, 10.0 * 2 * (logits - moved_logits).detach() / len(labels))


def test_top_k_generator_keeps_the_digits_d_scores_highest_as_the_run_goes() -> None:
    # benchmarks/probe_callbacks.py TopKGenerator: the whole batch at the start, the best `keep` share at the end.
    gan = ConditionalGAN(latent_dim=8, loss="hinge")
    probe = _probes().TopKGenerator(keep=0.5)
    probe.setup(TRAINER, gan, "fit")
    logits = torch.tensor([3.0, -1.0, 0.5, 2.0, -4.0, 1.0, 0.0, -2.0])
    probe.progress = 0.0
    torch.testing.assert_close(gan._g_adversarial(logits, None), -logits.mean())  # hinge: G's term is -mean
    probe.progress = 1.0
    torch.testing.assert_close(gan._g_adversarial(logits, None), -torch.tensor([3.0, 2.0, 1.0, 0.5]).mean())
    probe.progress = 0.5  # k = round(8 * 0.75) = 6
    torch.testing.assert_close(gan._g_adversarial(logits, None),
                               -torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0, -1.0]).mean())
    trainer = SimpleNamespace(estimated_stepping_batches=40, num_training_batches=10, max_epochs=4, max_steps=-1,
                              current_epoch=2)
    probe.on_train_batch_start(trainer, gan, None, 5)  # type: ignore[arg-type]
    assert probe.progress == pytest.approx(25 / 40)  # batch 25 of the 40 planned
    with pytest.raises(ValueError, match="0 < keep <= 1"):
        _probes().TopKGenerator(keep=0.0)
    with pytest.raises(ValueError, match="relativistic"):
        _probes().TopKGenerator().setup(TRAINER, ConditionalGAN(latent_dim=8, loss="rpgan"), "fit")


def test_discriminator_dropout_drops_ds_shared_features_in_training_only() -> None:
    # benchmarks/probe_callbacks.py DiscriminatorDropout: h(x) dropped in train mode, untouched in eval mode.
    gan = _gan()
    images, labels = _real_batch()
    d = gan.discriminator
    with torch.no_grad():
        d.eval()
        plain = d._shared_features(images, labels)
    _probes().DiscriminatorDropout(p=0.5).setup(TRAINER, gan, "fit")
    _probes().DiscriminatorDropout(p=0.5).setup(TRAINER, gan, "fit")  # a second setup adds no second layer
    assert sum(isinstance(m, torch.nn.Dropout) for m in d.features) == 1
    with torch.no_grad():
        torch.testing.assert_close(d._shared_features(images, labels), plain)  # eval mode: as before
        d.train()
        torch.manual_seed(0)
        dropped = d._shared_features(images, labels)
    kept = dropped != 0
    assert 0.3 < float(kept[plain != 0].float().mean()) < 0.7  # about half of the features dropped
    torch.testing.assert_close(dropped[kept], 2 * plain[kept])  # the rest scaled by 1 / (1 - p)
    with pytest.raises(ValueError, match="0 < p < 1"):
        _probes().DiscriminatorDropout(p=1.0)
    with pytest.raises(ValueError, match="nn.Sequential"):
        _probes().DiscriminatorDropout().setup(TRAINER, ConditionalGAN(latent_dim=8), "fit")  # the MLP D
