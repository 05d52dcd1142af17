"""``cgan-lightning sample``: draw digits of chosen labels from a trained checkpoint, without writing code.

Examples::

    cgan-lightning sample --ckpt_path last.ckpt --labels 3 7 --n_per_label 16 --out grid.png --seed 0
    cgan-lightning sample --ckpt_path last.ckpt --labels all --n_per_label 100 --out samples.pt --ema
    cgan-lightning sample --pretrained exported/ --labels all --n_per_label 8 --out grid.png --seed 0

A ``.png`` output is a grid with one row per label (in the order given) and ``n_per_label`` columns; a ``.pt``
output is a ``torch.save``'d dict with ``images`` (float ``[N, C, H, W]`` in ``[-1, 1]``) and ``labels`` (int64
``[N]``), in the same order. Every user error (bad labels, a missing or unreadable checkpoint, an output that
cannot be written) ends with one line on stderr and exit status 2 (bad arguments) or 1 (everything else).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
from torchvision.utils import save_image

from cgan_lightning.metrics.sample_checks import BadSamplesError, check_samples
from cgan_lightning.module import ConditionalGAN
from cgan_lightning.nn.build import is_out_of_memory
from cgan_lightning.plugins.checkpoint_io import atomic_torch_save
from cgan_lightning.utilities.checkpoint_files import CheckpointError
from cgan_lightning.utilities.output_paths import check_output_path
from cgan_lightning.utilities.resources import available_memory, check_device

PROG = "cgan-lightning sample"
OUTPUT_SUFFIXES = (".png", ".pt")


class SampleError(Exception):
    """A user error: reported as one line on stderr, with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage block on a bad argument; report a single line instead."""

    def error(self, message: str) -> NoReturn:
        raise SampleError(f"{message} (see {PROG} --help)", exit_code=2)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cgan-lightning sample``."""
    parser = _OneLineParser(prog=PROG, description="Draw digits of chosen labels from a cgan-lightning checkpoint.",
                            allow_abbrev=False)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", help="checkpoint written by `cgan-lightning fit`")
    source.add_argument("--pretrained", metavar="DIR_OR_REPO",
                        help="a folder written by `cgan-lightning export` (or a Hugging Face Hub repo id)")
    parser.add_argument("--labels", nargs="+", default=["all"], metavar="LABEL",
                        help="class names or ids, e.g. `cat dog` or `3 7` (one grid row each, in this order), "
                             "or `all` (default: all)")
    parser.add_argument("--n_per_label", type=int, default=16, help="samples per label (default: 16)")
    parser.add_argument("--out", required=True, help="output file: .png (a grid) or .pt (images and labels)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the latents; same seed, same images")
    parser.add_argument("--ema", action="store_true",
                        help="use the EMA of the generator's weights (the checkpoint must have been trained with "
                             "--model.ema_decay); default: the raw weights")
    parser.add_argument("--latent_scale", type=float, default=None,
                        help="latents this many times wider than N(0, I) (default: the checkpoint's "
                             "sample_latent_scale, 1 unless trained with another)")
    parser.add_argument("--min_class_prob", type=float, default=None,
                        help="redraw samples to which D's class head gives their label a probability under this "
                             "(needs an ACGANDiscriminator; default: the checkpoint's sample_min_class_prob, 0: off)")
    parser.add_argument("--tilt_temperature", type=float, default=None,
                        help="pick each sample among candidates by how typical of the training features it is, at "
                             "this temperature (needs a checkpoint of a run with the tilt; default: the checkpoint's "
                             "sample_tilt_temperature, 0: off)")
    parser.add_argument("--device", default="cpu", help="where to run the generator (default: cpu)")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="allow arbitrary pickled objects in the checkpoint (needed for some checkpoints "
                             "written from Python; only for files you trust)")
    return parser


def parse_labels(tokens: Sequence[str], num_classes: int, class_names: Sequence[str] | None = None) -> list[int]:
    """``["3", "7"]`` -> ``[3, 7]``; ``["cat"]`` -> the id of class ``cat``; ``["all"]`` -> every label in order.

    A token that is one of ``class_names`` means that class (even when it is also a number: folders named ``1``,
    ``10``, ``2`` get ids 0, 1, 2); any other token must be a class id.

    Raises:
        SampleError: a token that is neither a class name nor an integer, a label outside ``[0, num_classes)``, or
            ``all`` mixed with other labels.
    """
    if any(t.lower() == "all" for t in tokens):
        if len(tokens) != 1:
            raise SampleError(f"--labels: `all` cannot be combined with other labels, got {' '.join(tokens)}", 2)
        return list(range(num_classes))
    names = {str(name): k for k, name in enumerate(class_names or [])}
    labels = []
    for token in tokens:
        if token in names:
            labels.append(names[token])
            continue
        try:
            labels.append(int(token))
        except ValueError:
            known = f"a class name ({', '.join(names)}), " if names else ""
            raise SampleError(f"--labels: {token!r} is not a label; expected {known}integers in "
                              f"[0, {num_classes - 1}] or `all`", 2) from None
    bad = [v for v in labels if not 0 <= v < num_classes]
    if bad:
        raise SampleError(f"--labels: {bad[0]} is out of range; the generator knows labels 0..{num_classes - 1}", 2)
    return labels


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def load_generator(ckpt_path: str | Path, device: str = "cpu", trust: bool = False,
                   sampling: dict[str, float] | None = None) -> ConditionalGAN:
    """Load a :class:`ConditionalGAN` for sampling, turning every failure into a :class:`SampleError`.

    ``sampling`` overrides the checkpoint's sampling options (``sample_latent_scale``, ``sample_min_class_prob``,
    ``sample_tilt_temperature``).
    """
    path = Path(ckpt_path)
    if not path.exists():
        raise SampleError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise SampleError(f"checkpoint path is not a file: {path}")
    try:
        model = ConditionalGAN.load_from_checkpoint(path, map_location=device, weights_only=not trust,
                                                    **(sampling or {}))
    except CheckpointError as error:  # damaged or mismatched file: its message already names the file
        raise SampleError(str(error)) from None
    except ValueError as error:  # a sampling option the model refuses (its message says which and why)
        raise SampleError(_first_line(error), 2) from None
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise SampleError(f"{path} holds Python objects that a safe load refuses; if you trust the file, "
                              "add --trust_checkpoint") from None
        raise SampleError(f"could not read checkpoint {path}: {_first_line(error)} (truncated or corrupt?)") from None
    except KeyError as error:
        raise SampleError(f"{path} is not a cgan-lightning ConditionalGAN checkpoint (missing {error})") from None
    except Exception as error:  # torch raises RuntimeError/EOFError/... on damaged files
        raise SampleError(f"could not read checkpoint {path}: {_first_line(error)} (truncated or corrupt?)") from None
    if model.sample_tilt is not None and model.sample_tilt.real is None:
        raise SampleError(f"--tilt_temperature {model.sample_tilt_temperature:g} needs the training split's feature "
                          f"statistics, which {path} lacks (its run sampled without the tilt): use --tilt_temperature "
                          "0, or a checkpoint of a run with sample_tilt_temperature set", 2)
    return model.eval()


def load_pretrained(source: str, device: str = "cpu") -> Any:
    """Load a :class:`~cgan_lightning.hub.PretrainedGenerator`, turning every failure into a :class:`SampleError`."""
    from cgan_lightning.hub.pretrained import PretrainedGenerator

    try:
        return PretrainedGenerator.from_pretrained(source, map_location=device)
    except (FileNotFoundError, ValueError) as error:
        raise SampleError(_first_line(error)) from None


def draw(model: ConditionalGAN, labels: Sequence[int], n_per_label: int, seed: int | None = None,
         ema: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[len(labels) * n_per_label, C, H, W]`` (label-major order) and their labels, on the CPU."""
    if n_per_label <= 0:
        raise SampleError(f"--n_per_label must be a positive integer, got {n_per_label}", 2)
    if seed is not None and not -(2**63) <= seed < 2**64:
        raise SampleError(f"--seed must lie in [-2**63, 2**64 - 1], got {seed}", 2)
    if ema and getattr(model, "generator_ema", None) is None:
        raise SampleError("--ema: this checkpoint has no EMA weights (it was trained without --model.ema_decay)")
    n = len(labels) * n_per_label
    # Latents, images and the widest activations, float32, twice over for the copy to the CPU: a rough upper bound.
    needed = n * 4 * 2 * (model.latent_dim + 2 * math.prod(model.image_shape) + 1024)
    available = available_memory(model.device)
    if available is not None and needed > available:
        raise SampleError(f"--n_per_label {n_per_label} x {len(labels)} labels = {n:,} images need about "
                          f"{needed / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB are free on "
                          f"{model.device}; lower --n_per_label (or sample in several runs with other --seed)")
    label_tensor = torch.tensor(labels, dtype=torch.long).repeat_interleave(n_per_label)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    # An exported generator (PretrainedGenerator) has no ema switch: it holds the weights it was exported with.
    options: dict[str, Any] = {"ema": ema} if hasattr(model, "generator_ema") else {}
    try:
        images = model.sample(label_tensor, generator=generator, **options).cpu()
        check_samples(images, label_tensor)
    except BadSamplesError as bad:
        raise SampleError(f"the checkpoint's generator gives unusable images: {bad}") from None
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        raise SampleError(f"out of memory drawing {n:,} images on {model.device}: lower --n_per_label "
                          f"(now {n_per_label})") from None
    return images, label_tensor


def write_output(images: torch.Tensor, labels: torch.Tensor, out: str | Path, n_per_label: int) -> None:
    """Write a PNG grid (one row per label) or a ``.pt`` dict, per the suffix of ``out``."""
    out = Path(out)
    if out.is_dir():
        raise SampleError(f"--out {out} is a directory; give a file name ending in .png or .pt")
    blocker = next((parent for parent in out.parents if parent.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise SampleError(f"cannot write {out}: {blocker} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".png":
            save_image(images, out, nrow=n_per_label, normalize=True, value_range=(-1, 1))
        elif out.suffix.lower() == ".pt":
            atomic_torch_save({"images": images, "labels": labels}, out)
        else:
            raise SampleError(f"--out must end in .png or .pt, got {str(out)!r}", 2)
    except OSError as error:
        raise SampleError(f"cannot write {out}: {error.strerror or _first_line(error)}") from None


def run(argv: Sequence[str]) -> str:
    """Parse ``argv``, sample and write; return the summary line. Raises :class:`SampleError` on user errors."""
    args = build_parser().parse_args(list(argv))
    if Path(args.out).suffix.lower() not in OUTPUT_SUFFIXES:
        raise SampleError(f"--out must end in .png or .pt, got {args.out!r}", 2)
    if args.n_per_label <= 0:
        raise SampleError(f"--n_per_label must be a positive integer, got {args.n_per_label}", 2)
    try:
        check_device(args.device)
        check_output_path(args.out, [args.pretrained if args.pretrained is not None else args.ckpt_path])
    except ValueError as error:
        raise SampleError(str(error), 2) from None
    sampling = {name: value for name, value in (("sample_latent_scale", args.latent_scale),
                                                ("sample_min_class_prob", args.min_class_prob),
                                                ("sample_tilt_temperature", args.tilt_temperature))
                if value is not None}
    if args.pretrained is not None:
        if args.ema:
            raise SampleError("--ema applies to --ckpt_path: an exported generator holds one set of weights "
                              "(its EMA when the run kept one)", 2)
        if sampling:
            raise SampleError("--latent_scale, --min_class_prob and --tilt_temperature apply to --ckpt_path: an "
                              "exported generator holds G only (no class head to redraw by, no critic to tilt by)", 2)
        model = load_pretrained(args.pretrained, args.device)
    else:
        model = load_generator(args.ckpt_path, args.device, trust=args.trust_checkpoint, sampling=sampling)
    names = list(getattr(model, "class_names", None) or [str(k) for k in range(model.num_classes)])
    labels = parse_labels(args.labels, model.num_classes, names)
    images, label_tensor = draw(model, labels, args.n_per_label, args.seed, ema=args.ema)
    write_output(images, label_tensor, args.out, args.n_per_label)
    weights = "exported" if args.pretrained is not None else "EMA" if args.ema else "raw"
    shown = " ".join(str(k) if names[k] == str(k) else f"{k}={names[k]}" for k in labels)
    return (f"wrote {len(labels)} x {args.n_per_label} samples (labels {shown}, "
            f"{weights} generator weights{_sampling_note(model)}) to {args.out}")


def _sampling_note(model: Any) -> str:
    scale, min_prob = getattr(model, "sample_latent_scale", 1.0), getattr(model, "sample_min_class_prob", 0.0)
    note = f"; latents x {scale:g}" if scale != 1 else ""
    tilt = getattr(model, "sample_tilt_temperature", 0.0)
    if min_prob > 0:
        counts = model.sample_redraws
        candidates = f" ({model.sample_tilt_candidates} candidates an image)" if tilt > 0 else ""
        note += (f"; {counts['redrawn']} of {counts['drawn']} draws{candidates} redrawn under class probability "
                 f"{min_prob:g}")
    if tilt > 0:
        note += f"; tilted towards the training features at temperature {tilt:g}"
    return note


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point (``cgan-lightning sample ...`` dispatches here): exits non-zero with one line on user errors."""
    try:
        print(run(sys.argv[1:] if argv is None else argv))
    except SampleError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None


__all__ = ["SampleError", "build_parser", "draw", "load_generator", "load_pretrained", "main", "parse_labels", "run",
           "write_output"]
