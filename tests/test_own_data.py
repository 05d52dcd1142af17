"""Bring your own data and your own evaluator: class-per-folder images, CIFAR via torchvision, train-classifier."""

from __future__ import annotations

import os
import urllib.error
from functools import partial
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from lightning.pytorch import Trainer
from own_data_helpers import DIGIT_NAMES, RGB_CLASSES, write_cifar10, write_cifar100, write_digit_tree, write_rgb_tree
from PIL import Image

from cgan_lightning import ConditionalGAN, MLPDiscriminator, MLPGenerator, MNISTDataModule, callbacks
from cgan_lightning.cli.lightning_cli import main
from cgan_lightning.cli.sample import parse_labels
from cgan_lightning.cli.train_classifier import main as train_classifier_main
from cgan_lightning.data import ImageFolderDataModule, TorchvisionDataModule
from cgan_lightning.data.image_folder import stratified_split
from cgan_lightning.metrics import PerClassEvaluator, evaluate_generator, load_classifier, per_class_table
from cgan_lightning.metrics.classifier import ImageClassifier, save_classifier
from cgan_lightning.nn.dcgan import ACGANDiscriminator, DCGANDiscriminator, DCGANGenerator

SORTED_DIGITS = sorted(DIGIT_NAMES)  # class ids follow the sorted folder names


@pytest.fixture(scope="module")
def digit_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MNIST digits (synthetic without the local copy) as ``train/<name>/*.png`` and ``test/<name>/*.png``."""
    return write_digit_tree(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def rgb_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of 20x20 RGB images (PNG and JPEG) in one folder: the eval split is a held-out fraction."""
    return write_rgb_tree(tmp_path_factory.mktemp("rgb"))


@pytest.fixture
def cifar_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Synthetic CIFAR-10 and CIFAR-100 in their on-disk format; only the MD5 check of the real files is skipped."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    write_cifar10(tmp_path)
    write_cifar100(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------------------------------- loading
def test_image_folder_loads_class_names_shapes_and_eval_folder(digit_tree: Path) -> None:
    data = ImageFolderDataModule(str(digit_tree / "train"), eval_root=str(digit_tree / "test"))
    assert data.class_names == SORTED_DIGITS and data.num_classes == 10
    assert data.image_shape == (1, 28, 28)  # grayscale PNGs stay one channel
    images, labels = data.split("train")
    assert images.dtype == torch.uint8 and images.shape == (300, 1, 28, 28)
    assert torch.bincount(labels).tolist() == [30] * 10
    assert data.split("test")[0].shape == (100, 1, 28, 28)
    # The PNGs of folder "seven" hold label 7's pixels from the export, under class id sorted.index("seven").
    first_seven = sorted((digit_tree / "train" / "seven").glob("*.png"))[0]
    pixels = torch.from_numpy(__import__("numpy").asarray(Image.open(first_seven)).copy())
    idx = (labels == SORTED_DIGITS.index("seven")).nonzero()[0, 0]
    assert torch.equal(images[idx, 0], pixels)
    batch_images, batch_labels = next(iter(data.train_dataloader()))
    assert batch_images.dtype == torch.float32 and batch_images.min() >= -1 and batch_images.max() <= 1


def test_rgb_folder_resizes_converts_and_holds_out_a_stratified_seeded_fraction(rgb_tree: Path) -> None:
    data = ImageFolderDataModule(str(rgb_tree), eval_fraction=0.25, image_size=16, split_seed=3)
    assert data.class_names == sorted(RGB_CLASSES) and data.image_shape == (3, 16, 16)
    train, held = data.split("train"), data.split("test")
    assert torch.bincount(held[1]).tolist() == [6, 6, 6] and torch.bincount(train[1]).tolist() == [18, 18, 18]
    again = ImageFolderDataModule(str(rgb_tree), eval_fraction=0.25, image_size=16, split_seed=3)
    assert torch.equal(again.split("test")[0], held[0])  # same seed, same held-out files
    other = ImageFolderDataModule(str(rgb_tree), eval_fraction=0.25, image_size=16, split_seed=4)
    assert not torch.equal(other.split("test")[0], held[0])
    gray = ImageFolderDataModule(str(rgb_tree), image_size=[8, 12], resize_mode="resize", channels=1)
    assert gray.image_shape == (1, 8, 12) and gray.split("train")[0].shape[1:] == (1, 8, 12)
    crop = ImageFolderDataModule(str(rgb_tree), image_size=12, resize_mode="center_crop")
    assert crop.split("train")[0].shape[1:] == (3, 12, 12)


def test_stratified_split_is_disjoint_and_covers_everything() -> None:
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    train, held = stratified_split(labels, 0.2, seed=0)
    assert sorted(torch.cat([train, held]).tolist()) == list(range(16))
    assert torch.bincount(labels[held], minlength=3).tolist() == [2, 1, 0]  # a single image stays in training


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        ("missing", {}, r"root folder .*nope does not exist"),
        ("file", {}, r"root .*a_file is a file"),
        ("one_class", {}, r"at least 2 class folders .*found only 'cats'"),
        ("empty_class", {}, r"class folder .*dogs is empty"),
        ("text_file", {"image_size": 8}, r"dogs/notes.txt is not an image file"),
        ("broken_png", {"image_size": 8}, r"could not read image file .*dogs/broken.png"),
        ("mixed_sizes", {}, r"different sizes and no image_size is set: .*cats/0.png is 8x8 but .*dogs/0.png is 9x9"),
        ("small_crop", {"image_size": 9, "resize_mode": "center_crop"}, r"cats/0.png is 8x8, smaller than the center"),
        ("eval_classes", {}, r"eval_root .*other has class folders \['cats', 'mice'\] but root"),
    ],
)
def test_bad_folders_are_clear_errors_naming_the_file_or_folder(tmp_path: Path, make: str, kwargs: dict,
                                                                 message: str) -> None:
    root = tmp_path / "root"
    for name, size in (("cats", 8), ("dogs", 9 if make == "mixed_sizes" else 8)):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (size, size), (200, 10, 10)).save(root / name / "0.png")
    if make == "missing":
        root = tmp_path / "nope"
    elif make == "file":
        root = tmp_path / "a_file"
        root.write_text("x")
    elif make == "one_class":
        for f in (root / "dogs").iterdir():
            f.unlink()
        (root / "dogs").rmdir()
    elif make == "empty_class":
        (root / "dogs" / "0.png").unlink()
    elif make == "text_file":
        (root / "dogs" / "notes.txt").write_text("not an image")
    elif make == "broken_png":
        (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif make == "eval_classes":
        for name in ("cats", "mice"):
            (tmp_path / "other" / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "other" / name / "0.png")
        kwargs = {"eval_root": str(tmp_path / "other")}
    with pytest.raises((ValueError, FileNotFoundError, NotADirectoryError), match=message):
        ImageFolderDataModule(str(root), **kwargs).split("train")


@pytest.mark.parametrize("command", ["fit", "train-classifier"])
def test_a_bad_folder_through_the_cli_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   command: str) -> None:
    # train-classifier's data module sits in a union with None, which jsonargparse reports as "Does not validate
    # against any of the Union subtypes": the line printed must be the data module's own reason.
    args = ["--data", "cgan_lightning.data.ImageFolderDataModule", "--data.root", str(tmp_path / "nope")]
    with pytest.raises(SystemExit) as exit_info:
        if command == "fit":
            main(["fit", *args])
        else:
            train_classifier_main([*args, "--out", str(tmp_path / "classifier.pt")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and len(err.splitlines()) == 1
    assert "nope does not exist" in err and "Union" not in err


# ------------------------------------------------------------------------------------ torchvision / CIFAR
def test_cifar10_through_torchvision_with_class_names_and_official_test_split(cifar_files: Path) -> None:
    data = TorchvisionDataModule("torchvision.datasets.CIFAR10", root=str(cifar_files))
    assert data.class_names[:3] == ["airplane", "automobile", "bird"] and data.num_classes == 10
    assert data.image_shape == (3, 32, 32)
    images, labels = data.split("train")
    assert images.shape == (150, 3, 32, 32) and images.dtype == torch.uint8
    assert data.split("test")[0].shape == (40, 3, 32, 32)
    assert bool((images[labels == 4][:, :, 2 + 3 * 4] == 255).all())  # CHW order kept: the class's bright row
    small = TorchvisionDataModule("CIFAR10", root=str(cifar_files), image_size=16, channels=1, eval_fraction=0.2)
    assert small.image_shape == (1, 16, 16)
    assert len(small.split("test")[1]) == 30 and len(small.split("train")[1]) == 120


def test_cifar100_class_names_come_from_its_meta(cifar_files: Path) -> None:
    data = TorchvisionDataModule("torchvision.datasets.CIFAR100", root=str(cifar_files))
    assert data.num_classes == 100 and data.class_names[7] == "class_07"
    assert data.split("test")[0].shape == (30, 3, 32, 32)


def test_missing_cifar_and_unknown_class_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=r"CIFAR10 not found or corrupted in .*put its files there \(in "
                                                r"cifar-10-batches-py/ there, .*download true"):
        TorchvisionDataModule("torchvision.datasets.CIFAR10", root=str(tmp_path)).split("train")

    def offline(self: object) -> None:  # what torchvision's download raises without network
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(FileNotFoundError, match=r"CIFAR10 could not be downloaded into .*Name or service not known>"
                                                r"\); check the network, or put its files there yourself"):
        TorchvisionDataModule("torchvision.datasets.CIFAR10", root=str(tmp_path), download=True).split("train")
    with pytest.raises(ValueError, match=r"dataset_class 'torchvision.datasets.NoSuch' not found"):
        TorchvisionDataModule("torchvision.datasets.NoSuch", root=str(tmp_path))


# ------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("g_conditioning", ["concat", "cbn", "film"])
@pytest.mark.parametrize("d_conditioning", ["concat", "projection", "acgan"])
def test_dcgan_trains_on_3x32x32_with_every_conditioning(cifar_files: Path, g_conditioning: str,
                                                         d_conditioning: str) -> None:
    data = TorchvisionDataModule("torchvision.datasets.CIFAR10", root=str(cifar_files), batch_size=16)
    d_cls, d_cond = (ACGANDiscriminator, "none") if d_conditioning == "acgan" else (DCGANDiscriminator,
                                                                                    d_conditioning)
    model = ConditionalGAN(
        num_classes=data.num_classes, image_shape=data.image_shape, latent_dim=16, class_names=data.class_names,
        generator=lambda z, k, s: DCGANGenerator(z, k, s, base_channels=8, conditioning=g_conditioning),
        discriminator=lambda k, s: d_cls(k, s, base_channels=8, conditioning=d_cond, spectral_norm=True),
    )
    before = [p.detach().clone() for p in model.parameters()]
    Trainer(max_steps=4, limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(model, data)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert model.sample([0, 9]).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 12, 20), (4, 8, 8)])
def test_dcgan_networks_take_any_size_divisible_by_4(shape: tuple[int, int, int]) -> None:
    for conditioning in ("concat", "cbn", "film"):
        images = DCGANGenerator(8, 5, shape, base_channels=4, conditioning=conditioning)(torch.randn(3, 8),
                                                                                         torch.arange(3))
        assert images.shape == (3, *shape)
    for conditioning in ("concat", "projection"):
        discriminator = DCGANDiscriminator(5, shape, base_channels=4, conditioning=conditioning)
        logits = discriminator(images.detach(), torch.arange(3))
        logits.sum().backward()
        assert logits.shape == (3,)


# -------------------------------------------------------------------------------- evaluator for any data
def _train_classifier(data_args: list[str], out: Path, epochs: int, capsys: pytest.CaptureFixture[str]) -> str:
    main(["train-classifier", *data_args, "--out", str(out), "--epochs", str(epochs), "--batch_size", "32"])
    return capsys.readouterr().out


def _fit_config(tmp_path: Path, data: dict, classifier: Path, samples: int = 6) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1, "limit_train_batches": 3, "enable_progress_bar": False, "logger": True,
            "default_root_dir": str(tmp_path / "run"),
            "callbacks": [
                {"class_path": "cgan_lightning.callbacks.PerClassFID",
                 "init_args": {"samples_per_class": samples, "batch_size": 50, "classifier": str(classifier)}},
                {"class_path": "cgan_lightning.callbacks.InterferenceTest",
                 "init_args": {"n_styles": 2, "classifier": str(classifier)}},
                {"class_path": "cgan_lightning.callbacks.LatentTraversal",
                 "init_args": {"steps": 3, "classifier": str(classifier)}},
            ],
        },
        "model": {
            "latent_dim": 16, "loss": "hinge", "ema_decay": 0.9,
            "generator": {"class_path": "cgan_lightning.nn.dcgan.DCGANGenerator",
                          "init_args": {"base_channels": 8, "conditioning": "cbn"}},
            "discriminator": {"class_path": "cgan_lightning.nn.dcgan.ACGANDiscriminator",
                              "init_args": {"base_channels": 8, "conditioning": "projection", "spectral_norm": True}},
        },
        "data": data,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("tree", ["digits", "rgb"])
def test_train_classifier_then_fit_validate_and_sample_with_class_names(
    tree: str, digit_tree: Path, rgb_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if tree == "digits":
        init_args = {"root": str(digit_tree / "train"), "eval_root": str(digit_tree / "test"), "batch_size": 16}
        names, shape = SORTED_DIGITS, (1, 28, 28)
    else:
        init_args = {"root": str(rgb_tree), "eval_fraction": 0.25, "image_size": 16, "batch_size": 16}
        names, shape = sorted(RGB_CLASSES), (3, 16, 16)
    data = {"class_path": "cgan_lightning.data.ImageFolderDataModule", "init_args": init_args}
    classifier = tmp_path / "classifier.pt"
    config = _fit_config(tmp_path, data, classifier)

    # The evaluator: trained on the train split from the same config as fit, metadata saved beside the weights.
    out = _train_classifier(["--config", str(config)], classifier, epochs=4, capsys=capsys)
    assert "eval accuracy" in out and f"wrote {classifier}" in out
    loaded = load_classifier(classifier)
    meta = loaded.metadata
    assert meta["num_classes"] == len(names) and tuple(meta["image_shape"]) == shape
    assert meta["class_names"] == names and len(meta["data_fingerprint"]) == 16
    assert meta["eval_accuracy"] > 1.5 / len(names)  # well above chance even after 4 short epochs
    assert loaded.image_shape == shape

    main(["fit", "--config", str(config)])
    version = tmp_path / "run" / "lightning_logs" / "version_0"
    ckpt = version / "checkpoints" / "last.ckpt"
    model = ConditionalGAN.load_from_checkpoint(ckpt)
    assert model.class_names == names and model.image_shape == shape
    caption = Image.open(version / "interference" / "epoch_000.png").text["Description"]
    assert caption.endswith(", ".join(names))
    summary = capsys.readouterr().out.split("Run summary")[1].split("(latest evaluation")[1]
    for k, name in enumerate(names):  # the run's closing table names the classes, as validate's does
        assert f"{k} {name} " in summary

    main(["validate", "--config", str(config), "--ckpt_path", str(ckpt)])
    table = capsys.readouterr().out.split("Per-class FID and generated-image accuracy")[1]
    for k, name in enumerate(names):
        assert f"{k} {name} " in table
    assert "overall" in table

    grid = tmp_path / "grid.pt"
    main(["sample", "--ckpt_path", str(ckpt), "--labels", names[-1], "0", "--n_per_label", "2", "--out", str(grid)])
    assert torch.load(grid)["labels"].tolist() == [len(names) - 1] * 2 + [0, 0]
    assert f"{len(names) - 1}={names[-1]}" in capsys.readouterr().out


def test_mismatched_classifier_is_a_clear_error(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.pt"
    save_classifier(ImageClassifier(3, feature_dim=8, image_shape=(3, 16, 16)), rgb,
                    {"class_names": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"rgb.pt predicts 3 classes but the model has 10 labels; train one"):
        PerClassEvaluator(10, classifier=rgb, image_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"rgb.pt takes 3x16x16 images but the model draws 3x32x32"):
        PerClassEvaluator(3, classifier=rgb, image_shape=(3, 32, 32))
    with pytest.raises(ValueError, match=r"trained on classes \['a', 'b', 'c'\] but the model's classes are"):
        PerClassEvaluator(3, classifier=rgb, image_shape=(3, 16, 16), class_names=["x", "y", "z"])
    # The shipped MNIST classifier is the default; on RGB images it is refused, and evaluate_generator says so.
    model = ConditionalGAN(num_classes=10, image_shape=(3, 32, 32), latent_dim=8,
                           generator=lambda z, k, s: DCGANGenerator(z, k, s, base_channels=4),
                           discriminator=lambda k, s: DCGANDiscriminator(k, s, base_channels=4))
    batches = [(torch.zeros(4, 3, 32, 32), torch.arange(4))]
    with pytest.raises(ValueError, match=r"shipped MNIST classifier .* takes 1x28x28 images but the model draws "
                                         r"3x32x32; train one .*train-classifier"):
        evaluate_generator(model, real_batches=batches)


@pytest.mark.parametrize("callback", ["PerClassFID", "SampleQuality", "InterferenceTest", "LatentTraversal"])
def test_a_classifier_that_cannot_judge_the_model_is_refused_before_training(callback: str, tmp_path: Path,
                                                                             fake_mnist_session_dir: Path) -> None:
    three = tmp_path / "three.pt"
    save_classifier(ImageClassifier(3, feature_dim=8, image_shape=(1, 28, 28)), three, {"class_names": ["a", "b", "c"]})
    trainer = Trainer(default_root_dir=tmp_path, max_epochs=1, accelerator="cpu", logger=False,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      callbacks=[getattr(callbacks, callback)(classifier=three)])
    model = ConditionalGAN(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16,)),
                           discriminator=partial(MLPDiscriminator, hidden_dims=(16,)))
    with pytest.raises(ValueError, match=r"three.pt predicts 3 classes but the model has 10 labels; train one"):
        trainer.fit(model, MNISTDataModule(str(fake_mnist_session_dir), download=False, batch_size=8))
    assert trainer.global_step == 0  # refused at setup: no training was spent before the refusal


def test_class_names_are_checked_and_shown_in_tables() -> None:
    with pytest.raises(ValueError, match="class_names must be 3 distinct names"):
        ConditionalGAN(num_classes=3, class_names=["a", "b"])
    scores = {"val/fid/class_0": 1.0, "val/fid/class_1": 2.0, "val/acc/class_0": 0.5, "val/acc/class_1": 1.0}
    table = per_class_table(scores, "val/", ["cat", "dog"])
    assert "0 cat" in table and "1 dog" in table
    assert "\n      0 " in per_class_table(scores, "val/", ["0", "1"])  # names equal to the ids: shown once
    assert parse_labels(["dog", "0", "1"], 2, ["cat", "dog"]) == [1, 0, 1]
    assert parse_labels(["10", "2"], 3, ["1", "10", "2"]) == [1, 2]  # a folder name wins over the id


@pytest.mark.parametrize("name", ["cifar10", "image_folder"])
def test_own_data_example_configs_fit_under_fast_dev_run(name: str, cifar_files: Path, rgb_tree: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = Path(__file__).resolve().parents[1] / "examples" / f"{name}.yaml"
    if name == "cifar10":
        data_args, classes, shape = [f"--data.init_args.root={cifar_files}"], 10, (3, 32, 32)
    else:
        data_args = [f"--data.init_args.root={rgb_tree}", "--data.init_args.eval_root=null",
                     "--data.init_args.image_size=16"]
        classes, shape = 3, (3, 16, 16)
    # The config's callbacks read runs/<name>/classifier.pt (train-classifier's output); an untrained one will do.
    save_classifier(ImageClassifier(classes, feature_dim=8, image_shape=shape),
                    tmp_path / "runs" / name / "classifier.pt")
    main(["fit", "--config", str(config), "--trainer.fast_dev_run=true", "--trainer.accelerator=cpu",
          f"--trainer.default_root_dir={tmp_path / 'run'}", *data_args])


def test_a_data_module_without_class_names_links_the_ids_and_train_classifier_reads_its_loaders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cgan_lightning.cli.lightning_cli import build_cli

    cli = build_cli(["--data", "own_data_helpers.PlainDataModule", "--model.generator",
                     "cgan_lightning.nn.dcgan.DCGANGenerator", "--model.discriminator",
                     "cgan_lightning.nn.dcgan.DCGANDiscriminator"], run=False)
    assert cli.model.class_names == ["0", "1", "2"] and cli.model.image_shape == (1, 8, 8)
    out = _train_classifier(["--data", "own_data_helpers.PlainDataModule"], tmp_path / "c.pt", 1, capsys)
    assert "12 train and 12 evaluation images of 1x8x8, 3 classes" in out
    assert load_classifier(tmp_path / "c.pt").metadata["class_names"] == ["0", "1", "2"]
