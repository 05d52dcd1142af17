"""Image grids: build them, save them as PNG under the run's directory, and send them to the active loggers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torch import Tensor
from torchvision.utils import make_grid

from cgan_lightning.utilities.lightning_internals import logging_step

#: Pixels between cells (and around the grid).
PADDING = 2


def image_grid(images: Tensor, columns: int) -> Tensor:
    """Tile images ``[N, C, H, W]`` in ``[-1, 1]`` row by row, ``columns`` per row: ``[3, H', W']`` in ``[0, 1]``.

    With ``N = rows * columns`` the grid is ``rows * (H + 2) + 2`` by ``columns * (W + 2) + 2`` pixels.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    return make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=columns, padding=PADDING, normalize=True,
                     value_range=(-1, 1), pad_value=1.0)


def grid_shape(rows: int, columns: int, height: int, width: int) -> tuple[int, int]:
    """Pixel size ``(H', W')`` of a grid from :func:`image_grid`."""
    return rows * (height + PADDING) + PADDING, columns * (width + PADDING) + PADDING


def run_dir(trainer: Any) -> Path:
    """The run's directory: ``trainer.log_dir`` (the logger's version folder) or ``default_root_dir``.

    A ``WandbLogger``'s ``log_dir`` is its shared ``save_dir``, so there the folder is
    ``<save_dir>/<project>/<run id>``, the one ``ModelCheckpoint`` uses: runs into one save_dir keep their PNGs apart.
    Call it on every process: the path is broadcast from rank zero.
    """
    logger = trainer.loggers[0] if trainer.loggers else None
    if isinstance(logger, WandbLogger) and logger.save_dir is not None:
        path = str(Path(logger.save_dir) / str(logger.name) / str(logger.version))
        return Path(trainer.strategy.broadcast(path))
    return Path(trainer.log_dir or trainer.default_root_dir)


def save_png(grid: Tensor, path: Path, caption: str | None = None) -> Path:
    """Write a ``[3, H, W]`` grid in ``[0, 1]`` as PNG (creating folders) and return the path.

    A ``caption`` (e.g. which class each column shows) is stored in the PNG's ``Description`` text chunk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    if caption is not None:
        info.add_text("Description", caption)
    # Rounded as save_image and log_grid round (x * 255 + 0.5, truncated): the PNG and the W&B image match.
    pixels = grid.detach().float().mul(255).add(0.5).clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(pixels).save(path, format="png", pnginfo=info)
    return path


def grid_caption(rows: str, columns: str, class_names: list[str]) -> str:
    """Describe a grid whose columns (``columns == "classes"``) or else rows are the classes, naming them in order."""
    names = ", ".join(class_names)
    if columns == "classes":
        return f"rows: {rows}; columns: classes {names}"
    return f"rows: classes {names}; columns: {columns}"


def log_grid(loggers: list[Any], tag: str, grid: Tensor, step: int, caption: str | None = None) -> None:
    """Send ``grid`` to each logger that shows images: W&B (``wandb.Image``, with ``caption``) and TensorBoard."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            # wandb.Image casts tensor values straight to uint8 (it expects 0..255): scale the [0, 1] grid first,
            # rounding as torchvision's save_image does (x * 255 + 0.5, truncated), so both show the same pixels.
            extra = {"caption": [caption]} if caption is not None else {}
            logger.log_image(key=tag, images=[grid.mul(255).add(0.5).clamp(0, 255).byte()], step=step, **extra)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, grid, global_step=step)


def publish_grid(trainer: Any, name: str, grid: Tensor, epoch: int, caption: str | None = None) -> Path | None:
    """Save ``grid`` as ``<run dir>/<name>/epoch_<epoch>.png`` and log it as ``<name>/grid``; returns the path.

    ``caption`` (which classes the rows or columns show) goes into the PNG's text chunk and the W&B image.

    Nothing is written under ``fast_dev_run`` (Lightning writes no logs or checkpoints then either), and only rank
    zero writes; those calls return ``None``.
    """
    directory = run_dir(trainer)  # every rank: log_dir broadcasts
    if trainer.fast_dev_run or not trainer.is_global_zero:
        return None
    path = save_png(grid, directory / name / f"epoch_{epoch:03d}.png", caption)
    log_grid(trainer.loggers, f"{name}/grid", grid, logging_step(trainer), caption)
    return path
