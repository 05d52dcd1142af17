"""Hinge, LSGAN and WGAN-GP losses, the R1 penalty, and how ConditionalGAN applies each of them."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch import Tensor, nn

from cgan_lightning import (
    AdversarialLoss,
    ConditionalGAN,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MNISTDataModule,
    losses,
)
from cgan_lightning.losses import (
    LOSSES,
    gradient_penalty,
    hinge_d_loss,
    hinge_g_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    r1_penalty,
    rpgan_d_loss,
    rpgan_g_loss,
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


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_rpgan_on_known_logits() -> None:
    # Pairs (real i, fake i): fake - real = [-4, -0.5, 2.5]; G's terms are the same pairs reversed.
    assert rpgan_d_loss(REAL, FAKE).item() == pytest.approx(sum(map(_softplus, (-4.0, -0.5, 2.5))) / 3)
    assert rpgan_g_loss(FAKE, REAL).item() == pytest.approx(sum(map(_softplus, (4.0, 0.5, -2.5))) / 3)
    # Per-pair weights (the real terms' weighting): only the third pair counts, three times.
    assert rpgan_d_loss(REAL, FAKE, torch.tensor([0.0, 0.0, 3.0])).item() == pytest.approx(_softplus(2.5))


def test_rpgan_g_loss_holds_the_real_logits_constant() -> None:
    real, fake = REAL.clone().requires_grad_(True), FAKE.clone().requires_grad_(True)
    rpgan_g_loss(fake, real).backward()
    assert real.grad is None
    assert fake.grad is not None and torch.all(fake.grad < 0)


def test_rpgan_needs_one_generated_logit_per_real_one() -> None:
    with pytest.raises(ValueError, match=r"as many of each: got real logits of shape \(3,\) and generated \(2,\)"):
        rpgan_d_loss(REAL, FAKE[:2])
    with pytest.raises(ValueError, match="as many of each"):
        rpgan_g_loss(FAKE[:2], REAL)


def test_registry_names_and_penalties() -> None:
    assert {"bce", "hinge", "lsgan", "wgan-gp", "rpgan"} <= set(LOSSES)
    assert LOSSES["wgan-gp"].penalty is not None
    assert all(LOSSES[name].penalty is None for name in ("bce", "hinge", "lsgan", "rpgan"))
    assert [name for name, loss in LOSSES.items() if loss.relativistic] == ["rpgan"]


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
    g_loss = loss.g_loss(fake_g, real.detach()) if loss.relativistic else loss.g_loss(fake_g)  # type: ignore[call-arg]
    g_loss.backward()
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


def _fit(model: ConditionalGAN, data_dir: Path, tmp_path: Path, batches: int = 2,
         callbacks: list[Callback] | None = None) -> Trainer:
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                      max_epochs=1, limit_train_batches=batches, limit_val_batches=0, callbacks=callbacks)
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


class RecordingRelativisticLoss:
    """The relativistic pairing loss, keeping the real logits that each of D's and G's terms was given."""

    def __init__(self) -> None:
        self.d_real: list[Tensor] = []
        self.g_real: list[Tensor] = []

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_weights: Tensor | None = None) -> Tensor:
        self.d_real.append(real_logits.detach().clone())
        return rpgan_d_loss(real_logits, fake_logits, real_weights)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor) -> Tensor:
        self.g_real.append(real_logits.detach().clone())
        return rpgan_g_loss(fake_logits, real_logits)


class FirstBatch(Callback):
    def on_train_batch_start(self, trainer: Trainer, pl_module: object, batch: tuple[Tensor, Tensor],
                             batch_idx: int) -> None:
        if batch_idx == 0:
            self.images, self.labels = batch[0].clone(), batch[1].clone()


def test_rpgan_g_steps_compare_against_d_after_its_update(fake_mnist_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # d_first: D steps on the batch, then G's steps compare their pairs against the updated D's real logits.
    recorded, first = RecordingRelativisticLoss(), FirstBatch()
    monkeypatch.setitem(LOSSES, "rp-recorded", AdversarialLoss(recorded.d_loss, recorded.g_loss, relativistic=True))
    model = ConditionalGAN(latent_dim=8, loss="rp-recorded", g_steps_per_batch=2, generator=TINY_G,
                           discriminator=partial(MLPDiscriminator, hidden_dims=(32,)))
    _fit(model, fake_mnist_dir, tmp_path, batches=1, callbacks=[first])
    assert len(recorded.d_real) == 1 and len(recorded.g_real) == 2
    with torch.no_grad():
        after_d_step = model.discriminator(first.images, first.labels)  # G's steps leave D as its step left it
    for real_logits in recorded.g_real:
        assert torch.allclose(real_logits, after_d_step)
    assert not torch.allclose(recorded.d_real[0], after_d_step)  # not the logits D's own step saw


def test_rpgan_in_the_reference_order_shares_ds_forward(fake_mnist_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # g_first: G and D are judged by the same D forward, so G's real logits are those of D's term.
    recorded = RecordingRelativisticLoss()
    monkeypatch.setitem(LOSSES, "rp-recorded", AdversarialLoss(recorded.d_loss, recorded.g_loss, relativistic=True))
    model = ConditionalGAN(latent_dim=8, loss="rp-recorded", step_order="g_first", joint_d_forward=True,
                           shared_d_backward=True, generator=TINY_G,
                           discriminator=partial(MLPDiscriminator, hidden_dims=(32,)))
    _fit(model, fake_mnist_dir, tmp_path, batches=2)
    assert len(recorded.g_real) == len(recorded.d_real) == 2
    for g_real, d_real in zip(recorded.g_real, recorded.d_real, strict=True):
        assert torch.equal(g_real, d_real)
