"""``cgan-lightning export``: write a checkpoint's generator as a shareable folder with its evidence card.

Examples::

    cgan-lightning export --ckpt_path last.ckpt --out exported/ --data_dir ../shared/data
    cgan-lightning export --ckpt_path last.ckpt --out exported/ --push_to_hub user/cgan-mnist   # needs a token

The folder holds ``model.safetensors``, ``config.json``, ``README.md`` (the model card: per-class FID and accuracy
measured on the eval split of ``--data_dir``, the interference grid, the training config, the library version),
``interference.png``, ``training_config.yaml`` and, when evaluated, ``traversal.png`` and ``evaluation.json``.
Load it with ``PretrainedGenerator.from_pretrained(DIR)`` or ``cgan-lightning sample --pretrained DIR``. User errors
end with one line on stderr and exit status 2 (bad arguments) or 1 (everything else).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from collections.abc import Sequence
from typing import NoReturn

PROG = "cgan-lightning export"


class ExportError(Exception):
    """A user error: reported as one line on stderr, with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ExportError(f"{message} (see {PROG} --help)", exit_code=2)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cgan-lightning export``."""
    parser = _OneLineParser(prog=PROG, allow_abbrev=False,
                            description="Export a checkpoint's generator (EMA weights when kept) as model.safetensors "
                                        "+ config.json + a model card with its per-class evidence.")
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by `cgan-lightning fit`")
    parser.add_argument("--out", required=True, help="folder to write (created; an earlier export there is replaced)")
    parser.add_argument("--data_dir", default=None,
                        help="folder holding MNIST/raw: evaluate on its eval split for the card (default: no "
                             "evaluation, the card says so)")
    parser.add_argument("--samples_per_class", type=int, default=1000, help="generated images per class (1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation latents (0)")
    parser.add_argument("--batch_size", type=int, default=1000, help="evaluation batch size (1000)")
    parser.add_argument("--classifier", default=None, help="classifier weights for FID/accuracy (default: shipped)")
    parser.add_argument("--raw", action="store_true", help="export the raw weights even when the model keeps an EMA")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="allow arbitrary pickled objects in the checkpoint (only for files you trust)")
    parser.add_argument("--push_to_hub", metavar="REPO_ID", default=None,
                        help="then upload the folder to this Hugging Face Hub model repo (needs network and a token)")
    parser.add_argument("--private", action="store_true", help="with --push_to_hub: create the repo private")
    return parser


def run(argv: Sequence[str]) -> str:
    """Parse ``argv`` and export; return the summary line. Raises :class:`ExportError` on user errors."""
    args = build_parser().parse_args(list(argv))
    if args.samples_per_class < 2 or args.batch_size < 1:
        raise ExportError("--samples_per_class must be >= 2 and --batch_size >= 1", 2)
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise ExportError(f"--data_dir {args.data_dir}: no such folder (it should hold MNIST/raw)")
    from cgan_lightning.cli.lightning_cli import USER_ERRORS
    from cgan_lightning.hub.export import export_checkpoint, push_export_to_hub

    try:
        out = export_checkpoint(args.ckpt_path, args.out, data_dir=args.data_dir, ema=False if args.raw else None,
                                samples_per_class=args.samples_per_class, seed=args.seed,
                                batch_size=args.batch_size, classifier=args.classifier,
                                trust_checkpoint=args.trust_checkpoint, load_name=args.push_to_hub)
        message = f"exported the generator of {args.ckpt_path} to {out}" + (
            " (with its per-class evidence)" if args.data_dir else " (not evaluated: no --data_dir)")
        if args.push_to_hub:
            try:
                url = push_export_to_hub(out, args.push_to_hub, private=args.private or None)
            except Exception as failed:  # network, authentication, Hub errors: the local export is complete anyway
                reason = str(failed).strip().splitlines()[0] if str(failed).strip() else type(failed).__name__
                raise ExportError(f"{message}, but the upload to {args.push_to_hub} failed ({type(failed).__name__}: "
                                  f"{reason}); check the network and the token (`hf auth login` or HF_TOKEN), then "
                                  "run the same command again") from failed
            message += f"; pushed to {url}"
    except pickle.UnpicklingError:
        raise ExportError(f"{args.ckpt_path} holds Python objects that a safe load refuses; if you trust the "
                          "file, add --trust_checkpoint") from None
    except USER_ERRORS as error:
        raise ExportError(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__) from None
    return message


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point (``cgan-lightning export ...`` dispatches here): exits non-zero with one line on user errors."""
    try:
        print(run(sys.argv[1:] if argv is None else argv))
    except ExportError as error:
        if os.environ.get("CGAN_LIGHTNING_TRACEBACK"):
            raise
        print(f"{PROG}: error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None


__all__ = ["ExportError", "build_parser", "main", "run"]
