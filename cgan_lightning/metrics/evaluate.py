"""``evaluate_generator``: the callbacks' numbers for a loaded model, without a Trainer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cgan_lightning.metrics.features import FeatureChoice
from cgan_lightning.metrics.interference import interference_images, interference_scores
from cgan_lightning.metrics.per_class_evaluator import PerClassEvaluator
from cgan_lightning.metrics.protocol import check_sampler
from cgan_lightning.metrics.report import names_are_ids, per_class_table
from cgan_lightning.metrics.sampling import image_label_batches, seeded_normal
from cgan_lightning.metrics.traversal import traversal_images, traversal_scores
from cgan_lightning.utilities.image_grids import image_grid, save_png


def _model_device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    params = model.parameters() if isinstance(model, nn.Module) else iter(())
    return next((p.device for p in params), torch.device("cpu"))


def check_data_matches(datamodule: Any, num_classes: int, class_names: Sequence[str] | None) -> None:
    """Refuse evaluation data whose classes are not the model's: its images would be scored under other labels.

    Raises:
        ValueError: the data module's ``num_classes`` differs from the model's, or its ``class_names`` do (where both
            have names that are not just the ids).
    """
    data_classes = getattr(datamodule, "num_classes", None)
    if data_classes is not None and int(data_classes) != num_classes:
        raise ValueError(f"the evaluation data has {data_classes} classes but the model draws {num_classes}: "
                         "evaluate it on data of the classes it was trained on")
    data_names = getattr(datamodule, "class_names", None)
    names = [str(name) for name in class_names or ()]
    # A model that knows its labels only as ids ("0", "1", ...) names no classes to compare.
    if names and not names_are_ids(names) and data_names is not None and [str(name) for name in data_names] != names:
        raise ValueError(f"the evaluation data's classes {list(data_names)} are not the model's {names} "
                         "(label k must name the same class in both): evaluate it on data of the classes it was "
                         "trained on, in the same order")


def evaluate_generator(
    model: Any,
    datamodule: Any = None,
    real_batches: Iterable[tuple[Tensor, Tensor]] | None = None,
    samples_per_class: int = 1000,
    seed: int = 0,
    batch_size: int = 1000,
    feature: FeatureChoice | nn.Module = "classifier",
    feature_weights: str | Path | None = None,
    classifier: str | Path | None = None,
    n_styles: int = 8,
    traversal_steps: int = 8,
    output_dir: str | Path | None = None,
    print_table: bool = False,
) -> dict[str, float]:
    """Per-class FID / accuracy, the interference test and the latent traversal of one model, in one call.

    Example::

        model = ConditionalGAN.load_from_checkpoint("last.ckpt")
        data = MNISTDataModule("../shared/data", download=False)
        scores = evaluate_generator(model, data, output_dir="eval", print_table=True)

    Args:
        model: offers the :class:`~cgan_lightning.metrics.ConditionalSampler` protocol; evaluated on its device.
        datamodule: real images come from its ``val_dataloader()`` (``setup("validate")`` is called first).
        real_batches: alternatively, an iterable of ``(images in [-1, 1], labels)`` batches.
        samples_per_class: as in :class:`~cgan_lightning.callbacks.PerClassFID`.
        seed: as in :class:`~cgan_lightning.callbacks.PerClassFID`.
        batch_size: as in :class:`~cgan_lightning.callbacks.PerClassFID`.
        feature: as in :class:`~cgan_lightning.callbacks.PerClassFID`.
        feature_weights: as in :class:`~cgan_lightning.callbacks.PerClassFID`.
        classifier: as in :class:`~cgan_lightning.callbacks.PerClassFID`.
        n_styles: latents of the interference grid (seeded by ``seed``, as ``InterferenceTest(seed=seed)``).
        traversal_steps: frames per traversal row (seeded by ``seed``, as ``LatentTraversal(seed=seed)``).
        output_dir: when given, ``interference.png`` and ``traversal.png`` are written there.
        print_table: print the per-class table.

    Returns:
        ``val/fid/class_<k>``, ``val/fid/mean``, ``val/fid/worst``, ``val/fid/overall``, ``val/acc/class_<k>``,
        ``val/acc/mean``, ``interference/acc``, ``interference/style_spread`` and ``traversal/acc``: the same keys and
        values the callbacks log.
    """
    sampler = check_sampler(model)
    if (datamodule is None) == (real_batches is None):
        raise ValueError("pass exactly one source of real images: datamodule=... or real_batches=...")
    if datamodule is not None:
        datamodule.setup("validate")
        check_data_matches(datamodule, sampler.num_classes, getattr(model, "class_names", None))
        real_batches = datamodule.val_dataloader()
    device = _model_device(model)
    evaluator = PerClassEvaluator(sampler.num_classes, feature, feature_weights, classifier,
                                  getattr(model, "image_shape", None), getattr(model, "class_names", None)).to(device)
    # ignore: real_batches is not None here (either given, or set from the datamodule above).
    evaluator.add_real(image_label_batches(real_batches), batch_size)  # type: ignore[arg-type]
    scores = {f"val/{k}": v for k, v in evaluator.evaluate(sampler, samples_per_class, seed, batch_size).items()}

    judge = evaluator.classifier
    with torch.no_grad():
        grid_images = interference_images(sampler, seeded_normal((n_styles, sampler.latent_dim), seed), device)
        feats, logits = judge.features_and_logits(grid_images)
        scores.update(interference_scores(feats, logits.argmax(1), n_styles, sampler.num_classes))
        endpoints = seeded_normal((sampler.num_classes, 2, sampler.latent_dim), seed)
        path_images = traversal_images(sampler, endpoints, traversal_steps, device)
        path_preds = judge.features_and_logits(path_images)[1].argmax(1)
        scores.update(traversal_scores(path_preds, sampler.num_classes, traversal_steps))
    if output_dir is not None:
        save_png(image_grid(grid_images, sampler.num_classes), Path(output_dir) / "interference.png")
        save_png(image_grid(path_images, traversal_steps), Path(output_dir) / "traversal.png")
    if print_table:
        print(per_class_table(scores, "val/", getattr(model, "class_names", None)))
    return scores
