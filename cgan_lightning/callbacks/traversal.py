"""``LatentTraversal``: slerp between two fixed z within each label; the style should change, the class should not."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer
from torch import Tensor

from cgan_lightning.callbacks.fixed_latents import FixedLatentCallback
from cgan_lightning.metrics.protocol import ConditionalSampler
from cgan_lightning.metrics.report import class_names
from cgan_lightning.metrics.sampling import seeded_normal
from cgan_lightning.metrics.traversal import traversal_images, traversal_scores
from cgan_lightning.utilities.argument_checks import check_int
from cgan_lightning.utilities.image_grids import grid_caption, image_grid, publish_grid
from cgan_lightning.utilities.lightning_internals import callback_state_key


class LatentTraversal(FixedLatentCallback):
    """For each label, ``steps`` frames along the great circle between two fixed latents (one row per label).

    Saves ``<run dir>/traversal/epoch_<n>.png``, logs the image like :class:`InterferenceTest` and logs
    ``traversal/acc`` (``test/traversal/acc`` under ``test``): the share of frames the classifier assigns to their
    row's label (a traversal should change
    the style, not the class). The endpoints are drawn once from ``seed`` (a pair per label) and kept in the
    callback's state. Under ``fast_dev_run`` the number is logged but no file is written.

    Args:
        steps: frames per row, both endpoints included (>= 2).
        seed: seed of the endpoints.
        every_n_epochs: render after every n-th training epoch.
        classifier: weights of the judging classifier from ``cgan-lightning train-classifier`` (``None``:
            the shipped MNIST classifier); its classes and image shape must match the model's.
    """

    def __init__(self, steps: int = 8, seed: int = 0, every_n_epochs: int = 1,
                 classifier: str | Path | None = None) -> None:
        super().__init__(seed=seed, every_n_epochs=every_n_epochs, classifier=classifier)
        if check_int(steps, "steps", minimum=None) < 2:
            raise ValueError(f"steps must be >= 2 (both endpoints are shown), got {steps}")
        self.steps = steps
        #: The latest grid ``[3, H, W]`` in ``[0, 1]``.
        self.last_grid: Tensor | None = None

    score_keys = ("traversal/acc",)

    @property
    def state_key(self) -> str:
        return callback_state_key(self, steps=self.steps)

    def draw_latents(self, model: ConditionalSampler) -> Tensor:
        return seeded_normal((model.num_classes, 2, model.latent_dim), self.seed)

    def render(self, trainer: Trainer, model: ConditionalSampler, device: torch.device) -> None:
        assert self.latents is not None and self.classifier is not None
        images = traversal_images(model, self.latents, self.steps, device)
        _, logits = self.classifier.features_and_logits(images)
        self.last_scores = traversal_scores(logits.argmax(1), model.num_classes, self.steps)
        self.last_grid = image_grid(images, columns=self.steps)
        caption = grid_caption("classes", f"{self.steps} frames from z_a to z_b", class_names(model))
        self.last_png = publish_grid(trainer, "traversal", self.last_grid, self.epoch(trainer), caption)
