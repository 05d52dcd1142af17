"""FrozenFeatureCritic and DCGANDiscriminator(feature_critic=...): frozen, saved, added to the logit, checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cgan_lightning.metrics.classifier import ImageClassifier, save_classifier
from cgan_lightning.nn.dcgan import ACGANDiscriminator, DCGANDiscriminator
from cgan_lightning.nn.feature_critic import FrozenFeatureCritic, load_critic_features


def _aided(**options: object) -> ACGANDiscriminator:
    torch.manual_seed(0)
    return ACGANDiscriminator(base_channels=8, conditioning="projection", spectral_norm=True, feature_critic="mnist",
                              **options)  # type: ignore[arg-type]


def test_frozen_network_is_buffers_not_parameters_and_does_not_train() -> None:
    d = _aided()
    critic = d.feature_critic
    assert isinstance(critic, FrozenFeatureCritic)
    frozen = dict(critic.features.named_buffers())
    assert frozen and not list(critic.features.parameters())
    # The shipped weights, batch norm folded in, are what the critic reads.
    expected = load_critic_features("mnist").fuse_batch_norm().conv.state_dict()
    assert frozen.keys() == expected.keys()
    assert all(torch.equal(frozen[k], expected[k]) for k in expected)
    before = {k: v.clone() for k, v in frozen.items()}
    images = torch.randn(6, 1, 28, 28, requires_grad=True)
    labels = torch.arange(6) % 10
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-2)
    logits, aux = d.logits_and_aux_loss(images, labels)
    (logits.mean() + aux).backward()
    optimizer.step()
    # G's gradient passes through the frozen network into the images; the heads learn; the network stays.
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is not None for p in critic.hidden.parameters())
    assert all(torch.equal(v, before[k]) for k, v in critic.features.named_buffers())
    # Checkpoints hold it, so a run can be sampled or resumed without the weights file.
    assert any(k.startswith("feature_critic.features.") for k in d.state_dict())


def test_critic_score_is_added_to_the_logit() -> None:
    d = _aided().eval()  # eval: spectral norm's power iteration would change the weights between calls
    images, labels = torch.randn(5, 1, 28, 28), torch.tensor([0, 3, 3, 7, 9])
    with torch.no_grad():
        aided = d(images, labels)
        critic = d.feature_critic
        assert critic is not None
        critic_logits = critic(images, labels)
        d.feature_critic = None
        plain = d(images, labels)
    torch.testing.assert_close(aided, plain + critic_logits)
    assert critic_logits.abs().sum() > 0


def test_critic_moves_with_the_discriminator_and_survives_a_state_dict_round_trip() -> None:
    d = _aided().double()
    assert all(b.dtype == torch.float64 for b in d.feature_critic.features.buffers())  # type: ignore[union-attr]
    images, labels = torch.randn(3, 1, 28, 28, dtype=torch.float64), torch.tensor([1, 2, 3])
    torch.manual_seed(1)
    other = ACGANDiscriminator(base_channels=8, conditioning="projection", spectral_norm=True,
                               feature_critic="mnist").double()
    other.load_state_dict(d.state_dict())
    d.eval(), other.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(images, labels), d(images, labels))


def test_blocks_choose_the_tapped_features() -> None:
    critic = FrozenFeatureCritic("mnist", 10, (1, 28, 28), blocks=(1,), width=4, spectral_norm=False)
    hidden = critic.hidden[0]
    assert isinstance(hidden, nn.Linear) and hidden.in_features == 16 * 14 * 14
    assert len(FrozenFeatureCritic("mnist", 10, (1, 28, 28), blocks=(1, 2, 3), width=4).hidden) == 3


def test_a_users_classifier_file_works(tmp_path: Path) -> None:
    path = tmp_path / "clf.pt"
    save_classifier(ImageClassifier(num_classes=4, image_shape=(3, 32, 32)), path)
    d = DCGANDiscriminator(4, (3, 32, 32), base_channels=8, feature_critic=str(path))
    assert d(torch.randn(2, 3, 32, 32), torch.tensor([0, 3])).shape == (2,)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"image_shape": (3, 32, 32)}, ValueError, "takes 1x28x28 images but the model draws 3x32x32"),
        ({"num_classes": 5}, ValueError, "predicts 10 classes but the model has 5"),
        ({"feature_critic_blocks": (4,)}, ValueError, "feature_critic_blocks must name distinct conv blocks"),
        ({"feature_critic_blocks": ()}, ValueError, "feature_critic_blocks must name distinct conv blocks"),
        ({"feature_critic": "missing.pt"}, FileNotFoundError, "classifier weights not found at missing.pt"),
    ],
)
def test_bad_settings_are_refused_clearly(options: dict[str, object], error: type[Exception], message: str) -> None:
    settings: dict[str, object] = {"num_classes": 10, "image_shape": (1, 28, 28), "base_channels": 8,
                                   "feature_critic": "mnist", **options}
    with pytest.raises(error, match=message):
        DCGANDiscriminator(**settings)  # type: ignore[arg-type]
