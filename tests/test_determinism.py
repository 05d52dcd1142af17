"""Determinism on the CPU: same seed, same config, same machine -> the same losses and weights, bit for bit."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from fault_helpers import tiny_cli_args
from lightning.pytorch import Trainer, seed_everything
from recorders import LossRecorder

from cgan_lightning import ConditionalGAN, MLPDiscriminator, MLPGenerator, MNISTDataModule
from cgan_lightning.cli.lightning_cli import main


def _run(data_dir: Path, root: Path, seed: int) -> tuple[list[tuple[float, float]], dict[str, torch.Tensor],
                                                        list[dict[str, object]]]:
    """Six batches (12 optimizer steps) of a tiny model with BatchNorm, EMA and R1; losses, weights, optimizers."""
    seed_everything(seed)
    model = ConditionalGAN(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16, 32)),
                           discriminator=partial(MLPDiscriminator, hidden_dims=(32,)), ema_decay=0.9, r1_gamma=1.0)
    recorder = LossRecorder()
    trainer = Trainer(default_root_dir=root, max_epochs=2, limit_train_batches=3, limit_val_batches=1,
                      accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, callbacks=[recorder],
                      log_every_n_steps=1)
    trainer.fit(model, MNISTDataModule(str(data_dir), download=False, batch_size=16))
    return recorder.losses, model.state_dict(), [opt.state_dict() for opt in trainer.optimizers]


def test_same_seed_same_losses_and_weights(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    losses_a, weights_a, optimizers_a = _run(fake_mnist_session_dir, tmp_path / "a", seed=7)
    losses_b, weights_b, optimizers_b = _run(fake_mnist_session_dir, tmp_path / "b", seed=7)
    assert len(losses_a) == 6
    assert losses_a == losses_b  # exact float equality, every step
    assert weights_a.keys() == weights_b.keys()
    for key, value in weights_a.items():  # G, D, BatchNorm buffers, the EMA copy (and its extra state)
        assert torch.equal(value, weights_b[key]) if isinstance(value, torch.Tensor) else value == weights_b[key], key
    for opt_a, opt_b in zip(optimizers_a, optimizers_b, strict=True):  # Adam's moments and step counts
        for state_a, state_b in zip(opt_a["state"].values(), opt_b["state"].values(), strict=True):  # type: ignore[union-attr]
            assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)

    # The comparison can fail: another seed gives other losses from the first step on.
    losses_c, weights_c, _ = _run(fake_mnist_session_dir, tmp_path / "c", seed=8)
    assert losses_c[0] != losses_a[0]
    assert not torch.equal(weights_c["generator.model.0.weight"], weights_a["generator.model.0.weight"])


def test_cli_runs_with_the_same_config_write_identical_weights(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    states = []
    for name in ("a", "b"):
        main(["fit", *tiny_cli_args(fake_mnist_session_dir, tmp_path / name), "--seed_everything=3",
              "--trainer.max_epochs=1", "--trainer.limit_train_batches=4"])
        states.append(torch.load(tmp_path / name / "ckpt" / "last.ckpt", weights_only=True)["state_dict"])
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


@pytest.mark.parametrize("seed", [0, 1])
def test_sampling_with_a_generator_is_reproducible(seed: int) -> None:
    model = ConditionalGAN(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16, 32)))
    draw = [model.sample([0, 3, 9], generator=torch.Generator().manual_seed(seed)) for _ in range(2)]
    assert torch.equal(draw[0], draw[1])
