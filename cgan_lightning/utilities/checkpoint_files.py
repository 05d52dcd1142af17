"""Checks that turn an unusable checkpoint into one clear error naming the file.

Two ways a checkpoint fails a user, each caught before PyTorch or Lightning print a long traceback:

- the file is damaged (a copy cut short, a full disk, a bit flip): :func:`verify_checkpoint_file` reads the zip
  container ``torch.save`` writes and checks every member's CRC-32. ``torch.load`` does not check CRCs, so a
  flipped byte inside a weight tensor would otherwise load silently;
- the file is intact but was trained with other settings than the model it is loaded into (another
  ``num_classes``, ``image_shape``, ``latent_dim``, network width or class names):
  :func:`check_checkpoint_matches` compares the saved settings and tensors' shapes with the model's before
  ``load_state_dict`` reports a size mismatch (or, for class names, loads the weights under the wrong labels).
"""

from __future__ import annotations

import codecs
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cgan_lightning.metrics.report import names_are_ids

#: Hyperparameters that fix the model's interface; a checkpoint trained with other values cannot be loaded.
INTERFACE_HPARAMS = ("num_classes", "image_shape", "latent_dim")

_SIMPLE = (int, float, str, bool, type(None), list, tuple)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, corrupted, not a checkpoint, or made for another model.

    Args:
        message: what is wrong and what to do instead.
        path: the checkpoint file, when known (it is then part of the message).
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.reason = message
        self.path = None if path is None else str(path)
        super().__init__(message if path is None else f"checkpoint {self.path}: {message}")

    def with_path(self, path: str | os.PathLike[str]) -> CheckpointError:
        """The same error naming ``path`` (used when the check ran where the file name was not known)."""
        return self if self.path is not None else CheckpointError(self.reason, path)


def is_local_path(path: object) -> bool:
    """Whether ``path`` names a local file (not a URL such as ``s3://...``, not a file object)."""
    return isinstance(path, str | os.PathLike) and "://" not in str(path)


def verify_checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` is a complete, undamaged file written by ``torch.save``; return it as a ``Path``.

    Reads the whole file once (CRC-32 of every zip member): about as long as reading it from disk.

    Args:
        path: a local checkpoint file.

    Raises:
        CheckpointError: the file is missing, empty, a folder, truncated, fails a CRC check, or is a zip file
            that ``torch.save`` did not write. The message names the file.
    """
    path = Path(path)
    advice = "use an earlier checkpoint (e.g. one of the epoch=*.ckpt files beside it) or start a new run"
    if not path.exists():
        raise CheckpointError("no such file", path)
    if path.is_dir():
        raise CheckpointError("is a folder; expected a .ckpt file written by the trainer", path)
    try:
        with path.open("rb"):
            pass
    except PermissionError as err:  # is_zipfile would swallow it and the file would be called corrupted
        raise CheckpointError("permission denied: this user may not read the file; fix its permissions "
                              "(e.g. chmod u+r) or copy it somewhere readable", path) from err
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"the file is empty (0 bytes): it was never written completely; {advice}", path)
    if not zipfile.is_zipfile(path):
        with path.open("rb") as file:
            head = file.read(512)
        if head and b"\0" not in head and not head.startswith(b"PK"):
            try:  # incremental: a character cut at the 512th byte is not an error
                codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
            except UnicodeDecodeError:
                pass
            else:  # a config or notes file given by mistake: "truncated or corrupted" would mislead
                raise CheckpointError(f"is a text file ({size:,} bytes; a config?), not a checkpoint: give the .ckpt "
                                      "file the trainer wrote, e.g. <run>/checkpoints/last.ckpt", path)
        raise CheckpointError(
            f"not a readable PyTorch checkpoint ({size:,} bytes, no zip directory at its end): the file is truncated "
            f"or corrupted, or was not written by torch.save; {advice}",
            path,
        )
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"the file is corrupted ({err}); {advice}", path) from err
    if bad_member is not None:
        raise CheckpointError(f"the file is corrupted (CRC check failed for {bad_member!r}); {advice}", path)
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        raise CheckpointError("a zip file, but not one written by torch.save (it holds no data.pkl)", path)
    return path


def check_lightning_checkpoint(checkpoint: object, path: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`CheckpointError` unless ``checkpoint`` (a loaded file) has the entries Lightning resumes from.

    Args:
        checkpoint: what ``torch.load`` returned.
        path: the file, named in the message when given.
    """
    missing = [key for key in ("state_dict", "pytorch-lightning_version")
               if not isinstance(checkpoint, Mapping) or key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"holds no {missing[0]!r}: it is not a Lightning checkpoint (a bare model.state_dict() file cannot be "
            "resumed from; load it in Python with model.load_state_dict(torch.load(path)) instead)",
            path,
        )


def peek_lightning_checkpoint(path: str | os.PathLike[str]) -> None:
    """Check the top-level entries of a checkpoint file without reading its tensors (they are memory-mapped).

    A file that only a full unpickling can read (``weights_only=False``, e.g. one holding ``functools.partial``
    network factories) is not judged here: the loader that follows reports it.

    Raises:
        CheckpointError: the file is a ``torch.save`` file but not a Lightning checkpoint.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        return
    check_lightning_checkpoint(checkpoint, path)


def overridden_settings(path: str | os.PathLike[str], overrides: Mapping[str, Any],
                        weights_only: bool | None = True) -> list[str]:
    """The settings that ``overrides`` (``load_from_checkpoint``'s keyword arguments) change from the checkpoint's
    recorded ones, as ``"name: <saved> in the checkpoint, <given> given"``; empty when the file cannot be read here.

    ``weights_only=False`` unpickles the whole file: only for a file the caller already trusts that far.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only is not False, mmap=True)
    except (pickle.UnpicklingError, OSError, RuntimeError):
        return []
    saved = (checkpoint.get("hyper_parameters") or {}) if isinstance(checkpoint, Mapping) else {}
    return [f"{key}: {_describe(saved[key])} in the checkpoint, {_describe(value)} given"
            for key, value in overrides.items()
            if key in saved and isinstance(saved[key], _SIMPLE) and isinstance(value, _SIMPLE)
            and not _same(saved[key], value)]


def _describe(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple | list) else repr(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return list(a) == list(b)
    return a == b


def _class_names_differ(saved: Any, model: Any) -> bool:
    """Whether both sides name their classes and label k names another class on each side (the weights would draw
    class k of the checkpoint under the model's name k). Names that are only the ids ("0", "1", ...) name nothing:
    a model trained from Python without names loads where the CLI links the data's names, and back."""
    if not isinstance(saved, list | tuple) or not isinstance(model, list | tuple):
        return False
    saved_names, model_names = [str(n) for n in saved], [str(n) for n in model]
    return saved_names != model_names and not names_are_ids(saved_names) and not names_are_ids(model_names)


def check_checkpoint_matches(
    checkpoint: Mapping[str, Any],
    model_state: Mapping[str, Tensor],
    model_hparams: Mapping[str, Any],
    strict: bool = True,
    path: str | os.PathLike[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`CheckpointError` unless ``checkpoint`` can be loaded into a model with this state and hparams.

    Args:
        checkpoint: a loaded Lightning checkpoint (``state_dict`` and ``hyper_parameters`` keys are read).
        model_state: the receiving model's ``state_dict()``.
        model_hparams: the receiving model's ``hparams``.
        strict: also refuse tensors present on one side only (what ``load_state_dict(strict=True)`` refuses).
        path: the checkpoint file, named in the message when given.
        defaults: the model's default settings. A setting that the checkpoint does not record (it predates the
            option) was trained at its default; the message names it when the model sets it otherwise.

    Raises:
        CheckpointError: the checkpoint has no ``state_dict``; ``num_classes``, ``image_shape`` or ``latent_dim``
            differ, or the class names do (where both sides name classes); a tensor has another shape; or
            (``strict``) tensors are missing or unexpected. The message lists the settings that differ between the
            checkpoint and the model.
    """
    check_lightning_checkpoint(checkpoint, path)
    state = checkpoint["state_dict"]
    saved_hparams = checkpoint.get("hyper_parameters") or {}
    differing = [
        f"{key}: {_describe(saved_hparams[key])} in the checkpoint, {_describe(model_hparams[key])} in this model"
        for key in sorted(set(saved_hparams) & set(model_hparams))
        if isinstance(saved_hparams[key], _SIMPLE) and isinstance(model_hparams[key], _SIMPLE)
        and not _same(saved_hparams[key], model_hparams[key])
    ]
    if defaults is not None and saved_hparams:  # a setting the checkpoint lacks was trained at its default
        differing += [
            f"{key}: not recorded in the checkpoint (so the default, {_describe(defaults[key])}), "
            f"{_describe(model_hparams[key])} in this model"
            for key in sorted(set(model_hparams) - set(saved_hparams))
            if key in defaults and isinstance(model_hparams[key], _SIMPLE)
            and not _same(defaults[key], model_hparams[key])
        ]
    interface_differs = any(
        key in saved_hparams and key in model_hparams and not _same(saved_hparams[key], model_hparams[key])
        for key in INTERFACE_HPARAMS
    )
    names_differ = _class_names_differ(saved_hparams.get("class_names"), model_hparams.get("class_names"))
    shape_diffs = [
        f"{key} is {list(value.shape)} in the checkpoint but {list(model_state[key].shape)} in this model"
        for key, value in state.items()
        if key in model_state and isinstance(value, Tensor) and value.shape != model_state[key].shape
    ]
    missing = [key for key in model_state if key not in state] if strict else []
    unexpected = [key for key in state if key not in model_state] if strict else []
    if not (interface_differs or names_differ or shape_diffs or missing or unexpected):
        return
    problems = []
    if names_differ:
        problems.append("its labels name other classes than this model's (class_names, e.g. from the data's class "
                        "folders, differ), so each label would draw another class")
    if shape_diffs:
        problems.append(f"{len(shape_diffs)} tensor(s) differ in shape (first: {shape_diffs[0]})")
    if missing:
        problems.append(f"{len(missing)} tensor(s) of this model are not in the checkpoint (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) of the checkpoint are not in this model "
                        f"(first: {unexpected[0]})")
    settings = "; ".join(differing) if differing else "no recorded setting differs (the network classes may)"
    raise CheckpointError(
        f"it was trained for another model: {'; '.join(problems) or 'its interface differs'}. Settings that "
        f"differ: {settings}. Use the data and model settings the checkpoint was trained with (the CLI saves them "
        "in config.yaml, in the folder above checkpoints/), or start a new run without --ckpt_path",
        path,
    )


__all__ = ["CheckpointError", "INTERFACE_HPARAMS", "check_checkpoint_matches", "check_lightning_checkpoint",
           "is_local_path", "overridden_settings", "peek_lightning_checkpoint", "verify_checkpoint_file"]
