"""``InterferenceTest``: the same z rendered with every label; does the label, not z, decide the digit?"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer
from torch import Tensor

from cgan_lightning.callbacks.fixed_latents import FixedLatentCallback
from cgan_lightning.metrics.interference import interference_images, interference_scores
from cgan_lightning.metrics.protocol import ConditionalSampler
from cgan_lightning.metrics.report import class_names
from cgan_lightning.metrics.sampling import seeded_normal
from cgan_lightning.utilities.argument_checks import check_int
from cgan_lightning.utilities.image_grids import grid_caption, image_grid, publish_grid
from cgan_lightning.utilities.lightning_internals import callback_state_key


class InterferenceTest(FixedLatentCallback):
    """Renders ``n_styles`` fixed latents with every label (rows = z, columns = labels 0..K-1).

    After each validation (every ``every_n_epochs`` epochs during fit, always on validate / test) it saves the grid as
    ``<trainer.log_dir or default_root_dir>/interference/epoch_<n>.png``, logs it to the active logger (W&B image with
    ``WandbLogger``, TensorBoard image with ``TensorBoardLogger``, nothing else otherwise) and logs
    ``interference/acc`` and ``interference/style_spread`` (see :func:`interference_scores`; under ``test``:
    ``test/interference/...``). A generator that ignores
    its label draws the same digit across a row and scores ``1 / num_classes`` on ``interference/acc``.

    The latents are drawn once from ``seed`` and kept in the callback's state, so a resumed run renders the same z.
    Under ``fast_dev_run`` the numbers are logged but no file is written.

    Args:
        n_styles: latents (rows); at least 2.
        seed: seed of the latents.
        every_n_epochs: render after every n-th training epoch.
        classifier: weights of the judging classifier from ``cgan-lightning train-classifier`` (``None``:
            the shipped MNIST classifier); its classes and image shape must match the model's.
    """

    def __init__(self, n_styles: int = 8, seed: int = 0, every_n_epochs: int = 1,
                 classifier: str | Path | None = None) -> None:
        super().__init__(seed=seed, every_n_epochs=every_n_epochs, classifier=classifier)
        if check_int(n_styles, "n_styles", minimum=None) < 2:
            raise ValueError(f"n_styles must be >= 2 (style_spread compares styles), got {n_styles}")
        self.n_styles = n_styles
        #: The latest grid ``[3, H, W]`` in ``[0, 1]``.
        self.last_grid: Tensor | None = None

    score_keys = ("interference/acc", "interference/style_spread")

    @property
    def state_key(self) -> str:
        return callback_state_key(self, n_styles=self.n_styles)

    def draw_latents(self, model: ConditionalSampler) -> Tensor:
        return seeded_normal((self.n_styles, model.latent_dim), self.seed)

    def render(self, trainer: Trainer, model: ConditionalSampler, device: torch.device) -> None:
        assert self.latents is not None and self.classifier is not None
        images = interference_images(model, self.latents, device)
        feats, logits = self.classifier.features_and_logits(images)
        self.last_scores = interference_scores(feats, logits.argmax(1), len(self.latents), model.num_classes)
        self.last_grid = image_grid(images, columns=model.num_classes)
        caption = grid_caption("one latent z each", "classes", class_names(model))
        self.last_png = publish_grid(trainer, "interference", self.last_grid, self.epoch(trainer), caption)
