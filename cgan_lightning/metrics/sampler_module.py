"""A LightningModule around any object that offers the evaluation protocol, so ``Trainer.validate`` can run it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor
from typing_extensions import override

from cgan_lightning.metrics.protocol import ConditionalSampler, check_sampler, takes_redraw


class SamplerModule(LightningModule):
    """Evaluate your own generator with the package's callbacks through ``Trainer.validate`` / ``Trainer.test``.

    The evaluation callbacks need only :class:`~cgan_lightning.metrics.ConditionalSampler` (``num_classes``,
    ``latent_dim``, ``sample``), but Lightning's loops also need ``validation_step`` / ``test_step``. This
    wrapper adds them (they do nothing: the callbacks generate and score at the end of the epoch) and forwards
    ``sample`` to the wrapped object. An ``nn.Module`` sampler becomes a submodule, so it follows the trainer's
    device. Example::

        trainer = Trainer(callbacks=[PerClassFID(samples_per_class=100)], logger=False)
        trainer.validate(SamplerModule(my_generator), datamodule=MNISTDataModule("data"))

    Args:
        sampler: an object with ``num_classes: int``, ``latent_dim: int`` and
            ``sample(labels, z=None, generator=None)`` returning images ``[B, C, H, W]`` in ``[-1, 1]``. Its
            ``image_shape`` and ``class_names``, where it has them, are copied (the callbacks check the classifier
            against them and name the classes); a ``redraw`` keyword of its ``sample`` is passed on.

    Raises:
        TypeError: ``sampler`` lacks part of the protocol (the message names what).
    """

    def __init__(self, sampler: ConditionalSampler) -> None:
        super().__init__()
        check_sampler(sampler)
        self.sampler = sampler  # an nn.Module is registered as a submodule: it moves with this module
        self.num_classes: int = sampler.num_classes
        self.latent_dim: int = sampler.latent_dim
        image_shape = getattr(sampler, "image_shape", None)
        if image_shape is not None:
            self.image_shape = tuple(image_shape)
        # The callbacks read these from the module: the table's and grids' names, the class checks.
        class_names = getattr(sampler, "class_names", None)
        if class_names is not None:
            self.class_names = [str(name) for name in class_names]
        self._takes_redraw = takes_redraw(sampler)

    @torch.no_grad()
    def sample(
        self, labels: Tensor | Sequence[int] | int, z: Tensor | None = None, generator: torch.Generator | None = None,
        redraw: bool = True,
    ) -> Tensor:
        """The wrapped sampler's ``sample(labels, z, generator)``, with ``redraw`` when its ``sample`` takes it (the
        interference test and the traversal pass ``redraw=False``: each image from its own ``z``)."""
        if self._takes_redraw:
            return self.sampler.sample(labels, z=z, generator=generator, redraw=redraw)  # type: ignore[call-arg]
        return self.sampler.sample(labels, z=z, generator=generator)

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing per batch: the evaluation callbacks score the sampler at the end of the epoch."""

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing per batch: the evaluation callbacks score the sampler at the end of the epoch."""


__all__ = ["SamplerModule"]
