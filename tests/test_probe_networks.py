"""benchmarks/probe_networks.py: the network probes of docs/evidence.md do what their docstrings say."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import benchmark_module
from torch import Tensor

from cgan_lightning.nn.dcgan import DCGANGenerator


def _networks() -> Any:
    return benchmark_module("probe_networks")


def test_label_input_generator_feeds_each_labels_embedding_to_the_first_layer() -> None:
    torch.manual_seed(0)
    generator = _networks().LabelInputGenerator(latent_dim=8, base_channels=4, input_embedding_dim=5).eval()
    assert generator.project.in_features == 8 + 5
    z, labels = torch.randn(4, 8), torch.tensor([0, 3, 3, 7])
    before = generator(z, labels)
    with torch.no_grad():
        generator.input_embedding.weight[3] += 1.0  # label 3's input embedding only
    after = generator(z, labels)
    moved = (after - before).flatten(1).abs().amax(dim=1) > 1e-4
    assert moved.tolist() == [False, True, True, False]
    assert after.shape == (4, 1, 28, 28)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_embedding_dim": 0}, "input_embedding_dim must be positive"),
    ({"conditioning": "concat"}, "already feeds the label"),
])
def test_label_input_generator_refuses_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _networks().LabelInputGenerator(latent_dim=8, base_channels=4, **kwargs)


def _beside_its_parent(name: str, **kwargs: Any) -> tuple[Any, DCGANGenerator, Tensor, Tensor]:
    """A probe generator and its parent built from the same seed, with latents and labels for both."""
    torch.manual_seed(0)
    parent = DCGANGenerator(latent_dim=8, base_channels=4).eval()
    torch.manual_seed(0)
    generator = getattr(_networks(), name)(latent_dim=8, base_channels=4, **kwargs).eval()
    return generator, parent, torch.randn(3, 8), torch.tensor([0, 3, 7])


def test_latent_modulated_generator_starts_as_its_parent_and_lets_z_scale_each_norm() -> None:
    generator, parent, z, labels = _beside_its_parent("LatentModulatedGenerator")
    torch.testing.assert_close(generator(z, labels), parent(z, labels))
    with torch.no_grad():
        generator.latent_modulations[1].weight[:, 0] = 1.0  # the second norm's scale and shift read z[:, 0]
    moved = generator(z, labels) - parent(z, labels)
    assert (moved.flatten(1).abs().amax(dim=1) > 1e-4).all()
    z_without_first = z.clone()
    z_without_first[:, 0] = 0.0
    torch.testing.assert_close(generator(z_without_first, labels), parent(z_without_first, labels))


@pytest.mark.parametrize("name", ["LatentModulatedGenerator", "NoiseInjectionGenerator"])
def test_the_norm_probes_refuse_norms_without_per_class_tables(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} works on conditional BatchNorm: use conditioning='cbn'"):
        getattr(_networks(), name)(latent_dim=8, base_channels=4, conditioning="film")


def test_noise_injection_generator_starts_as_its_parent_and_varies_once_its_strength_grows() -> None:
    generator, parent, z, labels = _beside_its_parent("NoiseInjectionGenerator")
    torch.testing.assert_close(generator(z, labels), parent(z, labels))
    with torch.no_grad():
        generator.noise_strengths[0].fill_(1.0)
    first, second = generator(z, labels), generator(z, labels)
    assert (first - second).flatten(1).abs().amax(dim=1).min() > 1e-4  # a fresh noise map in each pass
    assert first.shape == (3, 1, 28, 28)
