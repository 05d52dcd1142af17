"""MNISTDataModule on tiny synthetic IDX files, read through torchvision's real loading path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_fake_mnist, synthetic_digits

from cgan_lightning import DataNotFoundError, InMemoryBatches, MNISTDataModule


def test_batches_are_normalized_and_cover_the_split(fake_mnist_dir: Path) -> None:
    dm = MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=32)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == 7  # 200 images, last batch of 8
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert images.shape == (200, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.long
    _, raw_labels = synthetic_digits(200, seed=0)
    assert torch.equal(labels.sort().values, raw_labels.sort().values)
    assert not torch.equal(labels, raw_labels)  # shuffled


def test_values_match_totensor_then_normalize(fake_mnist_dir: Path) -> None:
    dm = MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=100)
    dm.setup("validate")
    images, labels = next(iter(dm.val_dataloader()))  # the test split, in file order
    raw, raw_labels = synthetic_digits(100, seed=1)
    expected = raw.float().div(255).sub(0.5).div(0.5).unsqueeze(1)  # ToTensor() then Normalize([0.5], [0.5])
    assert torch.equal(labels, raw_labels)
    assert torch.allclose(images, expected, atol=1e-6)


def test_each_epoch_is_shuffled_differently_and_reproducibly() -> None:
    images, labels = synthetic_digits(50, 0)
    loader = InMemoryBatches(images, torch.arange(50), batch_size=50, seed=3)
    loader.set_epoch(0)
    first = next(iter(loader))[1]
    loader.set_epoch(1)
    second = next(iter(loader))[1]
    loader.set_epoch(0)
    again = next(iter(loader))[1]
    assert not torch.equal(first, second)
    assert torch.equal(first, again)
    assert sorted(first.tolist()) == list(range(50))


def test_shards_are_disjoint_and_cover_the_epoch() -> None:
    images, _ = synthetic_digits(10, 0)
    seen = []
    for rank in range(2):
        loader = InMemoryBatches(images, torch.arange(10), batch_size=3, rank=rank, world_size=2)
        seen.append(torch.cat([b[1] for b in loader]))
    assert len(seen[0]) == len(seen[1]) == 5
    assert sorted(torch.cat(seen).tolist()) == list(range(10))


def test_validation_uses_test_split(fake_mnist_dir: Path) -> None:
    dm = MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=40)
    dm.setup("validate")
    assert sum(len(b[1]) for b in dm.val_dataloader()) == 100
    assert dm.num_classes == 10 and dm.image_shape == (1, 28, 28)


def test_other_datasets_use_their_own_folder(tmp_path: Path) -> None:
    make_fake_mnist(tmp_path, folder="FashionMNIST")
    dm = MNISTDataModule(str(tmp_path), download=False, dataset="fashion_mnist")
    dm.setup("fit")
    assert len(dm.split("train")[1]) == 200


def test_missing_data_offline_names_directory_files_and_fixes(tmp_path: Path) -> None:
    dm = MNISTDataModule(str(tmp_path / "empty"), download=False)
    with pytest.raises(DataNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str((tmp_path / "empty" / "MNIST" / "raw").resolve()) in message
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "--data.data_dir", "download"):
        assert name in message


def test_failed_download_is_reported_not_raised_raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets

    def offline(self: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    dm = MNISTDataModule(str(tmp_path), download=True)
    with pytest.raises(DataNotFoundError, match="download failed.*no network"):
        dm.prepare_data()


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        MNISTDataModule(str(path), download=False).prepare_data()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        MNISTDataModule(batch_size=0)
    with pytest.raises(ValueError, match="unknown dataset"):
        MNISTDataModule(dataset="cifar")  # type: ignore[arg-type]
