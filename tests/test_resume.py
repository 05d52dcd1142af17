"""Exact resume: an interrupted run continued from its checkpoint ends with the same weights as an uninterrupted one."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from cgan_lightning import ConditionalGAN, InterferenceTest, MNISTDataModule
from cgan_lightning.metrics.classifier import MNISTClassifier, save_classifier
from cgan_lightning.nn.mlp import MLPDiscriminator, MLPGenerator
from cgan_lightning.plugins.checkpoint_io import AtomicCheckpointIO
from cgan_lightning.utilities.training_rng import TrainingRNG


def _model(seed: int) -> ConditionalGAN:
    seed_everything(seed)
    return ConditionalGAN(
        latent_dim=8,
        generator=partial(MLPGenerator, hidden_dims=(16, 32)),  # with BatchNorm: its buffers must resume too
        discriminator=partial(MLPDiscriminator, hidden_dims=(16,)),
        ema_decay=0.9,
    )


def _classifier(root: Path) -> Path:
    path = root / "classifier.pt"
    if not path.exists():
        torch.manual_seed(0)
        save_classifier(MNISTClassifier(), path)
    return path


def _fit(data_dir: Path, root: Path, max_epochs: int, seed: int = 0, ckpt_path: Path | None = None,
         every_n_train_steps: int | None = None) -> tuple[ConditionalGAN, Trainer]:
    model = _model(seed)
    # Its fixed latents are drawn from `seed`: a resumed run (another seed) must get them from the checkpoint.
    interference = InterferenceTest(n_styles=2, seed=seed, classifier=_classifier(root))
    callbacks = [interference, ModelCheckpoint(dirpath=root / "ckpt", filename="epoch={epoch:03d}",
                                               auto_insert_metric_name=False, save_last=True, save_top_k=-1,
                                               every_n_epochs=1)]
    if every_n_train_steps:
        callbacks.append(ModelCheckpoint(dirpath=root / "steps", filename="step={step:04d}",
                                         auto_insert_metric_name=False, save_top_k=-1,
                                         every_n_train_steps=every_n_train_steps))
    trainer = Trainer(
        default_root_dir=root, max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=2, num_sanity_val_steps=0,
        callbacks=callbacks, plugins=[AtomicCheckpointIO()],
    )
    # The default weights_only=True: the partial() factories are recorded as plain class-config dicts.
    trainer.fit(model, MNISTDataModule(str(data_dir), download=False, batch_size=32), ckpt_path=ckpt_path)
    return model, trainer


def _assert_same_state(a: ConditionalGAN, b: ConditionalGAN, trainer_a: Trainer, trainer_b: Trainer) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    assert any(k.startswith("generator_ema.") for k in state_a)
    for key in state_a:  # G, D, the EMA copy and BatchNorm buffers
        torch.testing.assert_close(state_b[key], state_a[key], rtol=0, atol=1e-6, msg=f"{key} differs")
    for opt_a, opt_b in zip(trainer_a.optimizers, trainer_b.optimizers, strict=True):  # both Adams' moments
        for p_state_a, p_state_b in zip(opt_a.state_dict()["state"].values(), opt_b.state_dict()["state"].values(),
                                        strict=True):
            for name in p_state_a:
                torch.testing.assert_close(p_state_b[name], p_state_a[name], rtol=0, atol=1e-6)
    assert trainer_b.global_step == trainer_a.global_step
    assert trainer_b.current_epoch == trainer_a.current_epoch
    latents_a, latents_b = (next(c for c in t.callbacks if isinstance(c, InterferenceTest)).latents
                            for t in (trainer_a, trainer_b))
    assert torch.equal(latents_a, latents_b)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, fake_mnist_session_dir: Path):
    """Two uninterrupted epochs, checkpointing every epoch and every 3 batches (6 optimizer steps)."""
    root = tmp_path_factory.mktemp("straight")
    model, trainer = _fit(fake_mnist_session_dir, root, max_epochs=2, every_n_train_steps=6)
    return model, trainer, root


def test_end_of_epoch_resume_matches_uninterrupted_run(straight, fake_mnist_session_dir: Path, tmp_path: Path):
    model_a, trainer_a, _ = straight
    first, _ = _fit(fake_mnist_session_dir, tmp_path, max_epochs=1)
    last = tmp_path / "ckpt" / "last.ckpt"
    assert last.is_file() and (tmp_path / "ckpt" / "epoch=000.ckpt").is_file()
    # A different seed: everything that matters must come from the checkpoint, the training RNG included.
    model_b, trainer_b = _fit(fake_mnist_session_dir, tmp_path, max_epochs=2, seed=1234, ckpt_path=last)
    _assert_same_state(model_a, model_b, trainer_a, trainer_b)
    assert (tmp_path / "ckpt" / "epoch=001.ckpt").is_file()


def test_mid_epoch_resume_continues_the_data_order(straight, fake_mnist_session_dir: Path, tmp_path: Path):
    model_a, trainer_a, root = straight
    mid = root / "steps" / "step=0006.ckpt"  # after batch 3 of 7 in epoch 0
    state = torch.load(mid, weights_only=False)
    loader_state = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert [{k: v for k, v in s.items() if k in ("epoch", "position")} for s in loader_state] == [
        {"epoch": 0, "position": 3}]
    model_b, trainer_b = _fit(fake_mnist_session_dir, tmp_path, max_epochs=2, seed=99, ckpt_path=mid)
    _assert_same_state(model_a, model_b, trainer_a, trainer_b)


def test_resume_without_the_rng_state_diverges(straight, fake_mnist_session_dir: Path, tmp_path: Path):
    """The test above is sensitive: dropping the saved training RNG state makes the resumed weights differ."""
    model_a, _, root = straight
    ckpt = torch.load(root / "ckpt" / "epoch=000.ckpt", weights_only=True)
    assert not any(k.startswith("RNGStateCheckpoint") for k in ckpt["callbacks"])  # no global RNG is kept
    del ckpt["training_rng"]
    stripped = tmp_path / "no_rng.ckpt"
    torch.save(ckpt, stripped)
    model_b, _ = _fit(fake_mnist_session_dir, tmp_path, max_epochs=2, seed=1234, ckpt_path=stripped)
    diff = max((model_a.generator.state_dict()[k].float() - v.float()).abs().max().item()
               for k, v in model_b.generator.state_dict().items())
    assert diff > 1e-4


def test_training_rng_state_round_trips_through_a_checkpoint(straight, fake_mnist_session_dir: Path) -> None:
    """The checkpoint holds the module's generator state at save time, and loading it restarts from exactly it."""
    model_a, trainer_a, root = straight
    saved = torch.load(root / "ckpt" / "last.ckpt", weights_only=True)["training_rng"]["states"]
    assert len(saved) == 1 and saved[0].dtype == torch.uint8
    assert torch.equal(saved[0], model_a.training_rng.state())  # nothing drawn after the last save
    fresh = _model(seed=5)
    fresh.on_load_checkpoint(torch.load(root / "ckpt" / "last.ckpt", weights_only=True))
    fresh.training_rng.start(torch.device("cpu"))
    assert torch.equal(fresh.training_rng.state(), saved[0])
    # Without a loaded state it is seeded from torch.initial_seed(): seed_everything(s) decides the stream.
    draws = []
    for _ in range(2):
        seed_everything(5)
        rng = TrainingRNG()
        rng.start(torch.device("cpu"))
        draws.append(torch.randn(3, generator=rng.generator))
    assert torch.equal(draws[0], draws[1])
    # A second fit of the same model continues its stream instead of replaying the first fit's noise.
    rng.start(torch.device("cpu"))
    assert not torch.equal(torch.randn(3, generator=rng.generator), draws[0])


def test_training_rng_accepts_states_that_are_views_of_one_storage() -> None:
    """DDP gathers the ranks' states into one tensor; its rows must load (torch's set_state crashes on such views)."""
    streams = [torch.Generator().manual_seed(s).get_state() for s in (1, 2)]
    stacked = torch.stack(streams).unbind(0)  # row 1 is a view at offset 5056 of a shared storage
    checkpoint: dict[str, object] = {}
    rng = TrainingRNG()
    rng.save(checkpoint, stacked)
    for rank in (0, 1):
        restored = TrainingRNG()
        restored.load(checkpoint)
        restored.start(torch.device("cpu"), rank=rank, world_size=2)
        assert torch.equal(restored.state(), streams[rank])
    restored = TrainingRNG()
    restored.load({"training_rng": {"states": list(stacked)}})  # views straight from a loaded file
    restored.start(torch.device("cpu"), rank=1, world_size=2)
    assert torch.equal(restored.state(), streams[1])
