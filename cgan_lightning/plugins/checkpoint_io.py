"""Checkpoints that survive a crash mid-write, and the RNG state that makes a resumed run exact.

- :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file in the destination folder, flushes it
  to disk, then renames it over the target. Lightning's ``TorchCheckpointIO`` stages the bytes in the system
  temp folder and *moves* them, which is a copy-in-place (not atomic) whenever that folder is on another
  filesystem than the run directory, and never fsyncs.
- :class:`RNGStateCheckpoint` saves and restores the global RNGs (torch CPU and CUDA, numpy, ``random``).
  Lightning does not keep them in checkpoints, yet the generator's latents in ``training_step`` come from
  torch's global RNG: without this, a resumed run draws different z than an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.plugins.io import TorchCheckpointIO

#: The temporary files :func:`atomic_torch_save` writes: ``.<target name>.<8 random chars>.tmp`` (``mkstemp``).
TEMP_FILE_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
#: When this process (about) started: temporary files older than this are not being written by it.
_PROCESS_START = time.time()
#: A temporary file untouched this long is not being written by another live process either.
STALE_AFTER_S = 60.0


def remove_stale_temp_files(folder: str | os.PathLike[str], now: float | None = None) -> list[Path]:
    """Delete the partial files that killed saves left in ``folder``; return what was removed.

    Only files named like :data:`TEMP_FILE_PATTERN`, last modified before this process started and more than
    :data:`STALE_AFTER_S` seconds ago, are removed: nothing this process or a live writer is writing, and nothing
    that is not ours.
    """
    now = time.time() if now is None else now
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not TEMP_FILE_PATTERN.match(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                mtime = entry.stat(follow_symlinks=False).st_mtime
                if mtime < _PROCESS_START and now - mtime > STALE_AFTER_S:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` such that ``path`` holds either its old content or the complete new file.

    The bytes go to a temporary file beside ``path`` (same filesystem, so the final ``os.replace`` is an
    atomic rename), which is fsynced before the rename; the folder is fsynced after it so the rename itself
    is durable. On any error the temporary file is removed and ``path`` is left untouched; the partial files of
    saves killed before they could clean up (SIGKILL, power loss) are removed at the next save into the folder
    (:func:`remove_stale_temp_files`).

    Args:
        obj: anything ``torch.save`` accepts.
        path: destination file; its folder is created when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable on POSIX; some filesystems (and Windows) do not allow opening a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with crash-safe writes of local files (see :func:`atomic_torch_save`).

    Remote paths (``s3://`` and other fsspec URLs) fall back to Lightning's own transaction-based save.
    Pass it as ``Trainer(plugins=[AtomicCheckpointIO()])``; the ``cgan-lightning`` CLI installs it by default.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)


def use_atomic_checkpoint_io(trainer: Trainer) -> bool:
    """Make ``trainer`` write checkpoints with :class:`AtomicCheckpointIO` unless it was given another CheckpointIO.

    Returns:
        Whether the trainer's checkpoint IO was replaced.
    """
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is not TorchCheckpointIO:  # a user's choice (or async/remote IO): keep it
        return False
    strategy.checkpoint_io = AtomicCheckpointIO()
    return True


def capture_rng_state() -> dict[str, Any]:
    """The state of torch's CPU (and, when initialized, CUDA) RNGs, numpy's and Python's ``random``.

    Everything is stored as tensors, ints, floats and strings, so ``torch.load(weights_only=True)`` (the
    default of recent torch versions) can read it back.
    """
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(np_kind), "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`; CUDA states are restored only onto as many devices as were saved."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_states):
        torch.cuda.set_rng_state_all(cuda_states)


class RNGStateCheckpoint(Callback):
    """Keeps the global RNG states in checkpoints and restores them on ``fit(ckpt_path=...)``.

    The state is captured when the checkpoint is written (Lightning runs checkpoint callbacks last, so after
    every other validation hook has drawn its numbers) and restored when the trainer loads the checkpoint,
    before the first resumed batch. ``LightningModule.load_from_checkpoint`` does not touch the RNGs.

    With several processes (DDP) only rank 0's state is saved and restored everywhere; exactness of a resume
    is guaranteed for single-process runs.
    """

    def state_dict(self) -> dict[str, Any]:
        return capture_rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            restore_rng_state(state_dict)


__all__ = [
    "AtomicCheckpointIO",
    "RNGStateCheckpoint",
    "atomic_torch_save",
    "remove_stale_temp_files",
    "use_atomic_checkpoint_io",
    "capture_rng_state",
    "restore_rng_state",
]
