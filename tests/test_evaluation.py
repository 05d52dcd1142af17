"""Per-class FID, accuracy, interference and traversal: metrics, callbacks, checkpoints and the standalone function."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
import torch
import torchmetrics.utilities.imports as tm_imports
from conftest import REAL_DATA_DIR, requires_real_mnist, synthetic_digits
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
from PIL import Image
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from cgan_lightning import InterferenceTest, LatentTraversal, PerClassEvaluator, PerClassFID, evaluate_generator
from cgan_lightning.callbacks.schedule import due, evaluated_epoch
from cgan_lightning.data.mnist import InMemoryBatches, MNISTDataModule, normalize
from cgan_lightning.metrics import (
    ClassifierFeatures,
    InceptionFeatures,
    PerClassScores,
    PrecomputedFeatures,
    build_feature_extractor,
    check_sampler,
)
from cgan_lightning.metrics.interference import interference_scores
from cgan_lightning.metrics.sampling import rebatch, slerp
from cgan_lightning.utilities.image_grids import grid_shape, log_grid


# ------------------------------------------------------------------------------------------------- stubs
class BankSampler(LightningModule):
    """A "generator" that returns stored images: of the requested class (``obey``) or of a class chosen by z alone.

    Both offer the evaluation protocol; the second ignores its label, as a conditional GAN that collapsed to an
    unconditional one would. The image index (the "style") is a function of z, so equal z give equal images.
    """

    def __init__(self, bank: Tensor, obey: bool, latent_dim: int = 8) -> None:
        super().__init__()
        self.num_classes = bank.shape[0]
        self.latent_dim = latent_dim
        self.obey = obey
        self.register_buffer("bank", bank)  # [K, M, 1, 28, 28] in [-1, 1]
        self.dummy = nn.Parameter(torch.zeros(1))

    def sample(self, labels: Tensor | Sequence[int], z: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        labels = torch.as_tensor(labels, device=self.device).long().reshape(-1)
        if z is None:
            z = torch.randn(len(labels), self.latent_dim, generator=generator).to(self.device)
        index = (z[:, 0].abs() * 1e4).long() % self.bank.shape[1]
        cls = labels if self.obey else (z[:, 1].abs() * 1e4).long() % self.num_classes
        return self.bank[cls, index]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return (self.dummy**2).sum()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        pass

    def test_step(self, batch: Any, batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def bank_from(images: Tensor, labels: Tensor, per_class: int) -> Tensor:
    """``[K, per_class, 1, 28, 28]`` normalized images, ``per_class`` of each label."""
    return torch.stack([normalize(images[labels == k][:per_class]) for k in range(10)])


@pytest.fixture(scope="module")
def synthetic_bank() -> Tensor:
    images, labels = synthetic_digits(400, seed=5)
    return bank_from(images, labels, 40)


@pytest.fixture(scope="module")
def datamodule(fake_mnist_session_dir: Path) -> MNISTDataModule:
    return MNISTDataModule(str(fake_mnist_session_dir), download=False, batch_size=50)


def small_callbacks(**fid: Any) -> list[Any]:
    return [PerClassFID(samples_per_class=20, batch_size=64, **fid), InterferenceTest(n_styles=3, seed=1),
            LatentTraversal(steps=4, seed=1)]


def trainer_for(root: Path, callbacks: list[Any], **kwargs: Any) -> Trainer:
    options = dict(max_epochs=1, limit_train_batches=2, enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=root, logger=TensorBoardLogger(root, name="logs"), num_sanity_val_steps=0)
    options.update(kwargs)
    return Trainer(callbacks=callbacks, **options)


# -------------------------------------------------------------------------------- feature extractor + FID
def _fid(extractor: nn.Module, real: Tensor, fake: Tensor) -> float:
    fid = FrechetInceptionDistance(feature=extractor, input_img_size=(1, 28, 28))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


def _same_and_cross_class_fid(images: Tensor, labels: Tensor) -> tuple[float, float]:
    threes, eights = normalize(images[labels == 3]), normalize(images[labels == 8])
    half = len(threes) // 2
    extractor = ClassifierFeatures()
    return _fid(extractor, threes[:half], threes[half:]), _fid(extractor, threes[:half], eights)


def test_classifier_features_plug_into_torchmetrics_fid_on_synthetic_digits() -> None:
    images, labels = synthetic_digits(1000, seed=2)
    same, cross = _same_and_cross_class_fid(images, labels)
    assert same < cross / 5, (same, cross)


@pytest.mark.slow
@requires_real_mnist
def test_real_digits_same_class_fid_is_small_and_three_vs_eight_is_large() -> None:
    images, labels = MNISTDataModule(str(REAL_DATA_DIR), download=False).split("test")
    same, cross = _same_and_cross_class_fid(images, labels)
    # Measured: same 5.4 (about 500 vs 500 threes: finite-sample bias), cross 357.
    assert same < 10 and cross > 20 * same, (same, cross)


def test_extractor_accepts_uint8_and_float_alike() -> None:
    images, _ = synthetic_digits(8, seed=0)
    extractor = ClassifierFeatures()
    torch.testing.assert_close(extractor(images.unsqueeze(1)), extractor(normalize(images)))
    assert extractor.num_features == extractor(normalize(images)).shape[1]
    extractor.train()
    assert not extractor.classifier.training  # never leaves eval mode (batch norm statistics stay fixed)


def test_bad_feature_choices_raise_clear_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'classifier', 'inception'"):
        build_feature_extractor("vgg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'classifier', 'inception'"):
        PerClassFID(feature="vgg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"features \[batch, 4\]"):
        PrecomputedFeatures(4)(torch.zeros(2, 5))
    monkeypatch.setattr(tm_imports, "_TORCH_FIDELITY_AVAILABLE", False)
    with pytest.raises(ModuleNotFoundError, match=r"cgan-lightning\[inception\]"):
        InceptionFeatures()
    monkeypatch.setattr(tm_imports, "_TORCH_FIDELITY_AVAILABLE", True)
    with pytest.raises(FileNotFoundError, match="feature_weights=<path>"):
        InceptionFeatures(weights_path=tmp_path / "missing.pth")


def test_check_sampler_names_what_is_missing() -> None:
    with pytest.raises(TypeError, match="latent_dim.*sample"):
        check_sampler(SimpleNamespace(num_classes=10))


# ----------------------------------------------------------------------------------------- metric pieces
def test_per_class_scores_keep_real_statistics_and_share_no_network() -> None:
    scores = PerClassScores(num_classes=3, num_features=4)
    assert sum(p.numel() for p in scores.parameters()) == 0  # eleven metrics, no network copies
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2] * 20)
    real = torch.randn(60, 4, generator=gen) + labels[:, None].float() * 3
    scores.update_real(real, labels)
    scores.update_fake(real + 0.01, labels, predictions=labels)
    close = scores.compute()
    scores.reset_fake()
    assert scores.real_samples == 60
    scores.update_fake(real + 5.0, labels, predictions=torch.zeros_like(labels))
    far = scores.compute()
    assert close["fid/mean"] < 0.1 < 10 < far["fid/mean"]
    assert close["acc/mean"] == 1.0 and far["acc/class_0"] == 1.0 and math.isclose(far["acc/mean"], 1 / 3)
    assert far["fid/worst"] == max(far[f"fid/class_{k}"] for k in range(3))


def test_a_class_without_real_images_gets_nan_and_is_left_out_of_the_mean() -> None:
    scores = PerClassScores(num_classes=3, num_features=2, with_accuracy=False)
    labels = torch.tensor([0, 1] * 10)
    feats = torch.randn(20, 2, generator=torch.Generator().manual_seed(1))
    scores.update_real(feats, labels)
    scores.update_fake(feats, torch.tensor([0, 1, 2] * 6 + [0, 1]))
    out = scores.compute()
    assert scores.missing_classes() == [2] and math.isnan(out["fid/class_2"])
    assert math.isclose(out["fid/mean"], (out["fid/class_0"] + out["fid/class_1"]) / 2)


def test_rebatch_merges_small_batches_in_order() -> None:
    batches = [(torch.full((3, 1, 2, 2), float(i)), torch.full((3,), i)) for i in range(5)]
    merged = list(rebatch(batches, 7))
    assert [len(labels) for _, labels in merged] == [9, 6]
    assert torch.equal(torch.cat([labels for _, labels in merged]), torch.arange(5).repeat_interleave(3))


def test_slerp_keeps_ends_and_norm() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 16, generator=gen), torch.randn(3, 16, generator=gen)
    b = b / b.norm(dim=-1, keepdim=True) * a.norm(dim=-1, keepdim=True)
    path = slerp(a, b, 5)
    assert path.shape == (3, 5, 16)
    torch.testing.assert_close(path[:, 0], a)
    torch.testing.assert_close(path[:, -1], b)
    torch.testing.assert_close(path.norm(dim=-1), a.norm(dim=-1, keepdim=True).expand(3, 5))
    torch.testing.assert_close(slerp(a[0], a[0], 3), a[0].expand(3, 16))  # parallel: no division by zero


def test_interference_scores_on_hand_made_grids() -> None:
    n_styles, k = 4, 10
    style = torch.randn(n_styles, 1, 8, generator=torch.Generator().manual_seed(0)) * 0.1
    digit = torch.randn(1, k, 8, generator=torch.Generator().manual_seed(1)) * 5
    obeying = (style + digit).reshape(n_styles * k, 8)
    ignoring = style.expand(n_styles, k, 8).reshape(n_styles * k, 8)
    labels = torch.arange(k).repeat(n_styles)
    good = interference_scores(obeying, labels, n_styles, k)
    bad = interference_scores(ignoring, torch.zeros_like(labels), n_styles, k)
    assert good["interference/acc"] == 1.0 and good["interference/style_spread"] > 5
    assert bad["interference/acc"] == pytest.approx(0.1) and bad["interference/style_spread"] == 0.0


def test_due_schedule() -> None:
    def trainer(epoch: int, fn: TrainerFn = TrainerFn.FITTING, sanity: bool = False) -> Any:
        return SimpleNamespace(sanity_checking=sanity, state=SimpleNamespace(fn=fn), current_epoch=epoch,
                               max_epochs=10)

    assert [e for e in range(10) if due(trainer(e), 3)] == [2, 5, 8, 9]  # every 3rd epoch and the last
    assert not due(trainer(2, sanity=True), 1)
    assert due(trainer(0, TrainerFn.VALIDATING), 3)


def test_files_and_tables_are_named_after_the_epoch_of_the_evaluated_weights() -> None:
    fitting = SimpleNamespace(state=SimpleNamespace(fn=TrainerFn.FITTING), current_epoch=4)
    validating = SimpleNamespace(state=SimpleNamespace(fn=TrainerFn.VALIDATING), current_epoch=0)
    assert evaluated_epoch(fitting, checkpoint_epoch=19) == 4
    assert evaluated_epoch(validating, checkpoint_epoch=19) == 19  # validate restores no loop: trust the checkpoint
    assert evaluated_epoch(validating, checkpoint_epoch=None) == 0


def test_grids_go_to_wandb_and_tensorboard_only() -> None:
    grid = torch.rand(3, 10, 10)
    tensorboard, wandb, csv = (MagicMock(spec=TensorBoardLogger), MagicMock(spec=WandbLogger),
                               MagicMock(spec=CSVLogger))
    log_grid([tensorboard, wandb, csv], "interference/grid", grid, step=7)
    (tag, image), kwargs = tensorboard.experiment.add_image.call_args
    assert (tag, kwargs) == ("interference/grid", {"global_step": 7}) and image is grid
    wandb.log_image.assert_called_once()
    kwargs = wandb.log_image.call_args.kwargs
    assert (kwargs["key"], kwargs["step"]) == ("interference/grid", 7)
    assert torch.equal(kwargs["images"][0], grid.mul(255).add(0.5).byte())  # 0..255, rounded as save_image
    assert not csv.method_calls


# ------------------------------------------------------------------------------------ stub generators
def test_label_blind_generator_scores_chance_and_worse_fid(synthetic_bank: Tensor,
                                                          datamodule: MNISTDataModule) -> None:
    obey = evaluate_generator(BankSampler(synthetic_bank, obey=True), datamodule, samples_per_class=50,
                              n_styles=8)
    blind = evaluate_generator(BankSampler(synthetic_bank, obey=False), datamodule, samples_per_class=50,
                               n_styles=8)
    assert blind["interference/acc"] == pytest.approx(0.1)
    assert blind["interference/style_spread"] == 0.0 < obey["interference/style_spread"]
    assert obey["val/fid/mean"] < blind["val/fid/mean"] / 3, (obey["val/fid/mean"], blind["val/fid/mean"])
    assert set(obey) >= {"val/fid/overall", "val/fid/worst", "val/acc/mean", "traversal/acc"}


@pytest.mark.slow
@requires_real_mnist
def test_on_real_digits_the_obeying_stub_is_recognised_and_the_blind_one_is_at_chance(tmp_path: Path) -> None:
    data = MNISTDataModule(str(REAL_DATA_DIR), download=False)
    bank = bank_from(*data.split("train"), per_class=400)
    obey = evaluate_generator(BankSampler(bank, obey=True), data, samples_per_class=400, output_dir=tmp_path)
    blind = evaluate_generator(BankSampler(bank, obey=False), data, samples_per_class=400)
    assert obey["val/acc/mean"] > 0.95 and obey["interference/acc"] > 0.9 and obey["traversal/acc"] > 0.9
    assert blind["interference/acc"] == pytest.approx(0.1) and blind["val/acc/mean"] < 0.2
    assert obey["val/fid/mean"] * 10 < blind["val/fid/mean"]
    assert (tmp_path / "interference.png").is_file() and (tmp_path / "traversal.png").is_file()


# -------------------------------------------------------------------------------------- callbacks in fit
@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, synthetic_bank: Tensor,
           datamodule: MNISTDataModule) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fit")
    model = BankSampler(synthetic_bank, obey=True)
    keys_before = set(model.state_dict())
    callbacks = small_callbacks()
    checkpoint = ModelCheckpoint(dirpath=root / "ckpt", save_last=True)
    trainer = trainer_for(root, [*callbacks, checkpoint])
    trainer.fit(model, datamodule=datamodule)
    return {"root": root, "model": model, "trainer": trainer, "callbacks": callbacks, "keys_before": keys_before,
            "ckpt": root / "ckpt" / "last.ckpt"}


def test_one_epoch_logs_every_number_and_writes_both_pngs(fitted: dict[str, Any]) -> None:
    trainer = fitted["trainer"]
    metrics = trainer.callback_metrics
    expected = {f"val/fid/class_{k}" for k in range(10)} | {f"val/acc/class_{k}" for k in range(10)}
    expected |= {"val/fid/mean", "val/fid/worst", "val/fid/overall", "val/acc/mean", "interference/acc",
                 "interference/style_spread", "traversal/acc"}
    assert expected <= set(metrics)
    run = Path(trainer.log_dir)
    assert (run / "interference" / "epoch_000.png").is_file()
    assert (run / "traversal" / "epoch_000.png").is_file()
    assert fitted["callbacks"][1].last_png == run / "interference" / "epoch_000.png"


def test_interference_grid_has_n_styles_by_ten_cells(fitted: dict[str, Any]) -> None:
    interference: InterferenceTest = fitted["callbacks"][1]
    height, width = grid_shape(rows=3, columns=10, height=28, width=28)
    assert interference.last_grid is not None and interference.last_grid.shape == (3, height, width)
    with Image.open(interference.last_png) as png:  # type: ignore[arg-type]
        assert png.size == (width, height)
    traversal: LatentTraversal = fitted["callbacks"][2]
    assert traversal.last_grid is not None and traversal.last_grid.shape[1:] == grid_shape(10, 4, 28, 28)


def test_extractor_stays_out_of_the_model_and_its_checkpoint(fitted: dict[str, Any]) -> None:
    assert set(fitted["model"].state_dict()) == fitted["keys_before"]
    saved = torch.load(fitted["ckpt"], map_location="cpu", weights_only=False)
    assert set(saved["state_dict"]) == fitted["keys_before"]
    evaluator: PerClassEvaluator = fitted["callbacks"][0].evaluator
    assert evaluator.extractor is evaluator.classifier  # one network: features and predictions in one pass


def test_latents_survive_a_checkpoint_round_trip(fitted: dict[str, Any], synthetic_bank: Tensor,
                                                 datamodule: MNISTDataModule, tmp_path: Path) -> None:
    first: InterferenceTest = fitted["callbacks"][1]
    saved = torch.load(fitted["ckpt"], map_location="cpu", weights_only=False)["callbacks"]
    assert torch.equal(saved[first.state_key]["latents"], first.latents)
    # Another seed would draw other z; resuming must bring back the checkpoint's.
    resumed = InterferenceTest(n_styles=3, seed=99)
    assert not torch.equal(resumed.draw_latents(fitted["model"]), first.latents)
    trainer = trainer_for(tmp_path, [resumed], max_epochs=2)
    trainer.fit(BankSampler(synthetic_bank, obey=True), datamodule=datamodule, ckpt_path=fitted["ckpt"])
    assert torch.equal(resumed.latents, first.latents)
    assert (Path(trainer.log_dir) / "interference" / "epoch_001.png").is_file()


def test_validate_uses_the_checkpoint_latents_and_prints_the_table(fitted: dict[str, Any], synthetic_bank: Tensor,
                                                                   datamodule: MNISTDataModule, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    callbacks = [PerClassFID(samples_per_class=20, batch_size=64), InterferenceTest(n_styles=3, seed=7)]
    trainer = trainer_for(tmp_path, callbacks)
    results = trainer.validate(BankSampler(synthetic_bank, obey=True), datamodule=datamodule,
                               ckpt_path=fitted["ckpt"], verbose=False)
    assert torch.equal(callbacks[1].latents, fitted["callbacks"][1].latents)
    out = capsys.readouterr().out
    assert "Per-class FID" in out and "overall" in out and all(f"\n{k:>7} " in out for k in range(10))
    assert results[0]["val/fid/mean"] == pytest.approx(callbacks[0].last_scores["val/fid/mean"])


def test_label_blind_stub_in_validate_is_at_chance_and_has_higher_fid(synthetic_bank: Tensor,
                                                                      datamodule: MNISTDataModule,
                                                                      tmp_path: Path) -> None:
    scores = {}
    for obey in (True, False):
        trainer = trainer_for(tmp_path / str(obey), small_callbacks())
        scores[obey] = trainer.validate(BankSampler(synthetic_bank, obey=obey), datamodule=datamodule,
                                        verbose=False)[0]
    assert scores[False]["interference/acc"] == pytest.approx(0.1)
    assert scores[True]["val/fid/mean"] < scores[False]["val/fid/mean"]


def test_without_a_datamodule_the_trainers_val_loader_supplies_real_images(synthetic_bank: Tensor,
                                                                         datamodule: MNISTDataModule,
                                                                         tmp_path: Path) -> None:
    loader = InMemoryBatches(*datamodule.split("test"), batch_size=50, shuffle=False)
    fid = PerClassFID(samples_per_class=20, batch_size=64)
    trainer_for(tmp_path, [fid]).validate(BankSampler(synthetic_bank, obey=True), dataloaders=loader, verbose=False)
    assert fid.evaluator is not None and fid.evaluator.scores.real_samples == len(loader.labels)


def test_fast_dev_run_logs_numbers_but_writes_no_files(synthetic_bank: Tensor, datamodule: MNISTDataModule,
                                                       tmp_path: Path) -> None:
    callbacks = [PerClassFID(), InterferenceTest(), LatentTraversal()]  # default sizes: shrunk by fast_dev_run
    Trainer(fast_dev_run=True, callbacks=callbacks, default_root_dir=tmp_path, enable_progress_bar=False).fit(
        BankSampler(synthetic_bank, obey=True), datamodule=datamodule)
    assert "val/fid/mean" in callbacks[0].last_scores and "interference/acc" in callbacks[1].last_scores
    evaluator = callbacks[0].evaluator
    assert evaluator is not None and evaluator.scores.class_fid[0].fake_features_num_samples == 4
    assert callbacks[1].last_png is None and not list(tmp_path.rglob("*.png"))
