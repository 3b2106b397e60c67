"""How `--help` reads: click's plain layout, and arguments named in capitals in the usage line.

rowvault's app turns typer's rich help off (`rich_markup_mode=None`): in typer 0.29 it shows
every option's type, `<bool>` even for a flag that takes no value, and keeps a docstring's
line breaks. The plain layout shows a flag bare (`--dry-run`), a value's type or choices
(`--mode <upsert|insert|skip|replace>`) and rewraps paragraphs to the terminal. What is left
is typer putting a required argument in the usage line as `{file}`: `Command` names it
`FILE`, as its metavar says. Typer is pinned to the minor version this was checked against,
and `tests/test_cli_help.py` renders every page.
"""

from __future__ import annotations

import typer
from typer.core import TyperArgument, TyperCommand


def _usage_name(argument: TyperArgument) -> str:
    name = (argument.metavar or argument.name or "arg").upper()
    if argument.nargs != 1:
        name += "..."
    return name if argument.required else f"[{name}]"


class Command(TyperCommand):
    """A `rowvault` command: its usage line names its arguments as `FILE`, `[NAME]`."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        pieces = [self.options_metavar] if self.options_metavar else []
        pieces.extend(_usage_name(p) for p in self.get_params(ctx) if isinstance(p, TyperArgument))
        return pieces
