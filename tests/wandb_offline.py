"""Read an offline W&B run back without network or account: what was logged, before (or instead of) ``wandb sync``.

An offline run is a folder ``<save_dir>/wandb/offline-run-<time>-<id>/`` holding ``run-<id>.wandb`` (every record
the W&B SDK wrote: config, history rows, summary, artifacts, files) and ``files/`` (media such as logged images and
tables). wandb 0.31 ships no Python reader for the ``.wandb`` file, so this module decodes it: the file is a
LevelDB-style log (a 7-byte header, then 32 KiB blocks of chunks ``crc32 | length | type | payload``) of
``wandb_internal_pb2.Record`` protobufs.

    python tests/wandb_offline.py runs/mnist_wandb/wandb/offline-run-*   # prints a summary of each run
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER = b":W&B"
_HEADER_SIZE = 7  # ":W&B", a 2-byte magic, a 1-byte version
_BLOCK = 32 * 1024
_CHUNK_HEADER = 7  # crc32 (4), length (2), type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield the ``wandb_internal_pb2.Record`` messages of a ``.wandb`` file, in the order they were written.

    Raises:
        ValueError: the file does not start with the W&B header.
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if not data.startswith(_HEADER):
        raise ValueError(f"{path} is not a W&B transaction log (expected the {_HEADER!r} header)")
    pos, pending = _HEADER_SIZE, b""
    while pos + _CHUNK_HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _CHUNK_HEADER:  # a block tail too short for a chunk header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        payload = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        pos += _CHUNK_HEADER + length
        if kind in (_FULL, _FIRST):
            pending = payload
        elif kind in (_MIDDLE, _LAST):
            pending += payload
        else:  # zero padding
            continue
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _nested_set(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _items(updates: Any) -> Iterator[tuple[list[str], Any]]:
    for item in updates:
        keys = list(item.nested_key) or [item.key]
        yield keys, json.loads(item.value_json)


@dataclass
class OfflineRun:
    """What an offline run recorded.

    Attributes:
        path: the ``offline-run-*`` folder.
        run_id: the W&B run id.
        config: the run config (nested dicts, as logged).
        history: one dict per ``log`` call (nested keys joined with ``/``).
        summary: the final summary (last value of each key).
        artifacts: ``(type, name)`` of each logged artifact.
        files: paths (relative to ``files/``) the run registered for upload.
    """

    path: Path
    run_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[tuple[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def values(self, key: str) -> list[Any]:
        """Every logged value of ``key`` (e.g. ``train/g_loss``), in order."""
        return [row[key] for row in self.history if key in row]


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Decode the ``run-*.wandb`` file of an ``offline-run-*`` folder.

    Raises:
        FileNotFoundError: the folder holds no ``run-*.wandb`` file.
    """
    run_dir = Path(run_dir)
    logs = sorted(run_dir.glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}: expected a W&B offline-run-* folder")
    run = OfflineRun(path=run_dir)
    for record in iter_records(logs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id = record.run.run_id
            for keys, value in _items(record.run.config.update):
                _nested_set(run.config, keys, value)
        elif kind == "config":
            for keys, value in _items(record.config.update):
                _nested_set(run.config, keys, value)
        elif kind == "history":
            run.history.append({"/".join(keys): value for keys, value in _items(record.history.item)})
        elif kind == "summary":
            for keys, value in _items(record.summary.update):
                run.summary["/".join(keys)] = value
        elif kind == "artifact":
            run.artifacts.append((record.artifact.type, record.artifact.name))
        elif kind == "files":
            run.files.extend(f.path for f in record.files.files)
    return run


def describe(run: OfflineRun) -> str:
    """A short human-readable account of ``run``: config sections, logged keys, media, artifacts."""
    typed = {key[: -len("/_type")]: row[key] for row in run.history for key in row if key.endswith("/_type")}
    keys = sorted(
        {key for row in run.history for key in row if not key.startswith("_") and not key.startswith(tuple(
            f"{t}/" for t in typed))} | set(typed)
    )
    keys = [f"{key} ({typed[key]})" if key in typed else key for key in keys]
    media = sorted(str(p.relative_to(run.path)) for p in (run.path / "files" / "media").rglob("*") if p.is_file())
    lines = [
        f"{run.path} (run id {run.run_id})",
        f"  config sections: {', '.join(sorted(k for k in run.config if not k.startswith('_')))}",
        f"  history: {len(run.history)} rows; keys: {', '.join(keys)}",
        f"  media files: {len(media)}" + "".join(f"\n    {m}" for m in media),
        f"  artifacts: {', '.join(f'{name} ({kind})' for kind, name in run.artifacts) or 'none'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - a convenience for users
    for folder in sys.argv[1:]:
        print(describe(read_offline_run(folder)))
