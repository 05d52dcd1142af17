"""The ``cgan-lightning`` command: LightningCLI subcommands ``fit``, ``validate``, ``test``, and the others of
:data:`~cgan_lightning.cli.subcommands.EXTRA_SUBCOMMANDS` (``sample``: digits from a checkpoint;
``train-classifier``: the evaluation classifier for any data module).

Example::

    cgan-lightning fit --config examples/mnist.yaml --data.data_dir ../shared/data --data.download false
    cgan-lightning sample --ckpt_path last.ckpt --labels 3 7 --n_per_label 16 --out grid.png --seed 0
    cgan-lightning export --ckpt_path last.ckpt --out exported/ --data_dir ../shared/data
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
from typing_extensions import override

from cgan_lightning.callbacks.best_checkpoints import best_fid_checkpoint_for
from cgan_lightning.callbacks.run_summary import RunSummary
from cgan_lightning.callbacks.save_on_interrupt import SaveOnInterrupt
from cgan_lightning.cli.errors import OneLineErrorParser, duplicate_callback_line, out_of_memory_line, user_error_line
from cgan_lightning.cli.help_format import EPILOG, CompactHelpFormatter
from cgan_lightning.cli.subcommands import (
    DESCRIPTION,
    EXTRA_SUBCOMMANDS,
    LIGHTNING_SUBCOMMANDS,
    load_entry_point,
    split_subcommand,
    top_level_help,
    wants_top_level_help,
)
from cgan_lightning.cli.warnings import silence_known_noise
from cgan_lightning.loggers.wandb import WandbSaveConfigCallback, finish_wandb_runs
from cgan_lightning.module import ConditionalGAN, NonFiniteLossError
from cgan_lightning.plugins.checkpoint_io import use_atomic_checkpoint_io
from cgan_lightning.sampling import SAMPLING_OPTIONS
from cgan_lightning.strategies.gan_ddp import gan_strategy_name
from cgan_lightning.utilities.checkpoint_files import is_local_path, peek_lightning_checkpoint, verify_checkpoint_file
from cgan_lightning.utilities.lightning_internals import trainer_callbacks

_REFERENCE_ADAM = {"class_path": "torch.optim.Adam", "init_args": {"lr": 2e-4, "betas": [0.5, 0.999]}}


def _class_names(data: Any) -> list[str] | None:
    names = getattr(data, "class_names", None)
    return [str(name) for name in names] if names is not None else None


def check_last_checkpoint_findable(checkpoint: Any) -> None:
    """Refuse ``--ckpt_path last`` without ``--checkpoint.dirpath``: it could never find an earlier run's file.

    Each run writes into a new ``version_N`` folder, where ``last`` looks; Lightning would warn and train from
    scratch. With a fixed ``dirpath`` that holds no checkpoint yet, ``last`` starts a new run, as Lightning's
    resume-or-start idiom for requeued jobs expects.

    Raises:
        FileNotFoundError: no ``checkpoint.dirpath`` is set.
    """
    if checkpoint is None or checkpoint.get("dirpath") is None:
        raise FileNotFoundError("--ckpt_path last needs --checkpoint.dirpath: each run writes its checkpoints into "
                                "a new version_N folder, so give the folder the earlier run wrote its last.ckpt to "
                                "(the same --checkpoint.dirpath as that run), or the checkpoint's own path")


class CGANLightningCLI(LightningCLI):
    """LightningCLI for :class:`ConditionalGAN` with the data module's shape linked into the model.

    - ``data.num_classes`` and ``data.image_shape`` are linked into ``model`` when both are instantiated, so
      configs never repeat them.
    - Two optimizers (``model.optimizer_g``, ``model.optimizer_d``) are module arguments, hence
      ``auto_configure_optimizers=False``.
    - A ``checkpoint`` section configures the always-present ``ModelCheckpoint``; by default it keeps one file,
      ``last.ckpt``, rewritten after every epoch. With a :class:`~cgan_lightning.callbacks.PerClassFID` among the
      callbacks, a :class:`~cgan_lightning.callbacks.BestFIDCheckpoint` also keeps the best 3 by ``val/fid/mean``.
    - :class:`~cgan_lightning.callbacks.RunSummary` prints where the run's files are when ``fit`` ends.
    - ``predict`` is not offered: ``cgan-lightning sample`` draws images from a checkpoint.
    - ``--trainer.strategy ddp`` (also ``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``) runs
      :class:`~cgan_lightning.strategies.gan_ddp.GANDDPStrategy`, DDP that syncs only the network each backward trains.
    """

    @staticmethod
    @override
    def subcommands() -> dict[str, set[str]]:
        # LightningCLI's table without `predict` (nothing to predict from: `sample` draws images).
        return {name: keys for name, keys in LightningCLI.subcommands().items() if name in LIGHTNING_SUBCOMMANDS}

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        prefix = f"{self.subcommand}." if self.subcommand else ""  # LightningCLI nests configs under the subcommand
        strategy = self.config_init.get(f"{prefix}trainer.strategy")
        if strategy is not None and "strategy" not in kwargs and gan_strategy_name(strategy) != strategy:
            kwargs["strategy"] = gan_strategy_name(strategy)
        trainer = super().instantiate_trainer(**kwargs)
        # SIGTERM / Ctrl-C save last.ckpt at a batch boundary unless --save_on_interrupt false.
        wanted = self.config_init.get(f"{prefix}save_on_interrupt", True)
        callbacks = trainer_callbacks(trainer)  # the trainer's own list: appending adds the callback
        if wanted and not any(isinstance(c, SaveOnInterrupt) for c in callbacks):
            callbacks.append(SaveOnInterrupt())
        best = best_fid_checkpoint_for(trainer)
        if best is not None:
            callbacks.append(best)  # after the other callbacks, as Lightning orders checkpoint callbacks
        if not any(isinstance(callback, RunSummary) for callback in callbacks):
            callbacks.append(RunSummary())
        return trainer

    def before_fit(self) -> None:  # LightningCLI calls before_<subcommand> / after_<subcommand> if defined
        # Checkpoints written by this run are crash-safe (temp file + rename) unless a custom CheckpointIO is set.
        use_atomic_checkpoint_io(self.trainer)

    def after_fit(self) -> None:
        # End the W&B run now, so that a second fit in this process starts a new one instead of appending to it.
        finish_wandb_runs(self.trainer)

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads --ckpt_path's hyperparameters right after parsing (they replace the model section):
        # check the file first, so a damaged one fails with one line naming it rather than torch.load's
        # zip-reader traceback, or, for a flipped byte inside a tensor, silently wrong weights.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path == "last":
            check_last_checkpoint_findable(self.config[subcommand].get("checkpoint"))
        if ckpt_path and is_local_path(ckpt_path) and ckpt_path not in ("last", "best", "hpc", "registry"):
            verify_checkpoint_file(ckpt_path)
            peek_lightning_checkpoint(ckpt_path)  # a bare state_dict would fail with a KeyError traceback

    @override
    def _parse_ckpt_path(self) -> None:
        # LightningCLI replaces the model section with --ckpt_path's hyperparameters, so that the weights fit the
        # networks. The sampling options shape no weight: the values given to validate/test win over the run's. A
        # resumed fit continues the run as it was, sampling options included.
        subcommand = self.config.get("subcommand")
        model = self.config[subcommand].get("model") if subcommand in ("validate", "test") else None
        given = {name: model.get(name) for name in SAMPLING_OPTIONS} if model is not None else {}
        super()._parse_ckpt_path()
        for name, value in given.items():
            if value is not None:
                self.config[subcommand].model[name] = value

    @override
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
        parser.add_argument("--save_on_interrupt", type=bool, default=True,
                            help="On SIGTERM or Ctrl-C, finish the batch, save last.ckpt and stop (SaveOnInterrupt)")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        group = getattr(parser, "groups", {}).get("checkpoint")
        if group is not None:  # the class docstring's first lines would be the title otherwise
            group.title = "ModelCheckpoint writing last.ckpt after every epoch (best-by-FID files: BestFIDCheckpoint)"
        parser.set_defaults(
            {
                # One file, rewritten after every epoch: the newest state is the top-1 of an unmonitored
                # checkpoint. (Lightning 2.6's save_last writes last.ckpt only along with a top-k file, and
                # with save_top_k=0 only when training ends.) Best-by-FID files: BestFIDCheckpoint.
                "checkpoint.filename": "last",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.save_last": False,
                "checkpoint.save_top_k": 1,
                # last.ckpt is replaced, never joined by a last-v1.ckpt (e.g. when a run resumes from a last.ckpt
                # that SaveOnInterrupt wrote before this callback had saved anything).
                "checkpoint.enable_version_counter": False,
                # None, not 1: Lightning then saves every epoch, or only every N steps when
                # --checkpoint.every_n_train_steps N is given (an explicit 1 would make that an error).
                "checkpoint.every_n_epochs": None,
            }
        )


def build_cli(args: ArgsType = None, run: bool = True) -> CGANLightningCLI:
    """Parse ``args`` (``None``: ``sys.argv[1:]``), build the model, data and trainer, and run the subcommand."""
    parser_kwargs: dict[str, Any] = {"prog": "cgan-lightning", "description": DESCRIPTION,
                                     "formatter_class": CompactHelpFormatter}
    for name, text in LIGHTNING_SUBCOMMANDS.items():
        parser_kwargs[name] = {"description": f"cgan-lightning {name}: {text}", "epilog": EPILOG,
                               "formatter_class": CompactHelpFormatter}
    return CGANLightningCLI(
        ConditionalGAN,
        LightningDataModule,
        subclass_mode_data=True,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        save_config_callback=WandbSaveConfigCallback,
        parser_kwargs=parser_kwargs,
        parser_class=OneLineErrorParser,  # one line per parser error, not the 83-line usage block
    )


#: Errors that mean the user's input is wrong (config values, data, checkpoints) or the run diverged: the CLI
#: prints their message as one line instead of a traceback. ``CGAN_LIGHTNING_TRACEBACK=1`` shows the traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError,
                                                IsADirectoryError, FileExistsError, PermissionError, NonFiniteLossError,
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
    silence_known_noise()
    if isinstance(argv, list | tuple):
        if wants_top_level_help(argv):
            print(top_level_help())
            raise SystemExit(0 if argv else 2)  # no subcommand at all is a usage error
        name, rest = split_subcommand(argv)
        if name in EXTRA_SUBCOMMANDS:
            load_entry_point(EXTRA_SUBCOMMANDS[name][0])(rest)
            return
    try:
        build_cli(args)
    except SIGTERMException:  # a SystemExit with code None, i.e. "success", unless mapped here
        raise SystemExit(128 + signal.SIGTERM) from None
    except USER_ERRORS + (RuntimeError, MemoryError) as error:
        # Out of memory and a callback given twice are RuntimeErrors with a known cause and fix.
        line = out_of_memory_line(error) or duplicate_callback_line(error)
        if os.environ.get("CGAN_LIGHTNING_TRACEBACK") or not (isinstance(error, USER_ERRORS) or line is not None):
            raise
        if sys.stderr.isatty():  # a progress bar may have left its line open: start the error on a line of its own
            print(file=sys.stderr)
        print(f"cgan-lightning: error: {line or user_error_line(error)}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
