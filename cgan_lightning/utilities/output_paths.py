"""Refuse outputs that would overwrite an input or a checkpoint.

``cgan-lightning sample --ckpt_path model.pt --out model.pt`` used to replace a 24.7 MB checkpoint with a 52 KB
sample file and exit 0. Every command that writes a file the user names checks it here first.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name the same existing file (also through links and ``..``), or the same path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def is_checkpoint_file(path: str | os.PathLike[str], lightning_only: bool = False) -> bool:
    """Whether ``path`` is an existing training checkpoint: a ``.ckpt`` file or a ``torch.save`` file holding a
    ``state_dict`` (Lightning checkpoints, classifier weights; only the former with ``lightning_only``) or that
    only a full unpickling can read."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == ".ckpt":
        return True
    if not zipfile.is_zipfile(path):
        return False
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        return True  # holds Python objects: not a file this package's outputs would have written
    except Exception:  # unreadable: not ours to judge, but not a sample file either
        return True
    keys = ("pytorch-lightning_version",) if lightning_only else ("state_dict", "pytorch-lightning_version")
    return isinstance(content, dict) and any(key in content for key in keys)


def check_output_path(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = (),
                      option: str = "--out", lightning_only: bool = False) -> Path:
    """Return ``out`` after checking that writing it destroys no input and no checkpoint.

    Args:
        out: the file about to be written.
        inputs: the files the command reads (``None`` entries are skipped).
        option: how the message names the output setting.
        lightning_only: refuse only Lightning checkpoints (a command that rewrites its own weights files).

    Raises:
        ValueError: ``out`` is one of ``inputs`` (the same file, by any path), or an existing checkpoint.
    """
    out = Path(out)
    for source in inputs:
        if source is not None and same_file(out, source):
            raise ValueError(f"{option} {out} is the input file {source}: writing it would destroy the input; "
                             "choose another output file")
    if is_checkpoint_file(out, lightning_only):
        raise ValueError(f"{option} {out} is an existing checkpoint; refusing to overwrite it. Choose another "
                         "output file (or delete the checkpoint first if you really mean to replace it)")
    return out


__all__ = ["check_output_path", "is_checkpoint_file", "same_file"]
