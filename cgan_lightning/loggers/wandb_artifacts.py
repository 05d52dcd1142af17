"""W&B: the exported generator as a ``model`` artifact and the final per-class table in the run summary.

Add :class:`ExportGeneratorArtifact` to the trainer's callbacks (after ``PerClassFID``) beside a ``WandbLogger``::

    callbacks:
      - class_path: cgan_lightning.callbacks.PerClassFID
      - class_path: cgan_lightning.loggers.wandb_artifacts.ExportGeneratorArtifact

At the end of ``fit`` it exports the generator (as ``cgan-lightning export`` does, with the evidence of the last
evaluation) to ``<run dir>/generator/`` and logs that folder as a W&B artifact of type ``model``
(``generator-<run id>``, alias ``latest``), loadable anywhere with
``PretrainedGenerator.from_pretrained(wandb.Api().artifact("<entity>/<project>/generator-<id>:latest").download())``.
``WandbLogger(log_model=True)`` uploads the Lightning checkpoints as well; this artifact is the generator alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from cgan_lightning.hub.model_card import per_class_families
from cgan_lightning.loggers.wandb import wandb_loggers
from cgan_lightning.utilities.image_grids import run_dir

#: Metric prefixes whose last values become the card's evidence and the run summary's table.
EVIDENCE_PREFIXES = ("val/", "interference/", "traversal/")


def final_scores(trainer: Trainer) -> dict[str, float]:
    """The last logged evaluation values (``val/fid/class_3``, ``interference/acc`` ...) as floats."""
    return {key: float(value) for key, value in trainer.callback_metrics.items()
            if key.startswith(EVIDENCE_PREFIXES) and getattr(value, "numel", lambda: 1)() == 1}


def per_class_rows(scores: dict[str, float], split: str = "val") -> tuple[list[str], list[list[Any]]]:
    """Columns ``class, <family>...`` and one row per class, from the per-class keys of ``scores``."""
    families = per_class_families(scores, split)
    order = sorted(families)
    classes = sorted({k for values in families.values() for k in values})
    rows = [[str(k), *(families[f].get(k, float("nan")) for f in order)] for k in classes]
    return ["class", *order], rows


class ExportGeneratorArtifact(Callback):
    """After ``fit``: export the generator to the run folder, log it as a W&B ``model`` artifact, and put the final
    per-class table in the run summary. Does nothing without a ``WandbLogger`` (and off rank zero).

    Summary keys: ``final/per_class`` (a table: class, acc, fid, ...), and every evidence scalar under ``final/``
    (e.g. ``final/val/fid/mean``).

    Args:
        folder: sub-folder of the run directory to export into.
        artifact: log the exported folder as an artifact (``False``: only the summary and the folder on disk).
        ema: as :func:`~cgan_lightning.hub.export.pretrained_from_gan` (``None``: the EMA when kept).
    """

    def __init__(self, folder: str = "generator", artifact: bool = True, ema: bool | None = None) -> None:
        self.folder = folder
        self.artifact = artifact
        self.ema = ema
        self.exported: Path | None = None

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        loggers = wandb_loggers(trainer)
        if not loggers or not trainer.is_global_zero:
            return
        import wandb

        from cgan_lightning.hub.export import export_generator

        scores = final_scores(trainer)
        out = run_dir(trainer) / self.folder
        config = next((p for p in (Path(loggers[0].experiment.dir) / "config.yaml", run_dir(trainer) / "config.yaml")
                       if p.is_file()), None)
        self.exported = export_generator(
            pl_module, out, scores=scores or None, ema=self.ema, seed=0,
            training_config=config.read_text() if config else None,
            source=f"the end of a W&B run (epoch {trainer.current_epoch}, global step {trainer.global_step})",
            evidence_note="The last evaluation of the run (PerClassFID and friends, as logged).")
        columns, rows = per_class_rows(scores)
        for logger in loggers:
            run = logger.experiment
            if rows:
                # cast: wandb annotates ``columns`` as an invariant list[str | int]; a list[str] is fine at run time.
                run.summary["final/per_class"] = wandb.Table(columns=cast("list[str | int]", columns), data=rows)
            for key, value in scores.items():
                run.summary[f"final/{key}"] = value
            if self.artifact:
                artifact = wandb.Artifact(f"generator-{run.id}", type="model",
                                          description="cgan-lightning generator: load with "
                                                      "PretrainedGenerator.from_pretrained(<downloaded dir>)",
                                          metadata={"scores": scores, "epoch": trainer.current_epoch,
                                                    "global_step": trainer.global_step})
                artifact.add_dir(str(out))
                run.log_artifact(artifact, aliases=["latest"])


__all__ = ["EVIDENCE_PREFIXES", "ExportGeneratorArtifact", "final_scores", "per_class_rows"]
