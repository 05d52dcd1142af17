"""Linear learning-rate decay to zero over the last part of training, one step per training batch.

GANs trained for a fixed budget often end with both learning rates falling linearly to zero (the projection
discriminator's training code, Miyato & Koyama 2018): the last updates refine instead of moving on.
``ConditionalGAN(lr_decay=f)`` keeps each rate constant for the first ``1 - f`` of the planned batches, then scales
it linearly down to zero. The schedulers are ordinary ``LambdaLR`` schedulers returned by ``configure_optimizers``,
so Lightning saves them in checkpoints (a resumed run continues the schedule) and ``LearningRateMonitor`` logs them;
under manual optimization the module steps them after each batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def check_lr_decay(fraction: object) -> float:
    """Return ``fraction`` as a float if it is a number in ``[0, 1]``, else raise ``ValueError``."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"lr_decay must be a fraction of training in [0, 1] (0: constant learning rates, 0.5: "
                         f"decay over the second half), got {fraction!r}")
    return float(fraction)


def linear_decay_factor(batch: int, total_batches: int, fraction: float) -> float:
    """The learning-rate factor for 0-based ``batch`` of ``total_batches``: 1, then linearly down over the last
    ``fraction`` of them (reaching 0 one batch after the last).

    Examples:
        >>> [linear_decay_factor(b, 8, 0.5) for b in range(8)]
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
        >>> linear_decay_factor(3, 8, 0.0)
        1.0
    """
    start = total_batches * (1.0 - fraction)
    if fraction <= 0.0 or batch < start:
        return 1.0
    return max(0.0, 1.0 - (batch - start) / max(1.0, total_batches - start))


def planned_training_batches(trainer: Any, optimizer_steps_per_batch: int) -> int:
    """How many batches ``trainer.fit`` will train on: ``max_epochs`` times the batches per epoch, or fewer when
    ``max_steps`` stops it first (under manual optimization ``max_steps`` counts optimizer steps, several a batch).

    Raises:
        ValueError: neither bounds the run (``max_epochs=-1`` without ``max_steps``, or an iterable data set of
            unknown length without ``max_steps``).
    """
    trainer.estimated_stepping_batches  # noqa: B018 (loads the training data loader if fit has not yet)
    bounds = []
    per_epoch = trainer.num_training_batches
    if trainer.max_epochs is not None and trainer.max_epochs >= 0 and per_epoch != float("inf"):
        bounds.append(int(per_epoch) * max(trainer.max_epochs, 1))
    if trainer.max_steps is not None and trainer.max_steps >= 0:
        bounds.append(math.ceil(trainer.max_steps / optimizer_steps_per_batch))
    if not bounds:
        raise ValueError("lr_decay needs to know how long training runs: set trainer.max_epochs (with a data set of "
                         "known length) or trainer.max_steps, or set lr_decay=0")
    return max(1, min(bounds))


def linear_decay_schedulers(optimizers: Sequence[Optimizer], total_batches: int, fraction: float) -> list[LambdaLR]:
    """One ``LambdaLR`` per optimizer following :func:`linear_decay_factor`, to be stepped once per batch."""

    def factor(batch: int) -> float:
        return linear_decay_factor(batch, total_batches, fraction)

    return [LambdaLR(optimizer, factor) for optimizer in optimizers]


__all__ = ["check_lr_decay", "linear_decay_factor", "linear_decay_schedulers", "planned_training_batches"]
