"""Hinge, LSGAN and WGAN-GP losses, the R1 penalty, and how ConditionalGAN applies each of them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch import Tensor, nn

from cgan_lightning import AdversarialLoss, ConditionalGAN, DCGANDiscriminator, DCGANGenerator, MNISTDataModule, losses
from cgan_lightning.losses import (
    LOSSES,
    gradient_penalty,
    hinge_d_loss,
    hinge_g_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    r1_penalty,
    wasserstein_d_loss,
    wasserstein_g_loss,
)

TINY_G = partial(DCGANGenerator, base_channels=4)
REAL = torch.tensor([2.0, 0.5, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 1.5])


def test_hinge_on_known_logits() -> None:
    # relu(1 - real) = [0, 0.5, 2] -> 5/6; relu(1 + fake) = [0, 1, 2.5] -> 7/6.
    assert hinge_d_loss(REAL, FAKE).item() == pytest.approx(2.0)
    assert hinge_g_loss(FAKE).item() == pytest.approx(0.5 / 3)


def test_lsgan_on_known_logits() -> None:
    # (real - 1)^2 = [1, 0.25, 4] -> 7/4; fake^2 = [4, 0, 2.25] -> 25/12; halves summed.
    assert lsgan_d_loss(REAL, FAKE).item() == pytest.approx((7 / 4 + 25 / 12) / 2)
    # (fake - 1)^2 = [9, 1, 0.25] -> 41/12, halved.
    assert lsgan_g_loss(FAKE).item() == pytest.approx(41 / 24)


def test_wasserstein_on_known_logits() -> None:
    assert wasserstein_d_loss(REAL, FAKE).item() == pytest.approx(-0.5 / 3 - 1.5 / 3)
    assert wasserstein_g_loss(FAKE).item() == pytest.approx(0.5 / 3)


def test_registry_names_and_penalties() -> None:
    assert {"bce", "hinge", "lsgan", "wgan-gp"} <= set(LOSSES)
    assert LOSSES["wgan-gp"].penalty is not None
    assert all(LOSSES[name].penalty is None for name in ("bce", "hinge", "lsgan"))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_has_the_right_sign(name: str) -> None:
    """D's loss falls as real logits rise and fake logits fall; G's loss falls as fake logits rise."""
    loss = LOSSES[name]
    # Logits where every loss still pushes: inside the hinge margins, between LSGAN's targets (fake 0, real 1).
    real = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
    fake = torch.tensor([0.25, 0.5, 0.75], requires_grad=True)
    loss.d_loss(real, fake).backward()
    assert torch.all(real.grad < 0) and torch.all(fake.grad > 0)
    fake_g = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
    loss.g_loss(fake_g).backward()
    assert torch.all(fake_g.grad < 0)


class LinearCritic(nn.Module):
    """``D(x, y) = <w, flatten(x)>``: gradient ``w`` everywhere, so its Lipschitz constant is ``||w||``."""

    def __init__(self, num_classes: int = 10, image_shape: tuple[int, int, int] = (1, 28, 28), norm: float = 1.0):
        super().__init__()
        w = torch.randn(int(torch.tensor(image_shape).prod()), generator=torch.Generator().manual_seed(0))
        self.w = nn.Parameter(w / w.norm() * norm)

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        return images.flatten(1) @ self.w


def test_gradient_penalty_is_zero_for_a_linear_one_lipschitz_critic() -> None:
    real, fake, labels = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4), torch.arange(8) % 10
    unit_critic = LinearCritic(image_shape=(1, 4, 4))
    assert gradient_penalty(unit_critic, real, fake, labels).item() == pytest.approx(0, abs=1e-6)
    # ||w|| = 3: every interpolate's gradient norm is 3, so the penalty is weight * (3 - 1)^2.
    critic = LinearCritic(image_shape=(1, 4, 4), norm=3.0)
    assert gradient_penalty(critic, real, fake, labels, weight=10.0).item() == pytest.approx(40.0, rel=1e-5)


def test_r1_penalty_on_a_linear_critic() -> None:
    critic = LinearCritic(image_shape=(1, 4, 4), norm=3.0)
    real, labels = torch.randn(5, 1, 4, 4), torch.arange(5)
    assert r1_penalty(critic, real, real, labels, gamma=2.0).item() == pytest.approx(9.0, rel=1e-5)


@pytest.mark.parametrize("penalty", [gradient_penalty, r1_penalty])
def test_penalties_train_the_discriminator(penalty: object) -> None:
    """The penalty is differentiable w.r.t. D's weights (double backprop), or it would not regularize D."""
    d = DCGANDiscriminator(10, (1, 8, 8), base_channels=4)
    real, fake, labels = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8), torch.arange(4)
    penalty(d, real, fake, labels).backward()  # type: ignore[operator]
    # Weights only: with piecewise-linear activations the input gradient does not depend on the biases.
    grads = [d.features[0].weight.grad, d.features[2].weight.grad, d.to_logit.weight.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def _fit(model: ConditionalGAN, data_dir: Path, tmp_path: Path, batches: int = 2) -> Trainer:
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                      max_epochs=1, limit_train_batches=batches, limit_val_batches=0)
    trainer.fit(model, MNISTDataModule(str(data_dir), download=False, batch_size=16))
    return trainer


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_short_training_run_with_each_loss(name: str, fake_mnist_dir: Path, tmp_path: Path) -> None:
    model = ConditionalGAN(latent_dim=8, loss=name, r1_gamma=1.0 if name == "hinge" else 0.0,
                           generator=TINY_G,
                           discriminator=partial(DCGANDiscriminator, base_channels=4, spectral_norm=True))
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    d_before = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer = _fit(model, fake_mnist_dir, tmp_path)
    assert trainer.global_step == 4
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))
    assert torch.isfinite(trainer.callback_metrics["train/d_loss_epoch"])


def _zero_loss(penalty: losses.DiscriminatorPenalty | None = None) -> AdversarialLoss:
    return AdversarialLoss(lambda real, fake: (real.sum() + fake.sum()) * 0, lambda fake: fake.sum() * 0, penalty)


def test_training_step_adds_the_loss_penalty(fake_mnist_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Zero adversarial terms and a critic with ||w|| = 3: D's loss is exactly the penalty, (3 - 1)^2 * weight.
    monkeypatch.setitem(LOSSES, "gp-only", _zero_loss(partial(gradient_penalty, weight=1.0)))
    model = ConditionalGAN(latent_dim=8, loss="gp-only", generator=TINY_G,
                           discriminator=partial(LinearCritic, norm=3.0))
    trainer = _fit(model, fake_mnist_dir, tmp_path, batches=1)
    assert trainer.callback_metrics["train/d_loss_epoch"].item() == pytest.approx(4.0, rel=1e-4)


def test_training_step_adds_r1_with_any_loss(fake_mnist_dir: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LOSSES, "zero", _zero_loss())
    model = ConditionalGAN(latent_dim=8, loss="zero", r1_gamma=2.0, generator=TINY_G,
                           discriminator=partial(LinearCritic, norm=3.0))
    trainer = _fit(model, fake_mnist_dir, tmp_path, batches=1)
    assert trainer.callback_metrics["train/d_loss_epoch"].item() == pytest.approx(9.0, rel=1e-4)  # 2 / 2 * 3^2


def test_negative_r1_gamma_is_rejected() -> None:
    with pytest.raises(ValueError, match="r1_gamma must be >= 0"):
        ConditionalGAN(r1_gamma=-1.0)
