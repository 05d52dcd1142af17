"""The training loops benchmarks/end_to_end.py times against the library: each runs in a fresh process and reports."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import benchmark_module

from cgan_lightning.utilities import cuda_check


def _runners() -> Any:
    return benchmark_module("runners")


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


def test_epoch_timer_splits_each_epoch(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    # benchmarks/epoch_timer.py: one record per epoch that a next epoch started after, its parts inside its wall time.
    import lightning.pytorch as pl

    from cgan_lightning import ConditionalGAN
    from cgan_lightning.data.mnist import MNISTDataModule

    timer = benchmark_module("epoch_timer").EpochTimer(report_at_exit=False)
    trainer = pl.Trainer(max_epochs=3, limit_train_batches=3, limit_val_batches=1, accelerator="cpu",
                         callbacks=[timer], default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    trainer.fit(ConditionalGAN(), MNISTDataModule(str(fake_mnist_session_dir), download=False, batch_size=8))
    assert len(timer.epochs) == 2  # the third epoch has no next start
    for epoch in timer.epochs:
        assert epoch["batches"] > 0 and epoch["validation"] > 0 and epoch["epoch_end"] > 0
        assert epoch["batches"] + epoch["gaps"] + epoch["validation"] + epoch["epoch_end"] <= epoch["wall"] + 1e-6


def test_hook_timer_counts_each_callbacks_hooks_and_the_evidence_share(fake_mnist_session_dir: Path,
                                                                       tmp_path: Path) -> None:
    # benchmarks/hook_timer.py: a callback's seconds are those of its own hooks; the share is evidence over the rest.
    import time

    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from cgan_lightning import ConditionalGAN
    from cgan_lightning.data.mnist import MNISTDataModule

    class SlowEvidence(Callback):
        def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            time.sleep(0.1)

    timer = benchmark_module("hook_timer").HookTimer(evidence=("SlowEvidence",), report_at_exit=False)
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=0,
                         accelerator="cpu", callbacks=[SlowEvidence(), timer], default_root_dir=tmp_path,
                         logger=False, enable_progress_bar=False)
    trainer.fit(ConditionalGAN(), MNISTDataModule(str(fake_mnist_session_dir), download=False, batch_size=8))
    figures = timer.figures()
    assert 0.2 <= figures["callbacks_s"]["SlowEvidence"] < 0.4  # two validations, 0.1 s each
    assert figures["evidence_s"] == figures["callbacks_s"]["SlowEvidence"]
    assert "ModelCheckpoint" in figures["callbacks_s"]  # the trainer's own callbacks are timed, not counted
    assert figures["fit_s"] >= figures["training_batches_s"] + figures["evidence_s"] > figures["evidence_s"]
    rest = figures["fit_s"] - figures["evidence_s"]
    assert figures["evidence_share"] == pytest.approx(figures["evidence_s"] / rest)


def _end_to_end() -> Any:
    return benchmark_module("end_to_end")


def test_end_to_end_device_reaches_the_loops_not_the_library(tmp_path: Path) -> None:
    e2e = _end_to_end()
    args = e2e.parse_args(["--device", "cuda", "--with_bare_loop", "--side", "gpu=--config examples/fast_gpu.yaml"])
    for worker_side in ("seed loop", e2e.BARE_LOOP):
        command = e2e.side_command(worker_side, 3, args, tmp_path)
        assert command[command.index("--device") + 1] == "cuda"
    library = e2e.side_command("gpu", 3, args, tmp_path)
    assert "--device" not in library and "examples/fast_gpu.yaml" in library
    assert "--trainer.max_epochs=3" in library


def test_end_to_end_warmup_runs_each_side_once_untimed_first(fake_mnist_session_dir: Path, monkeypatch: Any,
                                                             capsys: Any) -> None:
    e2e = _end_to_end()
    calls: list[tuple[str, str]] = []

    def fake_timed_process(cmd: list[str], log: Path) -> tuple[float, float]:
        epochs = cmd[cmd.index("--epochs") + 1] if "--epochs" in cmd else next(
            a.split("=")[1] for a in cmd if a.startswith("--trainer.max_epochs="))
        calls.append(("worker" if "--worker" in cmd else "library", epochs))
        return (10.0 if epochs == "1" else 30.0), 100.0

    monkeypatch.setattr(e2e, "timed_process", fake_timed_process)
    e2e.main(["--warmup", "--rounds", "2", "--epochs", "5", "--data_dir", str(fake_mnist_session_dir),
              "--side", "lib=--config examples/fast.yaml"])
    assert calls[:2] == [("worker", "1"), ("library", "1")]  # the warm-up: each side once, 1 epoch
    assert len(calls) == 2 + 2 * 2 * 2  # then 2 rounds x 2 sides x (1 epoch, 5 epochs)
    table = capsys.readouterr().out
    # 20 s for 4 epochs of the 200-image split: 40 images/s, the warm-up's times in no row.
    assert "| lib | 20.00 s | 40 | 1.00x |" in table


def test_step_phases_split_each_batch_and_time_adam_on_a_copy(fake_mnist_session_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # benchmarks/step_phases.py: the four phases of the bare loop's batch add up to it, each is timed, the optimizer
    # steps once a batch, and the warm yardstick leaves the trained parameters and state untouched.
    phases = benchmark_module("step_phases")
    args = SimpleNamespace(seed=0, device="cpu", data_dir=str(fake_mnist_session_dir), plain_precision="32-true")
    monkeypatch.setenv(cuda_check.NVML_FLAG, "1")  # as `import lightning` sets it
    loader, generator, discriminator, opt_g, opt_d, row_scale, autocast, _ = phases.plain_setup(args)
    # the bare loop drops the NVML-based CUDA check where NVML is missing, as the library's setup does
    assert (os.environ.get(cuda_check.NVML_FLAG) == "1") == cuda_check.nvml_loadable()
    times = phases.phase_times(loader, (generator, discriminator, opt_g, opt_d, row_scale, autocast), 2)
    assert set(times) == {*phases.PHASES, "total"}
    assert all(times[phase] > 0 for phase in phases.PHASES)
    assert times["total"] == pytest.approx(sum(times[phase] for phase in phases.PHASES))
    batches = 2 * len(loader)
    for optimizer in (opt_g, opt_d):
        assert all(int(state["step"]) == batches for state in optimizer.state.values())
    before = [p.detach().clone() for p in generator.parameters()]
    moments = [opt_g.state[p]["exp_avg"].clone() for p in generator.parameters()]
    assert phases.adam_alone(opt_g, steps=2) > 0
    for p, saved, moment in zip(generator.parameters(), before, moments, strict=True):
        assert torch.equal(p, saved) and torch.equal(opt_g.state[p]["exp_avg"], moment)
    with pytest.raises(SystemExit):
        phases.main(["--rounds", "0"])


def test_step_phases_precision_reaches_the_bare_loop(fake_mnist_session_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    phases = benchmark_module("step_phases")
    seen: list[Any] = []
    original = phases.plain_setup

    def spy(args: Any) -> tuple[Any, ...]:
        built = original(args)
        seen.append(built[6])  # the autocast context the step runs under
        return built

    monkeypatch.setattr(phases, "plain_setup", spy)
    phases.main(["--data_dir", str(fake_mnist_session_dir), "--rounds", "1", "--epochs", "1",
                 "--precision", "bf16-mixed"])
    assert len(seen) == 1 and seen[0].fast_dtype == torch.bfloat16 and seen[0]._enabled
    assert "bf16-mixed" in capsys.readouterr().out
