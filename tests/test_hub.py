"""Export a generator, reload it with ``PretrainedGenerator.from_pretrained`` (offline), sample and evaluate it."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cgan_lightning import ConditionalGAN, evaluate_generator
from cgan_lightning.cli.lightning_cli import main
from cgan_lightning.hub import PretrainedGenerator, export_generator, pretrained_from_gan
from cgan_lightning.hub.export import generator_spec
from cgan_lightning.hub.model_card import evidence_markdown
from cgan_lightning.metrics import check_sampler
from cgan_lightning.nn.dcgan import DCGANGenerator

QUICK_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "quick.yaml"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _tiny_gan(ema: bool = True) -> ConditionalGAN:
    torch.manual_seed(0)
    model = ConditionalGAN(latent_dim=8, generator=functools.partial(DCGANGenerator, base_channels=4),
                           ema_decay=0.5 if ema else None)
    if ema:  # make the EMA differ from the raw weights, so the test sees which one was exported
        with torch.no_grad():
            for p in model.generator.parameters():
                p.add_(0.1)
    return model


def _real_batches(n: int = 40) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.arange(n) % 10)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ConditionalGAN, Path]:
    model = _tiny_gan()
    out = tmp_path_factory.mktemp("export") / "gen"
    scores = {"val/fid/class_0": 12.5, "val/acc/class_0": 0.75, "val/fid/mean": 12.5, "interference/acc": 0.5}
    export_generator(model, out, scores=scores)
    return model, out


def test_export_writes_hub_files_and_reloads_the_ema_weights(exported: tuple[ConditionalGAN, Path]) -> None:
    model, out = exported
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", "README.md", "interference.png",
                                              "training_config.yaml", "evaluation.json"}
    config = json.loads((out / "config.json").read_text())
    assert config["generator"] == {"class_path": "cgan_lightning.nn.dcgan.DCGANGenerator",
                                   "init_args": {"base_channels": 4}}
    assert (config["num_classes"], config["latent_dim"], config["image_shape"]) == (10, 8, [1, 28, 28])
    assert config["class_names"] == [str(k) for k in range(10)] and config["library_version"]
    weights = load_file(out / "model.safetensors")
    assert not any("ema" in key or "discriminator" in key for key in weights)  # the generator alone
    g = PretrainedGenerator.from_pretrained(out)
    z, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 9])
    assert torch.equal(g.sample(labels, z=z), model.sample(labels, z=z, ema=True))
    assert not torch.equal(g.sample(labels, z=z), model.sample(labels, z=z, ema=False))
    draw = g.sample([3, 7], generator=torch.Generator().manual_seed(0))
    assert draw.shape == (2, 1, 28, 28) and torch.equal(draw, g.sample([3, 7],
                                                                         generator=torch.Generator().manual_seed(0)))


def test_raw_export_and_model_without_ema(tmp_path: Path) -> None:
    model = _tiny_gan()
    z, labels = torch.randn(4, 8), torch.tensor([5, 6, 7, 8])
    raw = pretrained_from_gan(model, ema=False)
    assert torch.equal(raw.sample(labels, z=z), model.sample(labels, z=z, ema=False))
    plain = _tiny_gan(ema=False)
    assert torch.equal(pretrained_from_gan(plain).sample(labels, z=z), plain.sample(labels, z=z))
    with pytest.raises(ValueError, match="keeps no EMA"):
        pretrained_from_gan(plain, ema=True)


def test_channels_last_generator_exports_and_reloads_channels_last(tmp_path: Path) -> None:
    # safetensors stores contiguous tensors: the export must not fail on channels-last weights, and the reload keeps
    # the order the config asks for.
    spec = {"class_path": "cgan_lightning.nn.dcgan.DCGANGenerator", "init_args": {"base_channels": 4,
                                                                                 "channels_last": True}}
    saved = PretrainedGenerator(spec, 10, 8, (1, 28, 28)).eval()
    saved.save_pretrained(tmp_path / "cl")
    loaded = PretrainedGenerator.from_pretrained(tmp_path / "cl")
    z, labels = torch.randn(4, 8), torch.tensor([0, 3, 6, 9])
    assert torch.equal(loaded.sample(labels, z=z), saved.sample(labels, z=z))
    assert loaded.generator.upsample[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_class_names_from_the_model_reach_config_and_labels(tmp_path: Path) -> None:
    model = _tiny_gan()
    model.class_names = [f"digit {k}" for k in range(10)]  # as ConditionalGAN(class_names=...) sets it
    export_generator(model, tmp_path / "named")
    g = PretrainedGenerator.from_pretrained(tmp_path / "named")
    assert g.class_names[3] == "digit 3" and g.label_ids(["digit 7", 2]) == [7, 2]
    with pytest.raises(ValueError, match="unknown label"):
        g.label_ids(["cat"])


def test_generator_spec_from_a_cli_config_dict_a_class_and_none() -> None:
    model = _tiny_gan()
    model.hparams["generator"] = {"class_path": "cgan_lightning.DCGANGenerator", "init_args": {"base_channels": 4}}
    assert generator_spec(model)["class_path"] == "cgan_lightning.DCGANGenerator"
    model.hparams["generator"] = DCGANGenerator
    assert generator_spec(model) == {"class_path": "cgan_lightning.nn.dcgan.DCGANGenerator", "init_args": {}}
    model.hparams["generator"] = None
    assert generator_spec(model)["class_path"] == "cgan_lightning.nn.mlp.MLPGenerator"
    model.hparams["generator"] = lambda *a: None
    with pytest.raises(ValueError, match="cannot export a generator built by"):
        generator_spec(model)


def test_pretrained_generator_drives_evaluate_generator(exported: tuple[ConditionalGAN, Path], tmp_path: Path) -> None:
    g = PretrainedGenerator.from_pretrained(exported[1])
    assert check_sampler(g) is g and g.image_shape == (1, 28, 28)
    scores = evaluate_generator(g, real_batches=_real_batches(), samples_per_class=4, batch_size=40, n_styles=2,
                                traversal_steps=3, output_dir=tmp_path)
    assert "val/fid/mean" in scores and "interference/acc" in scores and (tmp_path / "interference.png").is_file()


def test_card_renders_the_evidence_table(exported: tuple[ConditionalGAN, Path]) -> None:
    card = (exported[1] / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: cgan-lightning" in card
    assert "| 0 | 12.50 | 0.750 |" in card and "| **mean** | 12.50 | - |" in card
    assert "| `interference/acc` | 0.500 |" in card
    assert "![interference grid](interference.png)" in card and "```yaml" in card
    assert "cgan_lightning.nn.dcgan.DCGANGenerator" in card


def test_evidence_table_keeps_metric_families_added_later() -> None:
    text = evidence_markdown({"val/fid/class_0": 1.0, "val/cas/class_0": 0.9, "val/cas/mean": 0.9}, ["zero"])
    assert "| class | FID (lower is better) | cas |" in text and "| 0 (zero) | 1.00 | 0.900 |" in text


def test_export_without_data_says_so_in_the_card(tmp_path: Path) -> None:
    export_generator(_tiny_gan(), tmp_path / "bare")
    card = (tmp_path / "bare" / "README.md").read_text()
    assert "Not measured: no evaluation data was given" in card
    assert not (tmp_path / "bare" / "evaluation.json").exists()


# ------------------------------------------------------------------------------------------------ bad input


class _FolderData:
    """The parts of a data module ``evaluate_generator`` reads, with classes of the caller's choosing."""

    def __init__(self, names: list[str]) -> None:
        self.num_classes, self.class_names = len(names), names

    def setup(self, stage: str) -> None:
        pass

    def val_dataloader(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return _real_batches()


@pytest.mark.parametrize(
    ("names", "message"),
    [(["a", "b", "c", "d"], "the evaluation data has 4 classes but the model draws 10"),
     ([f"class_{k}" for k in range(9, -1, -1)], "the evaluation data's classes ['class_9',")],
    ids=["class_count", "class_names"],
)
def test_evaluation_data_of_other_classes_is_refused(names: list[str], message: str) -> None:
    model = ConditionalGAN(latent_dim=8, generator=functools.partial(DCGANGenerator, base_channels=4),
                           class_names=[f"class_{k}" for k in range(10)])
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluate_generator(model, _FolderData(names), samples_per_class=4, batch_size=40)
    # Given as batches, a label past the model's classes is refused before it reaches the per-class states.
    images, labels = _real_batches()[0]
    with pytest.raises(ValueError, match=r"real labels must lie in 0\.\.9 \(the model's classes\), got 0\.\.10"):
        evaluate_generator(model, real_batches=[(images, labels.clamp(max=9).index_fill(0, torch.tensor([3]), 10))],
                           samples_per_class=4, batch_size=40)


def test_failed_export_leaves_the_earlier_export_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    export_generator(_tiny_gan(), out, scores={"val/fid/mean": 1.0})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match="the evaluation data has 4 classes"):
        export_generator(_tiny_gan(ema=False), out, datamodule=_FolderData(["a", "b", "c", "d"]), samples_per_class=4)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["gen"]  # the staging folder is gone too
    # A second export that succeeds replaces the first one's files, and only those.
    (out / "notes.txt").write_text("mine")
    (out / "traversal.png").write_bytes(b"from an earlier evaluated export")
    export_generator(_tiny_gan(), out, ema=False)
    assert (out / "notes.txt").read_text() == "mine" and not (out / "traversal.png").exists()
    assert (out / "model.safetensors").read_bytes() != before["model.safetensors"]  # raw weights, not the EMA


def test_export_refuses_a_folder_holding_someone_elses_readme(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# my project\n")
    with pytest.raises(FileExistsError, match=r"README.md exists and is not a cgan-lightning model card"):
        export_generator(_tiny_gan(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
    assert (tmp_path / "README.md").read_text() == "# my project\n"


def test_missing_directory_and_missing_files_name_the_file(exported: tuple[ConditionalGAN, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="no such directory"):
        PretrainedGenerator.from_pretrained(tmp_path / "absent")
    monkeypatch.chdir(tmp_path)  # a relative folder with the slash a shell completes: a folder, not a repo id
    with pytest.raises(FileNotFoundError, match="exported_typo: no such directory"):
        PretrainedGenerator.from_pretrained("exported_typo/")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/config\.json is missing"):
        PretrainedGenerator.from_pretrained(tmp_path / "empty")
    partial_dir = tmp_path / "no_weights"
    partial_dir.mkdir()
    (partial_dir / "config.json").write_text((exported[1] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"no_weights/model\.safetensors is missing.*cgan-lightning export"):
        PretrainedGenerator.from_pretrained(partial_dir)


def _copy_export(src: Path, dst: Path, config: dict | None = None) -> Path:
    dst.mkdir()
    (dst / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    (dst / "config.json").write_text(json.dumps(config or json.loads((src / "config.json").read_text())))
    return dst


def test_config_of_another_architecture_is_refused(exported: tuple[ConditionalGAN, Path], tmp_path: Path) -> None:
    src = exported[1]
    bert = _copy_export(src, tmp_path / "bert", {"model_type": "bert", "hidden_size": 768})
    with pytest.raises(ValueError, match="not a cgan-lightning generator config.*bert"):
        PretrainedGenerator.from_pretrained(bert)
    config = json.loads((src / "config.json").read_text())
    config["generator"]["init_args"]["base_channels"] = 8  # another generator than the weights were saved from
    with pytest.raises(ValueError, match="do not fit the generator that config.json describes"):
        PretrainedGenerator.from_pretrained(_copy_export(src, tmp_path / "wider", config))
    config["generator"] = {"class_path": "os.system", "init_args": {}}
    with pytest.raises(ValueError, match="outside cgan_lightning.*trust_code=True"):
        PretrainedGenerator.from_pretrained(_copy_export(src, tmp_path / "foreign", config))


def test_damaged_or_foreign_weights_are_refused(exported: tuple[ConditionalGAN, Path], tmp_path: Path) -> None:
    damaged = _copy_export(exported[1], tmp_path / "damaged")
    (damaged / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        PretrainedGenerator.from_pretrained(damaged)
    other = _copy_export(exported[1], tmp_path / "other")
    save_file({"weight": torch.zeros(3)}, str(other / "model.safetensors"))
    with pytest.raises(ValueError, match="do not fit"):
        PretrainedGenerator.from_pretrained(other)


def test_uncached_repo_id_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError, match="cannot fetch nobody/no-such-generator"):
        PretrainedGenerator.from_pretrained("nobody/no-such-generator")


# ------------------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, fake_mnist_session_dir: Path) -> Path:
    """A real CLI checkpoint (tiny MLP networks, 2 batches, EMA on) beside its config.yaml."""
    root = tmp_path_factory.mktemp("fit")
    main(["fit", "--config", str(QUICK_CONFIG), "--data.data_dir", str(fake_mnist_session_dir),
          "--data.download", "false", "--data.batch_size", "32", "--trainer.default_root_dir", str(root),
          "--trainer.enable_progress_bar", "false", "--trainer.max_epochs", "1",
          "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--model.latent_dim", "8",
          "--model.generator.init_args.hidden_dims", "[16, 32]", "--model.discriminator.init_args.hidden_dims",
          "[16]", "--model.ema_decay", "0.5"])
    return next(root.rglob("last.ckpt"))


def test_cli_export_evaluates_then_sample_pretrained_draws(ckpt: Path, fake_mnist_session_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exported"
    main(["export", "--ckpt_path", str(ckpt), "--out", str(out), "--data_dir", str(fake_mnist_session_dir),
          "--samples_per_class", "4", "--batch_size", "40"])
    assert "with its per-class evidence" in capsys.readouterr().out
    scores = json.loads((out / "evaluation.json").read_text())
    assert {f"val/fid/class_{k}" for k in range(10)} <= set(scores) and (out / "traversal.png").is_file()
    card = (out / "README.md").read_text()
    assert f"| 9 | {scores['val/fid/class_9']:.2f} | {scores['val/acc/class_9']:.3f} |" in card
    assert "seed_everything:" in card  # the run's config.yaml, found beside the checkpoint
    model = ConditionalGAN.load_from_checkpoint(ckpt, map_location="cpu")
    z, labels = torch.randn(3, 8), torch.tensor([1, 2, 3])
    assert torch.equal(PretrainedGenerator.from_pretrained(out).sample(labels, z=z), model.sample(labels, z=z))
    main(["sample", "--pretrained", str(out), "--labels", "3", "7", "--n_per_label", "4", "--out",
          str(tmp_path / "s.pt"), "--seed", "0"])
    drawn = torch.load(tmp_path / "s.pt")
    assert drawn["images"].shape == (8, 1, 28, 28) and drawn["labels"].tolist() == [3] * 4 + [7] * 4


@pytest.mark.parametrize(("args", "message"), [
    (["--ckpt_path", "{tmp}/missing.ckpt", "--out", "{tmp}/o"], "checkpoint not found"),
    (["--ckpt_path", "{ckpt}", "--out", "{tmp}/o", "--data_dir", "{tmp}/nodata"], "no such folder"),
    (["--ckpt_path", "{ckpt}"], "the following arguments are required: --out"),
])
def test_cli_export_errors_are_one_line(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", *(a.format(tmp=tmp_path, ckpt=ckpt) for a in args)])
    assert exit_info.value.code in (1, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cgan-lightning export: error: ") and message in err[0], err


def test_cli_export_refuses_mnist_data_for_a_run_on_other_data(ckpt: Path, fake_mnist_session_dir: Path,
                                                                tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # The run's config.yaml (one folder above checkpoints/) says it trained on a folder of images.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    copied = run / "checkpoints" / "last.ckpt"
    copied.write_bytes(ckpt.read_bytes())
    (run / "config.yaml").write_text("data:\n  class_path: cgan_lightning.data.ImageFolderDataModule\n"
                                     "  init_args: {root: my_images/train}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--ckpt_path", str(copied), "--out", str(tmp_path / "o"), "--data_dir",
              str(fake_mnist_session_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(err) == 1
    assert "this run trained on cgan_lightning.data.ImageFolderDataModule" in err[0] and "export_generator(" in err[0]
    assert not (tmp_path / "o").exists()


def test_cli_sample_pretrained_errors(exported: tuple[ConditionalGAN, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in ((["--pretrained", str(tmp_path)], "config.json is missing"),
                          (["--pretrained", str(exported[1]), "--ema"], "--ema applies to --ckpt_path"),
                          (["--pretrained", str(exported[1]), "--ckpt_path", "x.ckpt"], "not allowed with")):
        with pytest.raises(SystemExit):
            main(["sample", *args, "--labels", "1", "--out", str(tmp_path / "x.png")])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_push_export_to_hub_uploads_the_folder_as_is(exported: tuple[ConditionalGAN, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """No network here: HfApi is replaced by a recorder; the test checks what would be sent."""
    import huggingface_hub

    from cgan_lightning.hub.export import push_export_to_hub

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            pass

        def create_repo(self, **kwargs: object) -> object:
            calls.append(("create_repo", kwargs))
            return type("Repo", (), {"repo_id": kwargs["repo_id"]})()

        def upload_folder(self, **kwargs: object) -> str:
            calls.append(("upload_folder", kwargs))
            return "https://huggingface.co/user/gen/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert push_export_to_hub(exported[1], "user/gen").endswith("/commit/abc")
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[1][1]["folder_path"] == str(exported[1]) and calls[1][1]["repo_type"] == "model"


def test_cli_push_that_fails_offline_says_the_local_export_is_complete(ckpt: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # HF_HUB_OFFLINE=1 (set for every test here): creating the repo fails as it does without network.
    out = tmp_path / "exported"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--ckpt_path", str(ckpt), "--out", str(out), "--push_to_hub", "user/gen"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(err) == 1, err
    assert err[0].startswith(f"cgan-lightning export: error: exported the generator of {ckpt} to {out}")
    assert ", but the upload to user/gen failed (" in err[0] and "hf auth login" in err[0]
    assert PretrainedGenerator.from_pretrained(out).num_classes == 10  # the local export is complete

