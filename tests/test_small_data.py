"""Small-data training options: DiffAugment before D, its adaptive probability (ADA), LeCam regularization and the
mode-seeking regularizer of G."""

from __future__ import annotations

import itertools

import pytest
import torch
from lightning.pytorch import Trainer

from cgan_lightning import ConditionalGAN, MNISTDataModule
from cgan_lightning.losses import LeCamEMA, lecam_penalty, mode_seeking_loss
from cgan_lightning.nn.augment import (
    BACKGROUND,
    DIGIT_SAFE,
    DiscriminatorAugment,
    build_d_augment,
    check_policy,
    cutout,
    translation,
)


def digit_like(n: int = 4) -> torch.Tensor:
    """Asymmetric images in [-1, 1]: flips and rotations of them differ from every shift."""
    g = torch.Generator().manual_seed(0)
    images = torch.full((n, 1, 28, 28), BACKGROUND)
    images[:, :, 6:22, 10:13] = 1.0  # a vertical stroke...
    images[:, :, 6:9, 10:20] = torch.rand(n, 1, 3, 10, generator=g)  # ...with a top bar to the right: a "7"-ish
    return images


# --------------------------------------------------------------------------------------- augmentations
@pytest.mark.parametrize("transform", [translation, cutout])
def test_augmentations_pass_gradients(transform: object) -> None:
    x = digit_like().requires_grad_(True)
    transform(x).square().sum().backward()  # type: ignore[operator]
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_augmented_d_input_keeps_gradients_to_g() -> None:
    model = ConditionalGAN(augment=["translation", "cutout"])
    model.training_rng.start(torch.device("cpu"))
    z, labels = torch.randn(8, model.latent_dim), torch.arange(8) % 10
    fake = model.generator(z, labels)
    model.discriminator(model._d_input(fake), labels).mean().backward()
    grads = [p.grad for p in model.generator.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_augmentation_draws_from_the_models_training_stream_not_the_global_rng() -> None:
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    outputs = []
    for consume_global in (False, True):
        torch.manual_seed(0)
        model = ConditionalGAN(augment=["translation", "cutout"])
        model.training_rng.start(torch.device("cpu"))
        if consume_global:
            torch.rand(1000)  # another user of the global RNG must not change what D sees (exact resume)
        outputs.append(model._d_input(images))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], images)


def test_translation_is_a_shift_with_background_fill_never_a_flip() -> None:
    torch.manual_seed(0)
    images = digit_like(64)
    shifted = translation(images, ratio=0.125)
    for image, out in zip(images, shifted, strict=True):
        padded = torch.nn.functional.pad(image, (4, 4, 4, 4), value=BACKGROUND)  # up to 28 / 8 = 4 pixels
        shifts = [padded[:, 4 + dy : 32 + dy, 4 + dx : 32 + dx] for dy, dx in itertools.product(range(-4, 5), repeat=2)]
        assert any(torch.equal(out, s) for s in shifts)
        assert not torch.equal(out, image.flip(-1)) and not torch.equal(out, image.rot90(1, (-2, -1)))


def test_cutout_only_blanks_one_square() -> None:
    torch.manual_seed(0)
    images = digit_like(32)
    out = cutout(images, ratio=0.5)
    changed = out != images
    assert torch.all(out[changed] == BACKGROUND)
    for mask in (out == BACKGROUND) & (images != BACKGROUND):
        rows, cols = mask[0].nonzero(as_tuple=True)
        if len(rows):
            assert rows.max() - rows.min() < 14 and cols.max() - cols.min() < 14


def test_probability_zero_leaves_images_alone() -> None:
    images = digit_like(16)
    assert torch.equal(DiscriminatorAugment(p=0.0)(images), images)


def test_only_digit_safe_transforms_are_offered() -> None:
    assert DIGIT_SAFE == ("translation", "cutout")
    for unsafe in ("flip", "rot90", "hflip"):
        with pytest.raises(ValueError, match="can change a digit's class"):
            check_policy([unsafe])
    with pytest.raises(ValueError, match="not offered"):
        ConditionalGAN(augment=["color"])
    with pytest.raises(ValueError, match="augment is off"):
        ConditionalGAN(ada_target=0.6)


# ------------------------------------------------------------------------------------------------- ADA
def test_ada_probability_rises_when_d_overfits_and_falls_when_it_does_not() -> None:
    augment = build_d_augment(["translation"], ada_target=0.6, ada_kimg=1.0)
    assert augment is not None and float(augment.p) == 0.0  # starts off
    for _ in range(4):  # interval 4: one adjustment after 4 batches of 50 confident "real" logits
        augment.observe(torch.ones(50))
    assert float(augment.p) == pytest.approx(200 / 1000)  # sign(r_t - 0.6) * images / (ada_kimg * 1000)
    for _ in range(4):
        augment.observe(-torch.ones(50))  # r_t = -1 < 0.6: D is not overfitting
    assert float(augment.p) == pytest.approx(0.0)
    for _ in range(4):
        augment.observe(-torch.ones(50))
    assert float(augment.p) == 0.0  # clamped at 0


def test_fixed_probability_does_not_adapt() -> None:
    augment = DiscriminatorAugment(p=0.5)
    for _ in range(8):
        augment.observe(torch.ones(10))
    assert float(augment.p) == 0.5


# ----------------------------------------------------------------------------------------------- LeCam
def test_lecam_matches_a_hand_computation() -> None:
    ema = LeCamEMA(decay=0.9)
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    # Step 1: biased EMAs 0.1 * 2 = 0.2 and 0.1 * -1 = -0.1, debiased by 1 - 0.9: a_R = 2, a_F = -1.
    # Penalty: mean(relu(real - a_F)^2) + mean(relu(a_R - fake)^2) = mean(2^2, 4^2) + mean(4^2, 2^2) = 10 + 10.
    assert float(ema(real, fake)) == pytest.approx(20.0)
    # Step 2 with real [0, 0], fake [1, 1]: biased 0.9*0.2 = 0.18 and 0.9*-0.1 + 0.1*1 = 0.01; debias 1 - 0.81.
    a_r, a_f = 0.18 / 0.19, 0.01 / 0.19
    expected = max(0 - a_f, 0) ** 2 + max(a_r - 1, 0) ** 2
    assert float(ema(torch.zeros(2), torch.ones(2))) == pytest.approx(expected)


def test_lecam_penalty_gradient_reaches_the_logits_only() -> None:
    real, fake = torch.tensor([2.0], requires_grad=True), torch.tensor([-2.0], requires_grad=True)
    anchor_r, anchor_f = torch.tensor(1.0, requires_grad=True), torch.tensor(0.0, requires_grad=True)
    lecam_penalty(real, fake, anchor_r, anchor_f).backward()
    assert float(real.grad) == pytest.approx(4.0) and float(fake.grad) == pytest.approx(-6.0)
    assert anchor_r.grad is None and anchor_f.grad is None


# ---------------------------------------------------------------------------------------- mode seeking
def test_mode_seeking_loss_matches_a_hand_computation() -> None:
    # Five images: pairs (0, 3) and (1, 4); the middle one (2) has no partner and does not count.
    images = torch.zeros(5, 1, 1, 2)
    images[3] = 0.5  # |0 - 0.5| on both pixels
    images[4, ..., 0] = 1.0  # |0 - 1| and |0 - 0|
    images[2] = 100.0
    z = torch.zeros(5, 2)
    z[3], z[4] = torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0])
    z[2] = 50.0
    image_distance = (0.5 + 0.5 + 1.0 + 0.0) / 4
    latent_distance = (1.0 + 1.0 + 2.0 + 0.0) / 4
    assert float(mode_seeking_loss(images, z, eps=0.0)) == pytest.approx(latent_distance / image_distance)
    with pytest.raises(ValueError, match="at least 2 images"):
        mode_seeking_loss(images[:1], z[:1])


def test_mode_seeking_pairs_share_labels_and_push_paired_images_apart() -> None:
    torch.manual_seed(0)
    model = ConditionalGAN(mode_seeking_weight=1.0)
    model.training_rng.start(torch.device("cpu"))
    for n in (8, 7):
        fake, labels, z = model._fake_batch(n)
        assert fake.shape[0] == labels.shape[0] == z.shape[0] == n
        assert torch.equal(labels[: n // 2], labels[n - n // 2:])  # each pair is drawn for one label
    # G's loss gains the weighted term, and its gradient moves paired images apart.
    fake, _, z = model._fake_batch(8)
    base = torch.tensor(0.0)
    expected = float(mode_seeking_loss(fake, z).detach())
    assert float(model._g_regularized(base, fake, z).detach()) == pytest.approx(expected)
    images = fake.detach().requires_grad_(True)
    model._g_regularized(base, images, z).backward()
    step = -images.grad  # a descent step
    apart = (images[:4] - images[4:]).detach()
    assert float((apart * (step[:4] - step[4:])).sum()) > 0
    assert model._g_regularized(base, fake[:1], z[:1]) is base  # no pair in a one-image batch: nothing to add
    model_off = ConditionalGAN()
    model_off.training_rng.start(torch.device("cpu"))
    fake_off, labels_off, z_off = model_off._fake_batch(8)
    assert model_off._g_regularized(base, fake_off, z_off) is base
    for bad in (-1.0, "a"):
        with pytest.raises((ValueError, TypeError), match="mode_seeking_weight"):
            ConditionalGAN(mode_seeking_weight=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- in training
def test_options_are_off_by_default_and_leave_the_state_dict_alone() -> None:
    keys = set(ConditionalGAN().state_dict())
    assert not any(k.startswith(("d_augment.", "lecam.")) for k in keys)
    on = set(ConditionalGAN(augment=["translation"], ada_target=0.6, lecam_weight=0.3).state_dict())
    assert {"d_augment.p", "lecam.real_biased", "lecam.fake_biased"} <= on - keys
    with pytest.raises(ValueError, match="lecam_weight"):
        ConditionalGAN(lecam_weight=-1.0)


def test_training_with_every_option_updates_their_state(fake_mnist_dir: object) -> None:
    model = ConditionalGAN(augment=["translation", "cutout"], ada_target=0.6, ada_kimg=0.1, lecam_weight=0.3,
                           r1_gamma=1.0, mode_seeking_weight=1.0)
    trainer = Trainer(max_epochs=1, limit_train_batches=8, limit_val_batches=0, enable_progress_bar=False,
                      enable_model_summary=False, logger=False, enable_checkpointing=False)
    trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    assert model.d_augment is not None and model.lecam is not None
    assert int(model.lecam.steps) == 8 and float(model.lecam.real_biased) != 0.0
    assert int(model.d_augment.steps) == 8 and 0.0 <= float(model.d_augment.p) <= 1.0
    assert "train/augment_p" in trainer.callback_metrics
