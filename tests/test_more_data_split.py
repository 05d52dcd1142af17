"""benchmarks/more_data_split.py: two training folders, one evaluation half, no digit on both sides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import benchmark_module


def _split() -> Any:
    return benchmark_module("more_data_split")


def test_halves_split_each_class_in_two_disjoint_alternate_halves() -> None:
    labels = np.array([0, 1, 0, 0, 1, 2, 0, 2, 1])
    a, b = _split().halves(labels)
    assert a.tolist() == [0, 1, 3, 5, 8] and b.tolist() == [2, 4, 6, 7]  # class 0: 0, 3 | 2, 6; class 1: 1, 8 | 4


def _splits(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from cgan_lightning import MNISTDataModule

    data = MNISTDataModule(str(data_dir), download=False)
    return {name: tuple(t.numpy() for t in data.load_split(name)) for name in ("train", "test")}  # type: ignore[misc]


def test_folders_train_on_the_split_or_split_plus_half_a_and_score_on_half_b(fake_mnist_dir: Path,
                                                                           tmp_path: Path) -> None:
    split = _split()
    split.main(["--data_dir", str(fake_mnist_dir), "--out", str(tmp_path / "out")])
    source = _splits(fake_mnist_dir)
    (train_images, train_labels), (test_images, test_labels) = source["train"], source["test"]
    a, b = split.halves(test_labels)
    assert set(a.tolist()).isdisjoint(b.tolist()) and len(a) + len(b) == len(test_labels)
    for name, own, extra in (("base", True, []), ("more", True, [a]), ("half_a", False, [a])):
        written = _splits(tmp_path / "out" / name)  # read back by the library, as a run reads it
        for column, (train_part, test_part) in enumerate(((train_images, test_images), (train_labels, test_labels))):
            expected = np.concatenate([*([train_part] if own else []), *(test_part[i] for i in extra)])
            np.testing.assert_array_equal(written["train"][column], expected)
        np.testing.assert_array_equal(written["test"][0], test_images[b])
        np.testing.assert_array_equal(written["test"][1], test_labels[b])


def test_a_missing_data_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _split().main(["--data_dir", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "not found" in capsys.readouterr().err
