"""Known third-party noise that the ``cgan-lightning`` command hides, by message; nothing else is filtered.

Only :func:`silence_known_noise` (called from :func:`cgan_lightning.cli.main`) installs these filters: importing
the library changes no warning or logging setting. ``pyproject.toml``'s pytest ``filterwarnings`` lists the same
messages for the test suite.
"""

from __future__ import annotations

import logging
import warnings

#: Lightning's advertisements (for litlogger and litmodels), printed through its ``rank_zero_info`` logger.
LIGHTNING_TIP_PREFIX = "💡 Tip: For seamless cloud"

#: torch 2.10+ deprecates ``LeafSpec``; Lightning 2.6's ``utilities/_pytree.py`` still builds one per batch.
LEAFSPEC_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"

#: Lightning's advice to ``sync_dist`` every metric logged under DDP, for the evaluation callbacks' metrics: each
#: is computed over every rank's samples and is the same on every rank, so syncing would only add collectives.
EVALUATION_SYNC_DIST_ADVICE = (r"It is recommended to use `self\.log\('((val|test)/)?(fid|acc|kid|cas|cas_real|"
                               r"precision|recall|density|coverage|memorization|interference|traversal)/")

#: The loggers Lightning's ``rank_zero_info`` writes through.
_LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _DropLightningTips(logging.Filter):
    """Drops log records whose message starts with :data:`LIGHTNING_TIP_PREFIX`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LIGHTNING_TIP_PREFIX)


_TIP_FILTER = _DropLightningTips()


def silence_known_noise() -> None:
    """Hide Lightning's litlogger / litmodels tips, its ``sync_dist`` advice for the evaluation callbacks' metrics
    and torch's ``LeafSpec`` deprecation warning (idempotent)."""
    warnings.filterwarnings("ignore", message=LEAFSPEC_DEPRECATION, category=FutureWarning)
    warnings.filterwarnings("ignore", message=EVALUATION_SYNC_DIST_ADVICE)
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _TIP_FILTER not in logger.filters:
            logger.addFilter(_TIP_FILTER)
