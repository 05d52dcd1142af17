"""Keep ``torch.cuda.is_available()`` cheap on machines without an NVIDIA driver.

``import lightning`` sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that CUDA availability checks ask NVML instead of
initializing CUDA (which would make a later ``fork`` unsafe). PyTorch does not cache that answer before CUDA is
initialized, and every ``torch.optim.Adam.step()`` asks it: where ``libnvidia-ml`` is missing, each call tries to
load the library, fails, and falls back to the CUDA runtime's device count anyway, about half a millisecond per
optimizer step on a CPU. Without NVML the flag changes no answer and no fork-safety (the fallback is the same call),
so dropping it there only removes the failed load.
"""

from __future__ import annotations

import ctypes
import os

NVML_FLAG = "PYTORCH_NVML_BASED_CUDA_CHECK"
#: The library PyTorch's NVML-based check loads (``torch.cuda._raw_device_count_nvml``).
NVML_LIBRARY = "libnvidia-ml.so.1"


def nvml_loadable() -> bool:
    """Whether NVML's shared library can be loaded on this machine."""
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return False
    return True


def skip_nvml_check_without_nvml() -> bool:
    """Drop ``PYTORCH_NVML_BASED_CUDA_CHECK`` when NVML can't be loaded (no NVIDIA driver); keep it otherwise.

    Returns:
        Whether the flag was dropped.
    """
    if os.environ.get(NVML_FLAG) != "1" or nvml_loadable():
        return False
    del os.environ[NVML_FLAG]
    return True


__all__ = ["nvml_loadable", "skip_nvml_check_without_nvml"]
