"""ConditionalGAN(class_moment_weight=...): G's per-class feature moments pulled towards the training split's."""

from __future__ import annotations

import doctest
from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from cgan_lightning import ConditionalGAN, MNISTDataModule
from cgan_lightning.data.in_memory import normalize
from cgan_lightning.nn import class_moments
from cgan_lightning.nn.class_moments import ClassMomentMatching, class_covariance_terms, class_moment_terms
from cgan_lightning.nn.dcgan import ACGANDiscriminator, DCGANDiscriminator, DCGANGenerator


def test_doctest() -> None:
    result = doctest.testmod(class_moments)
    assert result.attempted > 0 and result.failed == 0


def test_terms_match_a_hand_computation_and_absent_classes_keep_their_moments() -> None:
    torch.manual_seed(0)
    classes, dim, momentum = 3, 4, 0.75
    real_mean, real_std = torch.randn(classes, dim), torch.rand(classes, dim) + 0.5
    g_mean, g_square = torch.randn(classes, dim), torch.rand(classes, dim) + 2.0
    features, labels = torch.randn(5, dim), torch.tensor([0, 2, 0, 0, 2])  # class 1 absent
    terms, present, mean, square = class_moment_terms(features, labels, g_mean, g_square, real_mean, real_std,
                                                      momentum)
    assert present.tolist() == [True, False, True]
    for c in (0, 2):
        rows = features[labels == c]
        m = momentum * g_mean[c] + (1 - momentum) * rows.mean(0)
        s = momentum * g_square[c] + (1 - momentum) * rows.pow(2).mean(0)
        sd = (s - m * m).sqrt()
        torch.testing.assert_close(mean[c], m)
        torch.testing.assert_close(square[c], s)
        torch.testing.assert_close(terms[c], ((m - real_mean[c]) ** 2).mean() + ((sd - real_std[c]) ** 2).mean())
    torch.testing.assert_close(mean[1], g_mean[1], rtol=0, atol=0)
    torch.testing.assert_close(square[1], g_square[1], rtol=0, atol=0)


def test_module_weighs_the_mean_term_carries_gs_gradient_and_keeps_the_running_moments() -> None:
    torch.manual_seed(0)
    matching = ClassMomentMatching(num_classes=2, feature_dim=3, weight=4.0, momentum=0.5)
    real, labels = torch.randn(20, 3) * 2, torch.arange(20) % 2
    matching.fit(real, labels)
    torch.testing.assert_close(matching.real_mean[1], real[1::2].mean(0))
    torch.testing.assert_close(matching.real_std[0], real[0::2].std(0))
    torch.testing.assert_close(matching.scale, matching.real_std.pow(2).mean())
    features = torch.randn(6, 3, requires_grad=True)
    fake_labels = torch.tensor([0, 0, 0, 1, 1, 1])
    before = matching.g_mean.clone(), matching.g_square.clone()
    loss = matching(features, fake_labels)
    terms, _, mean, square = class_moment_terms(features, fake_labels, *before, matching.real_mean,
                                                matching.real_std, 0.5)
    torch.testing.assert_close(loss, 4.0 * terms.mean() / matching.scale)
    loss.backward()
    assert features.grad is not None and bool(features.grad.abs().sum() > 0)
    torch.testing.assert_close(matching.g_mean, mean.detach())
    torch.testing.assert_close(matching.g_square, square.detach())
    assert not matching.g_mean.requires_grad


def test_covariance_terms_match_a_hand_computation_and_absent_classes_keep_their_moments() -> None:
    torch.manual_seed(0)
    classes, dim, rank, momentum = 3, 5, 2, 0.6
    basis = torch.linalg.qr(torch.randn(classes, dim, rank)).Q  # orthonormal directions per class
    variances = torch.rand(classes, rank) + 0.5
    g_mean, g_square = torch.randn(classes, rank), torch.randn(classes, rank, rank)
    features, labels = torch.randn(6, dim), torch.tensor([2, 0, 2, 2, 0, 2])  # class 1 absent
    terms, mean, square = class_covariance_terms(features, labels, g_mean, g_square, basis, variances, momentum)
    for c in (0, 2):
        rows = features[labels == c] @ basis[c]
        m = momentum * g_mean[c] + (1 - momentum) * rows.mean(0)
        s = momentum * g_square[c] + (1 - momentum) * (rows.t() @ rows) / len(rows)
        covariance = s - torch.outer(m, m)
        torch.testing.assert_close(mean[c], m)
        torch.testing.assert_close(square[c], s)
        expected = (covariance - torch.diag(variances[c])).pow(2).sum() / variances[c].pow(2).sum()
        torch.testing.assert_close(terms[c], expected)
    torch.testing.assert_close(mean[1], g_mean[1], rtol=0, atol=0)
    torch.testing.assert_close(square[1], g_square[1], rtol=0, atol=0)


def test_covariance_option_fits_the_leading_directions_and_adds_its_weighted_term() -> None:
    torch.manual_seed(0)
    stretch = torch.tensor([3.0, 1.0, 0.2, 0.1])  # class variances along known axes
    real, labels = torch.randn(400, 4) * stretch, torch.arange(400) % 2
    plain = ClassMomentMatching(2, 4, weight=2.0, momentum=0.5)
    shaped = ClassMomentMatching(2, 4, weight=2.0, momentum=0.5, covariance_rank=2, covariance_weight=3.0)
    for matching in (plain, shaped):
        matching.fit(real, labels)
    for c in (0, 1):
        values, vectors = torch.linalg.eigh(torch.cov(real[labels == c].t()))
        torch.testing.assert_close(shaped.real_variances[c], values[-2:])
        assert shaped.basis[c].abs().argmax(0).tolist() == [1, 0]  # the two widest axes, ascending
        torch.testing.assert_close(shaped.basis[c].abs(), vectors[:, -2:].abs())
    # G's running moments start at the real ones: the real features' own moments add nothing to the shape term.
    torch.testing.assert_close(shaped.g_square_pc - shaped.g_mean_pc.unsqueeze(2) * shaped.g_mean_pc.unsqueeze(1),
                               torch.diag_embed(shaped.real_variances))
    collapsed = torch.zeros(4, 4, requires_grad=True)  # both classes collapsed onto one point
    fake_labels = torch.tensor([0, 1, 0, 1])
    before = shaped.g_mean_pc.clone(), shaped.g_square_pc.clone()
    extra = shaped(collapsed, fake_labels) - plain(collapsed, fake_labels)
    terms, mean, square = class_covariance_terms(collapsed, fake_labels, *before, shaped.basis,
                                                 shaped.real_variances, 0.5)
    torch.testing.assert_close(extra, 3.0 * terms.mean())
    assert float(terms.detach().min()) > 0.2  # half the variance gone: a quarter of the squared norm, at least
    extra.backward()
    assert collapsed.grad is not None and bool(collapsed.grad.abs().sum() > 0)
    torch.testing.assert_close(shaped.g_mean_pc, mean.detach())
    torch.testing.assert_close(shaped.g_square_pc, square.detach())


def test_module_refuses_bad_settings_and_unfitted_use() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        ClassMomentMatching(2, 3, weight=1.0)(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="weight must be > 0"):
        ClassMomentMatching(2, 3, weight=0.0)
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\), got 1.0"):
        ClassMomentMatching(2, 3, weight=1.0, momentum=1.0)
    with pytest.raises(ValueError, match=r"at least two training images of each of the 3 classes.*\[2, 1, 0\]"):
        ClassMomentMatching(3, 2, weight=1.0).fit(torch.randn(3, 2), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match=r"covariance_rank must lie in \[0, 3\] \(the feature size\), got 4"):
        ClassMomentMatching(2, 3, weight=1.0, covariance_rank=4, covariance_weight=1.0)
    with pytest.raises(ValueError, match="covariance term needs a finite covariance_weight > 0, got 0.0"):
        ClassMomentMatching(2, 3, weight=1.0, covariance_rank=2)
    with pytest.raises(ValueError, match=r"covariance_weight 2.0 needs covariance_rank > 0"):
        ClassMomentMatching(2, 3, weight=1.0, covariance_weight=2.0)  # would be silently ignored
    with pytest.raises(ValueError, match=r"covariance_rank 2 needs more training images than that in every class, "
                                         r"got counts \[3, 2\]: lower covariance_rank"):
        ClassMomentMatching(2, 3, weight=1.0, covariance_rank=2, covariance_weight=1.0).fit(
            torch.randn(5, 3), torch.tensor([0, 0, 0, 1, 1]))


def _critic_gan(**options: object) -> ConditionalGAN:
    generator = partial(DCGANGenerator, base_channels=8)
    discriminator = partial(ACGANDiscriminator, base_channels=8, feature_critic="mnist")
    return ConditionalGAN(generator=generator, discriminator=discriminator, loss="hinge",  # type: ignore[arg-type]
                          **options)  # type: ignore[arg-type]


def test_model_checks_and_state_dict() -> None:
    with pytest.raises(ValueError, match="has none: use DCGANDiscriminator or ACGANDiscriminator with feature_critic"):
        ConditionalGAN(class_moment_weight=1.0)  # the reference MLP D has no critic
    with pytest.raises(ValueError, match="class_moment_weight"):
        _critic_gan(class_moment_weight=-1.0)
    with pytest.raises(ValueError, match="shared_d_backward=True does not support the class moment matching"):
        ConditionalGAN(generator=partial(DCGANGenerator, base_channels=8),  # type: ignore[arg-type]
                       discriminator=partial(DCGANDiscriminator, base_channels=8,  # type: ignore[arg-type]
                                             feature_critic="mnist"),
                       step_order="g_first", joint_d_forward=True, shared_d_backward=True, class_moment_weight=1.0)
    with pytest.raises(ValueError, match="augment would show the critic augmented ones"):
        _critic_gan(class_moment_weight=1.0, augment=["translation"])
    off = _critic_gan()
    assert off.class_moments is None and not off.discriminator.feature_critic.keep_features
    on = _critic_gan(class_moment_weight=1.0)
    added = set(on.state_dict()) - set(off.state_dict())
    assert added == {f"class_moments.{name}" for name in
                     ("real_mean", "real_std", "scale", "g_mean", "g_square", "fitted")}
    assert on.class_moments is not None and on.class_moments.real_mean.shape == (10, 576)
    with pytest.raises(ValueError, match="class_covariance_weight > 0 is a term of the class moment matching"):
        _critic_gan(class_covariance_weight=1.0)
    with pytest.raises(ValueError, match="class_covariance_rank must be"):
        _critic_gan(class_moment_weight=1.0, class_covariance_weight=1.0, class_covariance_rank=0)
    shaped = _critic_gan(class_moment_weight=1.0, class_covariance_weight=2.0, class_covariance_rank=6)
    assert set(shaped.state_dict()) - set(on.state_dict()) == {f"class_moments.{name}" for name in
                                                                ("basis", "real_variances", "g_mean_pc", "g_square_pc")}
    assert shaped.class_moments is not None and shaped.class_moments.basis.shape == (10, 576, 6)
    assert shaped.class_moments.covariance_weight == 2.0


def _fit(model: ConditionalGAN, data_dir: Path, root: Path, ckpt_path: str | None = None, epochs: int = 1) -> Trainer:
    trainer = Trainer(max_epochs=epochs, limit_train_batches=3, limit_val_batches=0, enable_progress_bar=False,
                      enable_model_summary=False, logger=False, default_root_dir=root)
    trainer.fit(model, MNISTDataModule(str(data_dir), download=False, batch_size=16), ckpt_path=ckpt_path)
    return trainer


def test_training_fits_the_real_moments_and_adds_the_term_to_gs_loss(fake_mnist_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _critic_gan(class_moment_weight=10.0)
    added: list[torch.Tensor] = []
    original = model._g_moments_added
    model._g_moments_added = (  # type: ignore[method-assign]
        lambda g_loss, labels: added.append(original(g_loss, labels) - g_loss) or g_loss + added[-1])
    _fit(model, fake_mnist_dir, tmp_path)
    matching, critic = model.class_moments, model.discriminator.feature_critic
    assert matching is not None and bool(matching.fitted)
    images, labels = MNISTDataModule(str(fake_mnist_dir), download=False).split("train")
    features = critic.features_of(normalize(images))
    torch.testing.assert_close(matching.real_mean[3], features[labels == 3].mean(0), atol=1e-4, rtol=1e-4)
    assert len(added) == 3 and all(float(term.detach()) > 0 and term.requires_grad for term in added)
    assert not torch.allclose(matching.g_mean, matching.real_mean)  # G's running moments moved
    assert critic.last_features is None  # released after each G step


def test_g_first_reads_the_generated_rows_of_a_joint_forward(fake_mnist_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConditionalGAN(generator=partial(DCGANGenerator, base_channels=8),  # type: ignore[arg-type]
                           discriminator=partial(DCGANDiscriminator, base_channels=8,  # type: ignore[arg-type]
                                                 feature_critic="mnist"),
                           step_order="g_first", joint_d_forward=True, class_moment_weight=1.0)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    matching = model.class_moments
    assert matching is not None
    original = matching.forward
    matching.forward = (  # type: ignore[method-assign]
        lambda features, labels: seen.append((features.detach(), labels)) or original(features, labels))
    critic = model.discriminator.feature_critic
    joint: list[torch.Tensor] = []
    original_taps = critic._taps
    critic._taps = lambda images: joint.append(images.detach()) or original_taps(images)  # type: ignore[method-assign]
    _fit(model, fake_mnist_dir, tmp_path)
    features, labels = seen[-1]
    generated = joint[-1][-labels.size(0):]  # the joint forward's last rows: the generated images
    assert joint[-1].size(0) == 2 * labels.size(0)
    torch.testing.assert_close(features, critic.features_of(generated), atol=1e-4, rtol=1e-4)


def test_resume_keeps_the_checkpoints_moments(fake_mnist_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _critic_gan(class_moment_weight=10.0)
    _fit(model, fake_mnist_dir, tmp_path)
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    assert model.class_moments is not None
    saved = model.class_moments.g_mean.clone()
    resumed = _critic_gan(class_moment_weight=10.0)
    assert resumed.class_moments is not None
    calls: list[int] = []
    resumed.class_moments.fit = lambda *args: calls.append(1)  # type: ignore[method-assign]
    torch.testing.assert_close(ConditionalGAN.load_from_checkpoint(ckpt).class_moments.g_mean,  # type: ignore[union-attr]
                               saved)
    _fit(resumed, fake_mnist_dir, tmp_path / "resumed", ckpt_path=str(ckpt), epochs=2)
    assert not calls  # the checkpoint's statistics, not a refit
    assert not torch.allclose(resumed.class_moments.g_mean, saved)  # and training went on from them
