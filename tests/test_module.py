"""ConditionalGAN: the public API, the manual-optimization training step, checkpoints."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from cgan_lightning import ConditionalGAN, MLPDiscriminator, MLPGenerator, MNISTDataModule, NonFiniteLossError

TINY_G = partial(MLPGenerator, hidden_dims=(16, 32))
TINY_D = partial(MLPDiscriminator, hidden_dims=(32,))


def tiny_gan(**kwargs: object) -> ConditionalGAN:
    return ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, **kwargs)


def tiny_trainer(tmp_path: Path, **kwargs: object) -> Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                    enable_model_summary=False, default_root_dir=tmp_path)
    return Trainer(**{**defaults, **kwargs})


def test_sample_shape_range_and_reproducibility() -> None:
    model = tiny_gan()
    a = model.sample([3, 7, 7], generator=torch.Generator().manual_seed(0))
    b = model.sample(torch.tensor([3, 7, 7]), generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 28, 28)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)
    assert not a.requires_grad


def test_sample_uses_eval_mode_and_restores_mode() -> None:
    model = tiny_gan()
    model.train()
    # In train mode BatchNorm would use batch statistics, so a batch of 2 identical inputs differs from one.
    z = torch.randn(1, 8)
    single = model.sample([4], z=z)
    pair = model.sample([4, 5], z=torch.cat([z, torch.randn(1, 8)]))
    assert torch.allclose(single[0], pair[0], atol=1e-6)
    assert model.generator.training
    model.eval()
    model.sample([1])
    assert not model.generator.training


def test_forward_and_sample_reject_bad_labels_and_latents() -> None:
    model = tiny_gan()
    with pytest.raises(ValueError, match=r"out of range.*\[0, 9\]"):
        model.sample([10])
    with pytest.raises(ValueError, match=r"out of range"):
        model.sample(torch.tensor([-1]))
    with pytest.raises(ValueError, match="integer"):
        model.sample(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="integer"):
        model.sample([1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"shape \[2, 8\]"):
        model(torch.randn(2, 5), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="positive"):
        model.draw_latents(0)


def test_constructor_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="latent_dim"):
        ConditionalGAN(latent_dim=0)
    with pytest.raises(ValueError, match="num_classes"):
        ConditionalGAN(num_classes=0)
    with pytest.raises(ValueError, match="d_steps_per_g_step"):
        ConditionalGAN(d_steps_per_g_step=0)
    with pytest.raises(ValueError, match="g_steps_per_batch must be >= 1"):
        ConditionalGAN(g_steps_per_batch=0)
    with pytest.raises(ValueError, match="g_steps_per_batch=2: set g_steps_per_batch=1 or step_order='d_first'"):
        ConditionalGAN(step_order="g_first", g_steps_per_batch=2)
    with pytest.raises(ValueError, match="unknown loss"):
        ConditionalGAN(loss="mse")


def test_fast_dev_run(fake_mnist_dir: Path, tmp_path: Path) -> None:
    model = tiny_gan()
    trainer = tiny_trainer(tmp_path, fast_dev_run=True)
    trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    assert trainer.global_step == 2  # one D and one G step for the single batch


@pytest.mark.parametrize(("d_steps", "g_steps"), [(1, 1), (2, 1), (1, 2)])
def test_each_batch_steps_d_then_g(fake_mnist_dir: Path, tmp_path: Path, d_steps: int, g_steps: int) -> None:
    model = tiny_gan(d_steps_per_g_step=d_steps, g_steps_per_batch=g_steps, ema_decay=0.9)
    calls: list[str] = []
    generator_batches: list[torch.Tensor] = []  # the latents of every generated batch
    model.generator.register_forward_hook(lambda module, args, output: generator_batches.append(args[0]))

    def record(name: str):
        def hook(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
            calls.append(name)
        return hook

    class HookOptimizers(__import__("lightning").pytorch.Callback):
        def on_train_start(self, trainer: Trainer, pl_module: ConditionalGAN) -> None:
            g_opt, d_opt = trainer.optimizers
            g_opt.register_step_post_hook(record("G"))
            d_opt.register_step_post_hook(record("D"))

    before_g = [p.detach().clone() for p in model.generator.parameters()]
    before_d = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=0,
                           callbacks=[HookOptimizers()])
    trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    assert calls == (["D"] * d_steps + ["G"] * g_steps) * 3
    assert trainer.global_step == 3 * (d_steps + g_steps)
    # One generated batch serves the first D step and the first G step; every further step draws its own.
    assert len(generator_batches) == 3 * (d_steps + g_steps - 1)
    assert len({z.sum().item() for z in generator_batches}) == len(generator_batches)
    assert model.generator_ema is not None and model.generator_ema.updates == 3 * g_steps  # after every G step
    assert all(not torch.equal(a, b) for a, b in zip(before_g, model.generator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_d, model.discriminator.parameters()))
    assert trainer.callback_metrics["train/batches_seen"] == 3
    for key in ("train/d_loss_epoch", "train/g_loss_epoch", "train/d_real_epoch", "train/d_fake_epoch"):
        assert torch.isfinite(trainer.callback_metrics[key])
    assert 0 < trainer.callback_metrics["train/d_real_epoch"] < 1


class _NaNAfter(torch.nn.Module):
    """A network whose outputs turn NaN after its first ``after`` calls."""

    def __init__(self, inner: torch.nn.Module, after: int) -> None:
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.inner(*inputs)
        return out * float("nan") if self.calls > self.after else out


def test_nonfinite_loss_stops_before_the_update(fake_mnist_dir: Path, tmp_path: Path) -> None:
    model = tiny_gan()
    model.discriminator = _NaNAfter(model.discriminator, after=6)
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match=r"discriminator loss is nan at batch 2 ") as err:
        trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    assert "generator's images" not in str(err.value)  # D's own output went bad: G is not blamed
    # Batches 0 and 1 made 4 steps; batch 2's D loss was caught before its step.
    assert trainer.global_step == 4
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nonfinite_loss_from_the_generators_images_names_the_generator(fake_mnist_dir: Path, tmp_path: Path) -> None:
    model = tiny_gan()
    model.generator = _NaNAfter(model.generator, after=2)  # G's images turn NaN from its third call on
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at batch 2 .*; the generator's images hold NaN or inf "
                                                 r"values, so G diverged; training stopped"):
        trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))


def test_checkpoint_round_trip_gives_same_samples(fake_mnist_dir: Path, tmp_path: Path) -> None:
    seed_everything(0)
    model = tiny_gan()
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    # Built in Python with partial() factories, recorded as class-config dicts: torch's default weights_only=True.
    loaded = ConditionalGAN.load_from_checkpoint(path)
    expected = model.sample([0, 5, 9], generator=torch.Generator().manual_seed(1))
    got = loaded.sample([0, 5, 9], generator=torch.Generator().manual_seed(1))
    assert torch.equal(expected, got)


@pytest.mark.slow
def test_reference_model_learns_on_real_digits(tmp_path: Path) -> None:
    from conftest import HAS_REAL_MNIST, REAL_DATA_DIR

    if not HAS_REAL_MNIST:
        pytest.skip(f"real MNIST not found in {REAL_DATA_DIR}")
    seed_everything(0)
    model = ConditionalGAN()
    trainer = tiny_trainer(tmp_path, max_epochs=3, limit_val_batches=0)
    trainer.fit(model, MNISTDataModule(str(REAL_DATA_DIR), download=False))
    metrics = trainer.callback_metrics
    for key in ("train/d_loss_epoch", "train/g_loss_epoch"):
        assert torch.isfinite(metrics[key]), key
    z = torch.randn(1, model.latent_dim).expand(10, -1)
    images = model.sample(torch.arange(10), z=z)
    # The same z drawn with each label gives ten clearly different images.
    distances = torch.cdist(images.flatten(1), images.flatten(1))
    assert distances[~torch.eye(10, dtype=torch.bool)].min() > 1.0
