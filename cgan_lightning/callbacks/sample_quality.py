"""``SampleQuality``: per-class precision, recall, density, coverage, KID and memorization after validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor
from typing_extensions import override

from cgan_lightning.callbacks.per_class_fid import PerClassFID
from cgan_lightning.callbacks.schedule import (
    FAST_DEV_REAL_BATCHES,
    ScheduledEvaluation,
    check_every_n_epochs,
    evaluated_epoch,
    is_fast_dev_run,
)
from cgan_lightning.metrics.classifier import check_classifier_matches
from cgan_lightning.metrics.features import ClassifierFeatures
from cgan_lightning.metrics.kid import DEFAULT_SUBSET_SIZE, DEFAULT_SUBSETS, PerClassKID
from cgan_lightning.metrics.memorization import DEFAULT_QUANTILE, memorization
from cgan_lightning.metrics.per_class_evaluator import GeneratedFeatures
from cgan_lightning.metrics.prdc import DEFAULT_NEAREST_K, PerClassPRDC
from cgan_lightning.metrics.protocol import ConditionalSampler, check_sampler
from cgan_lightning.metrics.sampling import (
    class_balanced_latents,
    evaluation_loader,
    generate,
    image_label_batches,
    rebatch,
    training_images,
)
from cgan_lightning.utilities.image_grids import image_grid, publish_grid
from cgan_lightning.utilities.lightning_internals import trainer_callbacks

#: Training images read under ``fast_dev_run``.
FAST_DEV_TRAIN_IMAGES = 256


class SampleQuality(ScheduledEvaluation):
    """Fidelity, diversity and novelty of the generated digits, per class, in the shipped classifier's feature space.

    After validation (every ``every_n_epochs`` epochs during fit and after the last; on every ``validate`` /
    ``test``) it compares ``samples_per_class`` generated images per label with the real evaluation split (the
    data module's ``val_dataloader()``, ``test_dataloader()`` under ``test``) and the real training split, and logs
    (``val/``; ``test/`` under ``test``), each as ``<name>/class_<k>`` and ``<name>/mean``:

    - ``precision``, ``recall``, ``density``, ``coverage`` (Naeem et al. 2020, k-NN balls with ``nearest_k``; see
      :mod:`cgan_lightning.metrics.prdc`);
    - ``kid`` (torchmetrics' ``KernelInceptionDistance`` on the classifier's features, subset size capped per class);
    - ``memorization``: share of generated images closer to a training image than all but ``memorization_quantile``
      of the real evaluation images of their class are (see :mod:`cgan_lightning.metrics.memorization`); about
      ``memorization_quantile`` (0.05) for a generator that does not copy.

    It also saves the ``n_pairs`` generated images closest to a training image, above their nearest training images,
    as ``<run dir>/memorization/epoch_<n>.png`` (and logs it to W&B / TensorBoard as ``memorization/grid``).

    One generation pass serves everything: when a :class:`~cgan_lightning.callbacks.PerClassFID` with the same
    ``seed``, ``samples_per_class`` and classifier features evaluated in this validation (place it *before* this
    callback in the list), its generated features are reused and nothing is generated again. Real features are
    extracted once per run. Under DDP the features of every rank are gathered (torchmetrics ``cat`` states).

    Args:
        every_n_epochs: evaluate after every n-th training epoch.
        samples_per_class: generated images per label (use PerClassFID's value to share its samples).
        seed: seed of the generated latents (use PerClassFID's value to share its samples).
        batch_size: images per generation / feature batch.
        nearest_k: k of the k-NN balls.
        kid_subset_size: largest KID subset (capped per class by the real and generated counts).
        kid_subsets: KID subsets averaged.
        memorization_quantile: the eval -> train distance quantile that sets each class's threshold.
        n_pairs: closest (generated, training) pairs in the PNG; 0 writes none.
        classifier: weights of the feature classifier (``None``: the shipped MNIST classifier).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        samples_per_class: int = 1000,
        seed: int = 0,
        batch_size: int = 1000,
        nearest_k: int = DEFAULT_NEAREST_K,
        kid_subset_size: int = DEFAULT_SUBSET_SIZE,
        kid_subsets: int = DEFAULT_SUBSETS,
        memorization_quantile: float = DEFAULT_QUANTILE,
        n_pairs: int = 16,
        classifier: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.every_n_epochs = check_every_n_epochs(every_n_epochs)
        if samples_per_class <= nearest_k:
            raise ValueError(f"samples_per_class must exceed nearest_k ({nearest_k}) for k-NN balls, "
                             f"got {samples_per_class}")
        if batch_size < 1 or n_pairs < 0:
            raise ValueError(f"batch_size must be >= 1 and n_pairs >= 0, got {batch_size} and {n_pairs}")
        if not 0 < memorization_quantile < 1:
            raise ValueError(f"memorization_quantile must be in (0, 1), got {memorization_quantile}")
        self.samples_per_class = samples_per_class
        self.seed = seed
        self.batch_size = batch_size
        self.nearest_k = nearest_k
        self.kid_subset_size = kid_subset_size
        self.kid_subsets = kid_subsets
        self.memorization_quantile = memorization_quantile
        self.n_pairs = n_pairs
        self.classifier_path = classifier
        self.features: ClassifierFeatures | None = None
        self.prdc: PerClassPRDC | None = None
        self.kid: PerClassKID | None = None
        self._train: tuple[Tensor, Tensor, Tensor] | None = None  # images (CPU), labels, features (device)
        self._real_split: str | None = None
        self._checkpoint_epoch: int | None = None
        #: The scores of the latest evaluation, keyed as logged; whether it reused PerClassFID's samples.
        self.last_scores: dict[str, float] = {}
        self.last_global_step: int | None = None  # the training step of the weights last scored
        self.last_reused: bool = False
        self.last_png: Path | None = None

    @override
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self._checkpoint_epoch = checkpoint.get("epoch")

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # A classifier that cannot judge this model is refused now, not after the first epochs of training.
        self._setup(check_sampler(pl_module), torch.device("cpu"))

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # The next fit / validate / test may use other data.
        self._real_split, self._train = None, None

    # ------------------------------------------------------------------------------------------- internals
    def _setup(self, model: ConditionalSampler, device: torch.device) -> None:
        if self.features is None:
            features = ClassifierFeatures(self.classifier_path)
            check_classifier_matches(features, model.num_classes, getattr(model, "image_shape", None),
                                     getattr(model, "class_names", None))
            self.features = features
            self.prdc = PerClassPRDC(model.num_classes, self.nearest_k)
            self.kid = PerClassKID(model.num_classes, self.features.num_features, self.kid_subset_size,
                                   self.kid_subsets, seed=self.seed)
        self.features.to(device)
        assert self.prdc is not None and self.kid is not None
        self.prdc.to(device)
        self.kid.to(device)

    def _featurize(self, images: Tensor) -> Tensor:
        assert self.features is not None
        return self.features(images)

    def _add_real(self, trainer: Trainer, device: torch.device, split: str, fast: bool) -> None:
        assert self.prdc is not None and self.kid is not None
        if self._real_split != split:
            self.prdc.reset()
            self.kid = PerClassKID(self.prdc.num_classes, self.features.num_features if self.features else 0,
                                   self.kid_subset_size, self.kid_subsets, seed=self.seed).to(device)
            batches = image_label_batches(evaluation_loader(trainer, split),
                                          max_batches=FAST_DEV_REAL_BATCHES if fast else None)
            for images, labels in rebatch(batches, self.batch_size):
                feats = self._featurize(images.to(device))
                self.prdc.update(feats, labels.to(device), real=True)
                self.kid.update(feats, labels.to(device), real=True)
            self._real_split = split
        if self._train is None:
            images, labels = training_images(trainer, FAST_DEV_TRAIN_IMAGES if fast else None)
            feats = torch.cat([self._featurize(images[i : i + self.batch_size].to(device))
                               for i in range(0, len(labels), self.batch_size)])
            self._train = (images, labels, feats)

    def _shared_samples(self, trainer: Trainer, per_class: int) -> GeneratedFeatures | None:
        """PerClassFID's generated features from this validation, when they are the samples this callback wants."""
        for callback in trainer_callbacks(trainer):
            if not isinstance(callback, PerClassFID):
                continue
            evaluator = getattr(callback, "evaluator", None)
            shared = evaluator.last_generated if evaluator is not None else None
            if (shared is not None and callback.feature == "classifier"
                    and callback.classifier == self.classifier_path
                    and (shared.seed, shared.samples_per_class) == (self.seed, per_class)):
                return shared
        return None

    def _generated(self, trainer: Trainer, model: ConditionalSampler, device: torch.device,
                   per_class: int) -> GeneratedFeatures:
        shared = self._shared_samples(trainer, per_class)
        self.last_reused = shared is not None
        if shared is not None:
            return shared
        z, labels = class_balanced_latents(model.num_classes, per_class, model.latent_dim, self.seed)
        indices = torch.arange(len(labels))[trainer.global_rank :: trainer.world_size]
        feats = [self._featurize(images) for images, _ in generate(model, z[indices], labels[indices],
                                                                    self.batch_size, device)]
        return GeneratedFeatures(torch.cat(feats), labels[indices].to(device), indices, self.seed, per_class)

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        model = check_sampler(pl_module)
        device = pl_module.device
        fast = is_fast_dev_run(trainer)
        per_class = self.nearest_k + 2 if fast else self.samples_per_class
        self._setup(model, device)
        self._add_real(trainer, device, split, fast)
        assert self.prdc is not None and self.kid is not None and self._train is not None
        generated = self._generated(trainer, model, device, per_class)
        self.prdc.reset_fake()
        self.kid.reset_fake()
        self.prdc.update(generated.features, generated.labels, real=False)
        self.kid.update(generated.features, generated.labels, real=False)
        scores = {**self.prdc.compute(), **self.kid.compute()}
        # Memorization needs every rank's generated and real features: gather the PRDC metric's cat states.
        with self.prdc.sync_context(should_unsync=True):
            fake, fake_labels = _cat(self.prdc.fake_features), _cat(self.prdc.fake_labels)
            real, real_labels = _cat(self.prdc.real_features), _cat(self.prdc.real_labels)
        found = memorization(fake, fake_labels, self._train[2], real, real_labels, model.num_classes,
                             self.memorization_quantile)
        scores.update(found.scores)
        self.last_scores = {f"{split}/{key}": value for key, value in scores.items()}
        self.last_global_step = trainer.global_step
        for key, value in self.last_scores.items():
            pl_module.log(key, value, on_epoch=True)  # already gathered from every process
        if self.n_pairs:
            world = trainer.world_size
            # Gathered order is rank-major: rank r holds the label-major positions r, r + world, ...
            positions = torch.cat([torch.arange(model.num_classes * per_class)[r::world] for r in range(world)])
            self.last_png = self._publish_pairs(trainer, model, device, per_class, positions, found.distances,
                                                found.neighbours)

    def _publish_pairs(self, trainer: Trainer, model: ConditionalSampler, device: torch.device, per_class: int,
                       positions: Tensor, distances: Tensor, neighbours: Tensor) -> Path | None:
        """Regenerate the generated samples nearest to the training set and save them above their neighbours."""
        assert self._train is not None
        order = distances.cpu().argsort()[: self.n_pairs]
        z, labels = class_balanced_latents(model.num_classes, per_class, model.latent_dim, self.seed)
        picked = positions[order]
        generated = model.sample(labels[picked].to(device), z=z[picked].to(device)).float().cpu()
        nearest = self._train[0][neighbours.cpu()[order]].float()
        grid = image_grid(torch.cat([generated, nearest]), columns=len(order))
        return publish_grid(trainer, "memorization", grid, evaluated_epoch(trainer, self._checkpoint_epoch))


def _cat(states: list[Tensor] | Tensor) -> Tensor:
    if isinstance(states, Tensor):
        return states
    return torch.cat(states) if states else torch.zeros(0)
