"""Faults: a killed or stopped run resumes from its checkpoint; damaged checkpoints and NaN losses get one clear line.

The SIGKILL / SIGTERM tests start the real ``cgan-lightning`` command in a subprocess on the synthetic data
(25 batches per epoch, 50 global steps) and stop it mid-epoch; a ``Heartbeat`` callback tells the test how
far training got. They are marked ``slow`` (the subprocess's imports dominate) and run in ``.ci/run``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch
from fault_helpers import callbacks_config, read_heartbeat, sha256, tiny_cli_args
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from cgan_lightning import ConditionalGAN, MNISTDataModule, SaveOnInterrupt
from cgan_lightning.cli.lightning_cli import main
from cgan_lightning.nn.mlp import MLPDiscriminator, MLPGenerator
from cgan_lightning.plugins.checkpoint_io import AtomicCheckpointIO
from cgan_lightning.utilities.checkpoint_files import CheckpointError, verify_checkpoint_file

TESTS_DIR = Path(__file__).resolve().parent
STEPS_PER_EPOCH = 50  # 25 batches x (1 D + 1 G step)


def _heartbeat(path: Path, sleep_s: float = 0.0) -> dict[str, object]:
    return {"class_path": "fault_helpers.Heartbeat", "init_args": {"path": str(path), "sleep_s": sleep_s}}


def _start_cli(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
               WANDB_MODE="disabled")
    return subprocess.Popen([sys.executable, "-m", "cgan_lightning.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_batches(proc: subprocess.Popen[str], heartbeat: Path, n: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while len(read_heartbeat(heartbeat)) < n:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited (status {proc.returncode}) before {n} batches:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"training did not reach {n} batches in {timeout_s} s")
        time.sleep(0.01)


def _resume_to_end_of_epoch(data_dir: Path, root: Path, ckpt: Path, heartbeat: Path, *flags: str) -> list[int]:
    """``fit --ckpt_path ckpt`` (in this process) up to the end of epoch 0; return the global steps it ran.

    ``flags`` repeat the interrupted run's checkpoint settings, as a user resuming with the same config does.
    """
    config = callbacks_config(root / "resume.yaml", _heartbeat(heartbeat))
    main(["fit", "--config", str(config), *tiny_cli_args(data_dir, root), *flags, "--trainer.max_epochs=1",
          f"--ckpt_path={ckpt}"])
    # The resumed run went on writing last.ckpt (not a last-v1.ckpt beside it) up to the end of the epoch.
    assert not list((root / "ckpt").glob("last-v*.ckpt"))
    assert torch.load(root / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == STEPS_PER_EPOCH
    return read_heartbeat(heartbeat)


@pytest.mark.slow
def test_sigkill_mid_epoch_leaves_a_loadable_last_ckpt_and_fit_continues(fake_mnist_session_dir: Path,
                                                                          tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat.txt"
    config = callbacks_config(tmp_path / "slow.yaml", _heartbeat(heartbeat, sleep_s=0.05))
    # A save after every batch (2 global steps), so the kill may land during a write too.
    every_batch = ("--checkpoint.every_n_train_steps=2", "--checkpoint.filename=step={step:04d}",
                   "--checkpoint.save_top_k=-1", "--checkpoint.save_last=true")
    proc = _start_cli(["fit", "--config", str(config), *tiny_cli_args(fake_mnist_session_dir, tmp_path),
                       "--trainer.max_epochs=3", *every_batch], cwd=tmp_path)
    _wait_for_batches(proc, heartbeat, 7)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    reached = read_heartbeat(heartbeat)[-1]

    last = tmp_path / "ckpt" / "last.ckpt"
    verify_checkpoint_file(last)  # complete and CRC-clean, whatever the kill interrupted
    state = torch.load(last, map_location="cpu", weights_only=True)
    saved_step = state["global_step"]
    # The heartbeat of batch k runs before its save: last.ckpt holds batch k or, killed before that save, k - 1.
    assert reached - 2 <= saved_step <= reached < STEPS_PER_EPOCH
    assert (tmp_path / "ckpt" / f"step={saved_step:04d}.ckpt").is_file()
    model = ConditionalGAN.load_from_checkpoint(last)
    assert model.sample([1, 2]).isfinite().all()

    resumed = _resume_to_end_of_epoch(fake_mnist_session_dir, tmp_path, last, tmp_path / "resumed.txt",
                                      *every_batch)
    # It continued after the saved batch (not from the start of the epoch) and finished the epoch.
    assert resumed == list(range(saved_step + 2, STEPS_PER_EPOCH + 1, 2))


@pytest.mark.slow
def test_ctrl_c_in_a_subprocess_resumes_bit_for_bit(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    """Ctrl-C lands between a batch's D and G updates; the run still stops at a batch boundary and resumes exactly."""
    slow_d = ["--model.discriminator=fault_helpers.SlowGStepDiscriminator",
              "--model.discriminator.init_args.hidden_dims=[32]", "--model.discriminator.init_args.sleep_s=0.2"]
    straight = tmp_path / "straight"
    main(["fit", *tiny_cli_args(fake_mnist_session_dir, straight), *slow_d, "--trainer.max_epochs=1",
          "--seed_everything=3"])

    stopped = tmp_path / "stopped"
    heartbeat = tmp_path / "heartbeat.txt"
    config = callbacks_config(tmp_path / "beat.yaml", _heartbeat(heartbeat))
    proc = _start_cli(["fit", "--config", str(config), *tiny_cli_args(fake_mnist_session_dir, stopped), *slow_d,
                       "--trainer.max_epochs=1", "--seed_everything=3"], cwd=tmp_path)
    _wait_for_batches(proc, heartbeat, 3)
    time.sleep(0.1)  # into the next batch's G step, which sleeps 0.2 s after its D update
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Interrupted by Ctrl-C" in err and "Traceback" not in err, err
    last = stopped / "ckpt" / "last.ckpt"
    saved_step = torch.load(last, weights_only=True)["global_step"]
    assert saved_step % 2 == 0 and 0 < saved_step < STEPS_PER_EPOCH  # whole batches only (one D + one G step)

    # Another seed: the weights, optimizers, data position and training noise all come from the checkpoint.
    main(["fit", *tiny_cli_args(fake_mnist_session_dir, stopped), *slow_d, "--trainer.max_epochs=1",
          "--seed_everything=99", f"--ckpt_path={last}"])
    want = torch.load(straight / "ckpt" / "last.ckpt", weights_only=True)
    got = torch.load(last, weights_only=True)
    assert got["global_step"] == want["global_step"] == STEPS_PER_EPOCH
    assert want["state_dict"].keys() == got["state_dict"].keys()
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key


def test_second_ctrl_c_aborts_without_saving_and_handlers_are_restored(fake_mnist_session_dir: Path,
                                                                       tmp_path: Path) -> None:
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):
            _fit(fake_mnist_session_dir, tmp_path, seed=0, callbacks=(_SignalAt(3, signal.SIGINT, times=2),))
        assert not (tmp_path / "ckpt").exists()  # aborted mid-batch: nothing inexact was written
    finally:
        signal.signal(signal.SIGINT, previous)
    # A fit that ends normally gives the handler it replaced back.
    _fit(fake_mnist_session_dir, tmp_path / "plain", seed=0)
    assert signal.getsignal(signal.SIGINT) is previous


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    return [int(child) for child in found]


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_stops_every_rank_after_the_same_batch(fake_mnist_session_dir: Path,
                                                                       tmp_path: Path) -> None:
    # Lightning's own handler broadcasts from inside the signal handler: a SIGTERM to rank 1 alone (or landing while
    # a rank waits in a gradient all-reduce) paired that broadcast with another collective, and both ranks hung.
    heartbeat = tmp_path / "heartbeat.txt"  # both ranks append a line per batch
    config = callbacks_config(tmp_path / "beat.yaml", _heartbeat(heartbeat))
    proc = _start_cli(["fit", "--config", str(config), *tiny_cli_args(fake_mnist_session_dir, tmp_path),
                       "--trainer.max_epochs=50", "--trainer.strategy=ddp", "--trainer.devices=2"], cwd=tmp_path)
    _wait_for_batches(proc, heartbeat, 10)
    rank_one = _children(proc.pid)
    assert len(rank_one) == 1, rank_one  # the CLI process is rank 0; Lightning started rank 1 as its child
    os.kill(rank_one[0], signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        for pid in [*_children(proc.pid), proc.pid]:
            os.kill(pid, signal.SIGKILL)
        pytest.fail("the ranks did not stop within 120 s of a SIGTERM to rank 1")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Interrupted by SIGTERM" in err
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    beats = read_heartbeat(heartbeat)
    assert len(beats) % 2 == 0 and beats[-2:] == [saved["global_step"]] * 2  # both ranks ended on the saved batch


@pytest.mark.slow
def test_sigterm_saves_last_ckpt_and_fit_continues(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat.txt"
    config = callbacks_config(tmp_path / "slow.yaml", _heartbeat(heartbeat, sleep_s=0.05))
    # Only the default end-of-epoch saves: whatever exists mid-epoch was written because of the SIGTERM.
    proc = _start_cli(["fit", "--config", str(config), *tiny_cli_args(fake_mnist_session_dir, tmp_path),
                       "--trainer.max_epochs=3"], cwd=tmp_path)
    _wait_for_batches(proc, heartbeat, 5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    reached = read_heartbeat(heartbeat)[-1]
    assert reached < STEPS_PER_EPOCH
    last = tmp_path / "ckpt" / "last.ckpt"
    # The hint is a command to paste: the config the CLI saved for the run, and the checkpoint.
    assert "Interrupted by SIGTERM" in err
    assert f"Continue with: cgan-lightning fit --config {tmp_path / 'config.yaml'} --ckpt_path {last}" in err, err

    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == reached  # the batch in flight was finished, then saved
    resumed = _resume_to_end_of_epoch(fake_mnist_session_dir, tmp_path, last, tmp_path / "resumed.txt")
    assert resumed == list(range(reached + 2, STEPS_PER_EPOCH + 1, 2))


class _SignalAt(Callback):
    """Sends ``signum`` to this very process after training batch ``batch`` (as a scheduler or Ctrl-C would)."""

    def __init__(self, batch: int, signum: int, times: int = 1) -> None:
        self.batch = batch
        self.signum = signum
        self.times = times

    def on_train_batch_end(self, trainer: Trainer, pl_module: ConditionalGAN, outputs: object, batch: object,
                           batch_idx: int) -> None:
        if trainer.current_epoch == 0 and batch_idx == self.batch:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


def _fit(data_dir: Path, root: Path, seed: int, ckpt_path: Path | None = None,
         callbacks: tuple[Callback, ...] = ()) -> tuple[ConditionalGAN, Trainer]:
    seed_everything(seed)
    model = ConditionalGAN(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16, 32)),
                           discriminator=partial(MLPDiscriminator, hidden_dims=(16,)))
    trainer = Trainer(default_root_dir=root, max_epochs=2, accelerator="cpu", devices=1, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                      num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
                      # SaveOnInterrupt after the signal senders: it sees their signal at the same batch's end.
                      callbacks=[ModelCheckpoint(dirpath=root / "ckpt", save_last=True), *callbacks,
                                 SaveOnInterrupt()])
    trainer.fit(model, MNISTDataModule(str(data_dir), download=False, batch_size=32), ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_interrupt_then_resume_equals_an_uninterrupted_run(signum: int, fake_mnist_session_dir: Path,
                                                          tmp_path: Path) -> None:
    straight, straight_trainer = _fit(fake_mnist_session_dir, tmp_path / "straight", seed=0)
    # Lightning turns SIGTERM into SIGTERMException and Ctrl-C into sys.exit(1): both are SystemExit.
    previous_handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with pytest.raises(SystemExit):
            _fit(fake_mnist_session_dir, tmp_path / "stopped", seed=0, callbacks=(_SignalAt(3, signum),))
    finally:  # Lightning restores them itself; make sure pytest keeps its own whatever happened
        for s, handler in previous_handlers.items():
            signal.signal(s, handler)
    last = tmp_path / "stopped" / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 8  # batches 0-3 of epoch 0, then stopped
    # Another seed: weights, optimizers, data position and RNG must all come from the interrupt checkpoint.
    resumed, resumed_trainer = _fit(fake_mnist_session_dir, tmp_path / "stopped", seed=123, ckpt_path=last)
    assert resumed_trainer.global_step == straight_trainer.global_step
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)


def test_no_interrupt_checkpoint_after_other_errors(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    class Boom(Callback):
        def on_train_batch_end(self, *args: object) -> None:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _fit(fake_mnist_session_dir, tmp_path, seed=0, callbacks=(Boom(),))
    assert not (tmp_path / "ckpt").exists()


# ------------------------------------------------------------------------------------ damaged checkpoints
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, fake_mnist_session_dir: Path) -> tuple[Path, Path]:
    """A 2-batch CLI run: its folder and its ``last.ckpt``."""
    root = tmp_path_factory.mktemp("cli_run")
    main(["fit", *tiny_cli_args(fake_mnist_session_dir, root), "--trainer.max_epochs=1",
          "--trainer.limit_train_batches=2"])
    return root, root / "ckpt" / "last.ckpt"


def _damage(good: Path, out: Path, how: str) -> Path:
    data = bytearray(good.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = bytearray()
    elif how == "bit_flip":  # inside the tensor data: torch.load would accept it silently
        data[len(data) // 2] ^= 0xFF
    elif how == "not_a_checkpoint":  # binary, but not a zip file
        data = bytearray(bytes(range(256)) * 4)
    elif how == "text_file":  # e.g. a metrics.csv or a config given by mistake
        data = bytearray(b"epoch,loss\n0,0.69\n")
    out.write_bytes(bytes(data))
    return out


DAMAGE = {"truncated": "truncated", "empty": "empty", "bit_flip": "CRC check failed",
          "not_a_checkpoint": "not a readable PyTorch checkpoint", "text_file": "is a text file"}


@pytest.mark.parametrize("subcommand", ["fit", "validate"])
@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_ckpt_path_gives_one_line_naming_the_file(how: str, subcommand: str, cli_run: tuple[Path, Path],
                                                          fake_mnist_session_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, good = cli_run
    bad = _damage(good, tmp_path / f"{how}.ckpt", how)
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, *tiny_cli_args(fake_mnist_session_dir, tmp_path), f"--ckpt_path={bad}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"cgan-lightning: error: checkpoint {bad}: ")
    assert DAMAGE[how] in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("how", list(DAMAGE))
def test_load_from_checkpoint_names_a_damaged_file(how: str, cli_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, good = cli_run
    bad = _damage(good, tmp_path / f"{how}.ckpt", how)
    with pytest.raises(CheckpointError, match=DAMAGE[how]) as err:
        ConditionalGAN.load_from_checkpoint(bad)
    assert err.value.path == str(bad) and str(bad) in str(err.value)
    assert isinstance(err.value, ValueError)
    ConditionalGAN.load_from_checkpoint(good)  # the intact file still loads


def test_missing_and_folder_ckpt_paths(cli_run: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        ConditionalGAN.load_from_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(CheckpointError, match="is a folder"):
        ConditionalGAN.load_from_checkpoint(tmp_path)


# ------------------------------------------------------------------------------------------ NaN / inf losses
@pytest.mark.parametrize(
    ("nan_after_calls", "value", "loss", "network", "loss_value", "step"),
    # D is called 3 times per batch (real and fake for D's step, fake for G's): after 6 calls batch 2's D step
    # sees NaN logits (at global step 4); after 8, batch 2's D step is applied (step 5) and its G step sees -inf
    # logits, a hinge G loss of +inf.
    [(6, "nan", "bce", "discriminator", "nan", 4), (8, "-inf", "hinge", "generator", "inf", 5)],
)
def test_nonfinite_loss_stops_with_one_line_and_keeps_last_good_checkpoint(
    nan_after_calls: int, value: str, loss: str, network: str, loss_value: str, step: int,
    fake_mnist_session_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    last = tmp_path / "ckpt" / "last.ckpt"
    fingerprints = tmp_path / "fingerprints.txt"
    config = callbacks_config(tmp_path / "watch.yaml", {"class_path": "fault_helpers.ChecksumRecorder",
                                                        "init_args": {"watched": str(last), "out": str(fingerprints)}})
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), *tiny_cli_args(fake_mnist_session_dir, tmp_path),
              "--trainer.max_epochs=1", "--checkpoint.every_n_train_steps=2",  # a save after every batch
              "--model.discriminator=fault_helpers.NaNAfterDiscriminator",
              "--model.discriminator.init_args.hidden_dims=[32]",
              f"--model.discriminator.init_args.nan_after_calls={nan_after_calls}",
              f"--model.discriminator.init_args.value={value}", f"--model.loss={loss}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"cgan-lightning: error: {network} loss is {loss_value} at batch 2 of epoch 0 "
                              f"(global step {step})"), err[-1]
    assert not any("Traceback" in line for line in err)
    # The checkpoint of batch 1 (the last good one) is byte-for-byte what it was when batch 2 started.
    before_bad_batch = fingerprints.read_text().split()[-1]
    assert sha256(last) == before_bad_batch
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 4  # saved after batch 1
    assert all(t.isfinite().all() for t in state["state_dict"].values() if t.is_floating_point())
