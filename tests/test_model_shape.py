"""The model owns only the model: no forced callbacks, hyperparameters that load with weights_only=True, networks
typed by the package's base classes, the evaluation protocol runnable under Trainer.validate, @override on hooks."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer, seed_everything
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import Strategy

import cgan_lightning
from cgan_lightning import (
    ConditionalGAN,
    DCGANDiscriminator,
    DCGANGenerator,
    InterferenceTest,
    MLPDiscriminator,
    MLPGenerator,
    MNISTDataModule,
    PerClassFID,
    SamplerModule,
    SaveOnInterrupt,
)
from cgan_lightning.cli.lightning_cli import build_cli, main
from cgan_lightning.metrics.classifier import MNISTClassifier, save_classifier
from cgan_lightning.utilities.class_configs import from_class_config, to_class_config

TINY_DCGAN_G = partial(DCGANGenerator, base_channels=8)
TINY_DCGAN_D = partial(DCGANDiscriminator, base_channels=8)


def _trainer(root: Path, **kwargs: object) -> Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                    enable_model_summary=False, default_root_dir=root, num_sanity_val_steps=0)
    return Trainer(**{**defaults, **kwargs})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ no forced callbacks
def test_the_module_forces_no_callbacks(fake_mnist_dir: Path, tmp_path: Path) -> None:
    assert ConditionalGAN.configure_callbacks is LightningModule.configure_callbacks
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0, enable_checkpointing=False)
    trainer.fit(ConditionalGAN(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16,)),
                               discriminator=partial(MLPDiscriminator, hidden_dims=(16,))),
                MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    assert not any(isinstance(c, SaveOnInterrupt) for c in trainer.callbacks)
    assert not any(type(c).__name__ == "RNGStateCheckpoint" for c in trainer.callbacks)


# --------------------------------------------------------------------------- weights_only checkpoints
def test_python_built_model_loads_with_the_default_weights_only(fake_mnist_dir: Path, tmp_path: Path) -> None:
    seed_everything(0)
    model = ConditionalGAN(latent_dim=8, generator=TINY_DCGAN_G, discriminator=TINY_DCGAN_D,
                           optimizer_g=partial(torch.optim.SGD, lr=0.01, momentum=0.5), optimizer_d=torch.optim.Adam)
    assert model.hparams["generator"] == {"class_path": "cgan_lightning.nn.dcgan.DCGANGenerator",
                                          "init_args": {"base_channels": 8}}
    assert model.hparams["optimizer_g"] == {"class_path": "torch.optim.sgd.SGD",
                                            "init_args": {"lr": 0.01, "momentum": 0.5}}
    assert model.hparams["optimizer_d"] == {"class_path": "torch.optim.adam.Adam"}
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0, enable_checkpointing=False)
    trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    assert isinstance(trainer.optimizers[0], torch.optim.SGD) and trainer.optimizers[0].defaults["momentum"] == 0.5
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    torch.load(path, weights_only=True)  # no pickled callables anywhere in the file
    loaded = ConditionalGAN.load_from_checkpoint(path)  # torch's default weights_only=True
    assert isinstance(loaded.generator, DCGANGenerator) and loaded.generator.state_dict().keys() == \
        model.generator.state_dict().keys()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded.sample([0, 4, 9], z=z), model.sample([0, 4, 9], z=z))
    assert loaded.configure_optimizers()[0].defaults["momentum"] == 0.5  # the optimizer is rebuilt too


def test_unrecordable_factory_is_named_on_load_and_can_be_passed_again(tmp_path: Path) -> None:
    model = ConditionalGAN(latent_dim=8, generator=lambda *shape: MLPGenerator(*shape, hidden_dims=(16,)))
    assert model.hparams["generator"].startswith("<not recordable:")
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": "2.6.0"}, path)
    with pytest.raises(ValueError, match=r"generator was recorded as <not recordable: .*pass generator=\.\.\. again"):
        ConditionalGAN.load_from_checkpoint(path)
    loaded = ConditionalGAN.load_from_checkpoint(path, generator=partial(MLPGenerator, hidden_dims=(16,)))
    assert torch.equal(loaded.generator.model[0].weight, model.generator.model[0].weight)


def test_class_configs_round_trip_and_refuse_what_they_cannot_rebuild() -> None:
    config = to_class_config(partial(MLPGenerator, hidden_dims=(16, 32)))
    assert config == {"class_path": "cgan_lightning.nn.mlp.MLPGenerator", "init_args": {"hidden_dims": [16, 32]}}
    rebuilt = from_class_config(config, "generator")
    assert isinstance(rebuilt, partial) and rebuilt.func is MLPGenerator
    assert to_class_config(None) is None and from_class_config(None, "generator") is None
    assert to_class_config(partial(MLPGenerator, 8)).startswith("<not recordable")  # positional: names unknown
    with pytest.raises(ValueError, match="import its module before loading"):
        from_class_config({"class_path": "not_imported_anywhere.Generator"}, "generator")
    with pytest.raises(ValueError, match="'class_path'"):
        from_class_config({"init_args": {}}, "generator")
    # A class of the script that ran cannot be imported by the process that loads: the message says where to put it.
    script_class = type("ScriptGenerator", (MLPGenerator,), {"__module__": "__main__"})
    recorded = to_class_config(partial(script_class, hidden_dims=(16,)))
    assert isinstance(recorded, str) and recorded.startswith("<not recordable")
    with pytest.raises(ValueError, match=r"defined in the script that ran \(__main__\), which another process cannot "
                                         r"import: define it in a module of its own"):
        from_class_config(recorded, "generator")
    with pytest.raises(ValueError) as lambda_err:  # other placeholders do not blame __main__
        from_class_config(to_class_config(partial(MLPGenerator, 8)), "generator")
    assert "__main__" not in str(lambda_err.value)


# ------------------------------------------------------------------------------------ network typing
def test_cli_lists_only_the_packages_networks_and_refuses_other_modules(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    generator_help = text[text.index("--model.generator GENERATOR"):text.index("--model.discriminator DISCRIMINATOR")]
    assert "ConditionalGenerator" in generator_help  # typed by the package's base class, not nn.Module
    assert "torch.nn" not in text and "torchmetrics" not in text
    assert len(text.splitlines()) <= 300
    cli = build_cli(["--model.generator=cgan_lightning.nn.dcgan.DCGANGenerator",
                     "--model.generator.init_args.base_channels=8", "--trainer.logger=false"], run=False)
    assert isinstance(cli.model.generator, DCGANGenerator)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.generator=torch.nn.Linear"])
    assert exit_info.value.code == 2  # a parser error naming the argument, not a traceback
    assert "model.generator" in capsys.readouterr().err


# ------------------------------------------------------------------------------- interrupt callback
def test_cli_adds_save_on_interrupt_unless_turned_off(fake_mnist_dir: Path, tmp_path: Path) -> None:
    args = [f"--data.data_dir={fake_mnist_dir}", "--data.download=false", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false"]
    on = build_cli(args, run=False)
    assert sum(isinstance(c, SaveOnInterrupt) for c in on.trainer.callbacks) == 1
    off = build_cli([*args, "--save_on_interrupt=false"], run=False)
    assert not any(isinstance(c, SaveOnInterrupt) for c in off.trainer.callbacks)


# ------------------------------------------------------------------------------- evaluation protocol
class _OutsideSampler:
    """Offers exactly the documented protocol and nothing else (not a LightningModule)."""

    num_classes = 10
    latent_dim = 4

    def __init__(self) -> None:
        self.net = torch.nn.Linear(4 + 10, 28 * 28)

    def sample(self, labels: torch.Tensor, z: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        labels = torch.as_tensor(labels)
        z = torch.randn(len(labels), 4, generator=generator) if z is None else z
        x = torch.cat([z, torch.nn.functional.one_hot(labels, 10).float()], 1)
        return torch.tanh(self.net(x)).view(-1, 1, 28, 28)


def test_trainer_validate_runs_the_callbacks_on_any_sampler(fake_mnist_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_classifier(MNISTClassifier(feature_dim=32), tmp_path / "classifier.pt")
    fid = PerClassFID(samples_per_class=4, batch_size=20, classifier=tmp_path / "classifier.pt", seed=0)
    trainer = _trainer(tmp_path, callbacks=[fid])
    (metrics,) = trainer.validate(SamplerModule(_OutsideSampler()),
                                  datamodule=MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=50))
    assert torch.isfinite(torch.tensor(metrics["val/fid/mean"]))
    assert {f"val/fid/class_{k}" for k in range(10)} <= metrics.keys()
    (tested,) = trainer.test(SamplerModule(_OutsideSampler()),
                             datamodule=MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=50))
    assert "test/fid/mean" in tested
    with pytest.raises(TypeError, match="lacks num_classes, latent_dim"):
        SamplerModule(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


class _RedrawingSampler(_OutsideSampler):
    """The protocol plus what ConditionalGAN and PretrainedGenerator offer beyond it: redraws and class names."""

    class_names = [f"class_{k}" for k in range(10)]

    def __init__(self) -> None:
        super().__init__()
        self.redraws: list[bool] = []

    def sample(self, labels: torch.Tensor, z: torch.Tensor | None = None, generator: torch.Generator | None = None,
               redraw: bool = True) -> torch.Tensor:
        self.redraws.append(redraw)
        return super().sample(labels, z=z, generator=generator)


def test_sampler_module_passes_redraw_and_class_names_on(fake_mnist_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    sampler = _RedrawingSampler()
    module = SamplerModule(sampler)
    assert module.class_names == sampler.class_names  # the callbacks' tables, captions and class checks read them
    trainer = _trainer(tmp_path, callbacks=[InterferenceTest(n_styles=2)])
    trainer.validate(module, datamodule=MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=50))
    # The interference grid renders each image from its own z: no redraws, as evaluate_generator asks.
    assert sampler.redraws == [False]
    SamplerModule(_OutsideSampler()).sample([1, 2], z=torch.zeros(2, 4), redraw=False)  # a sampler without redraw


def test_test_step_logs_under_test(fake_mnist_dir: Path, tmp_path: Path) -> None:
    model = ConditionalGAN(latent_dim=8, generator=partial(MLPGenerator, hidden_dims=(16,)),
                           discriminator=partial(MLPDiscriminator, hidden_dims=(16,)))
    (metrics,) = _trainer(tmp_path, limit_test_batches=2).test(
        model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16))
    assert set(metrics) == {"test/d_real", "test/d_fake"}


# ----------------------------------------------------------------------------------------- @override
LIGHTNING_BASES = (Callback, LightningModule, LightningDataModule, Strategy, CheckpointIO, LightningCLI, Logger)


def test_every_overridden_lightning_method_carries_override() -> None:
    missing = []
    for info in pkgutil.walk_packages(cgan_lightning.__path__, "cgan_lightning."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__ == module.__name__ and issubclass(cls, LIGHTNING_BASES)):
                continue
            bases = [b for b in cls.__mro__[1:] if b.__module__.startswith(("lightning.", "torch."))]
            for name, value in vars(cls).items():
                func = value.__func__ if isinstance(value, classmethod | staticmethod) else value
                if callable(func) and not name.startswith("__") and any(name in vars(b) for b in bases):
                    if not getattr(func, "__override__", False):
                        missing.append(f"{cls.__qualname__}.{name}")
    assert not missing, missing
