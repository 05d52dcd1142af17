"""Crash-safe checkpoint writes, and the CLI's checkpoints under manual optimization."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cgan_lightning.cli.lightning_cli import main
from cgan_lightning.plugins.checkpoint_io import AtomicCheckpointIO, atomic_torch_save

QUICK_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "quick.yaml"

# Writes last.ckpt once, then dies (os._exit: no cleanup, as under SIGKILL) halfway through writing it again.
_CRASH_SCRIPT = textwrap.dedent("""
    import io, os, sys, torch
    from cgan_lightning.plugins.checkpoint_io import AtomicCheckpointIO
    path, mode = sys.argv[1], sys.argv[2]
    AtomicCheckpointIO().save_checkpoint({"state": torch.arange(100_000), "version": 1}, path)
    real_save = torch.save
    def dying_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        if isinstance(f, (str, os.PathLike)):
            f = open(f, "wb")
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # the first half of the file...
        f.flush()
        os._exit(9)  # ...and the process is gone
    torch.save = dying_save
    if mode == "atomic":
        AtomicCheckpointIO().save_checkpoint({"state": torch.arange(200_000), "version": 2}, path)
    else:  # writing in place, for comparison
        torch.save({"state": torch.arange(200_000), "version": 2}, path)
""")


@pytest.mark.slow  # spawns processes
@pytest.mark.parametrize("mode", ["atomic", "in_place"])
def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(tmp_path: Path, mode: str) -> None:
    last = tmp_path / "ckpt" / "last.ckpt"
    result = subprocess.run([sys.executable, "-c", _CRASH_SCRIPT, str(last), mode], capture_output=True, timeout=120)
    assert result.returncode == 9, result.stderr.decode()
    if mode == "atomic":
        assert torch.load(last, weights_only=True)["version"] == 1
    else:  # the harness really does crash mid-write: a plain in-place write leaves a truncated file
        with pytest.raises((RuntimeError, pickle.UnpicklingError, EOFError)):
            torch.load(last, weights_only=True)


def test_an_error_while_writing_keeps_the_old_file_and_no_temp_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"version": 1}, path)

    def failing_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"version": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_cli_writes_last_ckpt_atomically_after_every_epoch(
    fake_mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[str] = []
    original = AtomicCheckpointIO.save_checkpoint

    def recording_save(self: AtomicCheckpointIO, checkpoint: dict, path: str, storage_options: object = None) -> None:
        saved.append(Path(path).name)
        original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording_save)
    main(["fit", "--config", str(QUICK_CONFIG), "--data.data_dir", str(fake_mnist_dir), "--data.download", "false",
          "--data.batch_size", "64", "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--trainer.max_epochs", "2", "--trainer.limit_val_batches", "1",
          "--model.latent_dim", "8", "--model.generator.init_args.hidden_dims", "[16]",
          "--model.discriminator.init_args.hidden_dims", "[16]", "--checkpoint.dirpath", str(tmp_path / "ckpt")])
    # The default keeps one file (no PerClassFID here, so no best-by-FID files), written once per epoch.
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["last.ckpt"]
    assert saved == ["last.ckpt", "last.ckpt"]
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and last["global_step"] == 2 * 2 * 4  # 2 epochs x 4 batches x (D step + G step)
    assert len(last["optimizer_states"]) == 2


@pytest.mark.parametrize(("score", "ranks"), [(1.5, True), (float("nan"), False), (float("inf"), False)])
def test_best_fid_checkpoint_ranks_only_a_finite_score_of_this_validation(score: float, ranks: bool) -> None:
    from types import SimpleNamespace

    from cgan_lightning.callbacks import BestFIDCheckpoint, PerClassFID

    fid = PerClassFID()
    fid.last_global_step, fid.last_scores = 40, {"val/fid/mean": score}
    trainer = SimpleNamespace(callbacks=[fid], global_step=40)
    assert BestFIDCheckpoint()._scored_now(trainer) is ranks  # type: ignore[arg-type]
    trainer.global_step = 42  # a validation PerClassFID skipped: its scores are older than the weights
    assert BestFIDCheckpoint()._scored_now(trainer) is False  # type: ignore[arg-type]

