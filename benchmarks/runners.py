"""The commands the end-to-end benchmarks launch: the library's CLI and the seed's loop, each a fresh process."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
#: The script whose workers run the hand-written loops (the seed loop, the bare loop).
WORKER_SCRIPT = REPO / "benchmarks" / "train_throughput.py"


def cli_launcher() -> list[str]:
    """The ``cgan-lightning`` console script users run, in this venv (else ``python -m cgan_lightning.cli``)."""
    script = Path(sys.executable).with_name("cgan-lightning")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cgan_lightning.cli"]


def worker_command(worker: str, epochs: int, data_dir: str, work: Path, device: str = "cpu") -> list[str]:
    """A ``train_throughput.py`` worker run for ``epochs`` epochs on ``device`` in a fresh process, from the
    first batch."""
    return [sys.executable, str(WORKER_SCRIPT), "--worker", worker, "--result", str(work / f"{worker}.json"),
            "--root_dir", str(work), "--epochs", str(epochs), "--warmup_batches", "0", "--data_dir", data_dir,
            "--device", device]


def seed_loop_command(epochs: int, data_dir: str, work: Path) -> list[str]:
    """The seed's loop as its design writes it (``train_throughput.py``'s reference worker), ``epochs`` epochs."""
    return worker_command("reference", epochs, data_dir, work)
