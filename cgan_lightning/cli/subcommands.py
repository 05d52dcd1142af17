"""The subcommands of ``cgan-lightning``: one table that both ``cgan-lightning --help`` and dispatch read.

LightningCLI runs ``fit``, ``validate`` and ``test``. Every other subcommand is a plain function taking the rest of
the command line; adding one is one line in :data:`EXTRA_SUBCOMMANDS`::

    "export": ("cgan_lightning.cli.export:main", "save the generator for use without Lightning"),
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

#: The tool's one-line description: the first line of ``cgan-lightning --help``.
DESCRIPTION = "cgan-lightning: class-conditional GANs on PyTorch Lightning"

#: Subcommands run by LightningCLI (Trainer methods), with their one-line help. ``predict`` is not offered:
#: ``sample`` draws images of chosen labels from a checkpoint.
LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "train a model (writes last.ckpt, the best checkpoints by val/fid/mean, config.yaml, grids)",
    "validate": "evaluate a checkpoint on the validation split (val/* metrics, per-class table)",
    "test": "evaluate a checkpoint on the test split (test/* metrics, per-class table)",
}

#: Subcommands outside LightningCLI: name -> ("module:function", one-line help). The function takes the
#: arguments after the subcommand's name (``list[str]``) and exits non-zero on errors.
EXTRA_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sample": ("cgan_lightning.cli.sample:main", "draw digits of chosen labels from a checkpoint into a PNG or .pt"),
    "export": ("cgan_lightning.cli.export:main", "save the generator alone (safetensors + config + model card)"),
    "train-classifier": ("cgan_lightning.cli.train_classifier:main",
                         "train the evaluation classifier on any data module (--data as for fit)"),
}


def load_entry_point(target: str) -> Callable[[list[str]], object]:
    """Import ``"package.module:function"`` and return the function.

    Raises:
        ValueError: ``target`` is not of the form ``module:function``.
    """
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"a subcommand entry point must look like 'package.module:function', got {target!r}")
    return getattr(importlib.import_module(module_name), function_name)


def top_level_help(prog: str = "cgan-lightning") -> str:
    """The text of ``cgan-lightning --help``: the tool, its usage, and every subcommand with one line."""
    commands = {**LIGHTNING_SUBCOMMANDS, **{name: text for name, (_, text) in EXTRA_SUBCOMMANDS.items()}}
    width = max(len(name) for name in commands) + 2
    lines = [
        DESCRIPTION,
        "",
        f"usage: {prog} [-h] {{{','.join(commands)}}} ...",
        "",
        "subcommands:",
        *(f"  {name:<{width}}{text}" for name, text in commands.items()),
        "",
        f"Run `{prog} <subcommand> --help` for the options of one subcommand, e.g. `{prog} fit --help`.",
        f"Example: {prog} fit --config examples/mnist.yaml",
    ]
    return "\n".join(lines)


def split_subcommand(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The first argument that names a subcommand (``None`` if none does) and the arguments after it."""
    known = {**LIGHTNING_SUBCOMMANDS, **EXTRA_SUBCOMMANDS}
    for index, token in enumerate(argv):
        if token in known:
            return token, list(argv[index + 1:])
    return None, []


def wants_top_level_help(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for the tool's own help: no arguments, or ``-h`` / ``--help`` before any subcommand."""
    if not argv:
        return True
    name, rest = split_subcommand(argv)
    before = list(argv) if name is None else list(argv[: len(argv) - len(rest) - 1])
    return any(token in ("-h", "--help") for token in before)
