"""Configuration from the environment (DESIGN.md §3), for the CLI and the HTTP service.

The engine never reads this: it takes explicit arguments. A bad value fails at start with a
message that names the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import OptionError


class Settings(BaseSettings):
    """Every setting, its environment variable, default and meaning."""

    # Only the names documented here are read: each field's alias, else ROWVAULT_<FIELD>. Never a
    # bare field name (HOME, TOKEN, JOBS, WORKERS... belong to other programs), so no
    # populate_by_name / validate_by_name; load_settings maps field names to aliases instead.
    model_config = SettingsConfigDict(extra="forbid", env_prefix="ROWVAULT_")

    database_url: str = Field(
        "", alias="DATABASE_URL", description="The database to back up and restore.", repr=False
    )
    restore_batch_size: int | None = Field(
        None, alias="RESTORE_BATCH_SIZE", ge=1, description="Records per batch; unset: adaptive."
    )
    restore_jobs: int = Field(
        2,
        alias="RESTORE_JOBS",
        ge=1,
        le=16,
        description="Connections that write a table's batches at once (PostgreSQL; commits stay in "
        "the file's order).",
    )
    restore_poll_interval: int = Field(
        2000,
        alias="RESTORE_POLL_INTERVAL",
        ge=100,
        description="The web page's polling period (ms).",
    )
    restore_batch_delay_ms: int = Field(
        0, alias="RESTORE_BATCH_DELAY_MS", ge=0, description="Pause between batches (ms)."
    )
    retries: int = Field(
        5,
        alias="ROWVAULT_RETRIES",
        ge=0,
        le=100,
        description="Transient database failures in a row (a lost connection, a deadlock) that a "
        "restore waits out on a new connection before it stops, resumable.",
    )
    home: Path = Field(
        Path(".rowvault"), alias="ROWVAULT_HOME", description="Uploads, job files, the state store."
    )
    state_url: str | None = Field(
        None,
        alias="ROWVAULT_STATE_URL",
        description="Job state store; default: SQLite in ROWVAULT_HOME.",
        repr=False,  # may carry a password
    )
    token: SecretStr | None = Field(
        None, alias="ROWVAULT_TOKEN", description="Bearer token every API route but /healthz needs."
    )
    max_upload_mb: int = Field(
        4096, alias="ROWVAULT_MAX_UPLOAD_MB", ge=1, description="Largest upload accepted (MB)."
    )
    max_expanded_mb: int = Field(
        65536,
        alias="ROWVAULT_MAX_EXPANDED_MB",
        ge=1,
        description="Largest decompressed size of a gzip upload (MB); past it, refused as a bomb.",
    )
    max_ratio: float = Field(
        200,
        alias="ROWVAULT_MAX_RATIO",
        ge=1,
        description=(
            "Largest decompressed/compressed ratio of a gzip upload, judged past its first 64 MiB "
            "of output; past it, refused as a compression bomb."
        ),
    )
    workers: int = Field(1, alias="ROWVAULT_WORKERS", ge=1, description="Jobs run at the same time.")
    jobs: Literal["process", "thread", "celery"] = Field(
        "process",
        alias="ROWVAULT_JOBS",
        description=(
            "Where the server runs jobs: worker processes it starts, threads of its own process, "
            "or Celery workers (`rowvault worker --celery`) on any machine."
        ),
    )
    broker_url: str = Field(
        "redis://127.0.0.1:6379/0",
        alias="ROWVAULT_BROKER_URL",
        description="The Celery broker, when ROWVAULT_JOBS=celery.",
        repr=False,
    )
    allowed_hosts: str | None = Field(
        None,
        alias="ROWVAULT_ALLOWED_HOSTS",
        description=(
            "Host names the server answers to, comma-separated (name, name:port, *.domain, *); "
            "default: 127.0.0.1, localhost, ::1 and --host, on the port served."
        ),
    )

    @property
    def state_database(self) -> str:
        if self.state_url:
            return self.state_url
        return f"sqlite:///{(self.home / 'state.db').resolve()}"

    @property
    def uploads(self) -> Path:
        return self.home / "uploads"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI options) on top, named by
    field (`home=...`) or by variable (`ROWVAULT_HOME=...`); an unknown name is an error."""
    given = {_input_name(k): v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{_env_name(field)}: {error['msg']}")
        raise OptionError("bad setting: " + "; ".join(problems)) from None


def _input_name(name: str) -> str:
    """What Settings takes for `name`, a field name or its variable: the alias if it has one."""
    info = Settings.model_fields.get(name)
    return info.alias if info is not None and info.alias else name


def _env_name(name: str) -> str:
    """The environment variable of a field (named by field name or alias), for messages."""
    info = Settings.model_fields.get(name)
    if info is None:
        return name
    return info.alias or f"{Settings.model_config.get('env_prefix', '')}{name}".upper()
