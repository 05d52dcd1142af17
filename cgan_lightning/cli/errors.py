"""One line per parser error: what was wrong, then a pointer to ``--help``.

jsonargparse prints the whole usage block (83 lines for ``fit``) before the line that matters; this parser
prints only that line, with its nested explanation folded in, and exits with status 2 as before.
"""

from __future__ import annotations

import re
import sys
from typing import NoReturn

from jsonargparse._common import debug_mode_active
from lightning.pytorch.cli import LightningArgumentParser

from cgan_lightning.cli.subcommands import LIGHTNING_SUBCOMMANDS
from cgan_lightning.nn.build import is_out_of_memory

#: Longest message printed; a union type's error lists every alternative at length.
MAX_CHARS = 600


def one_line(message: str, limit: int = MAX_CHARS) -> str:
    """Fold a multi-line parser message into one line (indentation and blank lines dropped), cut at ``limit``."""
    text = re.sub(r"\s+", " ", " ".join(line.strip() for line in str(message).splitlines() if line.strip()))
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


class OneLineErrorParser(LightningArgumentParser):
    """``LightningArgumentParser`` whose errors are one line on stderr (exit status 2) instead of usage + error."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debug_mode_active():  # callers that catch the error keep jsonargparse's way
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        # A subcommand parser's prog is the parent's (multi-line) usage followed by the subcommand's name.
        words = parser.prog.replace(" [options]", "").split()
        prog = f"cgan-lightning {words[-1]}" if len(words) > 1 and words[-1] in LIGHTNING_SUBCOMMANDS else words[0]
        sys.stderr.write(f"{prog}: error: {one_line(union_reason(message))} (see {prog} --help)\n")
        raise SystemExit(2)


#: jsonargparse's generic reasons, listed beside the real one when a value fits none of a union's types.
_GENERIC = ("Expected a ", "Not a valid subclass", "Does not validate against", "Subclass types expect", "- a ")


_SUBCLASS_REASON = re.compile(r"Expected '[^']+' to be a subclass of <class '[^']+'>")


def union_reason(message: str) -> str:
    """For a value that fits none of a union's types, the key and the one reason that matters (a class of the wrong
    kind); any other message as it is."""
    if "Does not validate against any of the Union subtypes" not in message:
        return message
    reason = _SUBCLASS_REASON.search(message)
    key = re.match(r'\s*(Parser key "[^"]+"):', message)
    if reason is None:
        return message
    return f"{key.group(1)}: {reason.group(0)}" if key else reason.group(0)


def user_error_line(error: BaseException) -> str:
    """The one line the CLI prints for a user error: its first line, or, when jsonargparse wrapped the real reason
    in a "Does not validate against any of the Union subtypes" listing, that reason."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if "Does not validate against any of the Union subtypes" in lines[0]:
        reasons = [line[2:] for line in lines if line.startswith("- ") and not line[2:].startswith(_GENERIC)]
        if reasons:
            return reasons[0]
    return lines[0]


_DUPLICATE_CALLBACK = re.compile(r"Found more than one stateful callback of type `([^`]+)`")


def duplicate_callback_line(error: BaseException) -> str | None:
    """For Lightning's refusal of two stateful callbacks with one ``state_key``: one line naming the callback and
    the usual cause (a config file and ``--trainer.callbacks+=`` both adding it); else ``None``."""
    found = _DUPLICATE_CALLBACK.search(str(error)) if isinstance(error, RuntimeError) else None
    if found is None:
        return None
    return (f"trainer.callbacks holds {found[1]} twice with the same settings (callbacks from config files and "
            f"--trainer.callbacks+=... add up): drop one, or give the second other settings")


def out_of_memory_line(error: BaseException) -> str | None:
    """For PyTorch running out of memory: one line with the size it tried and the way out; else ``None``."""
    if not is_out_of_memory(error):
        return None
    size = re.search(r"allocate (\d+) bytes|Tried to allocate ([\d.]+ [KMGT]?i?B)", str(error))
    tried = ""
    if size:
        tried = f" (it tried to allocate {int(size[1]) / 2**30:,.1f} GiB)" if size[1] else f" (it tried {size[2]})"
    return (f"out of memory{tried}: lower --data.batch_size, the network sizes (--model.latent_dim, hidden_dims, "
            "base_channels) or the evaluation batch sizes, or use a device with more memory")


__all__ = ["OneLineErrorParser", "duplicate_callback_line", "one_line", "out_of_memory_line", "user_error_line"]
