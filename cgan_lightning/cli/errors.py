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

from cgan_lightning.cli.subcommands import EXTRA_SUBCOMMANDS, LIGHTNING_SUBCOMMANDS
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
        if "argument subcommand: invalid choice" in message:  # jsonargparse knows Lightning's subcommands only
            names = ", ".join(f"'{name}'" for name in [*LIGHTNING_SUBCOMMANDS, *EXTRA_SUBCOMMANDS])
            message = re.sub(r"\(choose from [^)]*\)", f"(choose from {names})", message)
        sys.stderr.write(f"{prog}: error: {one_line(union_reason(message))} (see {prog} --help)\n")
        raise SystemExit(2)


#: jsonargparse's generic reasons, listed beside the real one when a value fits none of a union's types.
_GENERIC = ("Expected a ", "Not a valid subclass", "Does not validate against", "Subclass types expect", "- a ")


_SUBCLASS_REASON = re.compile(r"Expected '[^']+' to be a subclass of <class '[^']+'>")


_NONE_ALTERNATIVE = "Expected a <class 'NoneType'>"
_EXPECTED = re.compile(r"Expected a (<class '[^']+'>|typing\.Literal\[[^\]]*\])")
_GOT = re.compile(r"(?:Got|Given) value: (\S+?)\.?(?:\s|$)")


def _union_items(message: str) -> list[str]:
    """The reasons listed under the outer ``Errors:`` (one per union alternative), each folded into one line; the
    nested listings of an alternative stay inside its item."""
    lines = message.split("Errors:", 1)[-1].splitlines()
    first = next((line for line in lines if line.strip().startswith("- ")), None)
    if first is None:
        return []
    indent = len(first) - len(first.lstrip())
    items: list[list[str]] = []
    for line in lines:
        stripped, depth = line.strip(), len(line) - len(line.lstrip())
        if stripped and depth < indent:  # "Given value type:" of the outer union: the listing has ended
            break
        if depth == indent and stripped.startswith("- "):
            items.append([stripped[2:]])
        elif stripped and items:
            items[-1].append(stripped)
    return [" ".join(item) for item in items]


def union_reason(message: str) -> str:
    """For a value that fits none of a union's types, the key and the one reason that matters; any other message
    as it is.

    The alternative that is only ``None`` is dropped; a data module's, network's or optimizer's own complaint is
    given under its full key (``data.batch_size``) with the type it expected and the value it got.
    """
    if "Does not validate against any of the Union subtypes" not in message:
        return message
    key = re.match(r'\s*Parser key "([^"]+)":', message)
    reason = _SUBCLASS_REASON.search(message)
    if reason is not None:
        return f'Parser key "{key[1]}": {reason.group(0)}' if key else reason.group(0)
    items = [item for item in _union_items(message) if item != _NONE_ALTERNATIVE]
    if key is None or not items:
        return message
    item = items[0]
    rejected = re.search(r"(Option '[^']+' is not accepted)", item)
    if rejected:  # an init_args key the class does not take: usually a typo
        return f'Parser key "{key[1]}": {rejected[1]} (check its spelling against the class\'s init_args)'
    nested = re.search(r'Parser key "([^"]+)":(.*)', item)
    full_key, text = (f"{key[1]}.{nested[1]}", nested[2]) if nested else (key[1], item + " " + message)
    expected = [kind for kind in _EXPECTED.findall(text) if kind != "<class 'NoneType'>"]
    got = _GOT.search(text)
    if expected and got:  # e.g. data.batch_size: expected <class 'int'>, got 6.5
        return f'Parser key "{full_key}": expected {expected[0]}, got {got[1]}'
    return f'Parser key "{full_key}": {text.strip()}' if nested else f'Parser key "{key[1]}": {item}'


#: Lightning's messages that state a problem without its fix, and the fix.
_FIXES = {
    "No supported gpu backend found": (
        " The config asks for a GPU (trainer.accelerator gpu or cuda) and this machine has none: add "
        "--trainer.accelerator cpu, or use a CPU config such as examples/fast.yaml."),
    "You restored a checkpoint with current_epoch=": (
        " The run has trained that many epochs: --trainer.max_epochs is the total to reach, so give a larger one to "
        "train on, or no --ckpt_path to start a new run."),
}


def user_error_line(error: BaseException) -> str:
    """The one line the CLI prints for a user error: its first line, or, when jsonargparse wrapped the real reason
    in a "Does not validate against any of the Union subtypes" listing, that reason; a Lightning message that
    gives no fix gets one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if "Does not validate against any of the Union subtypes" in lines[0]:
        reasons = [line[2:] for line in lines if line.startswith("- ") and not line[2:].startswith(_GENERIC)]
        if reasons:
            return reasons[0]
    fixes = [fix for start, fix in _FIXES.items() if lines[0].startswith(start)]
    return lines[0] + "".join(fixes)


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
