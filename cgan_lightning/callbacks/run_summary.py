"""``RunSummary``: at the end of ``fit``, say where everything went and how the final model scored."""

from __future__ import annotations

import math
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from cgan_lightning.callbacks.cas import ClassificationAccuracyScore
from cgan_lightning.callbacks.fixed_latents import FixedLatentCallback
from cgan_lightning.callbacks.per_class_fid import PerClassFID
from cgan_lightning.callbacks.sample_quality import SampleQuality
from cgan_lightning.metrics.report import per_class_table
from cgan_lightning.utilities.image_grids import run_dir
from cgan_lightning.utilities.lightning_internals import fast_dev_run, trainer_callbacks


class RunSummary(Callback):
    """Prints, on rank zero after ``fit``: the run directory, ``last.ckpt`` and the best checkpoints, the saved
    ``config.yaml``, the PNG grids written, and the latest per-class table of each :class:`PerClassFID`, with the
    columns of :class:`SampleQuality` and :class:`ClassificationAccuracyScore` when they scored the same weights.

    The CLI adds it to every run; in Python, add it to ``Trainer(callbacks=...)``. :meth:`summary` returns the text.
    Nothing is printed under ``fast_dev_run`` (which writes no files).
    """

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        directory = run_dir(trainer)  # every rank: it may broadcast
        if not fast_dev_run(trainer):
            _print(self.summary(trainer, directory))

    def summary(self, trainer: Trainer, directory: Path | None = None) -> str:
        """The summary text of ``trainer``'s finished run (``directory``: the run directory, else looked up)."""
        directory = run_dir(trainer) if directory is None else directory
        lines = ["", "Run summary", f"  run directory: {directory}"]
        lines += _checkpoint_lines(trainer)
        config = saved_config_path(trainer)
        if config is not None:
            lines.append(f"  config:        {config}  (reuse: --config {config})")
        for callback in trainer_callbacks(trainer):
            if isinstance(callback, FixedLatentCallback) and callback.last_png is not None:
                folder = callback.last_png.parent
                count = len(list(folder.glob("*.png")))
                lines.append(f"  {folder.name} PNGs: {count} in {folder} (latest {callback.last_png.name})")
        for callback in trainer_callbacks(trainer):
            if isinstance(callback, PerClassFID) and callback.last_scores:
                prefix = next(iter(callback.last_scores)).split("/", 1)[0] + "/"
                scores = {**_same_evaluation_scores(trainer, callback), **callback.last_scores}
                lines += ["", f"Per-class FID and generated-image accuracy (latest evaluation, epoch "
                              f"{callback.last_epoch}):",
                          per_class_table(scores, prefix, getattr(trainer.lightning_module, "class_names", None))]
        return "\n".join(lines) + "\n"


def _same_evaluation_scores(trainer: Trainer, fid: PerClassFID) -> dict[str, float]:
    """The scores of the other evidence callbacks (CAS, precision/recall/density/coverage, KID, memorization) that
    scored the same weights as ``fid`` (same training step), so the table shows one evaluation, never a mix."""
    scores: dict[str, float] = {}
    for callback in trainer_callbacks(trainer):
        if (isinstance(callback, SampleQuality | ClassificationAccuracyScore) and callback.last_scores
                and callback.last_global_step == fid.last_global_step):
            scores.update(callback.last_scores)
    return scores


def _checkpoint_lines(trainer: Trainer) -> list[str]:
    lines = []
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, ModelCheckpoint):
            continue
        if callback.monitor is None:
            # No monitor: the newest file it wrote (the CLI's default writes last.ckpt itself).
            newest = callback.last_model_path or callback.best_model_path
            if newest:
                lines.append(f"  last:          {newest}")
            continue
        if callback.last_model_path:
            lines.append(f"  last:          {callback.last_model_path}")
        ranked = sorted(callback.best_k_models.items(), key=lambda item: float(item[1]),
                        reverse=callback.mode == "max")
        if ranked:
            lines.append(f"  best by {callback.monitor} ({callback.mode}, best first):")
        for path, score in ranked:
            value = float(score)
            lines.append(f"    {path}  ({'nan' if math.isnan(value) else f'{value:.4g}'})")
    return lines


@rank_zero_only
def _print(text: str) -> None:
    print(text, flush=True)


def saved_config_path(trainer: Trainer) -> Path | None:
    """The ``config.yaml`` the CLI saved for this run (the whole resolved config), or ``None`` outside the CLI.

    A per-run copy wins (``WandbSaveConfigCallback.run_config_path``, in the W&B run's files): the log dir's
    ``config.yaml`` is rewritten by every run into the same W&B ``save_dir``.
    """
    for callback in trainer_callbacks(trainer):
        if isinstance(callback, SaveConfigCallback):
            own = getattr(callback, "run_config_path", None)
            shared = Path(trainer.log_dir) / callback.config_filename if trainer.log_dir is not None else None
            for path in (own, shared):
                if path is not None and Path(path).is_file():
                    return Path(path)
    return None


__all__ = ["RunSummary", "saved_config_path"]
