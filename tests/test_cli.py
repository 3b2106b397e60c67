"""The `rowvault` command as a user runs it: exit codes, JSON output, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rowvault.cli import app
from rowvault.demo import build_demo

from .backupfiles import read_backup, write_backup, write_json

runner = CliRunner()
COMMANDS = ["backup", "restore", "validate", "demo"]


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    path = tmp_path / "demo.db"
    build_demo(path, 500)
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rowvault.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert all(command in result.output for command in COMMANDS)


def test_backup_and_restore_with_json_output(demo_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json.gz"
    assert runner.invoke(app, ["backup", "--db", str(demo_db), "-o", str(backup)]).exit_code == 0

    result = runner.invoke(app, ["restore", str(backup), "--db", str(tmp_path / "new.db"), "--json"])

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["success"] is True
    assert answer["processed"] == answer["total"] == 500
    assert answer["results"]["users"]["total"] == answer["results"]["users"]["processed"]
    assert answer["errors"] == []


def test_record_errors_exit_with_3_and_are_listed(demo_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json"
    runner.invoke(app, ["backup", "--db", str(demo_db), "-o", str(backup)])
    metadata, tables = read_backup(backup)
    tables["daily_metrics"][0]["value"] = "lots"
    spoiled = write_backup(tmp_path / "spoiled.json", metadata, tables)

    result = runner.invoke(app, ["restore", str(spoiled), "--db", str(tmp_path / "new.db"), "--json"])

    assert result.exit_code == 3
    answer = json.loads(result.stdout)
    assert answer["success"] is False
    assert len(answer["errors"]) == 1
    assert "daily_metrics:#1 - column 'value': expected a number, got 'lots'" in answer["errors"][0]
    assert Path(answer["rejectsFile"]).exists()


def test_a_file_that_is_not_a_backup_exits_1_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "photo.json.gz"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))

    result = run("restore", str(path), "--db", str(tmp_path / "x.db"))

    assert result.returncode == 1
    assert "error:" in result.stderr and "photo.json.gz" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_replace_needs_yes(demo_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json"
    runner.invoke(app, ["backup", "--db", str(demo_db), "-o", str(backup)])

    refused = runner.invoke(app, ["restore", str(backup), "--db", str(demo_db), "--mode", "replace"])
    confirmed = runner.invoke(
        app, ["restore", str(backup), "--db", str(demo_db), "--mode", "replace", "--yes", "--json"]
    )

    assert refused.exit_code == 1 and "--yes" in refused.output
    assert confirmed.exit_code == 0
    assert json.loads(confirmed.stdout)["processed"] == 500


def test_database_url_is_the_default_target(demo_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json"
    result = run("backup", "-o", str(backup), env={"DATABASE_URL": f"sqlite:///{demo_db}"})
    assert result.returncode == 0, result.stderr
    assert backup.exists()


def test_backup_limit_and_no_demo_data(demo_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json"
    result = runner.invoke(
        app,
        [
            "backup",
            "--db",
            str(demo_db),
            "-o",
            str(backup),
            "--limit",
            "audit_logs=10",
            "--no-demo-data",
            "--exclude",
            "daily_metrics",
        ],
    )
    assert result.exit_code == 0, result.output
    _, tables = read_backup(backup)
    assert len(tables["audit_logs"]) == 10
    assert "daily_metrics" not in tables
    assert not any(u["is_demo"] for u in tables["users"])
    kept_users = {u["id"] for u in tables["users"]}
    assert all(b["owner_id"] in kept_users for b in tables["businesses"])


def test_a_bad_limit_is_a_usage_error(demo_db: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["backup", "--db", str(demo_db), "--limit", "audit_logs"])
    assert result.exit_code == 2
    assert "TABLE=N" in result.output


def test_an_unknown_table_name_is_refused_with_a_hint(demo_db: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["backup", "--db", str(demo_db), "--tables", "auditLogs"])
    assert result.exit_code == 1
    assert "did you mean 'audit_logs'" in result.output


def test_validate_reports_tables_and_fit(demo_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json"
    runner.invoke(app, ["backup", "--db", str(demo_db), "-o", str(backup)])

    alone = runner.invoke(app, ["validate", str(backup)])
    against = runner.invoke(app, ["validate", str(backup), "--db", str(demo_db)])

    assert alone.exit_code == 0 and "500 records" in alone.output
    assert against.exit_code == 0 and "fits" in against.output


def test_validate_json_lists_what_the_file_holds(demo_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json.gz"
    made = runner.invoke(app, ["backup", "--db", str(demo_db), "-o", str(backup), "--limit", "audit_logs=10"])
    assert made.exit_code == 0, made.output
    metadata, tables = read_backup(backup)

    result = runner.invoke(app, ["validate", str(backup), "--json", "--db", str(tmp_path / "empty.db")])

    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert listing["valid"] is True and listing["compressed"] is True and listing["layout"] == "lines"
    assert (listing["format"], listing["version"], listing["sourceDialect"]) == ("rowvault", 1, "sqlite")
    assert listing["generator"].startswith("rowvault ")
    assert listing["createdAt"] == metadata["createdAt"]
    assert listing["options"] == {"includeDemoData": True, "limits": {"audit_logs": 10}}
    assert [t["name"] for t in listing["tables"]] == list(tables)
    assert {t["name"]: t["records"] for t in listing["tables"]} == {n: len(r) for n, r in tables.items()}
    assert listing["records"] == sum(len(r) for r in tables.values())
    users = next(t for t in listing["tables"] if t["name"] == "users")
    assert [c["name"] for c in users["columns"]] == list(tables["users"][0])
    assert {"name": "email", "type": "VARCHAR(255)"} in users["columns"]
    assert listing["fit"]["fits"] is True
    assert sorted(listing["fit"]["tablesToCreate"]) == sorted(tables)


def test_validate_says_what_a_file_without_rowvault_metadata_cannot_tell(tmp_path: Path) -> None:
    path = write_json(tmp_path / "other.json", {"users": [{"id": 1, "name": "a"}, {"id": 2}]})

    shown = runner.invoke(app, ["validate", str(path)])
    listing = json.loads(runner.invoke(app, ["validate", str(path), "--json"]).stdout)

    assert shown.exit_code == 0, shown.output
    for fact in ("generator       unknown", "source dialect  unknown", "created at      unknown"):
        assert fact in shown.output, shown.output
    assert "no rowvault metadata" in shown.output
    assert "2 records in 1 tables" in shown.output
    assert listing["format"] is None and listing["generator"] is None and listing["options"] is None
    assert listing["tables"] == [
        {
            "name": "users",
            "records": 2,
            "columns": [{"name": "id", "type": None}, {"name": "name", "type": None}],
        }
    ]


def test_validate_json_reports_a_file_that_does_not_fit_or_is_not_a_backup(tmp_path: Path) -> None:
    unknown = write_backup(tmp_path / "unknown.json", None, {"nowhere": [{"a": 1}]})
    photo = tmp_path / "photo.json"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))

    misfit = runner.invoke(app, ["validate", str(unknown), "--json", "--db", str(tmp_path / "t.db")])
    broken = runner.invoke(app, ["validate", str(photo), "--json"])

    assert misfit.exit_code == 1
    fit = json.loads(misfit.stdout)["fit"]
    assert fit["fits"] is False and any("nowhere" in problem for problem in fit["problems"])
    assert broken.exit_code == 1
    answer = json.loads(broken.stdout)
    assert answer["valid"] is False and "photo.json" in answer["error"]


def test_dry_run_writes_nothing(demo_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json"
    runner.invoke(app, ["backup", "--db", str(demo_db), "-o", str(backup)])
    target = tmp_path / "empty.db"

    result = runner.invoke(app, ["restore", str(backup), "--db", str(target), "--dry-run", "--json"])

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["dryRun"] is True
    assert sum(t["created"] for t in answer["results"].values()) == 500
    import sqlalchemy as sa

    assert sa.inspect(sa.create_engine(f"sqlite:///{target}")).get_table_names() == []
