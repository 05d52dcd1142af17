"""The conditional GAN as a LightningModule trained with manual optimization."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from cgan_lightning.losses import get_loss
from cgan_lightning.networks import MLPDiscriminator, MLPGenerator
from cgan_lightning.validation import ImageShape, as_label_tensor, check_latents

#: Builds a generator from ``(latent_dim, num_classes, image_shape)``; in a config: ``class_path`` + ``init_args``.
GeneratorFactory = Callable[[int, int, ImageShape], nn.Module]
#: Builds a discriminator from ``(num_classes, image_shape)``; in a config: ``class_path`` + ``init_args``.
DiscriminatorFactory = Callable[[int, ImageShape], nn.Module]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before the optimizer step that would apply it."""


def reference_adam(params: Any) -> torch.optim.Optimizer:
    """The reference optimizer: ``Adam(lr=2e-4, betas=(0.5, 0.999))``."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class ConditionalGAN(LightningModule):
    """A class-conditional GAN: G(z, y) draws an image of class y; D(x, y) judges the (image, label) pair.

    Each training batch runs ``d_steps_per_g_step`` discriminator updates, then one generator update, with
    manual optimization. Because Lightning counts every ``optimizer.step()`` in ``global_step``, one batch
    advances ``global_step`` by ``d_steps_per_g_step + 1`` (2 by default): ``Trainer(max_steps=N)`` stops after
    ``N / (d_steps_per_g_step + 1)`` batches. The number of batches is logged as ``train/batches_seen``.

    Evaluation protocol (what the callbacks rely on): ``num_classes``, ``latent_dim``, ``image_shape`` and
    ``sample(labels, z=None, generator=None)``.

    Args:
        num_classes: number of labels (linked from the data module by the CLI).
        image_shape: ``(channels, height, width)`` (linked from the data module by the CLI).
        latent_dim: size of the noise vector z.
        generator: builds G from ``(latent_dim, num_classes, image_shape)``; default: the reference MLP.
        discriminator: builds D from ``(num_classes, image_shape)``; default: the reference MLP.
        optimizer_g: builds G's optimizer from its parameters; default ``Adam(lr=2e-4, betas=(0.5, 0.999))``.
        optimizer_d: builds D's optimizer from its parameters; default as ``optimizer_g``.
        loss: adversarial loss name from :data:`cgan_lightning.losses.LOSSES` (``bce``: the reference objective).
        d_steps_per_g_step: discriminator updates per generator update (each batch: D steps, then one G step).
        check_finite: stop with :class:`NonFiniteLossError` when a loss is NaN/inf (one host read per step).
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 100,
        generator: GeneratorFactory | None = None,
        discriminator: DiscriminatorFactory | None = None,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        loss: str = "bce",
        d_steps_per_g_step: int = 1,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        if latent_dim <= 0:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
        if d_steps_per_g_step < 1:
            raise ValueError(f"d_steps_per_g_step must be >= 1, got {d_steps_per_g_step}")
        image_shape = tuple(int(v) for v in image_shape)
        if len(image_shape) != 3 or min(image_shape) <= 0:
            raise ValueError(f"image_shape must be (channels, height, width) of positive ints, got {image_shape}")
        self.save_hyperparameters()
        # The CLI links these from the data module after parsing; record the values actually used so that
        # load_from_checkpoint rebuilds the same networks.
        self.hparams.update(num_classes=num_classes, image_shape=list(image_shape), latent_dim=latent_dim)
        self.automatic_optimization = False
        self.num_classes = num_classes
        self.image_shape: ImageShape = image_shape  # type: ignore[assignment]
        self.latent_dim = latent_dim
        self.d_steps_per_g_step = d_steps_per_g_step
        self.check_finite = check_finite
        self.adversarial_loss = get_loss(loss)
        self.generator = (generator or MLPGenerator)(latent_dim, num_classes, image_shape)
        self.discriminator = (discriminator or MLPDiscriminator)(num_classes, image_shape)
        self._optimizer_g = optimizer_g or reference_adam
        self._optimizer_d = optimizer_d or reference_adam

    # ----------------------------------------------------------------------------------------- public API
    def forward(self, z: Tensor, labels: Tensor | Sequence[int]) -> Tensor:
        """Generate images in ``[-1, 1]`` of shape ``[B, C, H, W]`` for latents ``[B, latent_dim]`` and labels ``[B]``.

        Raises:
            ValueError: labels out of ``[0, num_classes)`` or not integers; z of the wrong shape.
        """
        labels = as_label_tensor(labels, self.num_classes, device=self.device)
        check_latents(z, labels.numel(), self.latent_dim)
        return self.generator(z.to(self.device), labels)

    @torch.no_grad()
    def sample(
        self,
        labels: Tensor | Sequence[int] | int,
        z: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw one image per label, in eval mode and without gradients; the previous train/eval mode is restored.

        Args:
            labels: class ids ``[B]`` (tensor, list or single int).
            z: latents ``[B, latent_dim]``; drawn from N(0, I) when omitted.
            generator: a ``torch.Generator`` (on the CPU or the module's device) that makes the draw reproducible.

        Returns:
            Images ``[B, C, H, W]`` in ``[-1, 1]`` on the module's device.
        """
        labels = as_label_tensor(labels, self.num_classes, device=self.device)
        if z is None:
            z = self.draw_latents(labels.numel(), generator)
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self(z, labels)
        finally:
            self.generator.train(was_training)

    def draw_latents(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` latents from N(0, I) on the module's device (reproducibly when ``generator`` is given)."""
        if n <= 0:
            raise ValueError(f"the number of samples must be positive, got {n}")
        gen_device = generator.device if generator is not None else self.device
        return torch.randn(n, self.latent_dim, generator=generator, device=gen_device).to(self.device)

    # ------------------------------------------------------------------------------------------ training
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        # Order matters: training_step unpacks (G, D).
        return [self._optimizer_g(self.generator.parameters()), self._optimizer_d(self.discriminator.parameters())]

    def _fake_batch(self, n: int) -> tuple[Tensor, Tensor]:
        z = torch.randn(n, self.latent_dim, device=self.device)
        labels = torch.randint(0, self.num_classes, (n,), device=self.device)
        return self.generator(z, labels), labels

    def _ensure_finite(self, loss: Tensor, network: str, batch_idx: int) -> None:
        if self.check_finite and not bool(torch.isfinite(loss)):
            raise NonFiniteLossError(
                f"{network} loss is {loss.item()} at batch {batch_idx} of epoch {self.current_epoch} "
                f"(global step {self.global_step}); training stopped before this update was applied. "
                "Lower the learning rate or change the loss; earlier checkpoints are untouched."
            )

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, real_labels = batch
        opt_g, opt_d = self.optimizers()
        n = real.size(0)
        # One G forward with its graph kept serves the first D step (detached) and the G step, as in the
        # reference loop; extra D steps draw fresh fakes without a graph.
        fake, fake_labels = self._fake_batch(n)
        d_fake_images, d_fake_labels = fake.detach(), fake_labels
        for step in range(self.d_steps_per_g_step):
            if step > 0:
                with torch.no_grad():
                    d_fake_images, d_fake_labels = self._fake_batch(n)
            with self.toggled_optimizer(opt_d):
                real_logits = self.discriminator(real, real_labels)
                fake_logits = self.discriminator(d_fake_images, d_fake_labels)
                d_loss = self.adversarial_loss.d_loss(real_logits, fake_logits)
                self._ensure_finite(d_loss, "discriminator", batch_idx)
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(d_loss)
                opt_d.step()

        with self.toggled_optimizer(opt_g):
            g_loss = self.adversarial_loss.g_loss(self.discriminator(fake, fake_labels))
            self._ensure_finite(g_loss, "generator", batch_idx)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()

        # Tensors go to self.log as-is: Lightning reduces them on the device, no host sync per step.
        self.log_dict(
            {
                "train/d_loss": d_loss.detach(),
                "train/g_loss": g_loss.detach(),
                "train/d_real": torch.sigmoid(real_logits.detach()).mean(),
                "train/d_fake": torch.sigmoid(fake_logits.detach()).mean(),
            },
            on_step=True,
            on_epoch=True,
            batch_size=n,
        )
        self.log("train/batches_seen", float(self.trainer.fit_loop.epoch_loop.batch_progress.total.ready),
                 on_step=True, on_epoch=False, batch_size=n)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """D's mean probability on real test pairs and on as many fresh fakes (evaluation callbacks do the rest)."""
        real, labels = batch
        z = torch.randn(real.size(0), self.latent_dim, device=self.device)
        fake = self.generator(z, labels)
        self.log_dict(
            {
                "val/d_real": torch.sigmoid(self.discriminator(real, labels)).mean(),
                "val/d_fake": torch.sigmoid(self.discriminator(fake, labels)).mean(),
            },
            on_epoch=True,
            batch_size=real.size(0),
        )

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)
