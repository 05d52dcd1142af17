"""The generator EMA: the update rule, where it lives, and which weights ``sample`` uses."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from torch import nn

from cgan_lightning import ConditionalGAN, MNISTDataModule
from cgan_lightning.nn.ema import GeneratorEMA
from cgan_lightning.nn.mlp import MLPDiscriminator, MLPGenerator


def _model(ema_decay: float | None = 0.9) -> ConditionalGAN:
    seed_everything(0)
    return ConditionalGAN(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16, 32)),
                          discriminator=partial(MLPDiscriminator, hidden_dims=(16,)), ema_decay=ema_decay)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_decay_must_lie_in_the_open_unit_interval(decay: float) -> None:
    with pytest.raises(ValueError, match="ema_decay must lie strictly between 0 and 1"):
        GeneratorEMA(nn.Linear(2, 2), decay)


def test_update_is_a_lerp_of_parameters_and_a_copy_of_buffers() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = GeneratorEMA(net, decay=0.75, warmup=False)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(5, 3))  # train mode: moves BatchNorm's running statistics
    ema.update(net)
    for name, param in net.named_parameters():
        expected = 0.75 * start[name] + 0.25 * param.detach()
        torch.testing.assert_close(ema.module.state_dict()[name], expected)
    for name, buffer in net.named_buffers():
        assert torch.equal(ema.module.state_dict()[name], buffer), name
    assert not any(p.requires_grad for p in ema.parameters())


def test_ema_follows_each_generator_step_only(fake_mnist_dir: Path, tmp_path: Path) -> None:
    model = _model(ema_decay=0.9)
    g0 = {k: v.clone() for k, v in model.generator.state_dict().items()}
    assert all(torch.equal(model.generator_ema.module.state_dict()[k], v) for k, v in g0.items())
    trainer = Trainer(max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=32))  # one batch: D, then G
    assert trainer.global_step == 2
    assert model.generator_ema.updates == 1
    for name, param in model.generator.named_parameters():  # one update with the warmup decay (1 + 0) / (10 + 0)
        torch.testing.assert_close(model.generator_ema.module.state_dict()[name], 0.1 * g0[name] + 0.9 * param.detach())
    # Only G is averaged, and the optimizers never see the average.
    prefix = "generator_ema.module."
    assert {k[len(prefix):] for k in model.state_dict() if k.startswith(prefix)} == set(model.generator.state_dict())
    optimized = {id(p) for opt in trainer.optimizers for group in opt.param_groups for p in group["params"]}
    assert optimized.isdisjoint(id(p) for p in model.generator_ema.parameters())


def test_warmup_ramps_the_decay_up_to_its_value() -> None:
    ema = GeneratorEMA(nn.Linear(2, 2), decay=0.9)
    decays = []
    for _ in range(200):
        decays.append(ema.current_decay())
        ema.update(nn.Linear(2, 2))
    assert decays[0] == pytest.approx(0.1) and decays[10] == pytest.approx(11 / 20)
    assert decays == sorted(decays) and decays[-1] == 0.9  # reached after 80 updates
    assert GeneratorEMA(nn.Linear(2, 2), decay=0.99, warmup=False).current_decay() == 0.99
    restored = GeneratorEMA(nn.Linear(2, 2), decay=0.9)
    restored.load_state_dict(ema.state_dict())  # the update count travels with the weights
    assert restored.updates == 200


def test_sample_uses_the_ema_when_enabled() -> None:
    model = _model(ema_decay=0.5)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(0.3)  # raw weights now differ from the average
    z, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 3])
    model.generator_ema.module.eval()
    expected_ema = model.generator_ema.module(z, labels)
    model.generator.eval()
    expected_raw = model.generator(z, labels)
    model.train()
    torch.testing.assert_close(model.sample(labels, z=z), expected_ema)  # None: EMA when the model keeps one
    torch.testing.assert_close(model.sample(labels, z=z, ema=True), expected_ema)
    torch.testing.assert_close(model.sample(labels, z=z, ema=False), expected_raw)
    assert not torch.allclose(expected_ema, expected_raw)
    assert model.generator.training and model.generator_ema.module.training  # modes restored


def test_without_ema(tmp_path: Path) -> None:
    model = _model(ema_decay=None)
    assert model.generator_ema is None
    assert not any(k.startswith("generator_ema") for k in model.state_dict())
    assert model.sample([1, 2]).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="keeps no EMA"):
        model.sample([1], ema=True)


def test_ema_weights_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    model = _model(ema_decay=0.99)
    with torch.no_grad():
        for p in model.generator_ema.parameters():
            p.mul_(0.5)
    model.generator_ema.updates = 7
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = ConditionalGAN.load_from_checkpoint(tmp_path / "m.ckpt", map_location="cpu", weights_only=False)
    assert loaded.generator_ema is not None and loaded.generator_ema.decay == 0.99
    assert loaded.generator_ema.updates == 7
    for key, value in model.generator_ema.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(loaded.generator_ema.state_dict()[key], value), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs are only observable on CUDA")
def test_update_makes_no_host_sync() -> None:
    net = MLPGenerator(8, 10, (1, 28, 28), hidden_dims=(16, 32)).cuda()
    ema = GeneratorEMA(net, 0.999)
    torch.cuda.set_sync_debug_mode("error")  # raises on any synchronizing call
    try:
        ema.update(net)
    finally:
        torch.cuda.set_sync_debug_mode("default")
