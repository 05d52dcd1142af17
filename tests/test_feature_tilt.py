"""ConditionalGAN's sampling tilt towards the training split's features (cgan_lightning.feature_tilt)."""

from __future__ import annotations

import doctest
import functools
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch import Tensor

from cgan_lightning import ConditionalGAN, feature_tilt, module
from cgan_lightning.cli.lightning_cli import build_cli
from cgan_lightning.cli.sample import main as sample_main
from cgan_lightning.feature_tilt import (
    TILT_CHECKPOINT_KEY,
    FeatureTilt,
    gaussian_log_ratio,
    selection_noise,
)
from cgan_lightning.hub.export import sampling_beyond_generator
from cgan_lightning.nn.dcgan import ACGANDiscriminator, DCGANGenerator

GENERATOR = functools.partial(DCGANGenerator, base_channels=8)
CRITIC_D = functools.partial(ACGANDiscriminator, base_channels=8, conditioning="projection", spectral_norm=True,
                             feature_critic="mnist")


def _gan(**options: object) -> ConditionalGAN:
    torch.manual_seed(0)
    return ConditionalGAN(latent_dim=16, generator=GENERATOR, discriminator=CRITIC_D, ema_decay=0.9,
                          sample_tilt_temperature=1.0, **options)


def _real_images(per_class: int = 40) -> tuple[Tensor, Tensor]:
    """Stand-in training images: another generator's digits (what matters is that they differ from G's)."""
    torch.manual_seed(5)
    other = DCGANGenerator(latent_dim=16, base_channels=8).eval()
    labels = torch.arange(10).repeat_interleave(per_class)
    with torch.no_grad():
        return other(torch.randn(len(labels), 16), labels), labels


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(feature_tilt).failed == 0


def test_log_ratio_is_the_difference_of_the_two_gaussians_log_densities() -> None:
    x = torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)
    mean_r, tril_r = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.diag(torch.tensor([1.0, 2.0]).double())
    mean_g, tril_g = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)

    def log_density(v: Tensor, mean: Tensor, std: Tensor) -> Tensor:  # a diagonal Gaussian, by hand
        return (-0.5 * ((v - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(1)

    by_hand = log_density(x, mean_r, torch.tensor([1.0, 2.0]).double()) - log_density(x, mean_g, torch.ones(2).double())
    torch.testing.assert_close(gaussian_log_ratio(x, mean_r, tril_r, mean_g, tril_g), by_hand)


def test_a_generator_matching_the_real_features_gets_no_tilt() -> None:
    features, labels = torch.randn(300, 6), torch.arange(3).repeat_interleave(100)
    tilt = FeatureTilt(num_classes=3, dims=4)
    tilt.fit_real(features, labels)
    tilt.fit_generated(features, labels)
    torch.testing.assert_close(tilt.log_ratio(torch.randn(20, 6), torch.arange(20) % 3), torch.zeros(20))


def test_too_few_images_are_refused_clearly_and_a_small_split_fits_fewer_directions() -> None:
    tilt = FeatureTilt(num_classes=3, dims=4)
    with pytest.raises(ValueError, match=r"at least 2 training images of each of the 3 classes, got counts \[2, 1, 2"):
        tilt.fit_real(torch.randn(5, 6), torch.tensor([0, 0, 1, 2, 2]))
    with pytest.raises(ValueError, match=r"3 classes, got counts \[75, 75, 75, 75\]"):
        tilt.fit_real(torch.randn(300, 6), torch.arange(300) % 4)
    tilt.fit_real(torch.randn(9, 6), torch.arange(3).repeat_interleave(3))  # 3 per class: 2 directions
    assert tilt.fitted_dims == 2
    tilt.fit_real(torch.randn(300, 3), torch.arange(3).repeat_interleave(100))  # 3 feature values: 3 directions
    assert tilt.fitted_dims == 3


def test_selection_noise_is_a_function_of_each_latent_alone_and_gumbel_distributed() -> None:
    z = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
    noise = selection_noise(z, 4)
    torch.testing.assert_close(selection_noise(z[7:8], 4), noise[7:8])
    assert noise.mean().item() == pytest.approx(0.5772, abs=0.02)  # the Gumbel's mean, Euler's constant
    assert noise.var().item() == pytest.approx(math.pi**2 / 6, rel=0.05)


def test_the_tilt_picks_the_candidates_the_ratio_favours_and_depends_only_on_z_and_label() -> None:
    model = _gan(sample_tilt_candidates=4)
    model.fit_sample_tilt(*_real_images())
    z, labels = torch.randn(200, 16, generator=torch.Generator().manual_seed(2)), torch.arange(200) % 10
    tilted = model.sample(labels, z=z)
    untilted = model.sample(labels, z=z, redraw=False)
    critic, tilt = model.discriminator.feature_critic, model.sample_tilt
    assert tilt is not None
    assert tilt.log_ratio(critic.features_of(tilted), labels).mean() > tilt.log_ratio(
        critic.features_of(untilted), labels).mean() + 1.0
    torch.testing.assert_close(model.sample(labels[:3], z=z[:3]), tilted[:3])  # the same, drawn in another batch


def test_redraw_counts_are_the_users_draws_not_the_tilts_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "CALIBRATION_SAMPLES", 50)  # G's Gaussians from 500 draws: enough for the count
    model = _gan(sample_tilt_candidates=4, sample_min_class_prob=0.1)
    model.fit_sample_tilt(*_real_images())
    model.sample(torch.arange(10).repeat(2), generator=torch.Generator().manual_seed(0))
    # Each image's 4 candidates are draws; the draws that fit G's Gaussians for the tilt are not counted.
    assert model.sample_redraws["drawn"] == 20 * 4
    assert 0 < model.sample_redraws["redrawn"] <= 20 * 4


def test_a_model_without_the_training_statistics_says_how_to_fit_them() -> None:
    with pytest.raises(ValueError, match=r"call model.fit_sample_tilt\(train_images, train_labels\)"):
        _gan().sample([0, 1])
    with pytest.raises(ValueError, match="frozen-feature critic, but ACGANDiscriminator has none"):
        ConditionalGAN(latent_dim=16, generator=GENERATOR, sample_tilt_temperature=1.0,
                       discriminator=functools.partial(ACGANDiscriminator, base_channels=8))
    with pytest.raises(ValueError, match="sample_tilt_candidates must be an integer >= 2"):
        _gan(sample_tilt_candidates=1)
    for temperature in (-1.0, float("inf"), float("nan")):  # infinity would pick at random, at K times the cost
        with pytest.raises(ValueError, match="sample_tilt_temperature must be a finite number >= 0"):
            ConditionalGAN(latent_dim=16, generator=GENERATOR, discriminator=CRITIC_D,
                           sample_tilt_temperature=temperature)


def test_checkpoints_keep_the_training_statistics_and_export_names_the_tilt(tmp_path: Path) -> None:
    model = _gan()
    model.fit_sample_tilt(*_real_images())
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": "2.6.0"}
    model.on_save_checkpoint(checkpoint)
    assert TILT_CHECKPOINT_KEY in checkpoint
    torch.save(checkpoint, tmp_path / "model.ckpt")
    loaded = ConditionalGAN.load_from_checkpoint(tmp_path / "model.ckpt")
    z, labels = torch.randn(10, 16, generator=torch.Generator().manual_seed(3)), torch.arange(10)
    torch.testing.assert_close(loaded.sample(labels, z=z), model.sample(labels, z=z))
    assert "sample_tilt_temperature=1.0" in str(sampling_beyond_generator(model))


def test_selection_noise_is_unrelated_to_the_latents_entries() -> None:
    # Noise read off an entry of z would favour candidates with a large value there: a biased tilt of the latents.
    z = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
    noise = selection_noise(z, 4)
    centred_z, centred_noise = z - z.mean(0), noise - noise.mean(0)
    correlation = (centred_z.T @ centred_noise) / (centred_z.norm(dim=0)[:, None] * centred_noise.norm(dim=0))
    assert correlation.abs().max() < 0.04  # about 3 standard errors of a zero correlation over 20,000 rows


def test_gs_gaussian_is_refitted_once_the_global_step_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _gan()
    model.fit_sample_tilt(*_real_images())
    tilt = model.sample_tilt
    assert tilt is not None
    model.sample([0, 1])
    fitted = tilt.generated
    with torch.no_grad():
        for parameter in model.generator_ema.parameters():  # type: ignore[union-attr]
            parameter.mul_(0.5)
    model.sample([0, 1])
    assert tilt.generated is fitted  # the same step: G's Gaussian is kept, not refitted at every draw
    monkeypatch.setattr(ConditionalGAN, "global_step", property(lambda self: 7))
    model.sample([0, 1])
    assert tilt.generated is not fitted and tilt.generated is not None
    assert not torch.allclose(tilt.generated["mean"], fitted["mean"])  # type: ignore[index]


def _tilted_checkpoint(path: Path, fitted: bool) -> Path:
    generator = {"class_path": "cgan_lightning.nn.dcgan.DCGANGenerator", "init_args": {"base_channels": 8}}
    critic = {"class_path": "cgan_lightning.nn.dcgan.ACGANDiscriminator",
              "init_args": {"base_channels": 8, "feature_critic": "mnist"}}
    torch.manual_seed(0)
    model = ConditionalGAN(latent_dim=16, generator=generator, discriminator=critic,  # type: ignore[arg-type]
                           sample_tilt_temperature=1.0 if fitted else 0.0)
    if fitted:
        model.fit_sample_tilt(*_real_images())
    trainer = Trainer(max_epochs=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


def test_the_sample_cli_tilts_as_the_checkpoint_says_and_refuses_a_tilt_without_statistics(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tilted = _tilted_checkpoint(tmp_path / "tilted.ckpt", fitted=True)
    common = ["--labels", "all", "--n_per_label", "4", "--seed", "0"]
    sample_main(["--ckpt_path", str(tilted), *common, "--out", str(tmp_path / "tilted.pt")])
    assert "tilted towards the training features at temperature 1" in capsys.readouterr().out
    sample_main(["--ckpt_path", str(tilted), *common, "--tilt_temperature", "0", "--out", str(tmp_path / "plain.pt")])
    model = ConditionalGAN.load_from_checkpoint(tilted)
    labels = torch.arange(10).repeat_interleave(4)
    expected = model.sample(labels, generator=torch.Generator().manual_seed(0), ema=False)
    torch.testing.assert_close(torch.load(tmp_path / "tilted.pt")["images"], expected)
    assert not torch.equal(torch.load(tmp_path / "plain.pt")["images"], expected)
    untilted = _tilted_checkpoint(tmp_path / "untilted.ckpt", fitted=False)
    with pytest.raises(SystemExit) as exit_info:
        sample_main(["--ckpt_path", str(untilted), *common, "--tilt_temperature", "6",
                     "--out", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    assert "lacks (its run sampled without the tilt): use --tilt_temperature 0" in capsys.readouterr().err


def test_validate_applies_the_tilt_given_over_the_checkpoints_and_fits_what_the_checkpoint_lacks(
        fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    ckpt = _tilted_checkpoint(tmp_path / "untilted.ckpt", fitted=False)
    cli = build_cli(["validate", f"--ckpt_path={ckpt}", "--model.sample_tilt_temperature=6",
                     "--trainer.accelerator=cpu", "--trainer.logger=false", "--trainer.limit_val_batches=1",
                     "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}",
                     f"--data.data_dir={fake_mnist_session_dir}", "--data.download=false"])
    model = cli.model
    assert isinstance(model, ConditionalGAN) and model.sample_tilt_temperature == 6.0
    assert model.sample_tilt is not None and model.sample_tilt.real is None  # nothing sampled yet
    model.sample([0, 1])  # the attached data module's training split supplies the statistics
    assert model.sample_tilt.fitted_dims == 19  # the fake split's 20 digits per class allow 19 directions
