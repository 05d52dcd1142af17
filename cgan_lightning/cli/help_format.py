"""A shorter ``--help`` for the LightningCLI subcommands: one sentence per option, no usage listing of every flag.

jsonargparse's help repeats each option in the usage block, quotes Lightning's full docstrings and lists every
"known subclass" of class-typed arguments (all of torch's optimizers for ``--model.optimizer_g`` ...). Here each
option keeps its first sentence, its type and default; ``--<option>.help CLASS`` still shows a class's arguments.
"""

from __future__ import annotations

import re
from argparse import SUPPRESS, Action

from jsonargparse import DefaultHelpFormatter
from typing_extensions import override

#: The end of the first sentence: a period, then a space and an upper-case letter (not "e.g. " / "i.e. ").
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!etc)\.\s+(?=[A-Z`])")
#: Sphinx roles and literals in docstrings: ``:class:`X``` and ````x```` read as ``X`` and ``x`` in a terminal.
_SPHINX_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
#: jsonargparse appends the subclasses of a class-typed argument it found imported: dozens of class paths.
_KNOWN_SUBCLASSES = re.compile(r", known subclasses: [^)]*")


#: Trainer options listed by name only (in :data:`EPILOG`): rarely changed for this model; all still work.
BRIEF_OPTIONS = ("num_nodes", "min_epochs", "min_steps", "overfit_batches", "benchmark", "inference_mode",
                 "use_distributed_sampler", "profiler", "detect_anomaly", "barebones", "plugins", "sync_batchnorm",
                 "reload_dataloaders_every_n_epochs", "enable_autolog_hparams", "model_registry")
#: Trainer options that do not apply: the model steps its two optimizers itself, and there is no ``predict``.
INAPPLICABLE_OPTIONS = ("accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm",
                        "limit_predict_batches")
_HIDDEN = {f"--trainer.{name}" for name in BRIEF_OPTIONS + INAPPLICABLE_OPTIONS}

#: The end of a subcommand's ``--help``.
EPILOG = (
    "More Trainer options (described in Lightning's Trainer documentation): "
    + ", ".join(f"--trainer.{name}" for name in BRIEF_OPTIONS)
    + ". Gradient accumulation and clipping do not apply (the model steps its two optimizers itself)."
)


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (all of it when it is one sentence), on one line."""
    flat = _LITERAL.sub(r"\1", _SPHINX_ROLE.sub(r"\1", " ".join(text.split())))
    match = _SENTENCE_END.search(flat)
    return flat[: match.start() + 1] if match else flat


def _is_class_help(action: Action) -> bool:
    """``--trainer.logger.help CLASS``-style options: one per class-typed argument, described once in the epilog."""
    return bool(action.option_strings) and all(option.endswith(".help") for option in action.option_strings)


class CompactHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help formatter with one-sentence option help, no subclass lists and a one-line usage."""

    @override
    def _get_help_string(self, action: Action) -> str:
        original = action.help
        if original and original != SUPPRESS and "%(" not in original:
            action.help = first_sentence(original)
        try:
            text = super()._get_help_string(action)
        finally:
            action.help = original
        return _KNOWN_SUBCLASSES.sub("", text)

    @override
    def _format_action(self, action: Action) -> str:
        hidden = _is_class_help(action) or any(option in _HIDDEN for option in action.option_strings)
        return "" if hidden else super()._format_action(action)

    @override
    def _format_usage(self, usage: str | None, actions: object, groups: object, prefix: str | None) -> str:
        if prefix is None:
            prefix = "usage: "
        # A subcommand's prog is its parent's whole usage line plus its name: keep the tool and the name.
        words = self._prog.split()
        prog = " ".join(words) if len(words) <= 2 else f"{words[0]} {words[-1]}"
        return (f"{prefix}{prog} [-h] [-c CONFIG] [--print_config] [--SECTION.KEY VALUE ...]\n"
                f"       (`--SECTION.KEY.help CLASS` lists the arguments of CLASS for a class-typed option)\n\n")
