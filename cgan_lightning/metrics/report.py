"""The per-class table printed after ``validate`` / ``test``."""

from __future__ import annotations

import math
from collections.abc import Mapping


def per_class_table(scores: Mapping[str, float], prefix: str = "val/") -> str:
    """Format per-class FID and accuracy as a text table (one row per class, then mean / worst / overall).

    Args:
        scores: metrics keyed ``<prefix>fid/class_<k>``, ``<prefix>acc/class_<k>``, ``<prefix>fid/mean`` ...
        prefix: the stage prefix of the keys.
    """
    classes = sorted(int(key.rsplit("_", 1)[1]) for key in scores if key.startswith(f"{prefix}fid/class_"))

    def cell(key: str, digits: int) -> str:
        value = scores.get(f"{prefix}{key}")
        return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    lines = [f"{'class':>7} {'FID':>9} {'accuracy':>9}"]
    lines += [f"{k:>7} {cell(f'fid/class_{k}', 2):>9} {cell(f'acc/class_{k}', 3):>9}" for k in classes]
    lines.append(f"{'mean':>7} {cell('fid/mean', 2):>9} {cell('acc/mean', 3):>9}")
    lines.append(f"{'worst':>7} {cell('fid/worst', 2):>9} {'':>9}")
    lines.append(f"{'overall':>7} {cell('fid/overall', 2):>9} {'':>9}")
    return "\n".join(lines)
