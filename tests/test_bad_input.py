"""Bad input: every mistake gets an error that says what was wrong and what is expected.

At the command line that is one line on stderr (``cgan-lightning: error: ...``, exit status 1; exit status 2
for what the config parser rejects) and no traceback; in Python it is a ``ValueError`` (or a subclass). The
``sample`` subcommand's errors are tested in test_sample_cli.py; NaN losses and damaged checkpoints in
test_faults.py.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import make_fake_mnist
from fault_helpers import tiny_cli_args
from lightning.pytorch import LightningDataModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from cgan_lightning import ConditionalGAN, DataNotFoundError, MLPDiscriminator, MLPGenerator, MNISTDataModule
from cgan_lightning.cli.lightning_cli import main
from cgan_lightning.data.mnist import CorruptDataError
from cgan_lightning.utilities.checkpoint_files import CheckpointError, check_checkpoint_matches

TINY = dict(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16, 32)),
            discriminator=partial(MLPDiscriminator, hidden_dims=(32,)))


def _cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the CLI, expecting it to fail; return its exit status and the last stderr line (no traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    return exit_info.value.code, lines[-1] if lines else ""


# ----------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [("model:\n  latent_dimm: 8\n", "latent_dimm"),  # a typo
     ("data:\n  batch_size: many\n", "batch_size"),
     ("model:\n  latent_dim: 2.5\n", "latent_dim"),
     ("trainer:\n  max_epochs: [1, 2]\n", "max_epochs")],
    ids=["unknown_key", "str_for_int", "float_for_int", "list_for_int"],
)
def test_config_file_with_unknown_keys_or_wrong_types(yaml_text: str, expected: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("--data.batch_size=6.5", 'Parser key "data.batch_size": expected <class \'int\'>, got 6.5'),
     ("--data.dataset=mnsit", 'Parser key "data.dataset": expected typing.Literal[\'mnist\', \'fashion_mnist\', '
                              "'kmnist'], got mnsit"),
     ("--trainer.max_epochs=abc", 'Parser key "trainer.max_epochs": expected <class \'int\'>, got abc'),
     ("--model.optimizer_g.init_args.lr=fast",
      'Parser key "model.optimizer_g.lr": expected <class \'float\'>, got fast'),
     ("--model.generator.init_args.hiden_dims=[64]", 'Parser key "model.generator": Option \'hiden_dims\' is not '
                                                     "accepted (check its spelling against the class's init_args)")],
    ids=["float_for_int", "unknown_dataset", "str_for_int", "str_for_float", "init_args_typo"],
)
def test_a_value_no_type_of_a_union_takes_gets_its_key_and_reason(flag: str, expected: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # jsonargparse lists every alternative of an optional (X | None) setting at length; the line keeps the one reason.
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", flag])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert err == f"cgan-lightning fit: error: {expected} (see cgan-lightning fit --help)"


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("--data.batch_size=-1", "batch_size must be a positive integer, got -1"),
     ("--data.batch_size=0", "batch_size must be a positive integer, got 0"),
     ("--model.latent_dim=0", "latent_dim must be a positive integer, got 0"),
     ("--model.latent_dim=-4", "latent_dim must be a positive integer, got -4"),
     ("--model.optimizer_g.init_args.lr=-0.0002", "model.optimizer_g: Invalid learning rate: -0.0002"),
     ("--model.optimizer_d.init_args.lr=-1", "model.optimizer_d: Invalid learning rate: -1"),
     ("--data.num_workers=-2", "num_workers must be >= 0, got -2")],
)
def test_bad_values_get_one_line(flag: str, expected: str, fake_mnist_session_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _cli_error(capsys, "fit", *tiny_cli_args(fake_mnist_session_dir, tmp_path),
                            "--trainer.max_steps=2", flag)
    assert code == 1
    assert line.startswith("cgan-lightning: error: ") and expected in line, line


def test_negative_learning_rate_in_python() -> None:
    model = ConditionalGAN(optimizer_g=partial(torch.optim.SGD, lr=-0.1), **TINY)
    with pytest.raises(ValueError, match=r"model.optimizer_g: Invalid learning rate: -0.1; expected a positive"):
        model.configure_optimizers()

    def lax(params: object) -> torch.optim.Optimizer:  # an optimizer that does not check its own lr
        optimizer = torch.optim.Adam(params)  # type: ignore[arg-type]
        optimizer.param_groups[0]["lr"] = -1e-3
        return optimizer

    with pytest.raises(ValueError, match=r"model.optimizer_d: learning rate of parameter group 0 is -0.001"):
        ConditionalGAN(optimizer_d=lax, **TINY).configure_optimizers()
    assert len(ConditionalGAN(**TINY).configure_optimizers()) == 2


# ------------------------------------------------------------------------------------- checkpoint mismatch
@pytest.fixture(scope="module")
def five_class_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the reference model trained one step on 5 classes (MNIST has 10)."""
    root = tmp_path_factory.mktemp("five")
    model = ConditionalGAN(num_classes=5)  # default networks: the hparams stay plain (weights_only-loadable)
    data = TensorDataset(torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8) % 5)
    trainer = Trainer(default_root_dir=root, max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model, DataLoader(data, batch_size=8))
    trainer.save_checkpoint(root / "five.ckpt")
    return root / "five.ckpt"


@pytest.mark.parametrize("subcommand", ["fit", "validate"])
def test_checkpoint_for_other_num_classes_gets_one_line(subcommand: str, five_class_ckpt: Path,
                                                        fake_mnist_session_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _cli_error(capsys, subcommand, f"--trainer.default_root_dir={tmp_path}",
                            "--trainer.accelerator=cpu", "--trainer.logger=false", "--trainer.limit_val_batches=1",
                            f"--data.data_dir={fake_mnist_session_dir}", "--data.download=false",
                            f"--ckpt_path={five_class_ckpt}")
    assert code == 1
    assert line.startswith(f"cgan-lightning: error: checkpoint {five_class_ckpt}: it was trained for another model")
    assert "num_classes: 5 in the checkpoint, 10 in this model" in line
    assert "label_embedding.weight is [5, 5] in the checkpoint but [10, 10] in this model" in line


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory, fake_mnist_session_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    trainer = Trainer(default_root_dir=root, max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(ConditionalGAN(**TINY), MNISTDataModule(str(fake_mnist_session_dir), download=False, batch_size=8))
    trainer.save_checkpoint(root / "tiny.ckpt")
    return root / "tiny.ckpt"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [({"latent_dim": 16}, "latent_dim: 8 in the checkpoint, 16 in this model"),
     ({"generator": partial(MLPGenerator, hidden_dims=(16, 64))}, "tensor(s) differ in shape"),
     ({"ema_decay": 0.99}, "are not in the checkpoint (first: generator_ema."),
     ({"num_classes": 7}, "num_classes: 10 in the checkpoint, 7 in this model")],
    ids=["latent_dim", "hidden_dims", "ema", "num_classes"],
)
def test_trainer_resume_into_another_model_names_file_and_settings(
    changes: dict[str, object], expected: str, tiny_ckpt: Path, fake_mnist_session_dir: Path, tmp_path: Path
) -> None:
    model = ConditionalGAN(**{**TINY, **changes})  # type: ignore[arg-type]
    trainer = Trainer(default_root_dir=tmp_path, max_steps=4, accelerator="cpu", logger=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    data = MNISTDataModule(str(fake_mnist_session_dir), download=False, batch_size=8)
    with pytest.raises(CheckpointError, match=r"it was trained for another model") as err:
        trainer.fit(model, data, ckpt_path=tiny_ckpt, weights_only=False)
    assert str(err.value).startswith(f"checkpoint {tiny_ckpt}: ")
    assert expected in str(err.value)


def test_resume_names_a_setting_the_older_checkpoint_does_not_record(tiny_ckpt: Path, fake_mnist_session_dir: Path,
                                                                     tmp_path: Path) -> None:
    # A checkpoint from before an option existed: it was trained at the option's default.
    checkpoint = torch.load(tiny_ckpt, weights_only=False)
    del checkpoint["hyper_parameters"]["ema_decay"]
    older = tmp_path / "older.ckpt"
    torch.save(checkpoint, older)
    trainer = Trainer(default_root_dir=tmp_path, max_steps=4, accelerator="cpu", logger=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    data = MNISTDataModule(str(fake_mnist_session_dir), download=False, batch_size=8)
    with pytest.raises(CheckpointError, match=r"ema_decay: not recorded in the checkpoint \(so the default, None\), "
                                              r"0.99 in this model") as err:
        trainer.fit(ConditionalGAN(**{**TINY, "ema_decay": 0.99}), data, ckpt_path=older,  # type: ignore[arg-type]
                    weights_only=False)
    assert "latent_dim" not in str(err.value)  # settings the checkpoint records alike are not listed


_NAMES = [f"class_{k}" for k in range(10)]


@pytest.mark.parametrize(
    ("saved", "loading", "refused"),
    [(_NAMES, _NAMES[1:] + _NAMES[:1], True),  # the same names in another order: label k is another class
     (_NAMES, [*_NAMES[:9], "other"], True),
     (_NAMES, _NAMES, False),
     (None, _NAMES, False),  # trained from Python without names, loaded where the CLI links the data's names
     ([str(k) for k in range(10)], _NAMES, False),  # names that are only the ids name nothing
     (_NAMES, [str(k) for k in range(10)], False)],
    ids=["reordered", "renamed", "same", "unnamed", "ids_then_names", "names_then_ids"],
)
def test_checkpoint_whose_labels_name_other_classes_is_refused(saved: list[str] | None, loading: list[str],
                                                                refused: bool) -> None:
    trained = ConditionalGAN(**{**TINY, "class_names": saved})  # type: ignore[arg-type]
    checkpoint = {"state_dict": trained.state_dict(), "hyper_parameters": dict(trained.hparams),
                  "pytorch-lightning_version": "2.6.0"}
    model = ConditionalGAN(**{**TINY, "class_names": loading})  # type: ignore[arg-type]
    if not refused:
        check_checkpoint_matches(checkpoint, model.state_dict(), model.hparams, path="named.ckpt")
        return
    with pytest.raises(CheckpointError, match=r"its labels name other classes than this model's") as err:
        check_checkpoint_matches(checkpoint, model.state_dict(), model.hparams, path="named.ckpt")
    assert f"class_names: {saved} in the checkpoint, {loading} in this model" in str(err.value)


_GOOD_IMAGES = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize(
    ("images", "labels", "expected"),
    [(_GOOD_IMAGES, torch.arange(3, 11), r"label 10 is out of range: labels must lie in \[0, 9\]"),
     (_GOOD_IMAGES, torch.arange(8).float(), "labels must be an integer tensor"),
     (_GOOD_IMAGES * 127.5 + 127.5, torch.arange(8), "look like 0..255 pixel values"),
     ((_GOOD_IMAGES * 127.5 + 127.5).to(torch.uint8), torch.arange(8), "images are uint8"),
     (_GOOD_IMAGES[:, :, :14], torch.arange(8), r"shape")],
    ids=["labels_out_of_range", "float_labels", "pixel_values", "uint8", "image_size"],
)
def test_a_data_module_yielding_unusable_batches_is_refused_before_any_update(
        images: torch.Tensor, labels: torch.Tensor, expected: str, tmp_path: Path) -> None:
    class OwnData(LightningDataModule):  # what docs/own_data.md invites: any data module with these attributes
        num_classes, image_shape = 10, (1, 28, 28)

        def train_dataloader(self) -> DataLoader:
            return DataLoader(TensorDataset(images, labels), batch_size=8)

    model = ConditionalGAN(**TINY)  # type: ignore[arg-type]
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(default_root_dir=tmp_path, max_steps=2, accelerator="cpu", logger=False,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      limit_val_batches=0)
    with pytest.raises(ValueError, match=expected) as err:
        trainer.fit(model, OwnData())
    assert "a data module's training loader must yield (images: float [B, 1, 28, 28] in [-1, 1]" in str(err.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # no update was made


def test_load_from_checkpoint_with_conflicting_override_names_file(tiny_ckpt: Path) -> None:
    # Lightning puts the override into the checkpoint's settings before any hook runs: the message reads the file.
    with pytest.raises(CheckpointError, match=r"load_from_checkpoint's arguments change settings its weights were "
                                              r"trained with \(latent_dim: 8 in the checkpoint, 4 given\)") as err:
        ConditionalGAN.load_from_checkpoint(tiny_ckpt, weights_only=False, latent_dim=4)
    assert err.value.path == str(tiny_ckpt)
    assert ConditionalGAN.load_from_checkpoint(tiny_ckpt, weights_only=False).latent_dim == 8


def test_a_bare_state_dict_is_not_a_checkpoint(tmp_path: Path, fake_mnist_session_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "weights.pt"
    torch.save(ConditionalGAN(**TINY).state_dict(), bare)
    code, line = _cli_error(capsys, "validate", *tiny_cli_args(fake_mnist_session_dir, tmp_path),
                            f"--ckpt_path={bare}")
    assert code == 1 and f"checkpoint {bare}: holds no 'state_dict'" in line
    with pytest.raises(CheckpointError, match="it is not a Lightning checkpoint") as err:
        ConditionalGAN.load_from_checkpoint(bare)
    assert err.value.path == str(bare)


def test_resumed_fit_keeps_the_checkpoints_sampling_options(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    main(["fit", *tiny_cli_args(fake_mnist_session_dir, tmp_path / "a"), "--trainer.max_epochs=1"])
    ckpt = tmp_path / "a" / "ckpt" / "last.ckpt"
    # Redraws by D's class head, given with a checkpoint whose D has none: validate would refuse them; a resumed fit
    # continues the run as it was trained, sampling options included.
    main(["fit", *tiny_cli_args(fake_mnist_session_dir, tmp_path / "b"), "--trainer.max_epochs=2",
          "--model.sample_min_class_prob=0.7", f"--ckpt_path={ckpt}"])
    resumed = torch.load(tmp_path / "b" / "ckpt" / "last.ckpt", weights_only=False)
    assert resumed["epoch"] == 1 and resumed["hyper_parameters"]["sample_min_class_prob"] == 0.0


def test_ckpt_path_last_without_a_fixed_checkpoint_folder_gets_one_line(fake_mnist_session_dir: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in tiny_cli_args(fake_mnist_session_dir, tmp_path) if not a.startswith("--checkpoint.dirpath")]
    code, line = _cli_error(capsys, "fit", *args, "--ckpt_path=last")
    assert code == 1 and line.startswith("cgan-lightning: error: --ckpt_path last needs --checkpoint.dirpath")
    assert not (tmp_path / "lightning_logs").exists()  # refused before a run folder was made
    # With the folder fixed, `last` resumes what is there, or starts the run when nothing is (requeued jobs).
    main(["fit", *tiny_cli_args(fake_mnist_session_dir, tmp_path), "--trainer.max_epochs=1", "--ckpt_path=last"])
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["epoch"] == 0


def test_resume_past_max_epochs_says_max_epochs_is_the_total(fake_mnist_session_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Lightning refuses a max_epochs below the epoch the checkpoint was saved in (3 epochs done: epoch 2).
    main(["fit", *tiny_cli_args(fake_mnist_session_dir, tmp_path / "a"), "--trainer.max_epochs=3"])
    code, line = _cli_error(capsys, "fit", *tiny_cli_args(fake_mnist_session_dir, tmp_path / "b"),
                            "--trainer.max_epochs=1", f"--ckpt_path={tmp_path / 'a' / 'ckpt' / 'last.ckpt'}")
    assert code == 1 and "but you have set Trainer(max_epochs=1)" in line
    assert line.endswith("--trainer.max_epochs is the total to reach, so give a larger one to train on, or no "
                         "--ckpt_path to start a new run.")


def test_lightning_messages_without_a_fix_get_one() -> None:
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from cgan_lightning.cli.errors import user_error_line

    line = user_error_line(MisconfigurationException("No supported gpu backend found!"))
    assert line.startswith("No supported gpu backend found! The config asks for a GPU")
    assert "--trainer.accelerator cpu" in line
    assert user_error_line(ValueError("batch_size must be positive")) == "batch_size must be positive"  # others as is


def test_a_callback_given_twice_gets_one_line(fake_mnist_session_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    twice = "cgan_lightning.callbacks.InterferenceTest"
    code, line = _cli_error(capsys, "fit", *tiny_cli_args(fake_mnist_session_dir, tmp_path),
                            f"--trainer.callbacks+={twice}", f"--trainer.callbacks+={twice}")
    assert code == 1
    assert line == ("cgan-lightning: error: trainer.callbacks holds InterferenceTest twice with the same settings "
                    "(callbacks from config files and --trainer.callbacks+=... add up): drop one, or give the second "
                    "other settings")


# ------------------------------------------------------------------------------------------------- data
def test_missing_data_offline_gets_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _cli_error(capsys, "fit", *tiny_cli_args(tmp_path / "nothing_here", tmp_path))
    assert code == 1
    assert "mnist not found in" in line and "--data.data_dir" in line and "--data.download true" in line


def test_data_dir_that_is_a_file_gets_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "mnist.tar"
    a_file.write_bytes(b"\0" * 10)
    code, line = _cli_error(capsys, "fit", *tiny_cli_args(a_file, tmp_path))
    assert code == 1 and f"data_dir {str(a_file)!r} is a file; it must be a folder holding MNIST/raw/" in line


@pytest.mark.parametrize(
    ("name", "keep", "expected"),
    [("train-images-idx3-ubyte", 100_000, "is truncated: its header declares 200x28x28 values (156,816 bytes) but "
                                          "the file has 100,000 bytes"),
     ("train-labels-idx1-ubyte", 150, "is truncated: its header declares 200 values (208 bytes)"),
     ("t10k-images-idx3-ubyte", 10, "is truncated inside its header (10 bytes)"),
     ("t10k-labels-idx1-ubyte", 0, "is not an IDX file (0 bytes, bad header)")],
)
def test_truncated_idx_file_is_named(name: str, keep: int, expected: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = make_fake_mnist(tmp_path / "data")
    path = root / "MNIST" / "raw" / name
    path.write_bytes(path.read_bytes()[:keep])
    for download in (False, True):  # with download on, torchvision would not replace a file that exists
        with pytest.raises(CorruptDataError, match="delete it and download again") as err:
            MNISTDataModule(str(root), download=download).prepare_data()
        assert str(path) in str(err.value) and expected in str(err.value)
    with pytest.raises(ValueError, match="is truncated|not an IDX file"):
        MNISTDataModule(str(root), download=False).setup("fit")
    code, line = _cli_error(capsys, "fit", *tiny_cli_args(root, tmp_path))
    assert code == 1 and str(path) in line and expected in line


def test_images_and_labels_of_different_lengths(tmp_path: Path) -> None:
    root = make_fake_mnist(tmp_path / "data")
    small = make_fake_mnist(tmp_path / "small", n_train=50)
    (root / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(
        (small / "MNIST" / "raw" / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(CorruptDataError, match="holds 200 images but .* holds 50 labels; expected one label per"):
        MNISTDataModule(str(root), download=False).prepare_data()


def test_complete_files_pass_the_idx_check(fake_mnist_session_dir: Path) -> None:
    MNISTDataModule(str(fake_mnist_session_dir), download=False).prepare_data()
    with pytest.raises(DataNotFoundError):  # and a missing file is still "not found", not "corrupt"
        MNISTDataModule(str(fake_mnist_session_dir / "MNIST"), download=False).prepare_data()


# -------------------------------------------------------------------------------------------------- API
@pytest.fixture(scope="module")
def model() -> ConditionalGAN:
    return ConditionalGAN(**TINY).eval()


def test_tensors_without_data_are_refused(model: ConditionalGAN) -> None:
    with pytest.raises(ValueError, match="labels is on the 'meta' device"):
        model.sample(torch.tensor([1, 2], device="meta"))
    with pytest.raises(ValueError, match="z is on the 'meta' device"):
        model(torch.empty(2, 8, device="meta"), [1, 2])
    with pytest.raises(ValueError, match="images is on the 'meta' device"):
        model.discriminator(torch.empty(2, 1, 28, 28, device="meta"), torch.tensor([1, 2]))


@pytest.mark.parametrize(
    ("labels", "expected"),
    [([], "labels is empty"), (torch.empty(0, dtype=torch.long), "labels is empty"),
     (None, "got NoneType"), (1.0, "got float"), ([2**70], "label 1180591620717411303424 is out of range"),
     (torch.tensor([[1, 2]]), "must be 1-D"), (torch.tensor(3), "must be 1-D"), ([True], "must be integers"),
     (torch.tensor([1, 2], dtype=torch.float16), "dtype torch.float16")],
    ids=["empty_list", "empty_tensor", "none", "float_scalar", "huge", "2d", "0d", "bool", "half"],
)
def test_bad_labels(model: ConditionalGAN, labels: object, expected: str) -> None:
    with pytest.raises(ValueError, match=expected.replace("[", r"\[")):
        model.sample(labels)  # type: ignore[arg-type]


def test_labels_and_latents_the_api_accepts(model: ConditionalGAN) -> None:
    import numpy as np

    assert model.sample(np.array([3, 4])).shape == (2, 1, 28, 28)  # numpy integers
    assert model.sample(torch.tensor([3, 4], dtype=torch.uint8)).shape == (2, 1, 28, 28)
    z = torch.randn(2, 8, dtype=torch.float64)  # cast to the model's dtype rather than a matmul dtype error
    out = model(z, [3, 4])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(z.float(), [3, 4]))


@pytest.mark.parametrize(
    ("z", "expected"),
    [(torch.randn(3, 8), r"shape \[2, 8\]"), (torch.randn(2, 9), r"shape \[2, 8\]"), (torch.randn(2, 8, 1), "shape"),
     (torch.zeros(2, 8, dtype=torch.long), "float tensor"), ([[0.0] * 8] * 2, "float tensor")],
)
def test_bad_latents(model: ConditionalGAN, z: object, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        model(z, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=expected):
        model.sample([1, 2], z=z)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 1, 32, 32), (2, 28, 28), (2, 1, 28, 28, 1)])
def test_images_of_wrong_shape_or_channels_into_d(model: ConditionalGAN, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"images must have shape \[batch, 1, 28, 28\]"):
        model.discriminator(torch.zeros(shape), torch.tensor([0, 1]))
