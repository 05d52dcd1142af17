"""The ``cgan-lightning`` command: LightningCLI subcommands ``fit``, ``validate``, ``test``, ``predict``.

Example::

    cgan-lightning fit --config examples/mnist.yaml --data.data_dir ../shared/data --data.download false
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from cgan_lightning.data import MNISTDataModule
from cgan_lightning.module import ConditionalGAN

_REFERENCE_ADAM = {"class_path": "torch.optim.Adam", "init_args": {"lr": 2e-4, "betas": [0.5, 0.999]}}


class CGANLightningCLI(LightningCLI):
    """LightningCLI for :class:`ConditionalGAN` with the data module's shape linked into the model.

    - ``data.num_classes`` and ``data.image_shape`` are linked into ``model`` when both are instantiated, so
      configs never repeat them.
    - Two optimizers (``model.optimizer_g``, ``model.optimizer_d``) are module arguments, hence
      ``auto_configure_optimizers=False``.
    - A ``checkpoint`` section configures the always-present ``ModelCheckpoint`` (``last.ckpt`` plus one file
      per epoch by default).
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_shape", "model.image_shape", apply_on="instantiate")
        parser.set_defaults(
            {
                "model.generator": {"class_path": "cgan_lightning.networks.MLPGenerator"},
                "model.discriminator": {"class_path": "cgan_lightning.networks.MLPDiscriminator"},
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
                "checkpoint.every_n_epochs": 1,
            }
        )


def build_cli(args: ArgsType = None, run: bool = True) -> CGANLightningCLI:
    """Parse ``args`` (``None``: ``sys.argv[1:]``), build the model, data and trainer, and run the subcommand."""
    return CGANLightningCLI(
        ConditionalGAN,
        MNISTDataModule,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
    )


def main(args: ArgsType = None) -> None:
    """Entry point of the ``cgan-lightning`` console script (tests call ``main([...])``)."""
    build_cli(args)


if __name__ == "__main__":  # pragma: no cover
    main()
