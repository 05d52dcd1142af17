"""``ClassificationAccuracyScore``: are generated digits as useful as real ones for training a classifier?"""

from __future__ import annotations

import time

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor
from typing_extensions import override

from cgan_lightning.callbacks.sample_quality import FAST_DEV_TRAIN_IMAGES
from cgan_lightning.callbacks.schedule import (
    FAST_DEV_REAL_BATCHES,
    ScheduledEvaluation,
    check_every_n_epochs,
    is_fast_dev_run,
)
from cgan_lightning.metrics.cas import accuracy_scores, class_hits, fit_classifier
from cgan_lightning.metrics.classifier import MNISTClassifier
from cgan_lightning.metrics.protocol import ConditionalSampler, check_sampler
from cgan_lightning.metrics.sampling import (
    evaluation_loader,
    generate,
    image_label_batches,
    seeded_normal,
    training_images,
)


class ClassificationAccuracyScore(ScheduledEvaluation):
    """CAS (Ravuri & Vinyals 2019): a fresh classifier trained on generated digits only, tested on real ones.

    When due (every ``every_n_epochs`` training epochs and after the last; on every ``validate`` / ``test``), it
    generates as many images of each class as the real training split holds (or ``samples_per_class``), trains an
    :class:`~cgan_lightning.metrics.classifier.MNISTClassifier` on them with
    :func:`~cgan_lightning.metrics.cas.fit_classifier` (``epochs`` passes, no augmentation by default), and logs its
    accuracy on the real evaluation split (the val loader; the test loader under ``test``):
    ``val/cas/class_<k>`` and ``val/cas/mean``. Once per run it trains the same recipe on the real training split
    and logs it beside every CAS as ``val/cas/real`` (mean) and ``val/cas_real/class_<k>``: the gap between
    ``cas/mean`` and ``cas/real`` is what the generated data lacks. ``val/cas/seconds`` is the time one CAS took.

    Cost at MNIST scale (5,000 training images, 3 epochs): seconds on a CPU. Under DDP every rank trains the same
    classifier on the same generated images (same latents) and scores its shard of the evaluation split; the hits
    are summed over ranks. Training runs on a forked random state: the GAN's random stream is unchanged.

    Args:
        every_n_epochs: evaluate after every n-th training epoch.
        epochs: passes of the CAS classifier over its training images.
        batch_size: classifier batch size.
        lr: peak learning rate of the classifier's one-cycle schedule.
        seed: seed of the generated latents and of the classifier's training.
        augment: train the classifier with random shifts, rotations and scaling (off: the plain recipe).
        samples_per_class: generated images per class; ``None``: as many as the real training split has.
        generation_batch_size: images per generation batch.
    """

    def __init__(self, every_n_epochs: int = 5, epochs: int = 3, batch_size: int = 128, lr: float = 3e-3,
                 seed: int = 0, augment: bool = False, samples_per_class: int | None = None,
                 generation_batch_size: int = 1000) -> None:
        super().__init__()
        self.every_n_epochs = check_every_n_epochs(every_n_epochs)
        if epochs < 1 or batch_size < 1 or lr <= 0 or generation_batch_size < 1:
            raise ValueError(f"epochs, batch_size and generation_batch_size must be >= 1 and lr > 0, got {epochs}, "
                             f"{batch_size}, {generation_batch_size} and {lr}")
        if samples_per_class is not None and samples_per_class < 1:
            raise ValueError(f"samples_per_class must be >= 1 or None (as the training split), got {samples_per_class}")
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.augment = augment
        self.samples_per_class = samples_per_class
        self.generation_batch_size = generation_batch_size
        self._real: dict[str, dict[str, float]] = {}  # split -> real-data CAS, once per run
        #: The scores of the latest evaluation, keyed as logged.
        self.last_scores: dict[str, float] = {}
        self.last_global_step: int | None = None  # the training step of the weights last scored

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._real = {}

    def _fit(self, images: Tensor, labels: Tensor, num_classes: int, epochs: int) -> MNISTClassifier:
        return fit_classifier(images, labels, num_classes, epochs=epochs, batch_size=self.batch_size, lr=self.lr,
                              seed=self.seed, augment=self.augment)

    def _score(self, trainer: Trainer, classifier: MNISTClassifier, device: torch.device, split: str, fast: bool,
               prefix: str) -> dict[str, float]:
        batches = image_label_batches(evaluation_loader(trainer, split),
                                      max_batches=FAST_DEV_REAL_BATCHES if fast else None)
        correct, total = class_hits(classifier, batches, device)
        correct = trainer.strategy.reduce(correct, reduce_op="sum")  # each rank scored its shard
        total = trainer.strategy.reduce(total, reduce_op="sum")
        return accuracy_scores(correct, total, prefix)

    def _generated_set(self, model: ConditionalSampler, counts: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
        labels = torch.arange(model.num_classes).repeat_interleave(counts)
        z = seeded_normal((len(labels), model.latent_dim), self.seed)
        images = [batch for batch, _ in generate(model, z, labels, self.generation_batch_size, device)]
        return torch.cat(images).float(), labels.to(device)

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        model = check_sampler(pl_module)
        device = pl_module.device
        fast = is_fast_dev_run(trainer)
        epochs = 1 if fast else self.epochs
        train_images, train_labels = training_images(trainer, FAST_DEV_TRAIN_IMAGES if fast else None)
        if self.samples_per_class is None:
            counts = torch.bincount(train_labels.long(), minlength=model.num_classes)[: model.num_classes]
        else:
            counts = torch.full((model.num_classes,), self.samples_per_class, dtype=torch.long)
        start = time.perf_counter()
        images, labels = self._generated_set(model, counts, device)
        scores = self._score(trainer, self._fit(images, labels, model.num_classes, epochs), device, split, fast,
                             "cas")
        scores["cas/seconds"] = time.perf_counter() - start
        if split not in self._real:
            real = self._fit(train_images.to(device), train_labels.to(device), model.num_classes, epochs)
            real_scores = self._score(trainer, real, device, split, fast, "cas_real")
            real_scores["cas/real"] = real_scores["cas_real/mean"]  # beside cas/mean in the logs
            self._real[split] = real_scores
        scores.update(self._real[split])
        self.last_scores = {f"{split}/{key}": value for key, value in scores.items()}
        self.last_global_step = trainer.global_step
        for key, value in self.last_scores.items():
            pl_module.log(key, value, on_epoch=True)  # already summed over processes
