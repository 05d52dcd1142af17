"""What the damaged-checkpoint check costs: ``verify_checkpoint_file`` against ``torch.load`` on a real checkpoint.

Trains the reference ConditionalGAN (MLPs, with EMA) for two steps on random images, saves a full training
checkpoint (weights, both Adams' moments, the EMA copy, loops), then prints its size and the median time of
``--repeats`` runs of the CRC check the CLI and ``ConditionalGAN.load_from_checkpoint`` do first, and of the
``torch.load`` that follows it anyway. The file is read from the page cache after the first run, as when a run
resumes from a checkpoint it just wrote.

Example::

    python benchmarks/checkpoint_verify.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, TensorDataset

from cgan_lightning import ConditionalGAN
from cgan_lightning.utilities.checkpoint_files import verify_checkpoint_file


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.ckpt"
        data = TensorDataset(torch.rand(64, 1, 28, 28) * 2 - 1, torch.arange(64) % 10)
        trainer = Trainer(default_root_dir=tmp, max_steps=4, accelerator="cpu", logger=False,
                          enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
        trainer.fit(ConditionalGAN(ema_decay=0.999), DataLoader(data, batch_size=32))
        trainer.save_checkpoint(path)
        verify = median_seconds(lambda: verify_checkpoint_file(path), args.repeats)
        load = median_seconds(lambda: torch.load(path, map_location="cpu", weights_only=True), args.repeats)
        print(json.dumps({"checkpoint_mb": round(path.stat().st_size / 2**20, 1), "verify_s": round(verify, 4),
                          "torch_load_s": round(load, 4), "repeats": args.repeats,
                          "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
