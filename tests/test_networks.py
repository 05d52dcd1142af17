"""The reference networks: shapes, ranges, and that the label really enters both networks."""

from __future__ import annotations

import pytest
import torch

from cgan_lightning import MLPDiscriminator, MLPGenerator


def test_generator_shape_and_range() -> None:
    g = MLPGenerator(latent_dim=16, num_classes=10, image_shape=(1, 28, 28))
    images = g(torch.randn(5, 16), torch.arange(5))
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1


def test_generator_matches_reference_layout() -> None:
    g = MLPGenerator()
    linears = [m for m in g.model if isinstance(m, torch.nn.Linear)]
    norms = [m for m in g.model if isinstance(m, torch.nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (110, 128), (128, 256), (256, 512), (512, 1024), (1024, 784)
    ]
    assert [m.num_features for m in norms] == [256, 512, 1024]
    assert all(m.momentum == 0.8 for m in norms)
    assert isinstance(g.model[-1], torch.nn.Tanh)
    assert g.label_embedding.weight.shape == (10, 10)


def test_discriminator_matches_reference_layout_and_returns_logits() -> None:
    d = MLPDiscriminator()
    linears = [m for m in d.model if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(794, 512), (512, 256), (256, 1)]
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in d.modules())
    logits = d(torch.randn(4, 1, 28, 28), torch.arange(4))
    assert logits.shape == (4,)


def test_label_changes_generator_output_for_same_z() -> None:
    torch.manual_seed(0)
    g = MLPGenerator(latent_dim=8).eval()
    z = torch.randn(1, 8).expand(10, 8)
    images = g(z, torch.arange(10))
    # Every pair of labels gives a different image for the same z.
    diffs = (images[:, None] - images[None]).flatten(2).abs().amax(-1)
    assert (diffs + torch.eye(10)).min() > 1e-4


def test_discriminator_output_depends_on_label() -> None:
    torch.manual_seed(0)
    d = MLPDiscriminator()
    x = torch.randn(1, 1, 28, 28).expand(10, 1, 28, 28)
    logits = d(x, torch.arange(10))
    assert logits.unique().numel() == 10


def test_discriminator_rejects_wrong_image_shape() -> None:
    d = MLPDiscriminator()
    with pytest.raises(ValueError, match=r"\[batch, 1, 28, 28\]"):
        d(torch.randn(2, 3, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        d(torch.randn(2, 784), torch.tensor([0, 1]))


def test_generator_rejects_nonpositive_sizes() -> None:
    with pytest.raises(ValueError, match="latent_dim"):
        MLPGenerator(latent_dim=0)
