"""The model card (``README.md``) of an exported generator: its per-class evidence, interference grid and config.

The card is rendered by ``huggingface_hub.ModelCard.from_template`` (through ``PyTorchModelHubMixin``) from
:data:`CARD_TEMPLATE`; :func:`evidence_markdown` turns the scores of
:func:`~cgan_lightning.metrics.evaluate_generator` (or of the callbacks) into Markdown tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

#: Column titles of the per-class metric families (``<split>/<family>/class_<k>``); others keep their family name.
FAMILY_TITLES = {"fid": "FID (lower is better)", "acc": "accuracy (higher is better)"}
_PER_CLASS = re.compile(r"^(?P<split>[^/]+)/(?P<family>[^/]+)/class_(?P<k>\d+)$")

#: A sentence of every card: an existing ``README.md`` without it is the user's own, which an export must not replace.
CARD_MARKER = "generator exported by cgan-lightning"

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title | default("cgan-lightning class-conditional generator", true) }}

A class-conditional GAN generator exported by cgan-lightning {{ library_version }}:
G(z, y) draws an image of class y from a latent z. This folder holds the generator alone ({{ weights }}):
`model.safetensors` (weights) and `config.json` (architecture, labels, shapes); no Lightning state.

| | |
|---|---|
| architecture | `{{ class_path }}` |
| init args | `{{ init_args }}` |
| classes | {{ num_classes }}: {{ class_names }} |
| image shape (C, H, W) | {{ image_shape }} |
| latent_dim | {{ latent_dim }} |
| exported from | {{ source }} |
| library | cgan-lightning {{ library_version }} |

## Use it

```bash
pip install cgan-lightning
cgan-lightning sample --pretrained {{ load_name }} --labels all --n_per_label 8 --out samples.png --seed 0
```

```python
import torch
from cgan_lightning.hub import PretrainedGenerator

g = PretrainedGenerator.from_pretrained("{{ load_name }}")
images = g.sample([3, 7], generator=torch.Generator().manual_seed(0))  # [2, C, H, W] in [-1, 1]
```

`g` offers the evaluation protocol (`num_classes`, `latent_dim`, `sample(labels, z=None, generator=None)`), so
`cgan_lightning.metrics.evaluate_generator(g, datamodule)` re-measures the table below.

## Evidence

{{ evidence }}

## Interference grid

{{ interference }}

## Training config

```yaml
{{ training_config }}
```
"""

#: Card values used when a generator is saved without evidence (``save_pretrained`` called directly).
MINIMAL_CARD_KWARGS = {
    "weights": "weights as saved",
    "source": "`PretrainedGenerator.save_pretrained`",
    "evidence": "No evidence attached: this card was written by `save_pretrained` without an evaluation. "
    "`cgan-lightning export --ckpt_path last.ckpt --out DIR --data_dir DATA` writes one with the per-class table.",
    "interference": "Not rendered.",
    "training_config": "# not recorded",
}


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def per_class_families(scores: Mapping[str, float], split: str = "val") -> dict[str, dict[int, float]]:
    """``{family: {class: value}}`` for every ``<split>/<family>/class_<k>`` key (fid, acc, and any added later)."""
    families: dict[str, dict[int, float]] = {}
    for key, value in scores.items():
        match = _PER_CLASS.match(key)
        if match and match["split"] == split:
            families.setdefault(match["family"], {})[int(match["k"])] = float(value)
    return families


def evidence_markdown(scores: Mapping[str, float], class_names: Sequence[str], split: str = "val",
                      how: str = "") -> str:
    """The per-class table (a row per class, then mean / worst / overall) and the other scalars, as Markdown.

    Args:
        scores: keys as :func:`~cgan_lightning.metrics.evaluate_generator` returns them.
        class_names: a name per class id.
        split: the key prefix (``val`` or ``test``).
        how: a sentence saying how the numbers were measured, put above the tables.
    """
    families = per_class_families(scores, split)
    if not families:
        return (how + "\n\n" if how else "") + "No per-class scores were measured for this export."
    order = sorted(families, key=lambda f: (f not in FAMILY_TITLES, list(FAMILY_TITLES).index(f)
                                            if f in FAMILY_TITLES else 0, f))
    digits = {f: 2 if f == "fid" else 3 for f in order}
    lines = ["| class | " + " | ".join(FAMILY_TITLES.get(f, f) for f in order) + " |",
             "|---|" + "---:|" * len(order)]
    classes = sorted({k for values in families.values() for k in values})
    for k in classes:
        name = class_names[k] if k < len(class_names) else str(k)
        label = name if name == str(k) else f"{k} ({name})"
        lines.append(f"| {label} | " + " | ".join(_cell(families[f].get(k), digits[f]) for f in order) + " |")
    for summary in ("mean", "worst", "overall"):
        values = [scores.get(f"{split}/{f}/{summary}") for f in order]
        if any(v is not None for v in values):
            lines.append(f"| **{summary}** | " + " | ".join(_cell(v, digits[f]) for v, f in zip(values, order,
                                                                                                 strict=True)) + " |")
    others = {key: value for key, value in sorted(scores.items())
              if not key.startswith(f"{split}/") and isinstance(value, int | float)}
    text = (how + "\n\n" if how else "") + "\n".join(lines)
    if others:
        text += "\n\n| other measure | value |\n|---|---:|\n" + "\n".join(
            f"| `{key}` | {_cell(float(value), 3)} |" for key, value in others.items())
    return text


__all__ = ["CARD_TEMPLATE", "FAMILY_TITLES", "MINIMAL_CARD_KWARGS", "evidence_markdown", "per_class_families"]
