"""DDP training throughput: ``gan_ddp`` (GANDDPStrategy) against stock ``DDPStrategy(find_unused_parameters=True)``.

Both train the reference ConditionalGAN (MLPs, batch 64 per process) on the same data in the same processes;
the strategies alternate ``--rounds`` times and rank 0 prints the median batches/s of each (timed after
``--warmup`` batches, GPU work synchronized), plus how many gradient values each all-reduces per batch.
Lightning relaunches this script once per extra process, as it does any script using ``strategy="ddp"``.

Examples::

    python benchmarks/ddp_throughput.py --data_dir ../shared/data                 # CPU, 2 processes, gloo
    python benchmarks/ddp_throughput.py --data_dir ../shared/data --accelerator gpu --devices 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything

from cgan_lightning import ConditionalGAN, MNISTDataModule

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
STRATEGIES = ("gan_ddp", "ddp_find_unused_parameters_true")


class BatchTimer(Callback):
    """Wall-clock time from the end of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.batches = 0
        self.seconds = 0.0

    def _now(self, pl_module: LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.total.completed + 1
        if done == self.warmup:
            self.start = self._now(pl_module)
        elif self.start is not None:
            self.batches = done - self.warmup
            self.seconds = self._now(pl_module) - self.start


def run(strategy: str, args: argparse.Namespace) -> tuple[float, int]:
    """Train ``args.batches`` batches under ``strategy``; return (batches/s after warm-up, world size)."""
    seed_everything(0, verbose=False)
    timer = BatchTimer(args.warmup)
    trainer = Trainer(accelerator=args.accelerator, devices=args.devices, strategy=strategy,
                      max_steps=2 * args.batches, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      limit_val_batches=0, callbacks=[timer])
    trainer.fit(ConditionalGAN(check_finite=False),
                datamodule=MNISTDataModule(str(args.data_dir), download=False, batch_size=64))
    return timer.batches / timer.seconds, trainer.world_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60, help="batches per process per timed run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rates: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    world_size = 1
    for _ in range(args.rounds):
        for strategy in STRATEGIES:
            rate, world_size = run(strategy, args)
            rates[strategy].append(rate)
    model = ConditionalGAN()
    n_g = sum(p.numel() for p in model.generator.parameters())
    n_d = sum(p.numel() for p in model.discriminator.parameters())
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return
    print(json.dumps({
        "accelerator": args.accelerator,
        "processes": world_size,
        "batch_per_process": 64,
        "timed_batches": args.batches - args.warmup,
        "rounds": args.rounds,
        "batches_per_s_median": {s: round(statistics.median(r), 2) for s, r in rates.items()},
        "batches_per_s_all": {s: [round(x, 2) for x in r] for s, r in rates.items()},
        # D step: D's gradients; G step: G's. find_unused all-reduces every parameter in both backwards.
        "values_all_reduced_per_batch": {"gan_ddp": n_d + n_g, "ddp_find_unused_parameters_true": 2 * (n_d + n_g)},
    }, indent=2))


if __name__ == "__main__":
    main()
