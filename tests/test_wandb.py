"""W&B tracking, offline: examples/mnist_wandb.yaml (made tiny) runs twice into one save_dir; the runs are read back."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from wandb_offline import OfflineRun, read_offline_run

from cgan_lightning.cli.lightning_cli import main
from cgan_lightning.metrics.classifier import MNISTClassifier, save_classifier

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_wandb.yaml"


def _tiny_config(example: Path, save_dir: Path, classifier: Path) -> dict:
    """The example config with tiny networks, 2 epochs and a few evaluation samples; logger and callbacks kept."""
    config = yaml.safe_load(example.read_text())
    config["trainer"].update(max_epochs=2, limit_val_batches=1, enable_progress_bar=False,
                             default_root_dir=str(save_dir))
    config["trainer"]["logger"]["init_args"].update(save_dir=str(save_dir), project="test")
    small = {"PerClassFID": {"samples_per_class": 8, "batch_size": 40}, "InterferenceTest": {"n_styles": 2},
             "LatentTraversal": {"steps": 3}}
    for callback in config["trainer"]["callbacks"]:
        name = callback["class_path"].rsplit(".", 1)[-1]
        if name in small:
            callback.setdefault("init_args", {}).update(small[name], classifier=str(classifier))
    config["model"].update(latent_dim=8)
    config["model"]["generator"]["init_args"]["hidden_dims"] = [16, 32]
    config["model"]["discriminator"]["init_args"]["hidden_dims"] = [16]
    return config


@pytest.fixture(scope="module")
def wandb_runs(tmp_path_factory: pytest.TempPathFactory, fake_mnist_session_dir: Path) -> list[OfflineRun]:
    """Two `fit` runs of the (tiny) W&B example into the same save_dir, offline."""
    root = tmp_path_factory.mktemp("wandb")
    classifier = root / "classifier.pt"
    save_classifier(MNISTClassifier(), classifier)  # untrained: these tests check what is logged, not its values
    config_path = root / "mnist_wandb_tiny.yaml"
    config_path.write_text(yaml.safe_dump(_tiny_config(EXAMPLE, root / "runs", classifier)))
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true",
           "WANDB_DIR": str(root / "runs"), "WANDB_CACHE_DIR": str(root / "cache"),
           "WANDB_DATA_DIR": str(root / "data"), "WANDB_CONFIG_DIR": str(root / "config")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("WANDB_API_KEY", raising=False)
        for run in range(2):
            with contextlib.redirect_stdout(io.StringIO()) as out:
                main(["fit", "--config", str(config_path), "--data.data_dir", str(fake_mnist_session_dir),
                      "--data.download", "false"])
            (root / f"stdout_{run}.txt").write_text(out.getvalue())  # the run summary, for the tests to read
    run_dirs = sorted((root / "runs" / "wandb").glob("offline-run-*"))
    return [read_offline_run(d) for d in run_dirs]


def test_two_runs_into_one_save_dir_both_complete(wandb_runs: list[OfflineRun]) -> None:
    assert len(wandb_runs) == 2
    assert wandb_runs[0].run_id != wandb_runs[1].run_id
    save_dir = wandb_runs[0].path.parents[1]
    assert (save_dir / "config.yaml").is_file()  # LightningCLI's copy, overwritten by the second run
    for run in wandb_runs:
        assert (run.path / "files" / "config.yaml").is_file()  # each W&B run keeps its own
        assert (save_dir / "test" / run.run_id / "checkpoints" / "last.ckpt").is_file()


def test_each_run_summary_names_its_own_config(wandb_runs: list[OfflineRun]) -> None:
    # The log dir's config.yaml is the second run's by now: each summary names the copy in its W&B run's files.
    for number, run in enumerate(wandb_runs):
        stdout = (run.path.parents[2] / f"stdout_{number}.txt").read_text()
        own = run.path / "files" / "config.yaml"
        assert f"  config:        {own}  (reuse: --config {own})" in stdout, stdout


def test_resolved_config_reaches_wandb_with_linked_values(wandb_runs: list[OfflineRun]) -> None:
    config = wandb_runs[0].config
    assert config["model"]["num_classes"] == 10  # linked from the data module, absent from the parsed config
    assert config["model"]["image_shape"] == [1, 28, 28]
    assert config["model"]["class_names"] == [str(k) for k in range(10)]  # linked too
    assert config["model"]["generator"]["init_args"]["hidden_dims"] == [16, 32]
    assert config["trainer"]["max_epochs"] == 2
    assert config["data"]["init_args"]["batch_size"] == 64  # --data takes any data module: class_path + init_args
    assert config["checkpoint"]["filename"] == "last"  # the CLI's default checkpoint section
    assert config["seed_everything"] == 42


def test_losses_and_per_class_metrics_are_logged(wandb_runs: list[OfflineRun]) -> None:
    run = wandb_runs[0]
    assert len(run.values("train/g_loss_epoch")) == 2 and len(run.values("train/d_loss_epoch")) == 2
    assert all(isinstance(v, float) for v in run.values("train/g_loss_epoch"))
    assert len(run.values("val/fid/class_3")) == 2 and len(run.values("val/acc/mean")) == 2


def test_per_class_table_and_bar_charts_each_validation(wandb_runs: list[OfflineRun]) -> None:
    run = wandb_runs[0]
    tables = run.values("val/per_class/table/_type")
    assert tables == ["table-file", "table-file"]  # once per validation (not in the sanity check)
    table_file = run.path / "files" / run.values("val/per_class/table/path")[-1]
    table = yaml.safe_load(table_file.read_text())  # JSON is YAML
    assert table["columns"] == ["class", "fid", "accuracy"]
    assert [row[0] for row in table["data"]] == [str(k) for k in range(10)]
    charts = run.config["_wandb"]["visualize"]
    assert {"val/per_class/fid_chart", "val/per_class/acc_chart"} <= set(charts)
    assert charts["val/per_class/fid_chart"]["panel_config"]["panelDefId"] == "wandb/bar/v0"


def test_interference_and_traversal_images_each_validation(wandb_runs: list[OfflineRun]) -> None:
    run = wandb_runs[0]
    for key in ("interference/grid", "traversal/grid"):
        assert run.values(f"{key}/_type") == ["images/separated"] * 2, key
        steps = [row["trainer/global_step"] for row in run.history if f"{key}/_type" in row]
        assert len(set(steps)) == 2  # one image per validation, at different steps
        # At the step the same validation's scalars were logged (batches trained, not optimizer steps).
        assert steps == [row["trainer/global_step"] for row in run.history if "val/fid/mean" in row]
    images = list((run.path / "files" / "media" / "images").rglob("*.png"))
    assert len(images) == 4


def test_wandb_images_show_the_same_pixels_as_the_png_on_disk(wandb_runs: list[OfflineRun]) -> None:
    for run in wandb_runs:  # each run writes its PNGs under <save_dir>/<project>/<run id>/, never over another's
        for name in ("interference", "traversal"):
            logged = run.path / "files" / run.values(f"{name}/grid/filenames")[-1][0]
            on_disk = run.path.parents[1] / "test" / run.run_id / name / "epoch_001.png"
            assert np.array_equal(np.asarray(Image.open(logged).convert("RGB")), np.asarray(Image.open(on_disk))), name


def test_final_checkpoint_is_an_artifact(wandb_runs: list[OfflineRun]) -> None:
    for run in wandb_runs:
        models = [name for kind, name in run.artifacts if kind == "model"]
        kept = sorted((run.path.parents[1] / "test" / run.run_id / "checkpoints").glob("*.ckpt"))
        # last.ckpt and the best by val/fid/mean (2 epochs, 2 evaluations), uploaded once each at the end.
        assert [p.name for p in kept][-1] == "last.ckpt" and len(kept) == 3, kept
        assert models == [f"model-{run.run_id}"] * len(kept)


def test_no_wandb_logger_means_no_wandb_files(fake_mnist_dir: Path, tmp_path: Path) -> None:
    """Lightning's default logger works as before: the W&B callbacks stay silent without a WandbLogger."""
    classifier = tmp_path / "classifier.pt"
    save_classifier(MNISTClassifier(), classifier)
    config = _tiny_config(EXAMPLE, tmp_path / "runs", classifier)
    del config["trainer"]["logger"]
    config_path = tmp_path / "no_wandb.yaml"
    config_path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(config_path), "--data.data_dir", str(fake_mnist_dir), "--data.download", "false",
          "--trainer.max_epochs", "1"])
    version = tmp_path / "runs" / "lightning_logs" / "version_0"
    assert (version / "checkpoints" / "last.ckpt").is_file()
    assert (version / "interference" / "epoch_000.png").is_file()
    assert not any(p.name == "wandb" for p in tmp_path.rglob("*"))
