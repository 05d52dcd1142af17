"""Devices and memory: check a ``--device`` string and how much memory a run may use, before using them."""

from __future__ import annotations

import os

import torch


def check_device(device: str | torch.device) -> torch.device:
    """Return ``torch.device(device)`` after checking it names a device this machine has.

    Raises:
        ValueError: not a device name (e.g. ``gpu``), CUDA/MPS absent, or a CUDA index beyond the GPUs present.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {device!r} is not a device; use cpu, cuda, cuda:<index> or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available here; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0; use --device cuda:0")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {device}: unsupported device type {parsed.type!r}; use cpu, cuda or mps")
    return parsed


def available_memory(device: str | torch.device) -> int | None:
    """Free bytes on ``device`` (RAM for the CPU), or ``None`` when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


__all__ = ["available_memory", "check_device"]
