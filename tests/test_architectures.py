"""DCGAN generator/discriminator, label conditioning layers, spectral norm and the AC-GAN hook of ConditionalGAN."""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from torch import nn
from torch.nn.utils import parametrize

from cgan_lightning import (
    ACGANDiscriminator,
    AdversarialLoss,
    ConditionalBatchNorm2d,
    ConditionalGAN,
    DCGANDiscriminator,
    DCGANGenerator,
    FiLM2d,
    MNISTDataModule,
    losses,
)
from cgan_lightning.nn.conditioning import LabelFreeBatchNorm2d, make_norm

SHAPES = [(1, 28, 28), (3, 8, 12)]


def _labels(n: int, num_classes: int = 10) -> torch.Tensor:
    return torch.arange(n) % num_classes


@pytest.mark.parametrize("image_shape", SHAPES)
@pytest.mark.parametrize("conditioning", ["concat", "cbn", "film"])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_generator_shapes_and_range(image_shape: tuple[int, int, int], conditioning: str, spectral_norm: bool) -> None:
    g = DCGANGenerator(8, 10, image_shape, base_channels=4, conditioning=conditioning, spectral_norm=spectral_norm)
    images = g(torch.randn(6, 8), _labels(6))
    assert images.shape == (6, *image_shape)
    assert images.min() >= -1 and images.max() <= 1


@pytest.mark.parametrize("image_shape", SHAPES)
@pytest.mark.parametrize(
    ("cls", "conditioning"),
    [(DCGANDiscriminator, "concat"), (DCGANDiscriminator, "projection"), (ACGANDiscriminator, "concat"),
     (ACGANDiscriminator, "projection"), (ACGANDiscriminator, "none")],
)
@pytest.mark.parametrize(("spectral_norm", "batch_norm"), [(False, False), (True, False), (False, True)])
def test_discriminator_shapes(image_shape: tuple[int, int, int], cls: type[DCGANDiscriminator], conditioning: str,
                              spectral_norm: bool, batch_norm: bool) -> None:
    d = cls(10, image_shape, base_channels=4, conditioning=conditioning, spectral_norm=spectral_norm,
            batch_norm=batch_norm)
    images, labels = torch.rand(6, *image_shape) * 2 - 1, _labels(6)
    assert d(images, labels).shape == (6,)
    if isinstance(d, ACGANDiscriminator):
        d.eval()  # freeze spectral norm's power iteration and BN statistics so both calls see the same network
        logits, aux_loss = d.logits_and_aux_loss(images, labels)
        assert torch.allclose(logits, d(images, labels))
        assert aux_loss.shape == () and aux_loss > 0
    else:
        # No head, no hook: ConditionalGAN then calls forward (and may score real and fake in one pass).
        assert not hasattr(d, "logits_and_aux_loss")


def test_generator_starts_unsaturated() -> None:
    # With PyTorch's default init the last transposed conv saturates the Tanh for ~17% of the pixels.
    torch.manual_seed(0)
    images = DCGANGenerator(100, 10, (1, 28, 28), base_channels=32)(torch.randn(64, 100), _labels(64))
    assert (images.abs() > 0.9).float().mean() < 0.01


def test_networks_reject_bad_shapes_and_options() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        DCGANGenerator(8, 10, (1, 30, 28))
    with pytest.raises(ValueError, match="divisible by 4"):
        DCGANDiscriminator(10, (1, 28, 6))
    with pytest.raises(ValueError, match="unknown generator conditioning 'projection'"):
        DCGANGenerator(8, 10, conditioning="projection")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown discriminator conditioning 'cbn'"):
        DCGANDiscriminator(10, conditioning="cbn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ACGANDiscriminator"):
        DCGANDiscriminator(10, conditioning="none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aux_weight must be >= 0"):
        ACGANDiscriminator(10, aux_weight=-1.0)
    with pytest.raises(ValueError, match="unknown generator conditioning"):
        make_norm("batch", 4, 10, 8)  # type: ignore[arg-type]
    d = DCGANDiscriminator(10, (1, 28, 28), base_channels=4)
    with pytest.raises(ValueError, match=r"images must have shape \[batch, 1, 28, 28\], got \(2, 1, 32, 32\)"):
        d(torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("conditioning", ["concat", "cbn", "film"])
def test_generator_res_blocks_add_conditioned_residual_layers_at_both_inner_resolutions(conditioning: str) -> None:
    torch.manual_seed(0)
    plain = DCGANGenerator(8, 10, (1, 28, 28), base_channels=4, conditioning=conditioning)
    deep = DCGANGenerator(8, 10, (1, 28, 28), base_channels=4, conditioning=conditioning, res_blocks=2)
    # res_blocks=0 leaves the plain network's parameters (and checkpoints) as they were.
    assert not any(".res_blocks." in name for name, _ in plain.named_parameters())
    convs = [m for m in deep.res_blocks.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.kernel_size) for c in convs] == [(8, (3, 3))] * 2 + [(4, (3, 3))] * 2
    z, labels = torch.randn(6, 8), _labels(6)
    deep.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for conv in convs:
            conv.weight.zero_()
            conv.bias.zero_()
    assert torch.allclose(deep(z, labels), plain(z, labels), atol=1e-6)  # a zero residual is the identity
    with torch.no_grad():
        convs[0].weight.normal_(0, 0.5)
    images = deep(z, labels)
    assert not torch.allclose(images, plain(z, labels), atol=1e-3)
    images.sum().backward()
    assert convs[0].weight.grad is not None and convs[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_res_blocks_add_residual_layers_after_each_strided_convolution(spectral_norm: bool) -> None:
    plain = ACGANDiscriminator(10, (1, 28, 28), base_channels=4, conditioning="projection", spectral_norm=spectral_norm)
    deep = ACGANDiscriminator(10, (1, 28, 28), base_channels=4, conditioning="projection", spectral_norm=spectral_norm,
                              res_blocks=1)
    convs = [m for m in deep.features.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (4, (4, 4), (2, 2)), (4, (3, 3), (1, 1)), (8, (4, 4), (2, 2)), (8, (3, 3), (1, 1))]
    assert all(parametrize.is_parametrized(c, "weight") == spectral_norm for c in convs)
    assert deep.feature_dim == plain.feature_dim
    images, labels = torch.rand(5, 1, 28, 28) * 2 - 1, _labels(5)
    deep.eval()
    logits, aux = deep.logits_and_aux_loss(images, labels)
    assert logits.shape == (5,) and aux.shape == ()


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_res_blocks_must_be_a_non_negative_integer(bad: object) -> None:
    for build in (partial(DCGANGenerator, 8, 10), partial(DCGANDiscriminator, 10), partial(ACGANDiscriminator, 10)):
        with pytest.raises(ValueError, match="res_blocks must be an integer >= 0"):
            build(res_blocks=bad)


@pytest.mark.parametrize("conditioning", ["concat", "projection"])
def test_discriminator_output_depends_on_the_label(conditioning: str) -> None:
    d = DCGANDiscriminator(10, (1, 28, 28), base_channels=4, conditioning=conditioning)
    images = torch.rand(4, 1, 28, 28).repeat(2, 1, 1, 1)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    logits = d(images, labels)
    assert not torch.allclose(logits[:4], logits[4:])


def test_projection_adds_the_inner_product_of_label_embedding_and_features() -> None:
    d = DCGANDiscriminator(10, (1, 8, 8), base_channels=4, conditioning="projection")
    images = torch.rand(3, 1, 8, 8)
    a, b = torch.tensor([1, 1, 1]), torch.tensor([7, 7, 7])
    h = d.features(images)
    expected = ((d.projection.weight[1] - d.projection.weight[7]) * h).sum(dim=1)
    assert torch.allclose(d(images, a) - d(images, b), expected, atol=1e-5)
    # The label-free part is the linear head alone.
    assert torch.allclose(d(images, a), d.to_logit(h).squeeze(1) + (d.projection.weight[1] * h).sum(1), atol=1e-5)


def test_conditional_batchnorm_keeps_separate_parameters_per_class() -> None:
    cbn = ConditionalBatchNorm2d(num_features=3, num_classes=5)
    assert cbn.gain.weight.shape == (5, 3) and cbn.bias.weight.shape == (5, 3)
    x = torch.randn(6, 3, 4, 4)
    labels = torch.tensor([2, 2, 2, 4, 4, 4])
    (cbn(x, labels) * torch.randn(6, 3, 4, 4)).sum().backward()
    used = torch.zeros(5, dtype=torch.bool)
    used[[2, 4]] = True
    for table in (cbn.gain.weight.grad, cbn.bias.weight.grad):
        assert table[used].abs().sum() > 0
        assert torch.all(table[~used] == 0)
    # Changing class 4's gain changes class-4 outputs only.
    before = cbn(x, labels).detach()
    with torch.no_grad():
        cbn.gain.weight[4] *= 3
    after = cbn(x, labels).detach()
    assert torch.equal(after[:3], before[:3])
    assert not torch.allclose(after[3:], before[3:])


def test_conditional_norms_start_as_plain_batchnorm() -> None:
    x, labels = torch.randn(6, 3, 4, 4), _labels(6, 5)
    plain = nn.BatchNorm2d(3)(x)
    assert torch.allclose(ConditionalBatchNorm2d(3, 5)(x, labels), plain, atol=1e-6)
    assert torch.allclose(FiLM2d(3, 8)(x, torch.randn(6, 8)), plain, atol=1e-6)
    assert torch.allclose(LabelFreeBatchNorm2d(3)(x, None), plain, atol=1e-6)


def test_film_modulates_with_its_condition() -> None:
    film = FiLM2d(3, condition_dim=2)
    with torch.no_grad():
        film.to_scale_shift.weight.copy_(torch.arange(12.0).view(6, 2) / 10)
    film.eval()  # running stats (0 mean, 1 var): BN is the identity up to eps
    x = torch.randn(2, 3, 4, 4)
    condition = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scale_shift = condition @ film.to_scale_shift.weight.T
    scale, shift = scale_shift[:, :3, None, None], scale_shift[:, 3:, None, None]
    expected = x / (1 + film.norm.eps) ** 0.5 * (1 + scale) + shift
    assert torch.allclose(film(x, condition), expected, atol=1e-5)


@pytest.mark.parametrize("conditioning", ["concat", "cbn", "film"])
def test_generator_output_depends_on_the_label(conditioning: str) -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(8, 10, (1, 8, 8), base_channels=4, conditioning=conditioning)
    with torch.no_grad():  # cbn and film start label-independent (identity affine); give them some training
        for p in g.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    g.eval()
    z = torch.randn(1, 8).repeat(2, 1)
    out = g(z, torch.tensor([3, 5]))
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_spectral_norm_is_applied_where_configured(spectral_norm: bool) -> None:
    d = ACGANDiscriminator(10, (1, 8, 8), base_channels=4, conditioning="projection",
                           spectral_norm=spectral_norm)
    weighted = [d.features[0], d.features[2], d.to_logit, d.projection, d.classifier]
    assert [parametrize.is_parametrized(m, "weight") for m in weighted] == [spectral_norm] * 5
    g = DCGANGenerator(8, 10, (1, 8, 8), base_channels=4, conditioning="concat", spectral_norm=spectral_norm)
    assert [parametrize.is_parametrized(m, "weight") for m in (g.project, *g.upsample)] == [spectral_norm] * 3
    # The label embedding and norm tables are never normalized (they are not linear maps of the activations).
    assert not parametrize.is_parametrized(g.label_embedding, "weight")
    if spectral_norm:
        for _ in range(30):  # power iterations run on each training-mode forward
            d(torch.rand(2, 1, 8, 8), _labels(2))
        sigma = torch.linalg.matrix_norm(d.features[2].weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_aux_loss_is_cross_entropy_on_raw_class_logits() -> None:
    d = ACGANDiscriminator(10, (1, 8, 8), base_channels=4, conditioning="none", aux_weight=0.5)
    with torch.no_grad():  # spread the class logits (the DCGAN init leaves them near 0, where both agree)
        d.classifier.weight.normal_(0.0, 1.0)
    images, labels = torch.rand(5, 1, 8, 8), _labels(5)
    _, aux = d.logits_and_aux_loss(images, labels)
    class_logits = d.classifier(d.features(images))
    expected = -torch.log_softmax(class_logits, dim=1)[torch.arange(5), labels].mean()
    assert aux.item() == pytest.approx(0.5 * expected.item(), rel=1e-5)
    # A softmax before the cross-entropy would give a different (squashed) value.
    assert aux.item() != pytest.approx(0.5 * F.cross_entropy(class_logits.softmax(1), labels).item(), rel=1e-3)


def test_conditional_gan_adds_the_auxiliary_loss_for_both_players(
    fake_mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With an adversarial loss that is identically zero, G and D's classifier head can only move if the
    # training step adds the AC-GAN loss (D's on real pairs, G's on generated pairs).
    zero = AdversarialLoss(lambda real, fake: (real.sum() + fake.sum()) * 0, lambda fake: fake.sum() * 0)
    monkeypatch.setitem(losses.LOSSES, "zero", zero)
    model = ConditionalGAN(
        latent_dim=8,
        loss="zero",
        generator=partial(DCGANGenerator, base_channels=4),
        discriminator=partial(ACGANDiscriminator, base_channels=4, conditioning="none"),
    )
    head = model.discriminator.classifier.weight.detach().clone()
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                      max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    assert not torch.equal(head, model.discriminator.classifier.weight)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    assert trainer.callback_metrics["train/g_loss_epoch"] > 0  # the aux cross-entropy, ~log(10) at the start


def test_plain_dcgan_discriminator_allows_the_joint_real_fake_forward() -> None:
    # Only discriminators with an auxiliary head define the hook, so the one-pass D step stays available.
    ConditionalGAN(latent_dim=8, joint_d_forward=True, discriminator=partial(DCGANDiscriminator, base_channels=4))
    with pytest.raises(ValueError, match="auxiliary head"):
        ConditionalGAN(latent_dim=8, joint_d_forward=True, discriminator=partial(ACGANDiscriminator, base_channels=4))


def _channels_last_pair(cls: type[nn.Module], **kwargs: object) -> tuple[nn.Module, nn.Module]:
    """The same network twice, the second with ``channels_last=True`` and the first's weights."""
    torch.manual_seed(0)
    plain = cls(**kwargs)
    torch.manual_seed(0)
    fast = cls(channels_last=True, **kwargs)
    fast.load_state_dict(plain.state_dict())
    return plain, fast


def _conv_weights(network: nn.Module) -> list[torch.Tensor]:
    return [t for t in [*network.parameters(), *network.buffers()] if t.dim() == 4 and t.size(1) > 1]


def test_channels_last_keeps_the_conv_weights_channels_last_through_loading_and_copies() -> None:
    _, g = _channels_last_pair(DCGANGenerator, latent_dim=8, base_channels=8)
    _, d = _channels_last_pair(ACGANDiscriminator, base_channels=8, conditioning="projection", spectral_norm=True,
                               feature_critic="mnist")
    for network in (g, d, d.feature_critic):  # the critic's frozen classifier (buffers) too
        weights = _conv_weights(network)
        assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
        assert not all(w.is_contiguous() for w in weights)  # not NCHW any more
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in _conv_weights(copy.deepcopy(g)))
    plain, _ = _channels_last_pair(DCGANGenerator, latent_dim=8, base_channels=8)
    assert all(w.is_contiguous() for w in _conv_weights(plain))


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_channels_last_networks_compute_the_same_outputs_and_gradients(spectral_norm: bool) -> None:
    g_plain, g_fast = _channels_last_pair(DCGANGenerator, latent_dim=8, base_channels=8, spectral_norm=spectral_norm)
    d_plain, d_fast = _channels_last_pair(ACGANDiscriminator, base_channels=8, conditioning="projection",
                                          spectral_norm=spectral_norm, feature_critic="mnist")
    z, labels = torch.randn(6, 8), _labels(6)
    outputs = []
    for g, d in ((g_plain, d_plain), (g_fast, d_fast)):
        images = g(z, labels)
        logits, aux = d.logits_and_aux_loss(images, labels)
        (logits.sum() + aux).backward()
        outputs.append((images, logits, [p.grad for p in [*g.parameters(), *d.parameters()]]))
    (images_a, logits_a, grads_a), (images_b, logits_b, grads_b) = outputs
    torch.testing.assert_close(images_b, images_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits_b, logits_a, rtol=1e-4, atol=1e-4)
    assert len(grads_a) == len(grads_b)
    for grad_a, grad_b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(grad_b, grad_a, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_channels_last_must_be_a_bool(bad: object) -> None:
    with pytest.raises(ValueError, match="channels_last must be True or False"):
        DCGANGenerator(channels_last=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channels_last must be True or False"):
        ACGANDiscriminator(feature_critic="mnist", channels_last=bad)  # type: ignore[arg-type]
