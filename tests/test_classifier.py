"""The shipped MNIST classifier: loading, saving, its training script, and its accuracy on real digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REAL_DATA_DIR, requires_real_mnist

from cgan_lightning.data.mnist import MNISTDataModule
from cgan_lightning.metrics.classifier import (
    WEIGHTS_FILE,
    MNISTClassifier,
    load_classifier,
    load_mnist_classifier,
    save_classifier,
)
from cgan_lightning.metrics.classifier_training import accuracy, main, random_affine

SHIPPED = Path(__file__).resolve().parents[1] / "cgan_lightning" / "metrics" / WEIGHTS_FILE


def test_shipped_weights_are_small_and_load_frozen_in_eval_mode() -> None:
    assert SHIPPED.is_file() and SHIPPED.stat().st_size < 2 * 1024 * 1024
    model = load_mnist_classifier()
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    feats, logits = model.features_and_logits(torch.zeros(3, 1, 28, 28))
    assert feats.shape == (3, model.feature_dim) and logits.shape == (3, 10)
    assert model.metadata["test_accuracy"] >= 0.97  # type: ignore[attr-defined]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MNISTClassifier(feature_dim=16).eval()
    save_classifier(model, tmp_path / "c.pt", {"note": "x"})
    loaded = load_classifier(tmp_path / "c.pt")
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(loaded(x), model(x))
    # save_classifier records what the evaluation callbacks check against the model.
    assert loaded.feature_dim == 16
    assert loaded.metadata == {"note": "x", "num_classes": 10, "image_shape": [1, 28, 28]}


def test_folding_batch_norm_keeps_the_outputs() -> None:
    torch.manual_seed(0)
    model = MNISTClassifier()
    model.train()
    model(torch.randn(64, 1, 28, 28))  # non-trivial running statistics
    model.eval()
    fused = model.fuse_batch_norm()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(fused.features_and_logits(x), model.features_and_logits(x), atol=1e-5, rtol=1e-4)


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    model = MNISTClassifier()
    with pytest.raises(ValueError, match=r"\[batch, 1, 28, 28\]"):
        model(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(FileNotFoundError, match="classifier_training"):
        load_classifier(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a classifier file"):
        load_classifier(tmp_path / "bad.pt")
    # Random bytes: named as not a classifier file, not torch's advice to load with weights_only=False.
    (tmp_path / "garbage.pt").write_bytes(bytes(range(256)) * 2)
    with pytest.raises(ValueError, match=r"garbage.pt is not a readable classifier file") as garbage:
        load_classifier(tmp_path / "garbage.pt")
    assert "weights_only" not in str(garbage.value)
    torch.save({"state_dict": {}, "epoch": 3, "hyper_parameters": {}}, tmp_path / "last.ckpt")  # a GAN's checkpoint
    with pytest.raises(ValueError, match=r"last.ckpt is a model checkpoint \(a GAN's last.ckpt\?\), not a classifier"):
        load_classifier(tmp_path / "last.ckpt")


def test_random_affine_without_jitter_is_the_identity_and_keeps_the_background() -> None:
    images = torch.rand(5, 1, 28, 28) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    torch.testing.assert_close(random_affine(images, gen, shift=0, degrees=0, scale=0), images, atol=1e-5, rtol=0)
    blank = -torch.ones(5, 1, 28, 28)
    torch.testing.assert_close(random_affine(blank, gen), blank)  # padding is background, not grey
    moved = random_affine(images, gen, shift=2, degrees=0, scale=0)
    assert not torch.allclose(moved, images, atol=1e-3)


def test_training_script_writes_loadable_weights(fake_mnist_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "clf.pt"
    main(["--data_dir", str(fake_mnist_dir), "--out", str(out), "--epochs", "1", "--batch_size", "50"])
    assert "test accuracy" in capsys.readouterr().out
    model = load_classifier(out)
    assert 0.0 <= model.metadata["test_accuracy"] <= 1.0  # type: ignore[attr-defined]
    assert model.metadata["epochs"] == 1  # type: ignore[attr-defined]


@pytest.mark.slow
@requires_real_mnist
def test_shipped_classifier_reaches_97_percent_on_the_real_test_split() -> None:
    images, labels = MNISTDataModule(str(REAL_DATA_DIR), download=False).split("test")
    assert len(labels) == 10_000
    assert accuracy(load_mnist_classifier(), images, labels) >= 0.97
