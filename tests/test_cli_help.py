"""Every `--help` page reads like a good CLI's at 80 columns: flags shown bare, choices listed,
no `<bool>` or `{file}` placeholders, nothing past the width. The pages are printed by the
installed command, so a typer release that changes its help layout fails here, not in front
of a user."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from rowvault.cli import app
from rowvault.options import MODES

COMMANDS = ["backup", "restore", "resume", "undo", "validate", "jobs", "serve", "worker", "demo"]
runner = CliRunner()
group = get_command(app)


RENDER_ALL = """
import sys
from rowvault.cli import main
for args in {pages!r}:
    sys.argv = ["rowvault", *args, "--help"]
    print("\\f" + " ".join(args), flush=True)
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
"""


@functools.cache
def all_pages() -> dict[str, str]:
    """Every page as the command prints it in an 80-column terminal, rendered in one process."""
    pages = [[], *([c] for c in COMMANDS)]
    done = subprocess.run(
        [sys.executable, "-c", RENDER_ALL.format(pages=pages)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    parts = done.stdout.split("\f")[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in parts}


def help_page(*args: str) -> str:
    return all_pages()[" ".join(args)]


def flags_of(command_name: str | None) -> list[str]:
    """The long and short names of the options that take no value."""
    command = group if command_name is None else group.commands[command_name]  # type: ignore[attr-defined]
    ctx = command.make_context(command_name or "rowvault", [], resilient_parsing=True)
    return [
        name for param in command.get_params(ctx) if getattr(param, "is_flag", False) for name in param.opts
    ]


def test_the_top_level_lists_every_command_in_order() -> None:
    page = help_page()
    listed = re.findall(r"^  (\w+)  ", page.split("Commands:")[1], re.MULTILINE)
    assert listed == COMMANDS
    assert sorted(group.commands) == sorted(COMMANDS)  # type: ignore[attr-defined]  # a new command is listed here


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_a_help_page_reads_well_at_80_columns(command: str | None) -> None:
    page = help_page(*([command] if command else []))
    assert page.startswith("Usage: ")
    assert "<bool>" not in page
    assert "{" not in page and "}" not in page, page
    too_long = [line for line in page.splitlines() if len(line) > 80]
    assert not too_long, too_long
    for flag in flags_of(command):  # shown bare: the flag, then its help or the next name
        assert re.search(rf"^  (-\w, )?{re.escape(flag)}(,|  |$)|, {re.escape(flag)}  ", page, re.M), (
            flag,
            page,
        )


def test_arguments_are_named_in_capitals_in_the_usage_line() -> None:
    assert help_page("restore").splitlines()[0].endswith("restore [OPTIONS] FILE")
    assert help_page("resume").splitlines()[0].endswith("resume [OPTIONS] JOB_ID")


def test_mode_lists_its_four_choices() -> None:
    page = help_page("restore")
    assert f"--mode [{'|'.join(MODES)}]" in page
    assert set(MODES) == {"upsert", "insert", "skip", "replace"}


def test_a_mode_that_is_not_a_choice_is_a_usage_error_naming_the_choices() -> None:
    result = runner.invoke(app, ["restore", "b.json", "--db", "x.db", "--mode", "merge"])
    assert result.exit_code == 2
    assert all(mode in result.output for mode in MODES), result.output


def test_the_installed_command_prints_the_same_page() -> None:
    installed = Path(sys.executable).parent / "rowvault"  # the `rowvault.cli:main` entry point
    done = subprocess.run(
        [str(installed), "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == help_page()
