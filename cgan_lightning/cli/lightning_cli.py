"""The ``cgan-lightning`` command: LightningCLI subcommands ``fit``, ``validate``, ``test``, ``predict``,
``sample`` (drawing digits from a checkpoint, see :mod:`cgan_lightning.cli.sample`) and ``train-classifier`` (the
evaluation classifier for any data module, see :mod:`cgan_lightning.cli.train_classifier`).

Example::

    cgan-lightning fit --config examples/mnist.yaml --data.data_dir ../shared/data --data.download false
    cgan-lightning sample --ckpt_path last.ckpt --labels 3 7 --n_per_label 16 --out grid.png --seed 0
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from typing import Any

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from cgan_lightning.loggers.wandb import WandbSaveConfigCallback, finish_wandb_runs
from cgan_lightning.module import ConditionalGAN, NonFiniteLossError
from cgan_lightning.plugins.checkpoint_io import use_atomic_checkpoint_io
from cgan_lightning.strategies.gan_ddp import gan_strategy_name
from cgan_lightning.utilities.checkpoint_files import is_local_path, peek_lightning_checkpoint, verify_checkpoint_file

_REFERENCE_ADAM = {"class_path": "torch.optim.Adam", "init_args": {"lr": 2e-4, "betas": [0.5, 0.999]}}


def _class_names(data: Any) -> list[str] | None:
    names = getattr(data, "class_names", None)
    return [str(name) for name in names] if names is not None else None


class CGANLightningCLI(LightningCLI):
    """LightningCLI for :class:`ConditionalGAN` with the data module's shape linked into the model.

    - ``data.num_classes`` and ``data.image_shape`` are linked into ``model`` when both are instantiated, so
      configs never repeat them.
    - Two optimizers (``model.optimizer_g``, ``model.optimizer_d``) are module arguments, hence
      ``auto_configure_optimizers=False``.
    - A ``checkpoint`` section configures the always-present ``ModelCheckpoint`` (``last.ckpt`` plus one file
      per epoch by default).
    - ``--trainer.strategy ddp`` (also ``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``) runs
      :class:`~cgan_lightning.strategies.gan_ddp.GANDDPStrategy`, DDP that syncs only the network each backward trains.
    """

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        strategy = self._get(self.config_init, "trainer", default={}).get("strategy")
        if strategy is not None and "strategy" not in kwargs and gan_strategy_name(strategy) != strategy:
            kwargs["strategy"] = gan_strategy_name(strategy)
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        # Checkpoints written by this run are crash-safe (temp file + rename) unless a custom CheckpointIO is set.
        use_atomic_checkpoint_io(self.trainer)

    def after_fit(self) -> None:
        # End the W&B run now, so that a second fit in this process starts a new one instead of appending to it.
        finish_wandb_runs(self.trainer)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads --ckpt_path's hyperparameters right after parsing (they replace the model section):
        # check the file first, so a damaged one fails with one line naming it rather than torch.load's
        # zip-reader traceback, or, for a flipped byte inside a tensor, silently wrong weights.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and is_local_path(ckpt_path) and ckpt_path not in ("last", "best", "hpc", "registry"):
            verify_checkpoint_file(ckpt_path)
            peek_lightning_checkpoint(ckpt_path)  # a bare state_dict would fail with a KeyError traceback

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_shape", "model.image_shape", apply_on="instantiate")
        # A data module of one's own without class_names gets the ids.
        parser.link_arguments("data", "model.class_names", compute_fn=_class_names, apply_on="instantiate")
        # Any data module (--data.class_path ...); MNIST when none is named, so MNIST configs need no class_path.
        parser.set_defaults({"data": {"class_path": "cgan_lightning.data.MNISTDataModule"}})
        parser.set_defaults(
            {
                "model.generator": {"class_path": "cgan_lightning.nn.mlp.MLPGenerator"},
                "model.discriminator": {"class_path": "cgan_lightning.nn.mlp.MLPDiscriminator"},
                "model.optimizer_g": _REFERENCE_ADAM,
                "model.optimizer_d": _REFERENCE_ADAM,
            }
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.filename": "epoch={epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": -1,
                # None, not 1: Lightning then saves every epoch, or only every N steps when
                # --checkpoint.every_n_train_steps N is given (an explicit 1 would make that an error).
                "checkpoint.every_n_epochs": None,
            }
        )


def build_cli(args: ArgsType = None, run: bool = True) -> CGANLightningCLI:
    """Parse ``args`` (``None``: ``sys.argv[1:]``), build the model, data and trainer, and run the subcommand."""
    return CGANLightningCLI(
        ConditionalGAN,
        LightningDataModule,
        subclass_mode_data=True,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        save_config_callback=WandbSaveConfigCallback,
    )


#: Errors that mean the user's input is wrong (config values, data, checkpoints) or the run diverged: the CLI
#: prints their message as one line instead of a traceback. ``CGAN_LIGHTNING_TRACEBACK=1`` shows the traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError,
                                                IsADirectoryError, PermissionError, NonFiniteLossError,
                                                pickle.UnpicklingError, MisconfigurationException)


def _one_line(error: BaseException) -> str:
    # jsonargparse wraps a data module's __init__ error (--data in subclass mode) in "Does not validate against any
    # of the Union subtypes ..."; the user needs the error itself.
    while isinstance(error.__cause__, USER_ERRORS) and str(error).startswith("Does not validate against any"):
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def main(args: ArgsType = None) -> None:
    """Entry point of the ``cgan-lightning`` console script (tests call ``main([...])``).

    Exit status: 0 on success; 1 with one line on stderr for :data:`USER_ERRORS`; 2 for a config the parser
    rejects; 143 (128 + SIGTERM) after a SIGTERM, once ``last.ckpt`` is saved (so a scheduler sees the run did
    not finish).
    """
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, list | tuple) and argv and argv[0] == "sample":
        from cgan_lightning.cli.sample import main as sample_main

        sample_main(list(argv[1:]))
        return
    if isinstance(argv, list | tuple) and argv and argv[0] == "train-classifier":
        from cgan_lightning.cli.train_classifier import main as train_classifier_main

        return train_classifier_main(list(argv[1:]))
    try:
        build_cli(args)
    except SIGTERMException:  # a SystemExit with code None, i.e. "success", unless mapped here
        raise SystemExit(128 + signal.SIGTERM) from None
    except USER_ERRORS as error:
        if os.environ.get("CGAN_LIGHTNING_TRACEBACK"):
            raise
        print(f"cgan-lightning: error: {_one_line(error)}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
