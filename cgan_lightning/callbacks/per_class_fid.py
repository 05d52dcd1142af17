"""``PerClassFID``: per-class FID and generated-digit accuracy, logged after validation (and test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from typing_extensions import override

from cgan_lightning.callbacks.schedule import (
    FAST_DEV_REAL_BATCHES,
    FAST_DEV_SAMPLES_PER_CLASS,
    ScheduledEvaluation,
    check_every_n_epochs,
    evaluated_epoch,
    is_fast_dev_run,
    nan_scores_or_raise,
)
from cgan_lightning.metrics.features import FeatureChoice
from cgan_lightning.metrics.per_class_evaluator import PerClassEvaluator
from cgan_lightning.metrics.protocol import ConditionalSampler, check_sampler
from cgan_lightning.metrics.report import per_class_table
from cgan_lightning.metrics.sample_checks import BadSamplesError
from cgan_lightning.metrics.sampling import evaluation_loader, image_label_batches
from cgan_lightning.utilities.argument_checks import check_int


class PerClassFID(ScheduledEvaluation):
    """For each label k, FID between generated and real images of class k, and the classifier's accuracy on them.

    Runs at the end of validation: during ``fit`` every ``every_n_epochs`` epochs (and after the last), and on
    every ``validate`` / ``test``; never in the sanity check. Real images come from the data module's
    ``val_dataloader()`` (``test_dataloader()`` under ``test``), or the trainer's own loaders when there is no data
    module: any loader of ``(images in [-1, 1], labels)`` batches works. Their statistics are accumulated once per run
    and reused. Each evaluation generates ``samples_per_class`` images per label from latents fixed by ``seed``.

    Logs (``val/``; ``test/`` under ``test``): ``fid/class_<k>``, ``fid/mean`` (the intra-class FID: mean over
    classes), ``fid/worst``, ``fid/overall`` (all classes pooled: the usual unconditional FID), ``acc/class_<k>``
    (share of label-k samples the classifier calls k) and ``acc/mean``. After ``validate`` / ``test`` it also prints
    the per-class table (rank zero), with every per-class metric the other callbacks logged in the same validation
    (CAS, precision, recall, density, coverage, KID, memorization). Under ``fast_dev_run`` it uses 4 samples per
    class and 4 real batches.

    The model must offer the :class:`~cgan_lightning.metrics.ConditionalSampler` protocol. The feature extractor
    is shared by all classes and kept in this callback (moved to the model's device), not in the model.

    Args:
        every_n_epochs: evaluate after every n-th training epoch.
        samples_per_class: generated images per label (and at most as many real ones matter: all real images of the
            evaluation split are used).
        seed: seed of the generated latents (the same z at every evaluation).
        batch_size: images per generation / feature-extraction batch.
        feature: ``"classifier"`` (default: the shipped MNIST classifier's features, offline), ``"inception"``
            (torchmetrics' InceptionV3; needs ``pip install 'cgan-lightning[inception]'`` and local weights) or an
            ``nn.Module`` mapping images in ``[-1, 1]`` to ``[B, D]`` features.
        feature_weights: path to InceptionV3's ``weights-inception-2015-12-05-6726825d.pth`` for ``"inception"``.
        classifier: weights of the judging classifier from ``cgan-lightning train-classifier`` (``None``:
            the shipped MNIST classifier); its classes and image shape must match the model's.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        samples_per_class: int = 1000,
        seed: int = 0,
        batch_size: int = 1000,
        feature: FeatureChoice | nn.Module = "classifier",
        feature_weights: str | Path | None = None,
        classifier: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.every_n_epochs = check_every_n_epochs(every_n_epochs)
        check_int(samples_per_class, "samples_per_class", minimum=None)
        check_int(batch_size, "batch_size", minimum=None)
        check_int(seed, "seed", minimum=None)
        if samples_per_class < 2:
            raise ValueError(f"samples_per_class must be >= 2 (FID needs a covariance), got {samples_per_class}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not isinstance(feature, nn.Module) and feature not in ("classifier", "inception"):
            raise ValueError(f"feature must be 'classifier', 'inception' or an nn.Module, got {feature!r}")
        self.samples_per_class = samples_per_class
        self.seed = seed
        self.batch_size = batch_size
        self.feature = feature
        self.feature_weights = feature_weights
        self.classifier = classifier
        self.evaluator: PerClassEvaluator | None = None
        self._real_split: str | None = None
        self._checkpoint_epoch: int | None = None
        self._table_due: tuple[str, int] | None = None  # (split, epoch) of a table to print at the end
        #: The scores of the latest evaluation, keyed as logged.
        self.last_scores: dict[str, float] = {}
        #: ``trainer.global_step`` at the latest evaluation (``None`` before the first): tells
        #: :class:`~cgan_lightning.callbacks.BestFIDCheckpoint` whether this validation computed the scores.
        self.last_global_step: int | None = None
        #: The epoch of the weights the latest evaluation scored.
        self.last_epoch: int | None = None

    @override
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self._checkpoint_epoch = checkpoint.get("epoch")

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # A classifier that cannot judge this model is refused now, not after the first epochs of training.
        self._build_evaluator(check_sampler(pl_module))

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # The next run (another fit / validate / test call) may use other data: recompute its real statistics.
        self._real_split = None

    @override
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Generated features kept from an earlier validation must not be mistaken for this one's.
        if self.evaluator is not None:
            self.evaluator.last_generated = None

    @override
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.on_validation_epoch_start(trainer, pl_module)

    def _build_evaluator(self, model: ConditionalSampler) -> PerClassEvaluator:
        if self.evaluator is None:  # checks that the classifier can judge the model (classes, image shape, names)
            self.evaluator = PerClassEvaluator(model.num_classes, self.feature, self.feature_weights, self.classifier,
                                               getattr(model, "image_shape", None), getattr(model, "class_names", None))
        return self.evaluator

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        model = check_sampler(pl_module)
        fast = is_fast_dev_run(trainer)
        self.evaluator = self._build_evaluator(model).to(pl_module.device)
        if self._real_split != split:
            if self.evaluator.has_real:
                self.evaluator.reset_real()
            batches = image_label_batches(evaluation_loader(trainer, split),
                                          max_batches=FAST_DEV_REAL_BATCHES if fast else None)
            self.evaluator.add_real(batches, self.batch_size)
            self._real_split = split
        per_class = min(self.samples_per_class, FAST_DEV_SAMPLES_PER_CLASS) if fast else self.samples_per_class
        try:
            scores = self.evaluator.evaluate(
                model,
                samples_per_class=per_class,
                seed=self.seed,
                batch_size=self.batch_size,
                rank=trainer.global_rank,
                world_size=trainer.world_size,
            )
        except BadSamplesError as bad:  # NaN / out-of-range samples: nan + a warning during fit, else the error
            keys = [f"fid/class_{k}" for k in range(model.num_classes)] + ["fid/mean", "fid/worst", "fid/overall"]
            keys += [f"acc/class_{k}" for k in range(model.num_classes)] + ["acc/mean"]
            scores = nan_scores_or_raise(trainer, bad, keys, type(self).__name__)
        self.last_scores = {f"{split}/{key}": value for key, value in scores.items()}
        self.last_global_step = trainer.global_step
        self.last_epoch = evaluated_epoch(trainer, self._checkpoint_epoch)
        for key, value in self.last_scores.items():
            # Already reduced across processes by the torchmetrics metrics: no further sync.
            pl_module.log(key, value, on_epoch=True)
        if trainer.state.fn != TrainerFn.FITTING:
            self._table_due = (split, evaluated_epoch(trainer, self._checkpoint_epoch))

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print_due_table(trainer)

    @override
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print_due_table(trainer)

    def _print_due_table(self, trainer: Trainer) -> None:
        # Printed at the end of validation, not in on_validation_epoch_end: by then every evaluation callback,
        # whatever its place in the list, has logged its per-class metrics into callback_metrics.
        if self._table_due is None:
            return
        split, epoch = self._table_due
        self._table_due = None
        prefix = f"{split}/"
        scores = {key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith(prefix)}
        _print_table({**scores, **self.last_scores}, prefix, epoch,
                     getattr(trainer.lightning_module, "class_names", None))


@rank_zero_only
def _print_table(scores: dict[str, Any], prefix: str, epoch: int, class_names: list[str] | None) -> None:
    table = per_class_table(scores, prefix, class_names)
    print(f"\nPer-class FID and generated-image accuracy (epoch {epoch}):\n{table}\n", flush=True)
