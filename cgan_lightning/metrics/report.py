"""The per-class table printed after ``validate`` / ``test``: every per-class metric the callbacks logged."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple


class Column(NamedTuple):
    """One metric family of the table: keys ``<prefix><key>/class_<k>`` and ``<prefix><key>/mean``."""

    key: str
    title: str
    digits: int


#: The columns in table order; a column appears when any of its per-class keys is present.
COLUMNS = (
    Column("fid", "FID", 2),
    Column("acc", "accuracy", 3),
    Column("cas", "CAS", 3),
    Column("cas_real", "CAS real", 3),
    Column("precision", "precision", 3),
    Column("recall", "recall", 3),
    Column("density", "density", 3),
    Column("coverage", "coverage", 3),
    Column("kid", "KID", 4),
    Column("memorization", "memorized", 3),
)


def class_label(k: int, class_names: Sequence[str] | None) -> str:
    """The name of class ``k`` (its id when there are no names, or too few)."""
    return str(class_names[k]) if class_names is not None and k < len(class_names) else str(k)


def names_are_ids(names: Sequence[object]) -> bool:
    """Whether ``names`` are only the label ids ``"0", "1", ...``: a model or data without class names of its own.

    >>> names_are_ids(["0", "1", "2"]), names_are_ids(["cat", "dog"])
    (True, False)
    """
    return [str(name) for name in names] == [str(k) for k in range(len(names))]


def class_names(model: Any) -> list[str]:
    """``model.class_names`` when it has them (a :class:`~cgan_lightning.ConditionalGAN` does), else the ids."""
    names = getattr(model, "class_names", None)
    return [str(n) for n in names] if names else [str(k) for k in range(model.num_classes)]


def per_class_table(scores: Mapping[str, float], prefix: str = "val/",
                    class_names: Sequence[str] | None = None) -> str:
    """Format the per-class metrics as a text table: one row per class, then mean, worst and overall.

    FID and accuracy always have a column (``-`` when absent); CAS, precision, recall, density, coverage, KID and
    memorization get one when they were logged. ``worst`` is the largest per-class FID, ``overall`` the pooled FID.

    Args:
        scores: metrics keyed ``<prefix>fid/class_<k>``, ``<prefix>acc/class_<k>``, ``<prefix>fid/mean`` ...
        prefix: the stage prefix of the keys.
        class_names: one name per label, shown beside the ids (``None``: ids only).
    """
    columns = [c for c in COLUMNS if c.key in ("fid", "acc")
               or any(key.startswith(f"{prefix}{c.key}/class_") for key in scores)]
    classes = sorted({int(key.rsplit("_", 1)[1]) for key in scores for c in columns
                      if key.startswith(f"{prefix}{c.key}/class_")})
    names = {k: class_label(k, class_names) for k in classes}
    if any(name != str(k) for k, name in names.items()):  # "<id> <name>", ids right- and names left-aligned
        id_width = max(len(str(k)) for k in classes)
        name_width = max(len(name) for name in names.values())
        names = {k: f"{k:>{id_width}} {name:<{name_width}}" for k, name in names.items()}
    width = max([7, *(len(name) for name in names.values())])

    def cell(key: str, digits: int) -> str:
        value = scores.get(f"{prefix}{key}")
        value = None if value is None else float(value)
        return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    def row(name: str, suffix: str, only: tuple[str, ...] | None = None) -> str:
        cells = [cell(f"{c.key}/{suffix}", c.digits) if only is None or c.key in only else ""
                 for c in columns]
        return f"{name:>{width}} " + " ".join(f"{v:>{max(9, len(c.title))}}"
                                             for v, c in zip(cells, columns, strict=True))

    lines = [f"{'class':>{width}} " + " ".join(f"{c.title:>{max(9, len(c.title))}}" for c in columns)]
    lines += [row(names[k], f"class_{k}") for k in classes]
    lines.append(row("mean", "mean"))
    lines.append(row("worst", "worst", only=("fid",)))
    lines.append(row("overall", "overall", only=("fid",)))
    return "\n".join(line.rstrip() for line in lines)
