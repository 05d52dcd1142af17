"""W&B, offline: ExportGeneratorArtifact logs the exported generator as a ``model`` artifact and the final table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import wandb
import yaml
from test_wandb import EXAMPLE, _tiny_config
from wandb_offline import read_offline_run

from cgan_lightning import ConditionalGAN
from cgan_lightning.cli.lightning_cli import main
from cgan_lightning.hub import PretrainedGenerator
from cgan_lightning.metrics.classifier import MNISTClassifier, save_classifier


def test_generator_artifact_and_final_summary(tmp_path: Path, fake_mnist_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = tmp_path / "classifier.pt"
    save_classifier(MNISTClassifier(), classifier)
    config = _tiny_config(EXAMPLE, tmp_path / "runs", classifier)
    config["trainer"].update(max_epochs=1)
    config["trainer"]["callbacks"].append(
        {"class_path": "cgan_lightning.loggers.wandb_artifacts.ExportGeneratorArtifact"})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true",
           "WANDB_DIR": str(tmp_path / "runs"), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
           "WANDB_DATA_DIR": str(tmp_path / "data"), "WANDB_CONFIG_DIR": str(tmp_path / "config")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    main(["fit", "--config", str(tmp_path / "c.yaml"), "--data.data_dir", str(fake_mnist_dir),
          "--data.download", "false"])
    wandb.teardown()  # flush the offline run's log, as the process exit would
    run = read_offline_run(next((tmp_path / "runs" / "wandb").glob("offline-run-*")))

    assert ("model", f"generator-{run.run_id}") in run.artifacts
    exported = tmp_path / "runs" / "test" / run.run_id / "generator"
    card = (exported / "README.md").read_text()
    assert "| 3 |" in card and "The last evaluation of the run" in card and "seed_everything: 42" in card
    assert run.summary["final/per_class"]["_type"] == "table-file"
    table = yaml.safe_load((run.path / "files" / run.summary["final/per_class"]["path"]).read_text())
    assert table["columns"] == ["class", "acc", "fid"] and len(table["data"]) == 10
    assert run.summary["final/val/fid/mean"] == pytest.approx(run.values("val/fid/mean")[-1])

    ckpt = tmp_path / "runs" / "test" / run.run_id / "checkpoints" / "last.ckpt"
    model = ConditionalGAN.load_from_checkpoint(ckpt, map_location="cpu")
    z, labels = torch.randn(4, model.latent_dim), torch.tensor([0, 3, 6, 9])
    assert torch.equal(PretrainedGenerator.from_pretrained(exported).sample(labels, z=z), model.sample(labels, z=z))
