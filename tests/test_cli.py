"""The cgan-lightning command: every shipped config trains, configs print and parse, errors are the CLI's own."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import benchmark_module

from cgan_lightning.cli.lightning_cli import main

#: The `cgan-lightning fit` configs; sweep.yaml is a W&B sweep file (tests/test_sweep.py runs it).
EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[1] / "examples").glob("*.yaml")
                  if p.name != "sweep.yaml")
#: The MNIST-family configs (no data class_path); the others are fitted in test_own_data.py.
MNIST_EXAMPLES = [p for p in EXAMPLES if "class_path" not in (yaml.safe_load(p.read_text()).get("data") or {})]


def test_examples_exist() -> None:
    assert {"mnist.yaml", "reference.yaml", "quick.yaml"} <= {p.name for p in EXAMPLES}


def test_main_job_config_is_the_recommended_design() -> None:
    # README's main job, `cgan-lightning fit --config examples/mnist.yaml`, trains the best-quality design.
    config = yaml.safe_load((EXAMPLES[0].parent / "mnist.yaml").read_text())
    model = config["model"]
    assert model["generator"]["class_path"].endswith("DCGANGenerator")
    assert model["generator"]["init_args"]["conditioning"] == "cbn"
    assert model["discriminator"]["class_path"].endswith("ACGANDiscriminator")
    assert model["discriminator"]["init_args"]["conditioning"] == "projection"
    assert model["discriminator"]["init_args"]["feature_critic"] == "mnist"
    assert model["loss"] == "hinge" and model["ema_decay"] == 0.995 and model["mode_seeking_weight"] == 0.3
    assert model["g_steps_per_batch"] == 2 and model["lr_decay"] == 0.5 and model["atypical_weighting"] == 0.25
    assert model["sample_latent_scale"] == 1.05 and model["sample_min_class_prob"] == 0.7
    assert model["class_moment_weight"] == 35.0
    assert model["class_covariance_weight"] == 12.0 and model["class_covariance_rank"] == 8
    assert model["generator"]["init_args"]["channels_last"] and model["discriminator"]["init_args"]["channels_last"]
    assert model["optimizer_g"]["init_args"]["lr"] == model["optimizer_d"]["init_args"]["lr"] == 0.003
    assert config["trainer"]["max_epochs"] == 20 and config["data"]["batch_size"] == 16


def _quality_runs() -> Any:
    return benchmark_module("quality_runs")


@pytest.mark.parametrize("variant", ["recommended", "recommended_g3", "recommended_no_covariance",
                                     "recommended_untilted", "recommended_nchw", "recommended_channels_last",
                                     "recommended_lr_decay",
                                     "recommended_constant_lr", "recommended_g1", "plain", "plain_critic",
                                     "plain_mode_seeking", "baseline", "critic", "lr3e3", "mode_seeking",
                                     "res_blocks", "wide", "all", "extra"])
def test_every_quality_variant_parses_with_the_evidence_bundle(variant: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # benchmarks/quality_runs.py's commands: a variant's configs, then the evidence fragment, then its other arguments.
    quality_runs = _quality_runs()
    extra = ["--config", "examples/mnist.yaml", "--trainer.callbacks+=lightning.pytorch.callbacks.LearningRateMonitor"]
    variant_args = extra if variant == "extra" else quality_runs.VARIANTS[variant]
    fragment = tmp_path / "evidence.yaml"
    fragment.write_text(quality_runs.evidence_fragment(20))
    args = argparse.Namespace(data_dir=str(tmp_path), epochs=20)
    command = quality_runs.library_command(variant_args, 1, args, tmp_path, fragment)
    with pytest.raises(SystemExit) as exit_info:
        main([*command[command.index("fit"):], "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    callbacks = {c["class_path"].rsplit(".", 1)[-1] for c in config["trainer"]["callbacks"]}
    assert {"PerClassFID", "SampleQuality", "ClassificationAccuracyScore"} <= callbacks
    assert ("LearningRateMonitor" in callbacks) == (variant == "extra")
    lr, batch = config["model"]["optimizer_g"]["init_args"]["lr"], config["data"]["init_args"]["batch_size"]
    recommended = ("recommended", "recommended_g3", "recommended_no_covariance", "recommended_untilted",
                   "recommended_nchw",
                   "recommended_channels_last",
                   "recommended_lr_decay", "recommended_constant_lr", "recommended_g1")
    at_3e3_16 = (*recommended, "plain", "plain_critic", "plain_mode_seeking", "extra")
    assert (lr, batch) == ((0.003, 16) if variant in at_3e3_16 else {"lr3e3": (0.003, 32)}.get(variant, (0.001, 32)))
    # The recommended config's critic and mode-seeking term: only where the ablation keeps or adds them.
    critic = config["model"]["discriminator"]["init_args"].get("feature_critic")
    assert (critic == "mnist") == (variant in (*recommended, "plain_critic", "critic", "extra"))
    mode_seeking = config["model"]["mode_seeking_weight"]
    assert mode_seeking == {**dict.fromkeys(recommended, 0.3), "extra": 0.3, "plain_mode_seeking": 0.3,
                            "mode_seeking": 1.0, "all": 0.0}.get(variant, 0.0)
    # Two G updates per batch in the shipped config, three in the variants measured before it; the ablation's ran
    # at one.
    three = ("recommended_g3", "recommended_no_covariance", "recommended_untilted", "recommended_nchw",
             "recommended_channels_last",
             "recommended_lr_decay", "recommended_constant_lr")
    assert config["model"]["g_steps_per_batch"] == (2 if variant in ("recommended", "extra") else
                                                   3 if variant in three else 1)
    # The learning-rate decay, atypical weighting and sampling of the shipped config; the variants measured before
    # them ran without.
    model = config["model"]
    # Its training until now, at two or three G updates.
    latest = ("recommended", "recommended_g3", "recommended_no_covariance", "recommended_untilted", "extra")
    decayed = (*latest, "recommended_nchw", "recommended_channels_last", "recommended_lr_decay")
    assert model["lr_decay"] == (0.5 if variant in decayed else 0.0)
    shipped = variant in (*latest, "recommended_nchw", "recommended_channels_last")
    assert model["atypical_weighting"] == (0.25 if shipped else 0.0)
    # Latents 1.05 times wider in the shipped config, 1.1 in the variants measured before it, 1 before rejection.
    latent_scale = 1.05 if variant in latest else 1.1 if shipped else 1.0
    assert (model["sample_latent_scale"], model["sample_min_class_prob"]) == (latent_scale, 0.7 if shipped else 0.0)
    # The per-class moment matching and channels-last networks of the shipped config; the variants measured before
    # them ran without (channels-last networks alone in their own variant).
    assert model["class_moment_weight"] == (35.0 if variant in ("recommended", "recommended_g3", "extra") else
                                            30.0 if variant in latest else 0.0)
    channels_last = variant in (*latest, "recommended_channels_last")
    for network in ("generator", "discriminator"):
        assert model[network]["init_args"].get("channels_last", False) == channels_last
    # The sampling tilt of the shipped config; every variant measured before it ran without.
    tilted = ("recommended", "recommended_g3", "recommended_no_covariance", "extra")
    assert model["sample_tilt_temperature"] == (6.0 if variant in tilted else 0.0)
    # The covariance term of the shipped config; every variant measured before it ran without.
    assert model["class_covariance_weight"] == (12.0 if variant in ("recommended", "recommended_g3", "extra")
                                                else 0.0)


@pytest.mark.parametrize("config", MNIST_EXAMPLES, ids=lambda p: p.stem)
def test_every_config_fits_under_fast_dev_run(config: Path, fake_mnist_session_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    main(["fit", "--config", str(config), "--trainer.fast_dev_run=true", "--trainer.accelerator=cpu",
          "--trainer.devices=1", f"--trainer.default_root_dir={tmp_path / 'run'}",
          f"--data.data_dir={fake_mnist_session_dir}", "--data.download=false"])


def test_print_config_is_complete_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXAMPLES[0].parent / "reference.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["latent_dim"] == 100
    assert config["model"]["optimizer_g"]["init_args"]["lr"] == 0.0002
    assert config["model"]["generator"]["class_path"].endswith("MLPGenerator")
    assert config["data"]["class_path"].endswith("MNISTDataModule")  # the default data module
    assert config["data"]["init_args"]["batch_size"] == 64
    assert config["trainer"]["max_epochs"] == 20
    assert config["checkpoint"]["filename"] == "last" and config["checkpoint"]["save_top_k"] == 1


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("--model.no_such_key=1", "no_such_key"), ("--data.batch_size=many", "batch_size")],
)
def test_bad_config_gets_the_cli_error(flag: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXAMPLES[0].parent / "quick.yaml"), flag])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_an_unknown_subcommand_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "cgan-lightning: error: argument subcommand: invalid choice: 'predict' (choose from 'fit', 'validate', 'test', "
        "'sample', 'export', 'train-classifier') (see cgan-lightning --help)")


def test_cli_checkpoint_loads_in_a_fresh_process(fake_mnist_session_dir: Path, tmp_path: Path) -> None:
    main(["fit", "--config", str(EXAMPLES[0].parent / "quick.yaml"), "--trainer.accelerator=cpu",
          "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
          f"--trainer.default_root_dir={tmp_path}", f"--data.data_dir={fake_mnist_session_dir}",
          "--data.download=false", "--model.generator.init_args.hidden_dims=[16, 32]"])
    (ckpt,) = tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    script = (
        "import sys, torch\n"
        "from cgan_lightning import ConditionalGAN\n"
        "m = ConditionalGAN.load_from_checkpoint(sys.argv[1])\n"
        "x = m.sample([3, 3, 7], generator=torch.Generator().manual_seed(0))\n"
        "assert x.shape == (3, 1, 28, 28), x.shape\n"
        "print(m.num_classes, [l.out_features for l in m.generator.model if hasattr(l, 'out_features')])\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(ckpt)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "10 [16, 32, 784]"
