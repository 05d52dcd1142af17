"""README's API table lists exactly ``cgan_lightning.__all__``, and every name in it imports from the top level."""

from __future__ import annotations

import re
from pathlib import Path

import cgan_lightning

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_api_names(text: str) -> list[str]:
    """The backticked names in the first column of the table under README's ``## API`` heading."""
    section = text.split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # skip header and separator
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def test_readme_api_table_is_exactly_all() -> None:
    names = readme_api_names(README.read_text(encoding="utf-8"))
    assert len(names) == len(set(names)), f"names listed twice in README's API table: {names}"
    public = set(cgan_lightning.__all__)
    assert set(names) == public, (
        f"README's API table and cgan_lightning.__all__ differ: only in README: {sorted(set(names) - public)}; "
        f"only in __all__: {sorted(public - set(names))}"
    )


def test_every_public_name_imports_from_the_top_level() -> None:
    missing = [name for name in cgan_lightning.__all__ if not hasattr(cgan_lightning, name)]
    assert not missing, f"listed in __all__ but not importable from cgan_lightning: {missing}"


def test_table_parser_sees_a_change() -> None:
    # The check above must fail when either side changes: a row added to the table shows up as a new name.
    text = README.read_text(encoding="utf-8")
    extra = text.replace("| `GeneratorEMA` |", "| `GeneratorEMA`, `NotExported` |", 1)
    assert set(readme_api_names(extra)) - set(readme_api_names(text)) == {"NotExported"}
