"""The per-class table printed after ``validate`` / ``test``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def class_label(k: int, class_names: Sequence[str] | None) -> str:
    """The name of class ``k`` (its id when there are no names, or too few)."""
    return str(class_names[k]) if class_names is not None and k < len(class_names) else str(k)


def class_names(model: Any) -> list[str]:
    """``model.class_names`` when it has them (a :class:`~cgan_lightning.ConditionalGAN` does), else the ids."""
    names = getattr(model, "class_names", None)
    return [str(n) for n in names] if names else [str(k) for k in range(model.num_classes)]


def per_class_table(scores: Mapping[str, float], prefix: str = "val/",
                    class_names: Sequence[str] | None = None) -> str:
    """Format per-class FID and accuracy as a text table (one row per class, then mean / worst / overall).

    Args:
        scores: metrics keyed ``<prefix>fid/class_<k>``, ``<prefix>acc/class_<k>``, ``<prefix>fid/mean`` ...
        prefix: the stage prefix of the keys.
        class_names: the name of each label, shown instead of the ids (when they differ, as ``<id> <name>``).
    """
    classes = sorted(int(key.rsplit("_", 1)[1]) for key in scores if key.startswith(f"{prefix}fid/class_"))
    names = {k: class_label(k, class_names) for k in classes}
    if any(name != str(k) for k, name in names.items()):  # "<id> <name>", ids right- and names left-aligned
        id_width = max(len(str(k)) for k in classes)
        name_width = max(len(name) for name in names.values())
        names = {k: f"{k:>{id_width}} {name:<{name_width}}" for k, name in names.items()}
    width = max([7, *(len(name) for name in names.values())])

    def cell(key: str, digits: int) -> str:
        value = scores.get(f"{prefix}{key}")
        return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    lines = [f"{'class':>{width}} {'FID':>9} {'accuracy':>9}"]
    lines += [f"{names[k]:>{width}} {cell(f'fid/class_{k}', 2):>9} {cell(f'acc/class_{k}', 3):>9}" for k in classes]
    lines.append(f"{'mean':>{width}} {cell('fid/mean', 2):>9} {cell('acc/mean', 3):>9}")
    lines.append(f"{'worst':>{width}} {cell('fid/worst', 2):>9} {'':>9}")
    lines.append(f"{'overall':>{width}} {cell('fid/overall', 2):>9} {'':>9}")
    return "\n".join(lines)
