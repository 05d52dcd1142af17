"""``cgan-lightning sample``: grids and tensor files from a checkpoint written by ``cgan-lightning fit``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fault_helpers import save_acgan_checkpoint
from PIL import Image
from torchvision.utils import save_image

from cgan_lightning import ConditionalGAN
from cgan_lightning.cli.lightning_cli import main

QUICK_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "quick.yaml"


@pytest.fixture(scope="module")
def ema_ckpt(tmp_path_factory: pytest.TempPathFactory, fake_mnist_session_dir: Path) -> Path:
    """A real CLI checkpoint (tiny networks, 3 batches, EMA on)."""
    root = tmp_path_factory.mktemp("fit")
    main(["fit", "--config", str(QUICK_CONFIG), "--data.data_dir", str(fake_mnist_session_dir),
          "--data.download", "false", "--data.batch_size", "32", "--trainer.default_root_dir", str(root),
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1",
          "--model.latent_dim", "8", "--model.generator.init_args.hidden_dims", "[16, 32]",
          "--model.discriminator.init_args.hidden_dims", "[16]", "--model.ema_decay", "0.5",
          "--checkpoint.dirpath", str(root / "ckpt")])
    return root / "ckpt" / "last.ckpt"


@pytest.fixture(scope="module")
def plain_ckpt(ema_ckpt: Path) -> Path:
    """The same checkpoint as trained without EMA."""
    ckpt = torch.load(ema_ckpt, weights_only=True)
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("generator_ema.")}
    ckpt["hyper_parameters"]["ema_decay"] = None
    path = ema_ckpt.with_name("plain.ckpt")
    torch.save(ckpt, path)
    return path


def _sample(*args: str) -> None:
    main(["sample", *args])


def _error_line(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        _sample(*args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cgan-lightning sample: error: ")
    return exit_info.value.code, lines[0]


def test_pt_output_holds_rows_of_labels_drawn_from_the_seed(ema_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples.pt"
    _sample("--ckpt_path", str(ema_ckpt), "--labels", "3", "7", "--n_per_label", "4", "--out", str(out),
            "--seed", "5")
    saved = torch.load(out, weights_only=True)
    assert saved["labels"].tolist() == [3, 3, 3, 3, 7, 7, 7, 7]
    assert saved["images"].shape == (8, 1, 28, 28)
    assert saved["images"].min() >= -1 and saved["images"].max() <= 1
    model = ConditionalGAN.load_from_checkpoint(ema_ckpt, map_location="cpu")
    expected = model.sample(saved["labels"], generator=torch.Generator().manual_seed(5), ema=False)
    torch.testing.assert_close(saved["images"], expected, rtol=0, atol=0)


def test_png_grid_has_one_row_per_label_and_is_reproducible(ema_ckpt: Path, tmp_path: Path) -> None:
    args = ["--ckpt_path", str(ema_ckpt), "--labels", "3", "7", "--n_per_label", "4", "--seed", "5"]
    _sample(*args, "--out", str(tmp_path / "a.png"))
    _sample(*args, "--out", str(tmp_path / "b.png"))
    _sample(*args[:-1], "6", "--out", str(tmp_path / "c.png"))
    _sample(*args, "--out", str(tmp_path / "s.pt"))
    a = Image.open(tmp_path / "a.png")
    assert a.size == (4 * 30 + 2, 2 * 30 + 2)  # 4 columns, 2 rows of 28x28 cells with 2-pixel padding
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()
    # The grid is exactly the .pt samples laid out row by row.
    save_image(torch.load(tmp_path / "s.pt")["images"], tmp_path / "ref.png", nrow=4, normalize=True,
               value_range=(-1, 1))
    assert (tmp_path / "ref.png").read_bytes() == (tmp_path / "a.png").read_bytes()


def test_labels_all_and_ema_weights(ema_ckpt: Path, tmp_path: Path) -> None:
    _sample("--ckpt_path", str(ema_ckpt), "--labels", "all", "--n_per_label", "2", "--out", str(tmp_path / "e.pt"),
            "--seed", "1", "--ema")
    _sample("--ckpt_path", str(ema_ckpt), "--labels", "all", "--n_per_label", "2", "--out", str(tmp_path / "r.pt"),
            "--seed", "1")
    ema, raw = torch.load(tmp_path / "e.pt"), torch.load(tmp_path / "r.pt")
    assert ema["labels"].tolist() == [k for k in range(10) for _ in range(2)]
    model = ConditionalGAN.load_from_checkpoint(ema_ckpt, map_location="cpu")
    expected = model.sample(ema["labels"], generator=torch.Generator().manual_seed(1), ema=True)
    torch.testing.assert_close(ema["images"], expected, rtol=0, atol=0)
    assert not torch.allclose(ema["images"], raw["images"])
    # Without --labels, every label is drawn, as with `--labels all`.
    _sample("--ckpt_path", str(ema_ckpt), "--n_per_label", "2", "--out", str(tmp_path / "d.pt"), "--seed", "1")
    torch.testing.assert_close(torch.load(tmp_path / "d.pt"), raw, rtol=0, atol=0)


def test_ema_flag_on_a_checkpoint_without_ema(plain_ckpt: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _error_line(capsys, "--ckpt_path", str(plain_ckpt), "--labels", "1", "--out",
                             str(tmp_path / "x.png"), "--ema")
    assert code == 1 and "no EMA weights" in line
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [(["x"], "'x' is not a label"), (["10"], "10 is out of range"), (["-1"], "-1 is out of range"),
     (["all", "3"], "cannot be combined"), (["2.5"], "'2.5' is not a label")],
)
def test_bad_labels(ema_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], labels: list[str],
                    expected: str) -> None:
    code, line = _error_line(capsys, "--ckpt_path", str(ema_ckpt), "--labels", *labels, "--out",
                             str(tmp_path / "x.png"))
    assert code == 2 and expected in line


def test_missing_corrupt_and_foreign_checkpoints(ema_ckpt: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.png")
    code, line = _error_line(capsys, "--ckpt_path", str(tmp_path / "nope.ckpt"), "--labels", "1", "--out", out)
    assert code == 1 and "nope.ckpt" in line
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ema_ckpt.read_bytes()[:5000])
    code, line = _error_line(capsys, "--ckpt_path", str(truncated), "--labels", "1", "--out", out)
    assert code == 1 and "truncated.ckpt" in line and "truncated or corrupted" in line
    config = tmp_path / "config.yaml"  # a text file given where the checkpoint goes: said so, not "corrupted"
    config.write_text("model:\n  latent_dim: 8  # é\n" * 40)
    code, line = _error_line(capsys, "--ckpt_path", str(config), "--labels", "1", "--out", out)
    assert code == 1 and "config.yaml: is a text file" in line and "not a checkpoint" in line
    foreign = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)  # a valid torch file, but not a Lightning checkpoint
    code, line = _error_line(capsys, "--ckpt_path", str(foreign), "--labels", "1", "--out", out)
    assert code == 1 and "weights.pt" in line
    code, line = _error_line(capsys, "--ckpt_path", str(tmp_path), "--labels", "1", "--out", out)
    assert code == 1 and "not a file" in line
    assert not Path(out).exists()


def test_unwritable_or_unsupported_output(ema_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, line = _error_line(capsys, "--ckpt_path", str(ema_ckpt), "--labels", "1", "--out",
                             str(blocker / "grid.png"))
    assert code == 1 and "cannot write" in line and "grid.png" in line
    code, line = _error_line(capsys, "--ckpt_path", str(ema_ckpt), "--labels", "1", "--out", str(tmp_path))
    assert code == 2 and ".png or .pt" in line
    code, line = _error_line(capsys, "--ckpt_path", str(ema_ckpt), "--labels", "1", "--out", "x.jpg")
    assert code == 2 and ".png or .pt" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--labels", "1", "--out", "x.png", "--n_per_label", "0"], "--n_per_label must be a positive"),
     (["--labels", "1", "--out", "x.png", "--n_per_label", "two"], "invalid int value"),
     (["--labels", "1"], "required: --out"),
     (["--labels", "1", "--out", "x.png", "--bogus"], "unrecognized arguments: --bogus")],
)
def test_bad_arguments(ema_ckpt: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    code, line = _error_line(capsys, "--ckpt_path", str(ema_ckpt), *args)
    assert code == 2 and expected in line


@pytest.mark.slow  # spawns a process
def test_console_script_prints_one_line_and_no_traceback(ema_ckpt: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cgan_lightning.cli", "sample", "--ckpt_path", str(ema_ckpt), "--labels", "12",
         "--out", str(tmp_path / "x.png")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cgan-lightning sample: error: --labels: 12 is out of range; the generator knows labels 0..9"]


def test_latent_scale_flag_samples_as_the_model_option(ema_ckpt: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _sample("--ckpt_path", str(ema_ckpt), "--labels", "3", "7", "--n_per_label", "4", "--seed", "0",
            "--latent_scale", "1.5", "--out", str(tmp_path / "wide.pt"))
    assert "latents x 1.5" in capsys.readouterr().out
    wide = torch.load(tmp_path / "wide.pt")
    model = ConditionalGAN.load_from_checkpoint(ema_ckpt, sample_latent_scale=1.5)
    expected = model.sample(wide["labels"], generator=torch.Generator().manual_seed(0), ema=False)
    assert torch.equal(wide["images"], expected)
    _sample("--ckpt_path", str(ema_ckpt), "--labels", "3", "7", "--n_per_label", "4", "--seed", "0",
            "--out", str(tmp_path / "plain.pt"))
    assert not torch.equal(torch.load(tmp_path / "plain.pt")["images"], wide["images"])


def test_min_class_prob_flag_redraws_with_a_class_head_and_is_refused_without(
        ema_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = save_acgan_checkpoint(tmp_path / "ac.ckpt")
    _sample("--ckpt_path", str(ckpt), "--labels", "all", "--n_per_label", "8", "--seed", "0",
            "--min_class_prob", "0.1", "--out", str(tmp_path / "ac.pt"))
    # an untrained head gives every label about 0.1: some samples fall under it and are redrawn
    redrawn = re.search(r"; (\d+) of 80 draws redrawn under class probability 0.1\)", capsys.readouterr().out)
    assert redrawn is not None and int(redrawn.group(1)) > 0
    code, line = _error_line(capsys, "--ckpt_path", str(ema_ckpt), "--labels", "3", "--min_class_prob", "0.5",
                             "--out", str(tmp_path / "x.png"))
    assert code == 2 and "has no class head" in line
    code, line = _error_line(capsys, "--pretrained", str(tmp_path / "export"), "--labels", "3",
                             "--latent_scale", "1.1", "--out", str(tmp_path / "y.png"))
    assert code == 2 and "apply to --ckpt_path" in line
