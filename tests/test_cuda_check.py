"""The NVML flag Lightning sets is dropped only where NVML can't be loaded (cgan_lightning.utilities.cuda_check)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cgan_lightning.utilities import cuda_check


def test_lightning_still_sets_the_flag() -> None:
    # The premise: importing Lightning turns the NVML-based check on (if a release stops, the helper is moot).
    code = "import os, lightning; print(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "1"


@pytest.mark.parametrize(("loadable", "dropped"), [(False, True), (True, False)])
def test_flag_dropped_only_without_nvml(monkeypatch: pytest.MonkeyPatch, loadable: bool, dropped: bool) -> None:
    monkeypatch.setenv(cuda_check.NVML_FLAG, "1")
    monkeypatch.setattr(cuda_check, "nvml_loadable", lambda: loadable)
    assert cuda_check.skip_nvml_check_without_nvml() is dropped
    assert (cuda_check.NVML_FLAG in os.environ) is not dropped


def test_flag_left_alone_when_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cuda_check.NVML_FLAG, raising=False)
    monkeypatch.setattr(cuda_check, "nvml_loadable", lambda: False)
    assert cuda_check.skip_nvml_check_without_nvml() is False


def test_nvml_loadable_reports_a_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda_check, "NVML_LIBRARY", "libno-such-library-here.so.0")
    assert cuda_check.nvml_loadable() is False
