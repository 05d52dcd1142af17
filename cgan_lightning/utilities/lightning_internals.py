"""The only place the package reads Lightning state that has no public API.

Each function wraps one access, documents why it is needed, and has a test in
``tests/test_lightning_internals.py`` that fails when a Lightning release changes what it relies on.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.trainer.connectors.signal_connector import _HandlersCompose


def attached_trainer(module: LightningModule) -> Trainer | None:
    """The trainer ``module`` is attached to, or ``None`` (``module.trainer`` raises instead of returning None).

    Needed in hooks that run both under a ``Trainer`` and from ``load_from_checkpoint`` (no trainer).
    """
    try:
        return module.trainer
    except RuntimeError:  # "... is not attached to a `Trainer`."
        return None


def ddp_wrapper_kwargs(strategy: Strategy) -> dict[str, Any] | None:
    """The live keyword arguments ``DDPStrategy`` passes to ``DistributedDataParallel`` (``None`` for others).

    ``DDPStrategy`` takes them as ``**kwargs`` and keeps them in ``_ddp_kwargs`` with no accessor; the module
    sets ``find_unused_parameters`` there before the model is wrapped. The returned dict is the strategy's own,
    so changes to it take effect.
    """
    kwargs = getattr(strategy, "_ddp_kwargs", None)
    return kwargs if isinstance(kwargs, dict) else None


def wandb_run_started(logger: WandbLogger) -> bool:
    """Whether ``logger`` already started (or attached to) its W&B run.

    ``logger.experiment`` would *start* a run just to answer; ``_experiment`` is the run or ``None``.
    """
    return getattr(logger, "_experiment", None) is not None


def callback_state_key(callback: Callback, **kwargs: Any) -> str:
    """A ``Callback.state_key`` that tells apart instances by ``kwargs``, in Lightning's own format.

    Same string as Lightning's protected ``Callback._generate_state_key(**kwargs)``, so checkpoints written
    with it keep loading.
    """
    return f"{type(callback).__qualname__}{kwargs!r}"


def trainer_callbacks(trainer: Trainer) -> list[Callback]:
    """The trainer's live list of callbacks (appending to it adds a callback before ``fit`` starts).

    ``Trainer`` sets ``callbacks`` in its callback connector at run time and declares no typed attribute for it.
    """
    callbacks: list[Callback] = trainer.callbacks  # type: ignore[attr-defined]  # set dynamically by Lightning
    return callbacks


def fast_dev_run(trainer: Trainer) -> int | bool:
    """``Trainer(fast_dev_run=...)`` as the trainer holds it: ``False``, ``True`` or a number of batches.

    ``Trainer`` sets ``fast_dev_run`` in its data connector at run time and declares no typed attribute for it.
    """
    value: int | bool = trainer.fast_dev_run  # type: ignore[attr-defined]  # set dynamically by Lightning
    return value


def log_every_n_steps(trainer: Trainer) -> int:
    """``Trainer(log_every_n_steps=...)``: how many batches apart Lightning writes logs (``0``: only at the end).

    ``Trainer`` sets ``log_every_n_steps`` in its logger connector at run time and declares no typed attribute.
    """
    value: int = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set dynamically by Lightning
    return value


def logging_step(trainer: Trainer) -> int:
    """The step Lightning gives loggers for ``self.log`` values: batches trained (``global_step`` counts optimizer
    steps, 2 or more a batch here). Images and tables logged at it sit beside the scalars on the loggers' x axis.
    """
    step: int = trainer.fit_loop.epoch_loop._batches_that_stepped
    return step


def mark_sigterm_received(trainer: Trainer) -> None:
    """Set the flag Lightning's SIGTERM handler sets: the fit loop raises ``SIGTERMException`` after this batch.

    ``Trainer.received_sigterm`` is a read-only property over the signal connector's attribute.
    """
    trainer._signal_connector.received_sigterm = True


def sigterm_handlers_without_lightnings_broadcast(trainer: Trainer, replacement: Callable[..., None]) -> Any:
    """The SIGTERM handler Lightning installed for ``fit``, with its notifier (which calls ``dist.broadcast`` from
    inside the handler) swapped for ``replacement``; the handlers it composed with it (a user's, SLURM's) stay.

    Lightning wraps its handlers in a ``_HandlersCompose`` whose ``signal_handlers`` lists them; anything else
    installed is kept after ``replacement``.
    """
    installed = signal.getsignal(signal.SIGTERM)
    notifier = trainer._signal_connector._sigterm_notifier_fn
    handlers = list(getattr(installed, "signal_handlers", [installed]))
    kept = [h for h in handlers if h != notifier and callable(h)]
    return _HandlersCompose([replacement, *kept])


__all__ = [
    "attached_trainer",
    "callback_state_key",
    "ddp_wrapper_kwargs",
    "fast_dev_run",
    "log_every_n_steps",
    "logging_step",
    "mark_sigterm_received",
    "sigterm_handlers_without_lightnings_broadcast",
    "trainer_callbacks",
    "wandb_run_started",
]
