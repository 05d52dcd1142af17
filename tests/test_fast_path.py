"""The fast-path options: those that claim exactness change no number; the others stay close and run.

Exact (same seed -> the same weights bit for bit): ``log_every_n_steps``, ``device_resident``. Equal to rounding:
``joint_d_forward``, ``shared_d_backward``, fused Adam (``examples/fast.yaml``), ``compile``. Runs and learns:
``bf16-mixed``.
Speed itself is measured by ``benchmarks/train_throughput.py``, never asserted here.
"""

from __future__ import annotations

import doctest
import re
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from recorders import LossRecorder, ThreadsSeen
from torch import nn

from cgan_lightning import ConditionalGAN, MLPDiscriminator, MLPGenerator, MNISTDataModule, TorchThreads
from cgan_lightning.cli.lightning_cli import build_cli
from cgan_lightning.utilities.row_gradient_scale import loss_ratio_factors

REPO = Path(__file__).resolve().parents[1]
TINY_G = partial(MLPGenerator, hidden_dims=(16, 32))  # has BatchNorm, as the reference G
TINY_D = partial(MLPDiscriminator, hidden_dims=(32,))


def _fit(data_dir: Path, root: Path, seed: int = 3, epochs: int = 1, callbacks: list[Callback] | None = None,
         precision: str | None = None, log_every_n_steps: int = 1, **model_kwargs: object
         ) -> tuple[ConditionalGAN, Trainer]:
    seed_everything(seed)
    model = ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, **model_kwargs)
    trainer = Trainer(default_root_dir=root, max_epochs=epochs, limit_val_batches=0, num_sanity_val_steps=0,
                      accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, callbacks=callbacks or [],
                      log_every_n_steps=log_every_n_steps, **({"precision": precision} if precision else {}))
    # 200 train images in batches of 16: 13 batches, the last one of 8 images.
    trainer.fit(model, MNISTDataModule(str(data_dir), download=False, batch_size=16))
    return model, trainer


def _assert_same_weights(a: ConditionalGAN, b: ConditionalGAN) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _max_weight_difference(a: ConditionalGAN, b: ConditionalGAN, skip: frozenset[str] = frozenset()) -> float:
    sb = b.state_dict()
    return max((v.float() - sb[k].float()).abs().max().item() for k, v in a.state_dict().items() if k not in skip)


def _batch_norm_shadowed(model: ConditionalGAN) -> frozenset[str]:
    """The biases of G's layers that feed a batch norm, and that norm's running mean.

    Batch norm subtracts the batch mean, so such a bias has zero gradient in exact arithmetic: its computed
    gradient is rounding noise, which Adam's normalized steps turn into moves of about ``lr``. Two computations
    equal to rounding can therefore disagree there (and in the running mean that records it), and nowhere else.
    """
    layers = list(model.generator.model)
    return frozenset(key for i, (layer, after) in enumerate(zip(layers, layers[1:], strict=False))
                     if isinstance(layer, nn.Linear) and isinstance(after, nn.BatchNorm1d)
                     for key in (f"generator.model.{i}.bias", f"generator.model.{i + 1}.running_mean"))


# -------------------------------------------------------------------------------------- log_every_n_steps
def test_log_every_n_steps_changes_no_weight_and_logs_window_means(fake_mnist_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    every_batch = LossRecorder()
    model_1, trainer_1 = _fit(fake_mnist_dir, tmp_path / "a", callbacks=[every_batch])

    log_calls: list[int] = []
    original = ConditionalGAN.log_dict

    def counting_log_dict(self: ConditionalGAN, metrics: dict, *args: object, **kwargs: object) -> None:
        if "train/d_loss" in metrics:  # the losses are logged once per logging window
            log_calls.append(int(kwargs["batch_size"]))  # type: ignore[arg-type]
        original(self, metrics, *args, **kwargs)

    monkeypatch.setattr(ConditionalGAN, "log_dict", counting_log_dict)
    model_5, trainer_5 = _fit(fake_mnist_dir, tmp_path / "b", log_every_n_steps=5)

    _assert_same_weights(model_1, model_5)  # logging less often changes no number of the training
    # Windows: batches 1-5, 6-10, then 11-13 closed by the end of the epoch (the last batch has 8 images).
    assert log_calls == [80, 80, 40]
    losses = every_batch.losses
    assert len(losses) == 13
    sizes = [16] * 12 + [8]
    last_window = sum(d * n for (d, _), n in zip(losses[10:], sizes[10:], strict=True)) / 40
    assert trainer_5.callback_metrics["train/d_loss_step"].item() == pytest.approx(last_window, rel=1e-5)
    for key in ("train/d_loss_epoch", "train/g_loss_epoch", "train/d_real_epoch", "train/d_fake_epoch"):
        assert trainer_5.callback_metrics[key].item() == pytest.approx(trainer_1.callback_metrics[key].item(),
                                                                       rel=1e-5), key
    assert trainer_5.callback_metrics["train/batches_seen"] == 13


def test_log_every_n_steps_zero_logs_once_per_epoch(fake_mnist_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    original = ConditionalGAN.log_dict

    def counting_log_dict(self: ConditionalGAN, metrics: dict, *args: object, **kwargs: object) -> None:
        sizes.append(int(kwargs["batch_size"]))  # type: ignore[arg-type]
        original(self, metrics, *args, **kwargs)

    monkeypatch.setattr(ConditionalGAN, "log_dict", counting_log_dict)
    _, trainer = _fit(fake_mnist_dir, tmp_path, epochs=2, log_every_n_steps=0)
    assert sizes == [200] * 4  # one window per epoch (two log_dict calls: progress-bar losses, the rest)
    assert trainer.callback_metrics["train/batches_seen"] == 26


def test_log_interval_is_no_longer_a_model_setting() -> None:
    with pytest.raises(TypeError, match="log_interval"):
        ConditionalGAN(log_interval=5)  # type: ignore[call-arg]


# -------------------------------------------------------------------------------------------- joint D pass
def test_joint_d_forward_matches_separate_forwards(fake_mnist_dir: Path, tmp_path: Path) -> None:
    separate = LossRecorder()
    joint = LossRecorder()
    _fit(fake_mnist_dir, tmp_path / "a", callbacks=[separate])
    _fit(fake_mnist_dir, tmp_path / "b", callbacks=[joint], joint_d_forward=True)
    # One matrix product over 2B rows sums in another order than two over B: equal to float rounding, which
    # Adam's normalized steps then carry into the weights (by far less than one step of lr 2e-4 by step 13).
    assert joint.losses[0] == pytest.approx(separate.losses[0], rel=1e-6)
    assert len(joint.losses) == 13
    for got, want in zip(joint.losses, separate.losses, strict=True):
        assert got == pytest.approx(want, rel=1e-4)


# --------------------------------------------------------------------------- step_order="g_first" (shared D pass)
class NaiveReferenceOrder(ConditionalGAN):
    """The reference loop's order written out as the seed does: a G step (D frozen), then a D step that forwards
    the detached generated batch through D a second time, with D's weights still those from before G's step."""

    def _g_first_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, real_labels = batch
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        fake, fake_labels, _ = self._fake_batch(real.size(0))
        with self.toggled_optimizer(opt_g):
            g_loss = self.adversarial_loss.g_loss(self.discriminator(fake, fake_labels))
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
        with self.toggled_optimizer(opt_d):
            real_logits = self.discriminator(real, real_labels)
            fake_logits = self.discriminator(fake.detach(), fake_labels)
            d_loss = self.adversarial_loss.d_loss(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
        self._log_step(d_loss, g_loss, real_logits, fake_logits, real.size(0), batch_idx)


def _fit_model(model: ConditionalGAN, data_dir: Path, root: Path, callbacks: list[Callback]) -> None:
    trainer = Trainer(default_root_dir=root, max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
                      accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, callbacks=callbacks,
                      log_every_n_steps=1)
    trainer.fit(model, MNISTDataModule(str(data_dir), download=False, batch_size=16))


def test_g_first_shared_d_forward_equals_the_reference_order(fake_mnist_dir: Path, tmp_path: Path) -> None:
    shared, naive = LossRecorder(), LossRecorder()
    seed_everything(3)
    model = ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, step_order="g_first")
    _fit_model(model, fake_mnist_dir, tmp_path / "a", [shared])
    seed_everything(3)
    reference = NaiveReferenceOrder(latent_dim=8, generator=TINY_G, discriminator=TINY_D, step_order="g_first")
    _fit_model(reference, fake_mnist_dir, tmp_path / "b", [naive])
    assert len(shared.losses) == 13
    # The same products in the same order, one D forward fewer: the same numbers.
    for got, want in zip(shared.losses, naive.losses, strict=True):
        assert got == pytest.approx(want, rel=1e-6)
    assert _max_weight_difference(model, reference) < 1e-6


def test_g_first_differs_from_d_first(fake_mnist_dir: Path, tmp_path: Path) -> None:
    # D-first lets G see the updated D: another algorithm, so the weights after one epoch differ.
    g_first, _ = _fit(fake_mnist_dir, tmp_path / "a", step_order="g_first")
    d_first, _ = _fit(fake_mnist_dir, tmp_path / "b")
    assert _max_weight_difference(g_first, d_first) > 1e-4


class BackwardRecorder(ConditionalGAN):
    """Records, after each backward of a step, which networks hold gradients and D's gradients' values."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.after_backward: list[tuple[bool, bool, list[torch.Tensor]]] = []

    def manual_backward(self, loss: torch.Tensor, *args: object, **kwargs: object) -> None:
        super().manual_backward(loss, *args, **kwargs)
        if len(self.after_backward) < 2:
            self.after_backward.append((
                any(p.grad is not None for p in self.generator.parameters()),
                any(p.grad is not None for p in self.discriminator.parameters()),
                [p.grad.clone() for p in self.discriminator.parameters() if p.grad is not None],
            ))


def test_g_first_backwards_train_each_network_with_its_own_loss_only(fake_mnist_dir: Path, tmp_path: Path) -> None:
    seed_everything(3)
    model = BackwardRecorder(latent_dim=8, generator=TINY_G, discriminator=TINY_D, step_order="g_first",
                             joint_d_forward=True, r1_gamma=1.0, lecam_weight=0.1)
    _fit_model(model, fake_mnist_dir, tmp_path, [])
    (g_has, d_has, d_grads), (g_has_after, _, d_grads_after) = model.after_backward
    assert d_has and not g_has  # D's loss first: D's gradients only (it stops at the generated images)
    assert g_has_after  # G's loss: G's gradients (through D)...
    assert len(d_grads) == len(list(model.discriminator.parameters()))
    for before, after in zip(d_grads, d_grads_after, strict=True):
        assert torch.equal(before, after)  # ...and D's untouched (without D's weight gradients)


# ----------------------------------------------------------------- shared_d_backward (one backward through D)
class BackwardCounter(Callback):
    def __init__(self) -> None:
        self.backwards = 0

    def on_before_backward(self, trainer: Trainer, pl_module: object, loss: torch.Tensor) -> None:
        self.backwards += 1


@pytest.mark.parametrize("options", [{"loss": "bce"}, {"loss": "bce", "r1_gamma": 1.0, "lecam_weight": 0.1},
                                     {"loss": "lsgan"}, {"loss": "wgan-gp"}, {"loss": "rpgan"}])
def test_shared_d_backward_equals_two_backwards(fake_mnist_dir: Path, tmp_path: Path, options: dict) -> None:
    shared, separate, counter = LossRecorder(), LossRecorder(), BackwardCounter()
    model, _ = _fit(fake_mnist_dir, tmp_path / "a", callbacks=[shared, counter], step_order="g_first",
                    joint_d_forward=True, shared_d_backward=True, **options)
    reference, _ = _fit(fake_mnist_dir, tmp_path / "b", callbacks=[separate], step_order="g_first",
                        joint_d_forward=True, **options)
    assert counter.backwards == 13  # one backward per batch: every batch took the shared pass
    assert len(shared.losses) == 13
    # G's gradient is D's, divided and multiplied row by row: equal to float rounding, carried by Adam's steps.
    for got, want in zip(shared.losses, separate.losses, strict=True):
        assert got == pytest.approx(want, rel=1e-4)
    skip = _batch_norm_shadowed(model)
    if model.adversarial_loss.relativistic:
        # D's loss reads only differences of logits: the bias of D's output layer has zero gradient, and
        # (like a bias feeding a batch norm) its rounding noise becomes Adam steps of about lr.
        skip |= {"discriminator.model.2.bias"}
    assert _max_weight_difference(model, reference, skip=skip) < 1e-5


def test_shared_d_backward_gives_both_networks_their_own_gradients() -> None:
    seed_everything(0)
    model = ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, step_order="g_first",
                           joint_d_forward=True, shared_d_backward=True)
    real, labels = torch.rand(6, 1, 28, 28) * 2 - 1, torch.arange(6)
    z, fake_labels = torch.randn(6, 8), torch.tensor([3, 1, 4, 1, 5, 9])

    def losses(mark: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fake = model.generator(z, fake_labels)
        if mark:
            fake = model._row_scale.mark(fake)  # type: ignore[union-attr]
        logits = model.discriminator(torch.cat((real, fake)), torch.cat((labels, fake_labels)))
        real_logits, fake_logits = logits[:6], logits[6:]
        loss = model.adversarial_loss
        return loss.d_loss(real_logits, fake_logits), loss.g_loss(fake_logits), fake_logits

    g_params, d_params = list(model.generator.parameters()), list(model.discriminator.parameters())
    d_loss, g_loss, _ = losses(mark=False)
    want = torch.autograd.grad(g_loss, g_params, retain_graph=True) + torch.autograd.grad(d_loss, d_params)
    d_loss, g_loss, fake_logits = losses(mark=True)
    model._row_scale.factors = loss_ratio_factors(d_loss, g_loss, fake_logits)  # type: ignore[union-attr]
    got = torch.autograd.grad(d_loss, g_params + d_params)
    names = [f"generator.{n}" for n, _ in model.generator.named_parameters()] + \
        [f"discriminator.{n}" for n, _ in model.discriminator.named_parameters()]
    shadowed = _batch_norm_shadowed(model)
    compared = [(name, g, w) for name, g, w in zip(names, got, want, strict=True) if name not in shadowed]
    assert len(compared) == len(names) - 1  # TINY_G: one Linear bias feeds a batch norm
    for name, g, w in compared:
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-6 * float(w.abs().max())), name


class ConfidentD(MLPDiscriminator):
    """TINY_D whose logits start near -3: past the hinge margin for most generated pairs."""

    def __init__(self, num_classes: int = 10, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__(num_classes, image_shape, hidden_dims=(32,))
        nn.init.constant_(self.model[-1].bias, -3.0)


def test_shared_d_backward_falls_back_where_d_gradient_vanishes(fake_mnist_dir: Path, tmp_path: Path) -> None:
    # A hinge D loss has zero derivative for generated logits below -1: G's gradient can't come from D's there,
    # and those batches take the two backwards. The result is the same either way.
    fake_logits = torch.tensor([-2.0, 0.5], requires_grad=True)
    hinge = ConditionalGAN(loss="hinge").adversarial_loss
    assert loss_ratio_factors(hinge.d_loss(torch.zeros(2), fake_logits), hinge.g_loss(fake_logits),
                              fake_logits) is None
    shared, separate, counter = LossRecorder(), LossRecorder(), BackwardCounter()
    runs = []
    for name, shared_d_backward, callbacks in (("a", True, [shared, counter]), ("b", False, [separate])):
        seed_everything(3)
        runs.append(ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=ConfidentD, loss="hinge",
                                   step_order="g_first", joint_d_forward=True, shared_d_backward=shared_d_backward))
        _fit_model(runs[-1], fake_mnist_dir, tmp_path / name, callbacks)
    model, reference = runs
    assert counter.backwards > 13  # batches with a generated logit below -1 took two backwards
    for got, want in zip(shared.losses, separate.losses, strict=True):
        assert got == pytest.approx(want, rel=1e-4)
    assert _max_weight_difference(model, reference, skip=_batch_norm_shadowed(model)) < 1e-5


def test_row_gradient_scale_docstring_example_holds() -> None:
    from cgan_lightning.utilities import row_gradient_scale

    result = doctest.testmod(row_gradient_scale)
    assert result.attempted >= 5 and result.failed == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "needs step_order='g_first' and joint_d_forward=True"),
    ({"step_order": "g_first"}, "needs step_order='g_first' and joint_d_forward=True"),
    ({"step_order": "g_first", "joint_d_forward": True, "mode_seeking_weight": 1.0}, "mode-seeking"),
])
def test_shared_d_backward_refuses_what_it_cannot_do(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConditionalGAN(shared_d_backward=True, **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [({"step_order": "both"}, "step_order must be one of"),
                                                 ({"step_order": "g_first", "d_steps_per_g_step": 2},
                                                  "d_steps_per_g_step=2")])
def test_step_order_refuses_what_it_cannot_do(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConditionalGAN(**kwargs)


class BatchNormD(nn.Module):
    def __init__(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(images).squeeze(1)


class AuxHeadD(MLPDiscriminator):
    def logits_and_aux_loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self(images, labels), None


@pytest.mark.parametrize(("discriminator", "message"), [(BatchNormD, "without batch norm"),
                                                         (AuxHeadD, "auxiliary head")])
def test_joint_d_forward_refuses_discriminators_it_would_change(discriminator: type, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConditionalGAN(discriminator=discriminator, joint_d_forward=True)
    ConditionalGAN(discriminator=discriminator)  # fine without the option


# --------------------------------------------------------------------------------------- device residency
def _batches(dm: MNISTDataModule) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = dm.train_dataloader()
    loader.set_epoch(1)
    return list(loader)


def test_device_resident_gives_the_same_batches(fake_mnist_dir: Path) -> None:
    host = MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16, seed=5)
    resident = MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16, seed=5, device_resident=True)
    for dm in (host, resident):
        dm.setup("fit")
    pairs = list(zip(_batches(host), _batches(resident), strict=True))
    assert len(pairs) == 13
    for (x_host, y_host), (x_res, y_res) in pairs:
        assert torch.equal(x_host, x_res) and torch.equal(y_host, y_res)


def test_device_resident_indexes_on_the_trainers_device_and_copies_once(fake_mnist_dir: Path) -> None:
    # A stand-in trainer on the "meta" device: shapes and devices are checked without any accelerator.
    dm = MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16, device_resident=True)
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")), global_rank=0,
                                 world_size=1)  # type: ignore[assignment]
    dm.setup("fit")
    first, second = dm.train_dataloader(), dm.train_dataloader()
    assert first.images.device.type == "meta" and first.labels.device.type == "meta"
    assert first.images is second.images  # copied to the device once, not per loader
    images, labels = next(iter(first))
    assert images.device.type == "meta" and images.shape == (16, 1, 28, 28) and images.dtype == torch.float32
    assert labels.device.type == "meta" and labels.shape == (16,)
    assert dm.split("train")[0].device.type == "cpu"  # the host copy is untouched


def test_device_resident_training_is_exact(fake_mnist_dir: Path, tmp_path: Path) -> None:
    model_a, _ = _fit(fake_mnist_dir, tmp_path / "a")
    seed_everything(3)
    model = ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D)
    trainer = Trainer(default_root_dir=tmp_path / "b", max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
                      accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model, MNISTDataModule(str(fake_mnist_dir), download=False, batch_size=16, device_resident=True))
    _assert_same_weights(model_a, model)


# ------------------------------------------------------------------------------- configs, compile, bf16
def test_fast_config_builds_fused_optimizers_and_trains(fake_mnist_dir: Path, tmp_path: Path) -> None:
    cli = build_cli([f"--config={REPO / 'examples' / 'fast.yaml'}", f"--data.data_dir={fake_mnist_dir}",
                     "--data.download=false", "--trainer.max_epochs=1", "--trainer.limit_train_batches=4",
                     "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
                     f"--trainer.default_root_dir={tmp_path}", "--model.latent_dim=8"], run=False)
    assert cli.trainer.log_every_n_steps == 50 and cli.model.joint_d_forward and cli.model._row_scale is not None
    assert not cli.trainer.progress_bar_callback
    before = cli.model.generator.model[0].weight.detach().clone()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert all(opt.defaults["fused"] for opt in cli.trainer.optimizers)
    assert not torch.equal(before, cli.model.generator.model[0].weight)
    assert torch.isfinite(cli.trainer.callback_metrics["train/g_loss_epoch"])


def test_torch_threads_sets_the_count_for_fit_and_restores_it(fake_mnist_dir: Path, tmp_path: Path) -> None:
    seen = ThreadsSeen()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _fit(fake_mnist_dir, tmp_path, callbacks=[TorchThreads(1), seen])
        assert seen.seen == {1}
        assert torch.get_num_threads() == 2  # the caller's setting is back after fit
    finally:
        torch.set_num_threads(before)


def test_torch_threads_from_a_config(fake_mnist_dir: Path, tmp_path: Path) -> None:
    cli = build_cli([f"--config={REPO / 'examples' / 'fast.yaml'}", f"--data.data_dir={fake_mnist_dir}",
                     "--data.download=false", "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}",
                     "--model.latent_dim=8", "--trainer.callbacks+=cgan_lightning.callbacks.torch_threads.TorchThreads",
                     "--trainer.callbacks.num_threads=1"], run=False)
    assert [cb.num_threads for cb in cli.trainer.callbacks if isinstance(cb, TorchThreads)] == [1]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_torch_threads_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(ValueError, match="num_threads must be an integer >= 1"):
        TorchThreads(bad)  # type: ignore[arg-type]


def test_fused_adam_stays_close_to_the_default(fake_mnist_dir: Path, tmp_path: Path) -> None:
    fused = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999), fused=True)
    default, with_fused = LossRecorder(), LossRecorder()
    _fit(fake_mnist_dir, tmp_path / "a", callbacks=[default])
    _fit(fake_mnist_dir, tmp_path / "b", callbacks=[with_fused], optimizer_g=fused, optimizer_d=fused)
    assert len(with_fused.losses) == 13
    for got, want in zip(with_fused.losses, default.losses, strict=True):  # one kernel rounds differently
        assert got == pytest.approx(want, rel=1e-4)


def test_compile_works_in_place_and_keeps_checkpoint_keys() -> None:
    plain = ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D)
    compiled = ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, compile=True)
    assert compiled.generator._compiled_call_impl is not None
    assert compiled.discriminator._compiled_call_impl is not None
    assert plain.generator._compiled_call_impl is None
    assert compiled.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize(("compile", "mode"), [(True, "default"), ("reduce-overhead", "reduce-overhead"),
                                             ("max-autotune-no-cudagraphs", "max-autotune-no-cudagraphs")])
def test_compile_passes_its_mode_to_torch_compile(compile: bool | str, mode: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    modes: list[object] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: modes.append(kwargs.get("mode")))
    ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, compile=compile)
    assert modes == [mode, mode]  # G and D
    modes.clear()
    ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, compile=False)
    assert modes == []


@pytest.mark.parametrize("bad", ["fast", "false", "", 1, None])
def test_compile_rejects_what_is_neither_a_flag_nor_a_mode(bad: object) -> None:
    with pytest.raises(ValueError, match="compile must be true, false or a torch.compile mode .*reduce-overhead"):
        ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, compile=bad)  # type: ignore[arg-type]


def test_compile_mode_from_the_command_line(fake_mnist_dir: Path, tmp_path: Path) -> None:
    common = [f"--config={REPO / 'examples' / 'fast.yaml'}", f"--data.data_dir={fake_mnist_dir}",
              "--data.download=false", "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}",
              "--model.latent_dim=8"]
    for value, parsed in (("reduce-overhead", "reduce-overhead"), ("true", True), ("false", False)):
        cli = build_cli([*common, f"--model.compile={value}"], run=False)
        assert cli.model.hparams.compile == parsed
        assert (cli.model.generator._compiled_call_impl is not None) == bool(parsed)


@pytest.mark.slow
def test_compiled_training_matches_eager(fake_mnist_dir: Path, tmp_path: Path) -> None:
    model_a, trainer_a = _fit(fake_mnist_dir, tmp_path / "a")
    model_b, trainer_b = _fit(fake_mnist_dir, tmp_path / "b", compile=True)  # inductor: compiles C++ on the CPU
    for key in ("train/d_loss_epoch", "train/g_loss_epoch"):
        assert trainer_b.callback_metrics[key].item() == pytest.approx(trainer_a.callback_metrics[key].item(),
                                                                       rel=1e-3)
    assert _max_weight_difference(model_a, model_b) < 1e-3


@pytest.mark.slow
def test_compiled_g_step_with_two_backwards_through_one_d_forward(fake_mnist_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Every batch takes shared_d_backward's fallback (a hinge loss past its margin does so in real runs): two
    # backwards through one D forward, which a compiled D refuses (benchmarks/compiled_double_backward.py); a
    # compiled G must be backpropagated once.
    monkeypatch.setattr("cgan_lightning.utilities.row_gradient_scale.loss_ratio_factors", lambda *args: None)
    options = {"step_order": "g_first", "joint_d_forward": True, "shared_d_backward": True}
    model_a, trainer_a = _fit(fake_mnist_dir, tmp_path / "a", **options)
    model_b, trainer_b = _fit(fake_mnist_dir, tmp_path / "b", compile=True, **options)
    assert model_b.generator._compiled_call_impl is not None
    assert model_b.discriminator._compiled_call_impl is None
    assert trainer_b.global_step == trainer_a.global_step == 26  # 13 batches, a G and a D step each
    assert _max_weight_difference(model_a, model_b, skip=_batch_norm_shadowed(model_a)) < 1e-3


@pytest.mark.parametrize(("options", "named"), [({"loss": "wgan-gp"}, "loss='wgan-gp'"),
                                                ({"r1_gamma": 1.0}, "r1_gamma > 0")])
def test_compile_refuses_penalties_that_need_a_double_backward(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=f"{re.escape(named)}.*double backward.*set compile=false"):
        ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, compile=True, **options)
    ConditionalGAN(latent_dim=8, generator=TINY_G, discriminator=TINY_D, **options)  # eager: allowed


def test_bf16_mixed_precision_trains_with_float32_weights(fake_mnist_dir: Path, tmp_path: Path) -> None:
    model_32, trainer_32 = _fit(fake_mnist_dir, tmp_path / "a")
    model, trainer = _fit(fake_mnist_dir, tmp_path / "b", precision="bf16-mixed")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for key in ("train/d_loss_epoch", "train/g_loss_epoch"):
        value = trainer.callback_metrics[key].item()
        # bf16 keeps ~3 significant digits: close to the float32 run, yet not equal to it.
        assert value == pytest.approx(trainer_32.callback_metrics[key].item(), rel=0.05), key
    assert _max_weight_difference(model_32, model) > 0
