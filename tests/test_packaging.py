"""The wheel other projects install carries the package data (the shipped classifier and critic weights)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_modules_weights_and_console_script(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob("cgan_lightning-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "cgan_lightning/metrics/weights/mnist_classifier.pt" in names
    assert "cgan_lightning/nn/weights/mnist_critic_features.pt" in names
    expected = {"cgan_lightning/module.py", "cgan_lightning/cli/__init__.py", "cgan_lightning/callbacks/__init__.py"}
    assert expected <= names
    assert "cgan-lightning = cgan_lightning.cli:main" in entry_points
