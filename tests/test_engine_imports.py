"""The engine never loads the CLI or web toolkits: importing it in a fresh interpreter leaves
typer, rich, FastAPI, Starlette and uvicorn out of sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys

ENGINE = [
    "rowvault",
    "rowvault.backup",
    "rowvault.restore",
    "rowvault.file.format",
    "rowvault.codec",
    "rowvault.schema",
    "rowvault.load.plan",
    "rowvault.load.rows",
    "rowvault.dialects",
]
FRONT_ENDS = ["typer", "rich", "fastapi", "starlette", "uvicorn"]


def loaded_after_import(modules: list[str]) -> list[str]:
    """Which front-end packages a fresh interpreter holds after importing `modules`."""
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(n for n in {FRONT_ENDS!r} if n in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_importing_the_engine_loads_no_cli_or_web_toolkit() -> None:
    assert loaded_after_import(ENGINE) == []


def test_the_probe_sees_a_toolkit_when_one_is_loaded() -> None:
    # the CLI is allowed its toolkit; this keeps the check above from passing vacuously
    assert "typer" in loaded_after_import(["rowvault.cli"])
