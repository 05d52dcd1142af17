"""Shared fixtures: tiny synthetic MNIST in torchvision's raw IDX layout, and the real data when present."""

from __future__ import annotations

import importlib
import struct
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

#: Real MNIST (5,000 train / 10,000 test images) kept beside the project on the development machines.
REAL_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
HAS_REAL_MNIST = (REAL_DATA_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()

requires_real_mnist = pytest.mark.skipif(not HAS_REAL_MNIST, reason=f"real MNIST not found in {REAL_DATA_DIR}")

#: The benchmark scripts, which some tests import as modules.
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (the folder goes on ``sys.path`` once, as the scripts import each other)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def write_idx_images(path: Path, images: torch.Tensor) -> None:
    """Write uint8 images ``[N, H, W]`` as an IDX3 file (magic 2051, big-endian sizes)."""
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.to(torch.uint8).numpy().tobytes())


def write_idx_labels(path: Path, labels: torch.Tensor) -> None:
    """Write labels ``[N]`` as an IDX1 file (magic 2049)."""
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.to(torch.uint8).numpy().tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` 28x28 uint8 images whose content depends on the label (a bright bar at a class-specific row)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = (torch.rand(n, 28, 28, generator=g) * 40).to(torch.uint8)
    rows = 2 + labels * 2
    images[torch.arange(n), rows] = 255
    images[torch.arange(n), rows + 1] = 255
    return images, labels


def make_fake_mnist(root: Path, n_train: int = 200, n_test: int = 100, folder: str = "MNIST") -> Path:
    """Write a tiny synthetic dataset under ``root/<folder>/raw`` and return ``root``."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx_images(raw / f"{split}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{split}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture
def fake_mnist_dir(tmp_path: Path) -> Path:
    """A temp data_dir holding a tiny synthetic MNIST (200 train, 100 test images) in ``MNIST/raw``."""
    return make_fake_mnist(tmp_path / "data")


@pytest.fixture(scope="session")
def fake_mnist_session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As ``fake_mnist_dir`` but shared by a whole test session (read-only use)."""
    return make_fake_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def _no_wandb_run_leaks_into_the_next_test():
    """End W&B's process-wide state (service, settings, directories) after each test that touched it.

    A test's offline run otherwise stays attached to its own temporary folders, and the next test's run can be
    written there (or nowhere that test looks).
    """
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()

