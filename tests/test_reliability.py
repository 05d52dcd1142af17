"""Reliability (issue 17): bad samples never crash or get scored, inputs are never overwritten, no silent data loss,
no tracebacks for user mistakes, and Python API arguments are type-checked. One section per class of failure."""

from __future__ import annotations

import gzip
import math
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import make_fake_mnist
from fault_helpers import callbacks_config, sha256, tiny_cli_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from cgan_lightning import ConditionalGAN, MLPDiscriminator, MLPGenerator, MNISTDataModule, PerClassFID
from cgan_lightning.cli.lightning_cli import main
from cgan_lightning.cli.sample import main as sample_main
from cgan_lightning.data.mnist import RAW_FILES, DataNotFoundError
from cgan_lightning.metrics import PerClassEvaluator
from cgan_lightning.metrics.sample_checks import BadSamplesError
from cgan_lightning.plugins.checkpoint_io import STALE_AFTER_S, atomic_torch_save
from cgan_lightning.utilities.checkpoint_files import CheckpointError, verify_checkpoint_file

TINY = dict(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16, 32)),
            discriminator=partial(MLPDiscriminator, hidden_dims=(32,)))
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}


def _tiny_checkpoint(path: Path, nan: bool = False) -> Path:
    model = ConditionalGAN(latent_dim=8)  # default networks: no pickled factory, so a safe load reads it
    if nan:
        with torch.no_grad():
            for p in model.generator.parameters():
                p.fill_(float("nan"))
    trainer = Trainer(max_epochs=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


def _cli_error(capsys: pytest.CaptureFixture[str], runner, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        runner(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    return exit_info.value.code, lines[-1] if lines else ""


class _Sampler:
    """A ConditionalSampler returning ``transform(images in [-1, 1])``."""

    num_classes = 10
    latent_dim = 4

    def __init__(self, transform) -> None:
        self.transform = transform

    def sample(self, labels, z=None, generator=None):
        return self.transform(torch.tanh(z.sum(1).view(-1, 1, 1, 1) + torch.zeros(len(labels), 1, 28, 28)))


@pytest.fixture(scope="module")
def evaluator() -> PerClassEvaluator:
    ev = PerClassEvaluator(10)
    g = torch.Generator().manual_seed(0)
    ev.add_real([(torch.rand(60, 1, 28, 28, generator=g) * 2 - 1, torch.arange(60) % 10)])
    return ev


# ------------------------------------------------------------------ 1. non-finite or out-of-range generator output
@pytest.mark.parametrize(("transform", "expected"), [
    (lambda x: x * 5, "outside [-1, 1]: values span"),
    (lambda x: (x + 1) * 127.5, "0..255"),
    (lambda x: torch.where(torch.arange(len(x)).view(-1, 1, 1, 1) == 3, float("nan"), x),
     "1 of 20 generated images (class 1) hold NaN"),
    (lambda x: x.masked_fill(torch.ones_like(x, dtype=torch.bool), float("inf")), "hold inf"),
    (lambda x: (x * 127.5 + 127.5).to(torch.uint8), "uint8"),
    (lambda x: x[:, :, :14], "shape"),
], ids=["5x", "0..255", "one_nan", "inf", "uint8", "shape"])
def test_evaluation_refuses_garbage_naming_it(evaluator: PerClassEvaluator, transform, expected: str) -> None:
    with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        evaluator.evaluate(_Sampler(transform), samples_per_class=2, batch_size=20)
    scores = evaluator.evaluate(_Sampler(lambda x: x), samples_per_class=2)  # still usable afterwards
    assert math.isfinite(scores["fid/overall"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.sampled_from([(2, 1, 28, 28), (2, 1, 28), (2, 3, 28, 28), (1, 1, 28, 28), (2, 1, 14, 14), (0, 1, 28, 28),
                           (2, 1, 28, 28, 1)]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int64,
                           torch.bool]),
    scale=st.sampled_from([1.0, 1.04, 1.5, 5.0, 255.0, 1e30]),
    poison=st.sampled_from([None, float("nan"), float("inf"), float("-inf")]),
    not_a_tensor=st.booleans(),
)
def test_evaluation_protocol_property(evaluator: PerClassEvaluator, shape, dtype, scale, poison, not_a_tensor) -> None:
    """Any sampler output: either a valid score dict or a ValueError naming the problem, never another exception;
    non-finite values never reach the FID's matrix square root (which would crash this process)."""

    class Random:
        num_classes, latent_dim = 10, 4

        def sample(self, labels, z=None, generator=None):
            if not_a_tensor:
                return [0.0] * len(labels)
            images = (torch.rand(len(labels), *shape[1:], dtype=torch.float64) * 2 - 1) * scale
            if poison is not None and images.numel():
                images.view(-1)[0] = poison
            return images[: shape[0]].to(dtype)

    sane = (not not_a_tensor and shape == (2, 1, 28, 28) and dtype.is_floating_point and scale <= 1.05
            and poison is None)
    try:
        scores = evaluator.evaluate(Random(), samples_per_class=2, batch_size=2)
    except ValueError as err:
        assert str(err) and not sane, err
    else:
        assert sane and set(scores) >= {"fid/overall", "acc/mean"}


def test_sample_refuses_nan_latents_bad_generator_and_nan_weights(tmp_path: Path) -> None:
    model = ConditionalGAN(**TINY)
    with pytest.raises(ValueError, match="z holds NaN"):
        model.sample([1, 2], z=torch.full((2, 8), float("nan")))
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        model.sample([1], generator=42)  # type: ignore[arg-type]
    nan_model = ConditionalGAN.load_from_checkpoint(_tiny_checkpoint(tmp_path / "nan.ckpt", nan=True))
    with pytest.raises(BadSamplesError, match=r"2 of 2 generated images \(classes 3, 7\) hold NaN"):
        nan_model.sample([3, 7])


def test_sample_cli_writes_no_nan_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "nan.ckpt", nan=True)
    code, line = _cli_error(capsys, sample_main, "--ckpt_path", str(ckpt), "--labels", "1", "--out",
                            str(tmp_path / "s.png"))
    assert code == 1 and "16 of 16 generated images (class 1) hold NaN" in line
    assert not (tmp_path / "s.png").exists()


def test_validate_with_a_nan_generator_fails_cleanly(tmp_path: Path, fake_mnist_dir: Path) -> None:
    """End to end in a subprocess: once a segfault inside the FID's sqrtm, now one line and exit status 1."""
    ckpt = _tiny_checkpoint(tmp_path / "nan.ckpt", nan=True)
    config = callbacks_config(tmp_path / "cb.yaml", {"class_path": "cgan_lightning.callbacks.PerClassFID",
                                                     "init_args": {"samples_per_class": 2, "batch_size": 20}})
    proc = subprocess.run([sys.executable, "-m", "cgan_lightning.cli", "validate", "--config", str(config),
                           *[a for a in tiny_cli_args(fake_mnist_dir, tmp_path) if "--model." not in a],
                           "--ckpt_path", str(ckpt)],
                          capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "generated images (classes 0, 1" in proc.stderr.strip().splitlines()[-1]


class _PoisonGenerator(Callback):
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        with torch.no_grad():
            for p in pl_module.generator.parameters():
                p.fill_(float("nan"))


def test_fit_without_check_finite_logs_nan_and_warns(fake_mnist_dir: Path, tmp_path: Path) -> None:
    fid = PerClassFID(samples_per_class=2, batch_size=20)
    trainer = Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path,
                      callbacks=[_PoisonGenerator(), fid])
    with pytest.warns(UserWarning, match="PerClassFID: logging nan at epoch 0: .* hold NaN"):
        trainer.fit(ConditionalGAN(check_finite=False, **TINY),
                    datamodule=MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=8))
    assert math.isnan(fid.last_scores["val/fid/mean"]) and math.isnan(trainer.callback_metrics["val/acc/mean"])


# --------------------------------------------------------------------------------- 2. an input can be overwritten
def test_sample_never_overwrites_its_checkpoint_or_another(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "model.ckpt")
    as_pt = tmp_path / "model.pt"
    as_pt.write_bytes(ckpt.read_bytes())
    digest = sha256(as_pt)
    code, line = _cli_error(capsys, sample_main, "--ckpt_path", str(as_pt), "--labels", "1", "--out", str(as_pt))
    assert code == 2 and "is the input file" in line
    link = tmp_path / "link.pt"
    link.symlink_to(as_pt)
    code, line = _cli_error(capsys, sample_main, "--ckpt_path", str(as_pt), "--labels", "1", "--out", str(link))
    assert code == 2 and "is the input file" in line
    code, line = _cli_error(capsys, sample_main, "--ckpt_path", str(ckpt), "--labels", "1", "--out", str(as_pt))
    assert code == 2 and "existing checkpoint" in line
    assert sha256(as_pt) == digest
    sample_main(["--ckpt_path", str(ckpt), "--labels", "1", "--out", str(tmp_path / "s.pt")])
    sample_main(["--ckpt_path", str(ckpt), "--labels", "2", "--out", str(tmp_path / "s.pt")])  # its own output: ok
    assert torch.load(tmp_path / "s.pt")["labels"].unique().tolist() == [2]


def test_a_config_file_in_the_run_folder_is_not_overwritten(fake_mnist_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"  # the run folder (default_root_dir, logger off) holds the config being read
    config.write_text("# my notes\ntrainer:\n  max_steps: 2\n")
    with pytest.warns(UserWarning, match="is the --config file this run reads"):
        main(["fit", "--config", str(config), *tiny_cli_args(fake_mnist_dir, tmp_path),
              "--trainer.limit_val_batches=0"])
    assert config.read_text() == "# my notes\ntrainer:\n  max_steps: 2\n"
    assert "max_steps: 2" in (tmp_path / "config.resolved.yaml").read_text()


def test_classifier_training_never_writes_over_its_data(fake_mnist_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from cgan_lightning.metrics.classifier_training import main as train_main

    data = fake_mnist_dir / "MNIST" / "raw" / "train-images-idx3-ubyte"
    digest = sha256(data)
    with pytest.raises(SystemExit) as info:
        train_main(["--data_dir", str(fake_mnist_dir), "--out", str(data), "--epochs", "1"])
    assert info.value.code == 2 and "is the input file" in capsys.readouterr().err
    ckpt = _tiny_checkpoint(tmp_path / "gan.pt")
    with pytest.raises(SystemExit):
        train_main(["--data_dir", str(fake_mnist_dir), "--out", str(ckpt), "--epochs", "1"])
    assert "existing checkpoint" in capsys.readouterr().err and sha256(data) == digest


# ------------------------------------------------------------------------------------------ 3. silent loss of data
def test_mid_epoch_resume_with_another_batch_size_is_refused(fake_mnist_dir: Path, tmp_path: Path) -> None:
    def trainer(**kw):
        return Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                       default_root_dir=tmp_path, **kw)

    first = trainer(max_steps=6, callbacks=[ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=6)])
    first.fit(ConditionalGAN(**TINY), datamodule=MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=8))
    mid = next((tmp_path / "ck").glob("*.ckpt"))  # after 3 of 25 batches of epoch 0
    safe = torch.serialization.safe_globals([partial, MLPGenerator, MLPDiscriminator])  # TINY's pickled factories
    refused = r"middle of epoch 0, after 3 of 25 batches made with batch_size 8; this run uses batch_size 16.*" \
              r"--data.batch_size 8"
    with safe, pytest.raises(ValueError, match=refused):
        trainer(max_epochs=1).fit(ConditionalGAN(**TINY), ckpt_path=mid,
                                  datamodule=MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    same = trainer(max_epochs=1)  # the same batch size resumes as before
    with safe:
        same.fit(ConditionalGAN(**TINY), ckpt_path=mid,
                 datamodule=MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=8))
    assert same.global_step == 50


def test_stale_partial_checkpoints_are_removed_at_the_next_save(tmp_path: Path) -> None:
    old = time.time() - 2 * STALE_AFTER_S - 3600
    stale = tmp_path / ".last.ckpt.k2j4_x9q.tmp"
    recent = tmp_path / ".last.ckpt.abcd1234.tmp"  # e.g. being written by another live process
    foreign = tmp_path / ".notes.tmp"  # not our pattern
    for path in (stale, recent, foreign):
        path.write_bytes(b"partial")
    os.utime(stale, (old, old))
    os.utime(foreign, (old, old))
    atomic_torch_save({"x": 1}, tmp_path / "last.ckpt")
    assert not stale.exists() and recent.exists() and foreign.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".last.ckpt.abcd1234.tmp", ".notes.tmp", "last.ckpt"])


# ---------------------------------------------------------------------------- 4. tracebacks and misleading messages
def test_parser_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.latent_dim", "2.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    assert "model.latent_dim" in err[0] and "--help" in err[0] and "usage:" not in err[0]


@pytest.mark.parametrize(("flags", "expected"), [
    (["--model.generator.init_args.hidden_dims=[-5, 32]"], "hidden_dims must be positive integers"),
    (["--model.latent_dim", "10000000000"], "does not fit in memory"),
], ids=["negative_layer", "huge_latent_dim"])
def test_networks_that_do_not_fit_are_one_line(flags: list[str], expected: str, fake_mnist_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in tiny_cli_args(fake_mnist_dir, tmp_path) if "model." not in a or "discriminator" in a]
    code, line = _cli_error(capsys, main, "fit", *args, "--trainer.max_steps=2", *flags)
    assert code == 1 and expected in line


def test_a_network_class_of_the_wrong_kind_is_one_parser_line(fake_mnist_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in tiny_cli_args(fake_mnist_dir, tmp_path) if "model." not in a or "discriminator" in a]
    code, line = _cli_error(capsys, main, "fit", *args, "--trainer.max_steps=2", "--model.generator", "torch.nn.Linear")
    assert code == 2
    assert line.startswith('cgan-lightning fit: error: Parser key "model.generator": Expected \'torch.nn.Linear\' '
                           "to be a subclass of <class 'ConditionalGenerator'>")


def test_sample_out_of_memory_and_bad_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "model.ckpt")
    code, line = _cli_error(capsys, sample_main, "--ckpt_path", str(ckpt), "--labels", "all", "--n_per_label",
                            "1000000000", "--out", str(tmp_path / "s.pt"))
    assert code == 1 and "GiB" in line and "lower --n_per_label" in line
    code, line = _cli_error(capsys, sample_main, "--ckpt_path", str(ckpt), "--labels", "1", "--device", "gpu",
                            "--out", str(tmp_path / "s.pt"))
    assert code == 2 and "'gpu' is not a device" in line and "corrupt" not in line


def test_unreadable_checkpoint_is_not_called_corrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "model.ckpt")
    real_open = Path.open

    def denied(self: Path, *args, **kwargs):
        if self == ckpt:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)  # tests run as root, which chmod cannot lock out
    with pytest.raises(CheckpointError, match="permission denied") as info:
        verify_checkpoint_file(ckpt)
    assert "corrupt" not in str(info.value)


def test_failed_download_keeps_its_cause_and_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets

    def offline(self) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror/, got:\n"
                           "<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    with pytest.raises(DataNotFoundError) as info:
        MNISTDataModule(str(tmp_path), download=True).prepare_data()
    message = str(info.value)
    assert "\n" not in message and "Name or service not known" in message and "by hand" in message


def test_a_folder_of_gz_archives_is_accepted(tmp_path: Path) -> None:
    raw = make_fake_mnist(tmp_path) / "MNIST" / "raw"
    for name in RAW_FILES:
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes()))
        (raw / name).unlink()
    data = MNISTDataModule(str(tmp_path), download=False)
    data.setup("fit")
    assert len(data.split("train")[1]) == 200 and len(data.split("test")[1]) == 100


# ---------------------------------------------------------------------------------------------- 5. Python API types
@pytest.mark.parametrize(("build", "expected"), [
    (lambda: MNISTDataModule(batch_size=64.5), "batch_size must be an integer"),  # type: ignore[arg-type]
    (lambda: MNISTDataModule(download="no"), "download must be true or false"),  # type: ignore[arg-type]
    (lambda: ConditionalGAN(latent_dim="100"), "latent_dim must be an integer"),  # type: ignore[arg-type]
    (lambda: ConditionalGAN(num_classes=10.0), "num_classes must be an integer"),  # type: ignore[arg-type]
    (lambda: ConditionalGAN(r1_gamma="1"), "r1_gamma must be a finite number"),  # type: ignore[arg-type]
    (lambda: ConditionalGAN(**TINY).sample([1], generator=42), "generator must be a torch.Generator"),
], ids=["dm_batch_size", "dm_download", "latent_dim", "num_classes", "r1_gamma", "sample_generator"])
def test_python_api_names_the_argument(build, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        build()
