"""benchmarks/probe_networks.py: the network probes of docs/evidence.md do what their docstrings say."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import benchmark_module


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
