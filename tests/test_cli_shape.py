"""The command's shape: its help, its subcommands, short option help, quiet runs, test/* metrics, the fit summary
and the default checkpoints."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from cgan_lightning.cli import subcommands
from cgan_lightning.cli.lightning_cli import build_cli, main
from cgan_lightning.cli.warnings import LIGHTNING_TIP_PREFIX, silence_known_noise

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Small evaluation callbacks: PerClassFID every second epoch, so some validations do not compute val/fid/mean.
CALLBACKS = [
    {"class_path": "cgan_lightning.callbacks.PerClassFID",
     "init_args": {"every_n_epochs": 2, "samples_per_class": 10, "batch_size": 100}},
    {"class_path": "cgan_lightning.callbacks.InterferenceTest", "init_args": {"n_styles": 2}},
    {"class_path": "cgan_lightning.callbacks.LatentTraversal", "init_args": {"steps": 2}},
]


def _tiny_args(data_dir: Path, root: Path) -> list[str]:
    return ["--config", str(EXAMPLES / "quick.yaml"), "--trainer.accelerator=cpu", "--trainer.devices=1",
            "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            f"--trainer.default_root_dir={root}", f"--data.data_dir={data_dir}", "--data.download=false",
            "--model.latent_dim=8", "--model.generator.init_args.hidden_dims=[16]",
            "--model.discriminator.init_args.hidden_dims=[16]"]


def test_top_level_help_names_the_tool_and_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("cgan-lightning: class-conditional GANs on PyTorch Lightning")
    listed = [line.split()[0] for line in out.split("subcommands:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == ["fit", "validate", "test", *subcommands.EXTRA_SUBCOMMANDS]  # one line each; no predict
    assert {"sample", "export"} <= set(listed)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "sample" in capsys.readouterr().out


def test_predict_is_not_offered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--config", str(EXAMPLES / "quick.yaml")])
    assert exit_info.value.code != 0
    assert "predict" in capsys.readouterr().err


def test_an_extra_subcommand_is_one_registration(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(subcommands.EXTRA_SUBCOMMANDS, "echo", ("builtins:print", "print the arguments"))
    main(["echo", "a", "--b"])  # dispatch: the function gets the arguments after the name
    assert capsys.readouterr().out == "['a', '--b']\n"
    with pytest.raises(SystemExit):
        main(["-h"])
    assert re.search(r"\n  echo +print the arguments\n", capsys.readouterr().out)  # the column fits the longest name
    with pytest.raises(ValueError, match="module:function"):
        subcommands.load_entry_point("no_colon")


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test"])
def test_subcommand_help_is_at_most_300_lines(subcommand: str, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps at the terminal width
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cgan-lightning {subcommand} ")
    assert "known subclasses" not in out and "--model.latent_dim" in out and "--trainer.max_epochs" in out
    assert len(out.splitlines()) <= 300, len(out.splitlines())


def test_known_noise_is_filtered_by_message_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_noise()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("some other deprecation", FutureWarning, stacklevel=1)
        for key in ("val/fid/class_3", "test/coverage/mean", "interference/acc", "train/d_loss"):
            # Lightning's sync_dist advice under DDP: noise for the evaluation metrics, equal on every rank.
            warnings.warn(f"It is recommended to use `self.log('{key}', ..., sync_dist=True)` when logging on epoch "
                          "level in distributed setting to accumulate the metric across devices.", UserWarning,
                          stacklevel=1)
    assert [str(w.message).split("`")[1] if "`" in str(w.message) else str(w.message) for w in caught] == [
        "some other deprecation", "self.log('train/d_loss', ..., sync_dist=True)"]
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info(f"{LIGHTNING_TIP_PREFIX} logging and experiment tracking, try installing [litlogger]")
        logger.info("Seed set to 0")
    assert [r.getMessage() for r in caplog.records] == ["Seed set to 0"]


def test_fit_keeps_last_and_best_checkpoints_prints_a_summary_and_test_logs_test_metrics(
    fake_mnist_session_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "callbacks.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"callbacks": CALLBACKS}}))
    main(["fit", *_tiny_args(fake_mnist_session_dir, tmp_path), "--config", str(config), "--trainer.max_epochs=3"])
    out = capsys.readouterr().out
    version = tmp_path / "lightning_logs" / "version_0"
    ckpts = version / "checkpoints"
    # last.ckpt plus the evaluations of epochs 2 and 3 (PerClassFID: every 2nd epoch and the last); no epoch files.
    names = sorted(p.name for p in ckpts.iterdir())
    assert names[-1] == "last.ckpt" and len(names) == 3, names
    assert all(n.startswith(("best-epoch=001-fid=", "best-epoch=002-fid=")) for n in names[:2]), names
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["epoch"] == 2
    summary = out[out.index("Run summary"):]
    assert f"run directory: {version}" in summary
    assert str(ckpts / "last.ckpt") in summary and "best by val/fid/mean" in summary
    assert all(str(ckpts / n) in summary for n in names)
    assert str(version / "config.yaml") in summary and (version / "config.yaml").is_file()
    assert f"interference PNGs: 3 in {version / 'interference'}" in summary
    assert f"traversal PNGs: 3 in {version / 'traversal'}" in summary
    assert "Per-class FID and generated-image accuracy (latest evaluation, epoch 2)" in summary
    assert all(f"\n{k:>7} " in summary for k in range(10))

    main(["test", *_tiny_args(fake_mnist_session_dir, tmp_path / "test"), "--config", str(config),
          "--trainer.logger=false", f"--ckpt_path={ckpts / 'last.ckpt'}"])
    out = capsys.readouterr().out
    for key in ("test/d_real", "test/d_fake", "test/fid/mean", "test/acc/mean", "test/interference/acc",
                "test/interference/style_spread", "test/traversal/acc"):
        assert key in out, key
    assert "val/" not in out and " interference/acc" not in out


def test_without_per_class_fid_only_last_ckpt_is_kept(fake_mnist_session_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    main(["fit", *_tiny_args(fake_mnist_session_dir, tmp_path), "--trainer.max_epochs=2"])
    ckpts = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt"]
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["epoch"] == 1
    summary = capsys.readouterr().out.split("Run summary", 1)[1]
    assert "best by" not in summary and "Per-class" not in summary


class _LastCkptEpochs(Callback):
    """Records the epoch stored in ``last.ckpt`` at the start of every training epoch."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, []

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.seen.append(torch.load(self.path, weights_only=True)["epoch"] if self.path.exists() else None)


def test_the_default_checkpoint_rewrites_last_ckpt_after_every_epoch(fake_mnist_session_dir: Path,
                                                                     tmp_path: Path) -> None:
    cli = build_cli([*_tiny_args(fake_mnist_session_dir, tmp_path), "--trainer.max_epochs=3",
                     "--trainer.logger=false", f"--checkpoint.dirpath={tmp_path / 'ckpt'}"], run=False)
    spy = _LastCkptEpochs(tmp_path / "ckpt" / "last.ckpt")
    cli.trainer.callbacks.append(spy)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert spy.seen == [None, 0, 1]  # a crash in epoch k leaves epoch k - 1 to resume from
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["last.ckpt"]
