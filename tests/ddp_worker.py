"""Two-process CPU DDP runs for tests/test_ddp.py (not a test module: ``python ddp_worker.py OUT DATA CLASSIFIER``).

Lightning's DDP launcher re-runs this script once per extra rank, so every phase below runs on both ranks:

1. ``cgan-lightning fit --trainer.strategy ddp`` (the CLI maps it to GANDDPStrategy) for 2 epochs, with an EMA,
   a checkpoint per epoch and PerClassFID after each validation, recording what each rank trained on (the CLI
   is built with ``run=False`` only to add the callbacks).
2. The same command resumed from that run's ``last.ckpt`` for one more epoch.
3. ``Trainer(strategy="ddp")`` from Python: stock DDPStrategy, which the module switches to
   ``find_unused_parameters=True``.
4. The CLI again for one epoch with ``--model.step_order g_first`` (in ``OUT/g_first``), and once more with
   ``--model.shared_d_backward true`` as well (in ``OUT/shared``).

Each rank saves ``<phase>_rank<r>.pt`` in OUT; the test compares the ranks.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from functools import partial
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from cgan_lightning import ConditionalGAN, MLPDiscriminator, MLPGenerator, MNISTDataModule, PerClassFID
from cgan_lightning.cli.lightning_cli import build_cli
from cgan_lightning.utilities.lightning_internals import ddp_wrapper_kwargs

#: Generated images per class for PerClassFID (each of the 2 ranks generates half).
FID_SAMPLES_PER_CLASS = 12
TINY = ["--model.generator.init_args.hidden_dims=[16, 32]", "--model.discriminator.init_args.hidden_dims=[32]"]


class BatchRecorder(Callback):
    """Records a digest of every training image per epoch, and the model's training RNG state at the first batch."""

    def __init__(self) -> None:
        self.seen: dict[int, list[str]] = {}
        self.rng_at_start: torch.Tensor | None = None

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.rng_at_start is None:
            self.rng_at_start = pl_module.training_rng.state()
        images = batch[0]
        digests = [hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in images]
        self.seen.setdefault(trainer.current_epoch, []).extend(digests)


def model_state(trainer: Trainer) -> dict[str, Any]:
    module = trainer.lightning_module
    return {
        # Tensors, plus the odd extra state (the EMA's update counter).
        "state_dict": {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                       for k, v in module.state_dict().items()},
        "optimizers": [opt.state_dict() for opt in trainer.optimizers],
        "global_step": trainer.global_step,
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "strategy": type(trainer.strategy).__name__,
    }


def run_cli(out: Path, data: Path, phase: str, extra: list[str], ckpt_path: Path | None = None,
            fid: PerClassFID | None = None) -> None:
    """``cgan-lightning fit --trainer.strategy ddp ...`` (built with run=False to add the callbacks)."""
    recorder = BatchRecorder()
    cli = build_cli([
        "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp", "--seed_everything=7",
        f"--trainer.default_root_dir={out}", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--trainer.num_sanity_val_steps=0", "--trainer.limit_val_batches=1",
        f"--checkpoint.dirpath={out / 'ckpts'}", f"--data.data_dir={data}", "--data.download=false",
        # One file per epoch (not the default last.ckpt only): the tests load the weights of each epoch.
        "--checkpoint.filename=epoch={epoch:03d}", "--checkpoint.save_top_k=-1", "--checkpoint.save_last=true",
        "--data.batch_size=13", "--model.ema_decay=0.9", *TINY, *extra,
    ], run=False)
    cli.trainer.callbacks.append(recorder)
    if fid is not None:
        cli.trainer.callbacks.append(fid)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    state = model_state(cli.trainer)
    state.update(seen=recorder.seen, rng_at_start=recorder.rng_at_start, rng_at_end=cli.model.training_rng.state(),
                 global_rng_at_end=torch.get_rng_state())
    state["fid_scores"] = fid.last_scores if fid is not None else None
    torch.save(state, out / f"{phase}_rank{cli.trainer.global_rank}.pt")


def main(out: Path, data: Path, classifier: Path) -> None:
    fid = PerClassFID(samples_per_class=FID_SAMPLES_PER_CLASS, batch_size=40, classifier=classifier, seed=3)
    run_cli(out, data, "fit", ["--trainer.max_epochs=2"], fid=fid)
    run_cli(out, data, "resume", ["--trainer.max_epochs=3"], ckpt_path=out / "ckpts" / "last.ckpt")
    # Stock DDPStrategy from Python: the module turns on find_unused_parameters.
    model = ConditionalGAN(generator=partial(MLPGenerator, hidden_dims=(16, 32)),
                           discriminator=partial(MLPDiscriminator, hidden_dims=(32,)))
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=6, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, datamodule=MNISTDataModule(str(data), download=False, batch_size=13))
    state = model_state(trainer)
    state["find_unused_parameters"] = (ddp_wrapper_kwargs(trainer.strategy) or {}).get("find_unused_parameters")
    torch.save(state, out / f"stock_rank{trainer.global_rank}.pt")
    # The reference order with one shared D forward: two backwards per batch, each averaged over its own network.
    (out / "g_first").mkdir(exist_ok=True)
    run_cli(out / "g_first", data, "g_first", ["--trainer.max_epochs=1", "--model.step_order=g_first",
                                               "--model.joint_d_forward=true"])
    # The same with one backward through D training both networks: both averaged after it.
    (out / "shared").mkdir(exist_ok=True)
    run_cli(out / "shared", data, "shared", ["--trainer.max_epochs=1", "--model.step_order=g_first",
                                             "--model.joint_d_forward=true", "--model.shared_d_backward=true"])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
