"""Sampling options of ConditionalGAN: wider latents and rejection by D's class head (cgan_lightning.sampling)."""

from __future__ import annotations

import doctest
import functools
import warnings
from pathlib import Path

import pytest
import torch
from fault_helpers import save_acgan_checkpoint
from torch import Tensor

from cgan_lightning import ConditionalGAN, sampling
from cgan_lightning.cli.lightning_cli import build_cli
from cgan_lightning.hub.export import export_generator
from cgan_lightning.metrics.interference import interference_images
from cgan_lightning.metrics.traversal import traversal_images
from cgan_lightning.nn.dcgan import ACGANDiscriminator, DCGANDiscriminator, DCGANGenerator
from cgan_lightning.sampling import MAX_REDRAWS, redraw_doubted, redraw_permutations
from cgan_lightning.utilities import eval_mode

GENERATOR = functools.partial(DCGANGenerator, base_channels=8)
AC_DISCRIMINATOR = functools.partial(ACGANDiscriminator, base_channels=8, conditioning="projection",
                                     spectral_norm=True)


def _gan(**options: object) -> ConditionalGAN:
    torch.manual_seed(0)
    return ConditionalGAN(latent_dim=16, generator=GENERATOR, discriminator=AC_DISCRIMINATOR, ema_decay=0.9,
                          **options)


def _doubt_label(label: int):  # noqa: ANN202  # a label_probability that doubts every image of one label
    def probability(images: Tensor, labels: Tensor) -> Tensor:
        return (labels != label).float()
    return probability


def _inputs(n: int = 20) -> tuple[Tensor, Tensor]:
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(1)), torch.arange(n) % 10


# ------------------------------------------------------------------------------------------ the pure function
def test_redraw_uses_each_permutation_of_the_original_latent_and_keeps_the_last_draw() -> None:
    z, labels = _inputs()
    perms = redraw_permutations(16)
    calls: list[Tensor] = []

    def generate(latents: Tensor, labels: Tensor) -> Tensor:
        calls.append(latents.clone())
        return latents.clone()  # "images" that are their latents

    images, doubted = redraw_doubted(z, labels, generate, _doubt_label(3), 0.5, perms)
    assert doubted == 2  # labels 3 and 13 % 10
    rows = (labels == 3).nonzero().squeeze(1)
    assert len(calls) == 1 + MAX_REDRAWS and all(torch.equal(c, z[rows][:, p]) for c, p in zip(calls[1:], perms))
    assert torch.equal(images[rows], z[rows][:, perms[-1]])  # still doubted after every redraw: the last one stays
    others = labels != 3
    assert torch.equal(images[others], z[others])


def test_a_redraw_that_satisfies_the_head_stops_the_redraws() -> None:
    z, labels = torch.tensor([[0.0, 1.0]]), torch.tensor([0])
    calls = []

    def generate(latents: Tensor, labels: Tensor) -> Tensor:
        calls.append(1)
        return latents.clone()

    images, doubted = redraw_doubted(z, labels, generate, lambda im, lab: im[:, 0], 0.5,
                                     [torch.tensor([1, 0]), torch.tensor([0, 1])])
    assert doubted == 1 and len(calls) == 2 and torch.equal(images, torch.tensor([[1.0, 0.0]]))


def test_permutations_are_fixed() -> None:
    first, second = redraw_permutations(16), redraw_permutations(16)
    assert len(first) == MAX_REDRAWS and all(torch.equal(a, b) for a, b in zip(first, second))
    assert all(sorted(p.tolist()) == list(range(16)) for p in first) and not torch.equal(first[0], torch.arange(16))


@pytest.mark.parametrize("module", [sampling, eval_mode], ids=lambda m: m.__name__)
def test_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------------------------------------ ConditionalGAN.sample
def test_defaults_sample_exactly_as_the_generator() -> None:
    model = _gan()
    z, labels = _inputs()
    assert torch.equal(model.sample(labels, z=z), model.generator_ema(z, labels))
    assert torch.equal(model.sample(labels, z=z, ema=False), model.generator.eval()(z, labels))


def test_latent_scale_widens_the_latents() -> None:
    wide = _gan(sample_latent_scale=1.5)
    z, labels = _inputs()
    assert torch.equal(wide.sample(labels, z=z), wide.generator_ema(z * 1.5, labels))


def test_rejection_redraws_what_the_head_doubts_and_depends_only_on_z_and_label(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = _gan(sample_min_class_prob=0.5)
    monkeypatch.setattr(model.discriminator, "label_probability", _doubt_label(3))
    z, labels = _inputs()
    images = model.sample(labels, z=z)
    rows, others = (labels == 3), (labels != 3)
    assert torch.equal(images[others], model.generator_ema(z[others], labels[others]))
    assert torch.equal(images[rows], model.generator_ema(z[rows][:, redraw_permutations(16)[-1]], labels[rows]))
    halves = torch.cat([model.sample(labels[:7], z=z[:7]), model.sample(labels[7:], z=z[7:])])
    torch.testing.assert_close(halves, images)  # the same images whatever the batch (up to the kernels' rounding)


def test_rejection_with_the_real_head_raises_the_heads_probability_and_leaves_d_untouched() -> None:
    model = _gan(sample_min_class_prob=0.1).train()
    z, labels = _inputs(200)
    before = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    plain = model.sample(labels, z=z, redraw=False)
    with torch.no_grad():
        probability = model.discriminator.eval().label_probability(plain, labels)
    model.train()
    model.sample_min_class_prob = float(probability.median())  # an untrained head: doubt half the samples
    filtered = model.sample(labels, z=z)
    assert model.discriminator.training and model.generator.training  # modes restored
    assert all(torch.equal(before[k], v) for k, v in model.discriminator.state_dict().items())  # spectral-norm u, v
    with torch.no_grad():
        doubted_after = model.discriminator.eval().label_probability(filtered, labels) < model.sample_min_class_prob
    doubted_before = probability < model.sample_min_class_prob
    assert int(doubted_after.sum()) < int(doubted_before.sum())
    assert torch.equal(filtered[~doubted_before], plain[~doubted_before])  # trusted samples are kept as drawn
    assert not torch.equal(filtered[doubted_before], plain[doubted_before])


def test_interference_and_traversal_keep_their_fixed_latents(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _gan(sample_min_class_prob=0.5)
    monkeypatch.setattr(model.discriminator, "label_probability", _doubt_label(3))
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(10).repeat(2)
    expected = model.generator_ema(z.repeat_interleave(10, dim=0), labels)
    assert torch.equal(interference_images(model, z, "cpu"), expected)
    endpoints = torch.randn(10, 2, 16, generator=torch.Generator().manual_seed(3))
    frames = traversal_images(model, endpoints, 2, "cpu")
    # two frames: the endpoints themselves (slerp equals them up to rounding)
    expected = model.generator_ema(endpoints.reshape(20, 16), torch.arange(10).repeat_interleave(2))
    torch.testing.assert_close(frames, expected)


@pytest.mark.parametrize(("options", "message"), [
    ({"sample_min_class_prob": 0.7, "discriminator": functools.partial(DCGANDiscriminator, base_channels=8)},
     "has no class head: use cgan_lightning.nn.dcgan.ACGANDiscriminator"),
    ({"sample_min_class_prob": 1.0}, r"must be in \[0, 1\)"),
    ({"sample_min_class_prob": -0.1}, ">= 0"),
    ({"sample_latent_scale": 0.0}, "must be > 0"),
    ({"sample_latent_scale": -2.0}, r"must be > 0 \(1: latents as trained\), got -2.0"),  # one rule, one message
    ({"sample_latent_scale": float("nan")}, "finite number"),
])
def test_bad_sampling_options_are_refused_clearly(options: dict[str, object], message: str) -> None:
    settings = {"latent_dim": 16, "generator": GENERATOR, "discriminator": AC_DISCRIMINATOR, **options}
    with pytest.raises(ValueError, match=message):
        ConditionalGAN(**settings)  # type: ignore[arg-type]


def test_a_checkpoint_can_be_sampled_with_the_options_given_at_load(tmp_path: Path) -> None:
    model = _gan()
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": "2.6.0"}, path)
    loaded = ConditionalGAN.load_from_checkpoint(path, sample_latent_scale=1.1, sample_min_class_prob=0.7)
    assert (loaded.sample_latent_scale, loaded.sample_min_class_prob) == (1.1, 0.7)
    z, labels = _inputs()
    assert torch.equal(loaded.sample(labels, z=z, redraw=False), model.generator_ema(z * 1.1, labels))


def test_export_warns_that_the_sampling_options_stay_behind_and_drops_scores_it_cannot_vouch_for(
        tmp_path: Path) -> None:
    model = _gan(sample_min_class_prob=0.7)
    with pytest.warns(UserWarning, match="holds G only"):
        out = export_generator(model, tmp_path / "export", scores={"val/fid/mean": 1.0})
    assert not (out / "evaluation.json").exists() and "Not measured" in (out / "README.md").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when sample() is G alone
        export_generator(_gan(), tmp_path / "plain", scores={"val/fid/mean": 1.0})
    assert (tmp_path / "plain" / "evaluation.json").exists()


def test_validate_applies_the_sampling_options_given_over_the_checkpoints(fake_mnist_session_dir: Path,
                                                                           tmp_path: Path) -> None:
    # LightningCLI replaces the model section with the checkpoint's hyperparameters; the sampling options given win.
    ckpt = save_acgan_checkpoint(tmp_path / "model.ckpt")
    cli = build_cli(["validate", f"--ckpt_path={ckpt}", "--model.sample_latent_scale=1.5",
                     "--model.sample_min_class_prob=0.6", "--trainer.accelerator=cpu", "--trainer.logger=false",
                     "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
                     f"--trainer.default_root_dir={tmp_path}", f"--data.data_dir={fake_mnist_session_dir}",
                     "--data.download=false"])
    assert isinstance(cli.model, ConditionalGAN) and cli.model.latent_dim == 8  # the checkpoint's networks
    assert (cli.model.sample_latent_scale, cli.model.sample_min_class_prob) == (1.5, 0.6)
