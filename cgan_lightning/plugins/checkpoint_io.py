"""Checkpoints that survive a crash mid-write.

- :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file in the destination folder, flushes it
  to disk, then renames it over the target. Lightning's ``TorchCheckpointIO`` stages the bytes in the system
  temp folder and *moves* them, which is a copy-in-place (not atomic) whenever that folder is on another
  filesystem than the run directory, and never fsyncs.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

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

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any | None = None) -> None:
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


__all__ = [
    "AtomicCheckpointIO",
    "atomic_torch_save",
    "remove_stale_temp_files",
    "use_atomic_checkpoint_io",
]
