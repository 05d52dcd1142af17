"""Base of the image callbacks: latents drawn once from a seed, kept in the callback's state, rendered on schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from cgan_lightning.callbacks.schedule import check_every_n_epochs, due, evaluated_epoch, nan_scores_or_raise
from cgan_lightning.metrics.classifier import check_classifier_matches
from cgan_lightning.metrics.features import ClassifierFeatures
from cgan_lightning.metrics.protocol import ConditionalSampler, check_sampler
from cgan_lightning.metrics.sample_checks import BadSamplesError
from cgan_lightning.utilities.argument_checks import check_int


class FixedLatentCallback(Callback):
    """Draws latents once (``draw_latents``), saves them in ``state_dict`` and calls ``render`` when due.

    A resumed run (``fit(ckpt_path=...)``, ``validate(ckpt_path=...)``) restores the latents from the checkpoint, so
    it renders the same z as the original run even if the seed or the random number generator changed.

    Args:
        seed: seed of the latents.
        every_n_epochs: render after every n-th training epoch (and after the last, and on validate / test).
        classifier: weights of the judging classifier from ``cgan-lightning train-classifier`` (``None``:
            the shipped MNIST classifier); its classes and image shape must match the model's.
    """

    #: The keys ``render`` logs (logged as ``nan`` when the samples cannot be scored during fit).
    score_keys: tuple[str, ...] = ()

    def __init__(self, seed: int = 0, every_n_epochs: int = 1, classifier: str | Path | None = None) -> None:
        super().__init__()
        self.seed = check_int(seed, "seed", minimum=None)
        self.every_n_epochs = check_every_n_epochs(every_n_epochs)
        self.classifier_path = classifier
        self.classifier: ClassifierFeatures | None = None
        self.latents: Tensor | None = None
        #: The numbers and PNG path of the latest render.
        self.last_scores: dict[str, float] = {}
        self.last_png: Path | None = None
        self._checkpoint_epoch: int | None = None

    # ----------------------------------------------------------------------------- to define in subclasses
    def draw_latents(self, model: ConditionalSampler) -> Tensor:
        """The fixed latents for ``model``, drawn from ``self.seed`` on the CPU (last dimension ``latent_dim``)."""
        raise NotImplementedError

    def render(self, trainer: Trainer, model: ConditionalSampler, device: torch.device) -> None:
        """Generate on ``device``, score (``self.classifier`` is ready there), set ``last_scores``, save and log."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------- hooks
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Drawn here; a checkpoint's state (loaded after setup) replaces it.
        model = check_sampler(pl_module)
        if self.latents is None:
            self.latents = self.draw_latents(model)
        # A classifier that cannot judge this model is refused now, not after the first epoch of training.
        self._load_classifier(pl_module, model.num_classes)

    @override
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self._checkpoint_epoch = checkpoint.get("epoch")

    def epoch(self, trainer: Trainer) -> int:
        """The epoch of the evaluated weights (the checkpoint's under validate / test)."""
        return evaluated_epoch(trainer, self._checkpoint_epoch)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "latents": self.latents}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        latents = state_dict.get("latents")
        if latents is None:
            return
        if self.latents is not None and latents.shape != self.latents.shape:
            rank_zero_warn(f"{type(self).__name__}: the checkpoint's latents have shape {tuple(latents.shape)}, this "
                           f"run expects {tuple(self.latents.shape)}; keeping freshly drawn ones")
            return
        self.latents = latents

    def _load_classifier(self, pl_module: LightningModule, num_classes: int) -> ClassifierFeatures:
        if self.classifier is None:
            classifier = ClassifierFeatures(self.classifier_path)
            check_classifier_matches(classifier, num_classes, getattr(pl_module, "image_shape", None),
                                     getattr(pl_module, "class_names", None))
            self.classifier = classifier
        return self.classifier

    def _classifier(self, pl_module: LightningModule, num_classes: int) -> ClassifierFeatures:
        return self._load_classifier(pl_module, num_classes).to(pl_module.device)

    def _maybe_render(self, trainer: Trainer, pl_module: LightningModule) -> None:
        model = check_sampler(pl_module)
        if self.latents is None:
            self.latents = self.draw_latents(model)
        self._classifier(pl_module, model.num_classes)
        try:
            self.render(trainer, model, pl_module.device)
        except BadSamplesError as bad:  # NaN / out-of-range samples: nan + a warning during fit, else the error
            self.last_scores = nan_scores_or_raise(trainer, bad, list(self.score_keys), type(self).__name__)
        # Under `test` the numbers come from the test run: test/interference/acc etc. (fit / validate: as named).
        prefix = "test/" if trainer.state.fn == TrainerFn.TESTING else ""
        for key, value in self.last_scores.items():
            pl_module.log(prefix + key, value, on_epoch=True)

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if due(trainer, self.every_n_epochs):
            self._maybe_render(trainer, pl_module)

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._maybe_render(trainer, pl_module)
