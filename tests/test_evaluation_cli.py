"""The evaluation callbacks of examples/mnist.yaml through the CLI: fit writes the grids, validate prints the table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cgan_lightning.cli.lightning_cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist.yaml"
#: Smaller evaluation sizes so the test stays fast; the callbacks themselves come from the example config.
SMALL = {"PerClassFID": {"samples_per_class": 20, "batch_size": 100}, "InterferenceTest": {"n_styles": 2},
         "LatentTraversal": {"steps": 3}}


def test_example_config_declares_the_three_callbacks() -> None:
    callbacks = yaml.safe_load(EXAMPLE.read_text())["trainer"]["callbacks"]
    assert [c["class_path"].rsplit(".", 1)[1] for c in callbacks] == ["PerClassFID", "InterferenceTest",
                                                                      "LatentTraversal"]


def test_fit_then_validate_on_the_checkpoint_prints_the_per_class_table(
    fake_mnist_session_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    for callback in config["trainer"]["callbacks"]:
        callback["init_args"].update(SMALL[callback["class_path"].rsplit(".", 1)[1]])
    config["trainer"].update(max_epochs=1, limit_train_batches=2, enable_progress_bar=False,
                             default_root_dir=str(tmp_path / "run"))
    config["data"].update(data_dir=str(fake_mnist_session_dir), download=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    main(["fit", "--config", str(path)])
    version = tmp_path / "run" / "lightning_logs" / "version_0"
    assert (version / "interference" / "epoch_000.png").is_file()
    assert (version / "traversal" / "epoch_000.png").is_file()
    capsys.readouterr()

    main(["validate", "--config", str(path), "--ckpt_path", str(version / "checkpoints" / "last.ckpt")])
    out = capsys.readouterr().out
    assert "Per-class FID and generated-image accuracy" in out
    assert all(f"\n{k:>7} " in out for k in range(10)) and "overall" in out
    assert "interference/acc" in out  # Lightning's own results table lists what the callbacks logged
