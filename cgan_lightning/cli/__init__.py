"""The ``cgan-lightning`` command."""

from cgan_lightning.cli.lightning_cli import CGANLightningCLI, build_cli, main

__all__ = ["CGANLightningCLI", "build_cli", "main"]
