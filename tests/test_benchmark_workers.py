"""The training loops benchmarks/end_to_end.py times against the library: each runs in a fresh process and reports."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _runners() -> Any:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module("runners")


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["reference", "plain"])
def test_worker_command_trains_one_epoch_and_reports(worker: str, fake_mnist_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    command = _runners().worker_command(worker, 1, str(fake_mnist_dir), work)
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    result = json.loads((work / f"{worker}.json").read_text())
    assert result["worker"] == worker
    assert result["images"] == 200  # every image of the 200-image train split, once
    assert result["images_per_s"] > 0


def test_seed_loop_command_is_the_reference_worker(tmp_path: Path) -> None:
    runners = _runners()
    assert runners.seed_loop_command(3, "data", tmp_path) == runners.worker_command("reference", 3, "data", tmp_path)
    assert "--worker" in runners.worker_command("plain", 3, "data", tmp_path)
