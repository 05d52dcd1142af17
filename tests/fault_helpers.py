"""Helpers for the fault tests, importable by class path from a CLI config (tests/ is put on PYTHONPATH).

Not a test module: pytest collects only ``test_*.py``.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from cgan_lightning.nn.mlp import MLPDiscriminator


class Heartbeat(Callback):
    """After every training batch, append ``global_step`` to a file; optionally sleep, so a test can stop the
    run at a known point of an epoch.

    Args:
        path: file to append ``<global_step>\\n`` to (flushed and fsynced, so another process sees it).
        sleep_s: seconds to wait after each batch (slows a tiny run down to a controllable pace).
    """

    def __init__(self, path: str, sleep_s: float = 0.0) -> None:
        self.path = Path(path)
        self.sleep_s = sleep_s

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: object,
                           batch_idx: int) -> None:
        with self.path.open("a") as f:
            f.write(f"{trainer.global_step}\n")
            f.flush()
            os.fsync(f.fileno())
        if self.sleep_s:
            time.sleep(self.sleep_s)


class ChecksumRecorder(Callback):
    """At the start of every training batch, append the SHA-256 of ``watched`` (or ``missing``) to ``out``.

    Args:
        watched: the file to fingerprint, e.g. ``last.ckpt``.
        out: file the fingerprints are appended to, one per line.
    """

    def __init__(self, watched: str, out: str) -> None:
        self.watched = Path(watched)
        self.out = Path(out)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: object,
                             batch_idx: int) -> None:
        digest = sha256(self.watched) if self.watched.exists() else "missing"
        with self.out.open("a") as f:
            f.write(f"{digest}\n")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_heartbeat(path: Path) -> list[int]:
    """The global steps a :class:`Heartbeat` wrote so far (complete lines only)."""
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split("\n")[:-1] if line]


class NaNAfterDiscriminator(MLPDiscriminator):
    """The reference discriminator (same tensors, so checkpoints load) whose logits all become ``value`` (NaN by
    default) from call ``nan_after_calls + 1`` on.

    Args:
        num_classes: as :class:`MLPDiscriminator`.
        image_shape: as :class:`MLPDiscriminator`.
        hidden_dims: as :class:`MLPDiscriminator`.
        nan_after_calls: calls that return real logits before every later one returns ``value``.
        value: the poisoned logit, e.g. ``"nan"`` or ``"-inf"``.
    """

    def __init__(self, num_classes: int = 10, image_shape: tuple[int, int, int] = (1, 28, 28),
                 hidden_dims: tuple[int, ...] = (512, 256), nan_after_calls: int = 0, value: str = "nan") -> None:
        super().__init__(num_classes, image_shape, hidden_dims)
        self.nan_after_calls = nan_after_calls
        self.value = float(value)
        self.calls = 0

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = super().forward(images, labels)
        return logits.new_full(logits.shape, self.value) if self.calls > self.nan_after_calls else logits


class SlowGStepDiscriminator(MLPDiscriminator):
    """The reference discriminator (same tensors and numbers) that sleeps in every third call, i.e. while the G
    step scores the fakes: after the batch's D update and before its G update, where a Ctrl-C used to land.

    Args:
        num_classes: as :class:`MLPDiscriminator`.
        image_shape: as :class:`MLPDiscriminator`.
        hidden_dims: as :class:`MLPDiscriminator`.
        sleep_s: seconds to sleep in the G step's call.
    """

    def __init__(self, num_classes: int = 10, image_shape: tuple[int, int, int] = (1, 28, 28),
                 hidden_dims: tuple[int, ...] = (512, 256), sleep_s: float = 0.05) -> None:
        super().__init__(num_classes, image_shape, hidden_dims)
        self.sleep_s = sleep_s
        self.calls = 0

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.training and self.calls % 3 == 0:  # real, fake (D step), fake (G step)
            time.sleep(self.sleep_s)
        return super().forward(images, labels)


def tiny_cli_args(data_dir: Path, root: Path) -> list[str]:
    """CLI flags for a tiny, quiet CPU run on ``data_dir`` writing checkpoints to ``root/ckpt``.

    25 batches of 8 per epoch on the 200-image synthetic split, i.e. 50 global steps (one D and one G step each).
    """
    return [
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--trainer.logger=false", "--trainer.num_sanity_val_steps=0",
        "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={root}", f"--checkpoint.dirpath={root / 'ckpt'}",
        f"--data.data_dir={data_dir}", "--data.download=false", "--data.batch_size=8", "--model.latent_dim=8",
        "--model.generator.init_args.hidden_dims=[16, 32]", "--model.discriminator.init_args.hidden_dims=[32]",
    ]


def callbacks_config(path: Path, *callbacks: dict[str, object]) -> Path:
    """Write a CLI config whose ``trainer.callbacks`` are ``callbacks`` (``class_path`` + ``init_args`` dicts)."""
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": list(callbacks)}}))
    return path


def save_acgan_checkpoint(path: Path) -> Path:
    """An untrained, safe-loadable checkpoint of a tiny DCGAN with an AC discriminator (a class head), latent 8."""
    from cgan_lightning import ConditionalGAN

    generator = {"class_path": "cgan_lightning.nn.dcgan.DCGANGenerator", "init_args": {"base_channels": 8}}
    critic = {"class_path": "cgan_lightning.nn.dcgan.ACGANDiscriminator", "init_args": {"base_channels": 8}}
    model = ConditionalGAN(latent_dim=8, generator=generator, discriminator=critic)  # type: ignore[arg-type]
    trainer = Trainer(max_epochs=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path
