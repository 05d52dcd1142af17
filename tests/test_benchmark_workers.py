"""The training loops benchmarks/end_to_end.py times against the library: each runs in a fresh process and reports."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _runners() -> Any:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module("runners")


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["reference", "plain"])
def test_worker_command_trains_one_epoch_and_reports(worker: str, fake_mnist_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    command = _runners().worker_command(worker, 1, str(fake_mnist_dir), work)
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    result = json.loads((work / f"{worker}.json").read_text())
    assert result["worker"] == worker
    assert result["images"] == 200  # every image of the 200-image train split, once
    assert result["images_per_s"] > 0


def test_seed_loop_command_is_the_reference_worker(tmp_path: Path) -> None:
    runners = _runners()
    assert runners.seed_loop_command(3, "data", tmp_path) == runners.worker_command("reference", 3, "data", tmp_path)
    assert "--worker" in runners.worker_command("plain", 3, "data", tmp_path)


def test_epoch_timer_splits_each_epoch(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    # benchmarks/epoch_timer.py: one record per epoch that a next epoch started after, its parts inside its wall time.
    import lightning.pytorch as pl

    from cgan_lightning import ConditionalGAN
    from cgan_lightning.data.mnist import MNISTDataModule

    _runners()  # puts benchmarks/ on sys.path
    timer = importlib.import_module("epoch_timer").EpochTimer(report_at_exit=False)
    trainer = pl.Trainer(max_epochs=3, limit_train_batches=3, limit_val_batches=1, accelerator="cpu",
                         callbacks=[timer], default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    trainer.fit(ConditionalGAN(), MNISTDataModule(str(fake_mnist_session_dir), download=False, batch_size=8))
    assert len(timer.epochs) == 2  # the third epoch has no next start
    for epoch in timer.epochs:
        assert epoch["batches"] > 0 and epoch["validation"] > 0 and epoch["epoch_end"] > 0
        assert epoch["batches"] + epoch["gaps"] + epoch["validation"] + epoch["epoch_end"] <= epoch["wall"] + 1e-6
