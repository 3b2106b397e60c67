"""Settings read only their own names (issue 7, item 7): `ROWVAULT_*` and the documented
compatibility names, never a bare field name such as HOME, TOKEN, JOBS or WORKERS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rowvault.jobs import StateStore
from rowvault.jobs.model import Job, new_job_id
from rowvault.settings import Settings, load_settings

DOCUMENTED = {
    "DATABASE_URL": ("database_url", "sqlite:///documented.db", "sqlite:///documented.db"),
    "RESTORE_BATCH_SIZE": ("restore_batch_size", "123", 123),
    "RESTORE_POLL_INTERVAL": ("restore_poll_interval", "500", 500),
    "RESTORE_BATCH_DELAY_MS": ("restore_batch_delay_ms", "7", 7),
    "RESTORE_JOBS": ("restore_jobs", "3", 3),
    "ROWVAULT_HOME": ("home", "/documented/home", Path("/documented/home")),
    "ROWVAULT_STATE_URL": ("state_url", "sqlite:///state.db", "sqlite:///state.db"),
    "ROWVAULT_MAX_UPLOAD_MB": ("max_upload_mb", "9", 9),
    "ROWVAULT_WORKERS": ("workers", "3", 3),
    "ROWVAULT_JOBS": ("jobs", "thread", "thread"),
    "ROWVAULT_BROKER_URL": ("broker_url", "redis://10.0.0.1:6379/1", "redis://10.0.0.1:6379/1"),
    "ROWVAULT_ALLOWED_HOSTS": ("allowed_hosts", "rv.example.com", "rv.example.com"),
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("ROWVAULT_", "RESTORE_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return monkeypatch


def bare_names() -> list[str]:
    """Every field's own name, where that is not its documented variable - and some more."""
    names = {name.upper() for name, info in Settings.model_fields.items() if info.alias != name.upper()}
    return sorted(names | {"HOME", "TOKEN", "JOBS", "WORKERS", "STATE_URL", "BROKER_URL", "MAX_UPLOAD_MB"})


def test_bare_field_names_in_the_environment_change_nothing(clean_env: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    for name in bare_names():
        clean_env.setenv(name, "7")  # wrong for every field: read, it would change or fail
        clean_env.setenv(name.lower(), "7")
    assert load_settings() == defaults
    assert defaults.home == Path(".rowvault")
    assert defaults.token is None and defaults.jobs == "process" and defaults.workers == 1


def test_hostile_bare_names_change_no_setting(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hostile = {
        "HOME": str(tmp_path),
        "TOKEN": "attacker",
        "JOBS": "celery",
        "WORKERS": "64",
        "STATE_URL": "postgresql://evil@evil.example/x",
        "BROKER_URL": "redis://evil.example:6379/0",
        "MAX_UPLOAD_MB": "1",
        "ALLOWED_HOSTS": "*",
    }
    for name, value in hostile.items():
        clean_env.setenv(name, value)
    settings = load_settings()
    assert settings.home == Path(".rowvault")
    assert settings.token_value is None
    assert settings.jobs == "process" and settings.workers == 1
    assert settings.state_url is None and settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.max_upload_mb == Settings.model_fields["max_upload_mb"].default
    assert settings.allowed_hosts is None


@pytest.mark.parametrize("variable", DOCUMENTED)
def test_each_documented_variable_is_read(clean_env: pytest.MonkeyPatch, variable: str) -> None:
    field, raw, expected = DOCUMENTED[variable]
    clean_env.setenv(variable, raw)
    assert getattr(load_settings(), field) == expected


def test_the_token_variable_is_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ROWVAULT_TOKEN", "s3cret")
    assert load_settings().token_value == "s3cret"


def test_overrides_are_taken_by_field_name_or_by_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ROWVAULT_WORKERS", "5")
    by_field = load_settings(home="/a", workers=2, database_url="x.db", jobs="thread")
    by_variable = load_settings(
        ROWVAULT_HOME="/a", ROWVAULT_WORKERS=2, DATABASE_URL="x.db", ROWVAULT_JOBS="thread"
    )
    assert by_field == by_variable
    assert (by_field.home, by_field.workers, by_field.database_url) == (Path("/a"), 2, "x.db")
    assert load_settings(workers=None).workers == 5, "None means: not given"


def test_a_bad_value_or_an_unknown_override_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ROWVAULT_WORKERS", "many")
    with pytest.raises(Exception, match="ROWVAULT_WORKERS"):
        load_settings()
    clean_env.delenv("ROWVAULT_WORKERS")
    with pytest.raises(Exception, match="ROWVAULT_WORKERS"):
        load_settings(workers=0)
    with pytest.raises(Exception, match="no_such_setting"):
        load_settings(no_such_setting=1)


def test_rowvault_jobs_does_not_list_the_jobs_under_home(tmp_path: Path) -> None:
    """$HOME is the user's home, not rowvault's: another project's state.db stays unseen."""
    other_project = tmp_path / "user-home"
    other_project.mkdir()
    store = StateStore(f"sqlite:///{other_project / 'state.db'}")
    theirs = new_job_id()
    store.add(Job(id=theirs, kind="restore", target="sqlite:///other.db", target_key="other"))
    store.close()
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROWVAULT_", "RESTORE_"))}
    env.update(HOME=str(other_project), TOKEN="attacker", JOBS="celery", WORKERS="0")
    listed = subprocess.run(
        [sys.executable, "-m", "rowvault.cli", "jobs", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert theirs not in listed.stdout
    assert "no jobs yet" in listed.stdout + listed.stderr, "the jobs of ./.rowvault: none"
