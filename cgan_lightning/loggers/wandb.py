"""Weights & Biases extras: the resolved CLI config in the W&B run, and per-class metrics as a table and bar charts.

Both do nothing unless the trainer has a :class:`~lightning.pytorch.loggers.WandbLogger`, so they are safe to keep
in every run. Offline use (no account, no network): ``WANDB_MODE=offline``; the run is written under
``<save_dir>/wandb/offline-run-*`` and can be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from cgan_lightning.metrics.report import class_label
from cgan_lightning.utilities.lightning_internals import logging_step, wandb_run_started
from cgan_lightning.utilities.output_paths import same_file

#: Model arguments the CLI links from the data module; they are absent from the parsed config, so they are
#: copied from the instantiated model into the config that W&B receives.
LINKED_MODEL_KEYS = ("num_classes", "image_shape", "class_names")


def wandb_loggers(trainer: Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers (usually zero or one)."""
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def finish_wandb_runs(trainer: Trainer) -> None:
    """End the W&B runs of the trainer's W&B loggers (after ``fit``: their final checkpoints are logged by then).

    A process that calls ``fit`` again (a notebook, a test calling ``cli.main`` twice) then starts a new W&B run
    instead of appending to the finished one, which ``WandbLogger`` would otherwise reuse.
    """
    for logger in wandb_loggers(trainer):
        if wandb_run_started(logger):  # never start a run just to finish it
            logger.experiment.finish()


class WandbSaveConfigCallback(SaveConfigCallback):
    """LightningCLI's config saving, plus the fully resolved config in every W&B run.

    As the base class, writes ``config.yaml`` to the trainer's log dir (the CLI passes ``overwrite=True``, so a
    second run into the same W&B ``save_dir`` does not stop on the previous file). With a ``WandbLogger``, it
    also:

    - sends the resolved config to W&B with ``logger.log_hyperparams`` (nested as in the YAML: ``trainer``,
      ``model``, ``data``, ``checkpoint``, ...), including the values the CLI links from the data module into
      the model (``model.num_classes``, ``model.image_shape``), read from the instantiated model;
    - keeps the re-loadable ``config.yaml`` in the W&B run's own files folder, so each run, even when several
      share a ``save_dir``, carries the config that reproduces it (``--config <run>/files/config.yaml``).
    """

    #: Where the resolved config goes when ``config.yaml`` in the log dir is the ``--config`` file being read.
    RESOLVED_CONFIG_FILENAME = "config.resolved.yaml"
    #: This run's own ``config.yaml`` in its W&B files folder, once saved (``None`` before, or without W&B).
    run_config_path: Path | None = None

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Never overwrite the config the user passed (a hand-written file, comments and all, in the run folder):
        # the resolved config then goes beside it.
        if self.save_to_log_dir and not self.already_saved and trainer.log_dir is not None:
            target = Path(trainer.log_dir) / self.config_filename
            inputs = [Path(str(getattr(p, "absolute", p))) for p in (self.config.get("config") or [])]
            if target.exists() and any(same_file(target, p) for p in inputs):
                self.config_filename = self.RESOLVED_CONFIG_FILENAME
                rank_zero_warn(f"{target} is the --config file this run reads: it is kept as it is; the run's "
                               f"resolved config goes to {target.with_name(self.config_filename)}")
        super().setup(trainer, pl_module, stage)

    @override
    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        loggers = wandb_loggers(trainer)
        if not loggers:
            return
        config = self.resolved_config(pl_module)
        for logger in loggers:
            logger.log_hyperparams(config)
            run_dir = Path(logger.experiment.dir)
            self.parser.save(self.config, str(run_dir / self.config_filename), skip_none=False, overwrite=True)
            # The run's own copy: the log dir's config.yaml is rewritten by the next run into the same save_dir.
            self.run_config_path = self.run_config_path or run_dir / self.config_filename

    def resolved_config(self, pl_module: LightningModule) -> dict[str, Any]:
        """The parsed config as plain YAML types, with the linked model arguments filled in."""
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False)) or {}
        model = config.setdefault("model", {})
        for key in LINKED_MODEL_KEYS:
            if key in pl_module.hparams:
                value = pl_module.hparams[key]
                model[key] = list(value) if isinstance(value, tuple) else value
        return config


_CLASS_KEY = re.compile(r"class_(\d+)$")

#: Per-class metrics of the evidence callbacks that join the table as extra columns when they were logged
#: (``<split>/<name>/class_<k>``); the column is named as the metric.
EVIDENCE_COLUMNS = ("cas", "cas_real", "precision", "recall", "density", "coverage", "kid", "memorization")


def per_class_values(metrics: dict[str, Any], prefix: str) -> dict[int, float]:
    """``{k: value}`` for every ``<prefix><k>`` in ``metrics`` (e.g. ``val/fid/class_3`` with prefix ``val/fid/``)."""
    values = {}
    for name, value in metrics.items():
        if name.startswith(prefix) and (match := _CLASS_KEY.fullmatch(name[len(prefix):])):
            values[int(match.group(1))] = float(value)
    return values


class WandbPerClassTable(Callback):
    """After each validation (and test), logs per-class FID and accuracy to W&B as a ``wandb.Table`` and bar charts.

    It reads what :class:`~cgan_lightning.callbacks.PerClassFID` logged (``val/fid/class_<k>`` and
    ``val/acc/class_<k>``; ``test/...`` under ``test``) from ``trainer.callback_metrics``: PerClassFID logs in
    ``on_validation_epoch_end``, this callback acts later, in ``on_validation_end`` / ``on_test_end``. When the
    evaluation did not run this time (its ``every_n_epochs``), the values are unchanged and are not logged again.

    Logged keys (``<split>`` is ``val`` or ``test``): ``<split>/per_class/table`` (columns ``class``, ``fid``,
    ``accuracy``, then any of ``cas``, ``cas_real``, ``precision``, ``recall``, ``density``, ``coverage``, ``kid``,
    ``memorization`` that :class:`~cgan_lightning.callbacks.ClassificationAccuracyScore` and
    :class:`~cgan_lightning.callbacks.SampleQuality` logged; ``class`` holds the model's class names),
    ``<split>/per_class/fid_chart`` and ``<split>/per_class/acc_chart`` (bar charts over classes).
    Without a ``WandbLogger`` it does nothing.
    """

    def __init__(self) -> None:
        self._last_logged: dict[str, dict[int, tuple[float, ...]]] = {}

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.log_tables(trainer, "val")

    @override
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.log_tables(trainer, "test")

    def log_tables(self, trainer: Trainer, split: str) -> None:
        """Log the table and charts of ``split`` from ``trainer.callback_metrics`` (rank zero, W&B loggers only)."""
        loggers = wandb_loggers(trainer)
        if not loggers or not trainer.is_global_zero:
            return
        fid = per_class_values(trainer.callback_metrics, f"{split}/fid/")
        acc = per_class_values(trainer.callback_metrics, f"{split}/acc/")
        extra = {name: per_class_values(trainer.callback_metrics, f"{split}/{name}/") for name in EVIDENCE_COLUMNS}
        extra = {name: values for name, values in extra.items() if values}
        classes = sorted(set(fid) | set(acc))
        if not classes:
            return
        nan = float("nan")
        current = {k: (fid.get(k, nan), acc.get(k, nan), *(v.get(k, nan) for v in extra.values())) for k in classes}
        if current == self._last_logged.get(split):  # the evaluation did not run this time
            return
        self._last_logged[split] = current
        import wandb  # WandbLogger already requires it

        names = getattr(trainer.lightning_module, "class_names", None)
        table = wandb.Table(columns=["class", "fid", "accuracy", *extra],
                            data=[[class_label(k, names), *current[k]] for k in classes])
        key = f"{split}/per_class"
        payload: dict[str, Any] = {  # W&B objects: WandbLogger.log_metrics logs them as they are
            f"{key}/table": table,
            f"{key}/fid_chart": wandb.plot.bar(table, "class", "fid", title="Per-class FID (lower is better)"),
            f"{key}/acc_chart": wandb.plot.bar(table, "class", "accuracy",
                                              title="Classifier accuracy on generated digits, per class"),
        }
        for logger in loggers:
            logger.log_metrics(payload, step=logging_step(trainer))  # beside the scalars logged with self.log


__all__ = [
    "EVIDENCE_COLUMNS",
    "LINKED_MODEL_KEYS",
    "WandbPerClassTable",
    "WandbSaveConfigCallback",
    "finish_wandb_runs",
    "per_class_values",
    "wandb_loggers",
]
