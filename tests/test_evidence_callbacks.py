"""SampleQuality and ClassificationAccuracyScore in a Trainer: names logged, shared generation, PNG, table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_fake_mnist
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from test_evaluation import BankSampler, bank_from

from cgan_lightning import ConditionalGAN, MNISTDataModule, PerClassFID
from cgan_lightning.callbacks import ClassificationAccuracyScore, SampleQuality
from cgan_lightning.callbacks.run_summary import RunSummary

SMALL_QUALITY = {"samples_per_class": 20, "batch_size": 64, "kid_subsets": 5, "n_pairs": 8}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_mnist(tmp_path_factory.mktemp("evidence"), n_train=400, n_test=300)


@pytest.fixture(scope="module")
def datamodule(data_dir: Path) -> MNISTDataModule:
    return MNISTDataModule(str(data_dir), download=False, batch_size=50)


def run(root: Path, model: object, datamodule: MNISTDataModule, callbacks: list[object], stage: str = "fit") -> Trainer:
    trainer = Trainer(max_epochs=1, limit_train_batches=2, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=root, logger=CSVLogger(root, name="logs"), num_sanity_val_steps=0,
                      callbacks=callbacks)
    getattr(trainer, stage)(model, datamodule)
    return trainer


def test_sample_quality_logs_every_metric_per_class_and_reuses_per_class_fid_samples(
        datamodule: MNISTDataModule, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConditionalGAN()
    quality = SampleQuality(**SMALL_QUALITY)
    trainer = run(tmp_path, model, datamodule, [PerClassFID(samples_per_class=20, batch_size=64), quality])
    assert quality.last_reused  # one generation pass served FID and the evidence
    for name in ("precision", "recall", "density", "coverage", "kid", "memorization"):
        assert all(f"val/{name}/class_{k}" in trainer.callback_metrics for k in range(10)), name
        assert f"val/{name}/mean" in trainer.callback_metrics, name
    assert quality.last_png is not None and quality.last_png.is_file()
    assert quality.last_png.parent.name == "memorization"

    # Alone (no PerClassFID), it generates the same samples itself: the same scores.
    alone = SampleQuality(**SMALL_QUALITY)
    run(tmp_path / "alone", model, datamodule, [alone], stage="validate")
    assert not alone.last_reused
    assert alone.last_scores == pytest.approx(quality.last_scores, nan_ok=True)


def test_a_generator_that_copies_training_digits_is_flagged(datamodule: MNISTDataModule, tmp_path: Path) -> None:
    datamodule.setup("fit")
    train_images, train_labels = datamodule.split("train")
    test_images, test_labels = datamodule.split("test")
    copier = BankSampler(bank_from(train_images, train_labels, 40), obey=True)
    fresh = BankSampler(bank_from(test_images, test_labels, 30), obey=True)  # the evaluation digits themselves
    scores = {}
    for name, model in (("copier", copier), ("fresh", fresh)):
        quality = SampleQuality(**SMALL_QUALITY)
        run(tmp_path / name, model, datamodule, [quality], stage="validate")
        scores[name] = quality.last_scores
    assert scores["copier"]["val/memorization/mean"] > 0.9
    assert scores["fresh"]["val/memorization/mean"] < 0.3
    # Real evaluation digits are as realistic and diverse as real data can be.
    assert scores["fresh"]["val/precision/mean"] > 0.9 and scores["fresh"]["val/coverage/mean"] > 0.5


def test_cas_logs_generated_and_real_scores(datamodule: MNISTDataModule, tmp_path: Path) -> None:
    datamodule.setup("fit")
    test_images, test_labels = datamodule.split("test")
    ignores_label = BankSampler(bank_from(test_images, test_labels, 30), obey=False)
    cas = ClassificationAccuracyScore(epochs=2)
    trainer = run(tmp_path, ignores_label, datamodule, [cas], stage="validate")
    metrics = trainer.callback_metrics
    assert all(f"val/cas/class_{k}" in metrics and f"val/cas_real/class_{k}" in metrics for k in range(10))
    # Trained on labels that do not match the digits, the classifier is near chance; real training data is not.
    assert float(metrics["val/cas/mean"]) < 0.4 < float(metrics["val/cas/real"])
    assert float(metrics["val/cas/seconds"]) > 0


def test_validate_prints_one_table_with_every_metric(datamodule: MNISTDataModule, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model = ConditionalGAN()
    callbacks = [PerClassFID(samples_per_class=20, batch_size=64), SampleQuality(**SMALL_QUALITY),
                 ClassificationAccuracyScore(epochs=1)]
    run(tmp_path, model, datamodule, callbacks, stage="validate")
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.strip().startswith("class"))
    assert header.split() == ["class", "FID", "accuracy", "CAS", "CAS", "real", "precision", "recall", "density",
                              "coverage", "KID", "memorized"]


def test_fit_summary_table_shows_every_metric_of_the_same_evaluation(datamodule: MNISTDataModule,
                                                                     tmp_path: Path) -> None:
    fid, quality = PerClassFID(samples_per_class=20, batch_size=64), SampleQuality(**SMALL_QUALITY)
    cas = ClassificationAccuracyScore(epochs=1)
    trainer = run(tmp_path, ConditionalGAN(), datamodule, [fid, quality, cas])
    header = next(line for line in RunSummary().summary(trainer, tmp_path).splitlines()
                  if line.strip().startswith("class"))
    assert header.split() == ["class", "FID", "accuracy", "CAS", "CAS", "real", "precision", "recall", "density",
                              "coverage", "KID", "memorized"]
    # Scores of other weights (another training step) never join the table.
    quality.last_global_step = -1
    header = next(line for line in RunSummary().summary(trainer, tmp_path).splitlines()
                  if line.strip().startswith("class"))
    assert "coverage" not in header.split() and "CAS" in header.split()


def test_fast_dev_run_exercises_both_callbacks_without_files(datamodule: MNISTDataModule, tmp_path: Path) -> None:
    quality, cas = SampleQuality(**SMALL_QUALITY), ClassificationAccuracyScore()
    trainer = Trainer(fast_dev_run=True, default_root_dir=tmp_path, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[quality, cas])
    trainer.fit(ConditionalGAN(), datamodule)
    assert "val/coverage/mean" in quality.last_scores and "val/cas/real" in cas.last_scores
    assert quality.last_png is None and not list(tmp_path.rglob("*.png"))


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="exceed nearest_k"):
        SampleQuality(samples_per_class=5)
    with pytest.raises(ValueError, match="memorization_quantile"):
        SampleQuality(memorization_quantile=0.0)
    with pytest.raises(ValueError, match="every_n_epochs"):
        ClassificationAccuracyScore(every_n_epochs=0)
    with pytest.raises(ValueError, match="samples_per_class"):
        ClassificationAccuracyScore(samples_per_class=0)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_small_data.yaml"


def test_small_data_example_runs_through_the_cli(data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from cgan_lightning.cli.lightning_cli import main

    args = ["fit", "--config", str(EXAMPLE), "--data.data_dir", str(data_dir), "--data.download", "false",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.fast_dev_run", "true"]
    main(args)
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--model.augment", "[translation, flip]"])
    assert exit_info.value.code == 1
    assert "augmentation 'flip' is not offered (it can change a digit's class)" in capsys.readouterr().err


def test_wandb_per_class_table_gains_the_evidence_columns() -> None:
    from types import SimpleNamespace
    from unittest.mock import MagicMock

    from lightning.pytorch.loggers import WandbLogger

    from cgan_lightning.loggers.wandb import WandbPerClassTable

    logger = MagicMock(spec=WandbLogger)
    metrics = {f"val/{name}/class_{k}": torch.tensor(0.5) for name in ("fid", "acc", "cas", "coverage", "kid")
               for k in range(3)}
    trainer = SimpleNamespace(loggers=[logger], is_global_zero=True, callback_metrics=metrics, global_step=7,
                              fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=3)),
                              lightning_module=SimpleNamespace(class_names=["zero", "one", "two"]))
    WandbPerClassTable().log_tables(trainer, "val")  # type: ignore[arg-type]
    payload = logger.log_metrics.call_args.args[0]
    assert logger.log_metrics.call_args.kwargs["step"] == 3  # Lightning's logging step (batches), not global_step
    table = payload["val/per_class/table"]
    assert table.columns == ["class", "fid", "accuracy", "cas", "coverage", "kid"]
    assert [row[0] for row in table.data] == ["zero", "one", "two"] and table.data[0][3:] == [0.5, 0.5, 0.5]
