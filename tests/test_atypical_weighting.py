"""ConditionalGAN(atypical_weighting=...): D's real terms weighted towards each class's atypical training images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from cgan_lightning import ConditionalGAN, MNISTDataModule
from cgan_lightning.losses import LOSSES
from cgan_lightning.metrics.classifier import ImageClassifier, save_classifier
from cgan_lightning.nn.atypical_weighting import AtypicalRealWeighting, atypical_weights, class_distance_statistics
from cgan_lightning.nn.feature_critic import load_critic_features


def test_class_statistics_match_a_hand_computation() -> None:
    # Class 0: points (0, 0), (2, 0), (4, 0): centroid (2, 0), distances 2, 0, 2: mean 4/3, sd sqrt(4/3).
    # Class 1: points (0, 1), (0, 3): centroid (0, 2), distances 1, 1: mean 1, sd 0.
    features = torch.tensor([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    labels = torch.tensor([0, 1, 0, 0, 1])
    centroids, mean, std = class_distance_statistics(features, labels, 2)
    torch.testing.assert_close(centroids, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    torch.testing.assert_close(mean, torch.tensor([4 / 3, 1.0]))
    torch.testing.assert_close(std, torch.tensor([(4 / 3) ** 0.5, 0.0]))


def test_class_statistics_need_two_images_of_every_class() -> None:
    with pytest.raises(ValueError, match=r"at least two training images of each of the 3 classes.*\[2, 1, 0\]"):
        class_distance_statistics(torch.randn(3, 4), torch.tensor([0, 0, 1]), 3)


def test_weights_lean_towards_far_images_are_clipped_and_average_one() -> None:
    mean, std = torch.tensor([2.0, 5.0]), torch.tensor([1.0, 2.0])
    # Standardized distances: -1, +1, +10 (class 0), 0 (class 1); raw weights at a = 0.5: 0.5, 1.5, 3 (clipped), 1.
    distances = torch.tensor([1.0, 3.0, 12.0, 5.0])
    labels = torch.tensor([0, 0, 0, 1])
    weights = atypical_weights(distances, labels, mean, std, strength=0.5)
    torch.testing.assert_close(weights, torch.tensor([0.5, 1.5, 3.0, 1.0]) / 1.5)
    # Far below the mean: clipped at min_weight before the normalization.
    low = atypical_weights(torch.tensor([0.0, 2.0]), torch.tensor([0, 0]), mean, std, strength=2.0)
    torch.testing.assert_close(low, torch.tensor([0.25, 1.0]) / 0.625)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_d_losses_weigh_each_real_term(name: str) -> None:
    d_loss = LOSSES[name].d_loss
    real, fake = torch.tensor([0.3, -1.2, 2.0, 0.5]), torch.tensor([-0.4, 0.8, 0.1, -2.0])
    torch.testing.assert_close(d_loss(real, fake, torch.ones(4)), d_loss(real, fake))
    # Weights (2, 0, 2, 0): the real term of images 0 and 2 only, the fake term unchanged; a relativistic loss
    # has one term per (real, generated) pair, so there they weigh pairs 0 and 2.
    weighted = d_loss(real, fake, torch.tensor([2.0, 0.0, 2.0, 0.0]))
    kept_fake = fake[[0, 2]] if LOSSES[name].relativistic else fake
    torch.testing.assert_close(weighted, d_loss(real[[0, 2]], kept_fake))
    assert not torch.allclose(weighted, d_loss(real, fake))


def _weighting(**options: float) -> AtypicalRealWeighting:
    return AtypicalRealWeighting("mnist", 10, (1, 28, 28), **options)  # type: ignore[arg-type]


def test_weighting_reads_the_frozen_classifiers_penultimate_features() -> None:
    torch.manual_seed(0)
    weighting = _weighting(strength=0.5)
    assert not list(weighting.parameters())  # buffers only: no optimizer or EMA sees them
    classifier = load_critic_features("mnist").eval()
    images, labels = torch.rand(40, 1, 28, 28) * 2 - 1, torch.arange(40) % 10
    with torch.no_grad():
        torch.testing.assert_close(weighting.features(images), classifier.features(images), atol=1e-4, rtol=1e-4)
    weighting.fit(images, labels)
    with torch.no_grad():
        features = classifier.features(images)
    centroids, mean, std = class_distance_statistics(features, labels, 10)
    torch.testing.assert_close(weighting.centroids, centroids, atol=1e-4, rtol=1e-4)
    # The image furthest from its class's centroid gets the largest weight, the nearest the smallest.
    distances = (features - centroids[labels]).norm(dim=1)
    standardized = (distances - mean[labels]) / std[labels]
    weights = weighting(images, labels)
    assert weights.shape == (40,) and weights.mean().item() == pytest.approx(1.0)
    assert int(weights.argmax()) == int(standardized.argmax())
    assert int(weights.argmin()) == int(standardized.argmin())


def test_weighting_must_be_fitted_and_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        _weighting(strength=0.5)(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="strength must be > 0"):
        _weighting(strength=0.0)
    with pytest.raises(ValueError, match="min_weight"):
        _weighting(strength=0.5, min_weight=1.5)
    other = tmp_path / "five_classes.pt"
    save_classifier(ImageClassifier(num_classes=5), other)
    with pytest.raises(ValueError, match="5"):
        AtypicalRealWeighting(other, 10, (1, 28, 28), strength=0.5)
    with pytest.raises(ValueError, match="atypical_weighting"):
        ConditionalGAN(atypical_weighting=-0.5)


def test_off_by_default_and_state_dict_unchanged() -> None:
    keys = set(ConditionalGAN().state_dict())
    assert not any(k.startswith("atypical_weighting.") for k in keys)
    on = set(ConditionalGAN(atypical_weighting=0.5).state_dict()) - keys
    assert {"atypical_weighting.centroids", "atypical_weighting.distance_std", "atypical_weighting.fitted"} <= on


def _fit(model: ConditionalGAN, data_dir: Path, root: Path, ckpt_path: str | None = None, epochs: int = 1) -> Trainer:
    trainer = Trainer(max_epochs=epochs, limit_train_batches=4, limit_val_batches=0, enable_progress_bar=False,
                      enable_model_summary=False, logger=False, default_root_dir=root)
    trainer.fit(model, MNISTDataModule(str(data_dir), download=False, batch_size=16), ckpt_path=ckpt_path)
    return trainer


@pytest.mark.parametrize("step_order", ["d_first", "g_first"])
def test_training_fits_the_statistics_and_weights_ds_real_terms(fake_mnist_dir: Path, tmp_path: Path,
                                                                step_order: str) -> None:
    def d_update(weighting: float) -> torch.Tensor:
        torch.manual_seed(0)
        model = ConditionalGAN(atypical_weighting=weighting, loss="hinge", step_order=step_order)
        before = torch.cat([p.detach().flatten().clone() for p in model.discriminator.parameters()])
        _fit(model, fake_mnist_dir, tmp_path / f"{step_order}_{weighting}")
        if weighting > 0:  # fitted on the training split at the start of fit
            assert model.atypical_weighting is not None and bool(model.atypical_weighting.fitted)
            assert bool((model.atypical_weighting.distance_std > 0).all())
        return torch.cat([p.detach().flatten() for p in model.discriminator.parameters()]) - before

    # The same seed, data and draws: only the weights of D's real terms differ.
    assert not torch.allclose(d_update(0.5), d_update(0.0))


def test_resume_keeps_the_checkpoints_statistics(fake_mnist_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConditionalGAN(atypical_weighting=0.5)
    _fit(model, fake_mnist_dir, tmp_path)
    assert model.atypical_weighting is not None
    ckpt = tmp_path / "checkpoints" / "epoch=0-step=8.ckpt"
    assert ckpt.exists()
    saved = model.atypical_weighting.centroids.clone()
    resumed = ConditionalGAN(atypical_weighting=0.5)
    assert resumed.atypical_weighting is not None
    calls = []
    original_fit = resumed.atypical_weighting.fit
    resumed.atypical_weighting.fit = (  # type: ignore[method-assign]
        lambda *args, **kwargs: calls.append(1) or original_fit(*args, **kwargs))
    _fit(resumed, fake_mnist_dir, tmp_path / "resumed", ckpt_path=str(ckpt), epochs=2)
    assert not calls
    torch.testing.assert_close(resumed.atypical_weighting.centroids, saved)
