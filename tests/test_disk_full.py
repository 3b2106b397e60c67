"""A full disk under a restore (issue 9 item 2) - the target database's or ROWVAULT_HOME's,
where the job state store lives - ends it with one clear error line (exit 1, no traceback),
leaves a job record that does not claim success, and once there is room again `rowvault
resume` finishes the job to a copy of the source.

The disks are real: small tmpfs mounts (root only; skipped where `mount` is refused), a
PostgreSQL tablespace on one, a home that another process fills while the restore runs.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import rowvault
from rowvault.demo import build_demo
from rowvault.jobs.store import StateStore

from .clirun import cli_env, rowvault_cli
from .conftest import server_url
from .dbdump import dump

RECORDS = 20_000
JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}


@dataclass
class Source:
    db: str
    backup: Path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """A backup (0.8 MB) whose restored database takes well over 2 MB."""
    folder = tmp_path_factory.mktemp("disk-full")
    db = f"sqlite:///{folder / 'source.db'}"
    build_demo(db, RECORDS)
    rowvault.backup(db, folder / "source.json.gz")
    return Source(db, folder / "source.json.gz")


@contextmanager
def small_disk(folder: Path, size: str, *, owner: str | None = None) -> Iterator[Path]:
    """A tmpfs of `size` at `folder`, unmounted afterwards; skips where it cannot be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}"
    if owner is not None:
        user = pwd.getpwnam(owner)
        options += f",mode=0700,uid={user.pw_uid},gid={user.pw_gid}"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def make_room(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`, as another program would."""
    filler = disk / f"filler-{uuid.uuid4().hex[:8]}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def error_line(run: subprocess.CompletedProcess[str]) -> str:
    """The run's one `error:` message (the CLI prints errors to stderr; a progress bar that
    was not closed may still hold the start of its line)."""
    lines = [line[line.index("error: ") :] for line in run.stderr.splitlines() if "error: " in line]
    assert len(lines) == 1, run.stderr[-3000:]
    return lines[0]


def only_job(home: Path) -> dict[str, Any]:
    listed = json.loads(rowvault_cli("jobs", "--json", home=home).stdout)
    assert len(listed) == 1, listed
    return dict(listed[0])


def stored_job(home: Path, job_id: str) -> Any:
    store = StateStore(f"sqlite:///{home / 'state.db'}")
    try:
        return store.get(job_id)
    finally:
        store.close()


def assert_resumes_to_the_source(
    job_id: str, home: Path, target: str, source: Source, portable: bool
) -> None:
    resumed = rowvault_cli("resume", job_id, home=home)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert dump(target, portable=portable, json_columns=JSON_COLUMNS) == dump(
        source.db, portable=portable, json_columns=JSON_COLUMNS
    )


# -- the target's disk -----------------------------------------------------------------------


@dataclass
class Stopped:
    """A restore a full disk stopped, and what the CLI and the job record said."""

    run: subprocess.CompletedProcess[str]
    job: dict[str, Any]
    home: Path
    disk: Path
    target: str


@pytest.fixture(scope="module")
def sqlite_on_a_full_disk(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stopped]:
    folder = tmp_path_factory.mktemp("sqlite-disk")
    with small_disk(folder / "disk", "2m") as disk:
        home, target = folder / "home", disk / "target.db"
        run = rowvault_cli("restore", str(source.backup), "--db", str(target), home=home)
        yield Stopped(run, only_job(home), home, disk, f"sqlite:///{target}")


def test_a_full_target_disk_ends_the_restore_with_one_error_line(sqlite_on_a_full_disk: Stopped) -> None:
    run = sqlite_on_a_full_disk.run
    assert run.returncode == 1
    assert "Traceback" not in run.stdout + run.stderr
    line = error_line(run)
    assert "the database's disk is full" in line and "free some space" in line
    assert "processed before the restore stopped" in run.stdout + run.stderr
    assert f"rowvault resume {sqlite_on_a_full_disk.job['id']}" in run.stderr


def test_the_job_a_full_target_disk_stopped_says_why(sqlite_on_a_full_disk: Stopped) -> None:
    job = sqlite_on_a_full_disk.job
    assert (job["status"], job["model"]) == ("error", "error")
    assert "the database's disk is full" in job["error"]
    assert job["errors"][-1] == job["error"]
    stored = stored_job(sqlite_on_a_full_disk.home, job["id"])
    assert stored.result["status"] == "error" and stored.result["success"] is False
    assert 0 < stored.result["processed"] < RECORDS
    assert stored.resumable


def test_the_error_names_the_database_whose_disk_is_full(sqlite_on_a_full_disk: Stopped) -> None:
    assert str(sqlite_on_a_full_disk.disk / "target.db") in error_line(sqlite_on_a_full_disk.run)


def test_with_room_again_the_stopped_job_resumes_to_the_source(
    sqlite_on_a_full_disk: Stopped, source: Source
) -> None:
    make_room(sqlite_on_a_full_disk.disk)
    stopped = sqlite_on_a_full_disk
    assert_resumes_to_the_source(stopped.job["id"], stopped.home, stopped.target, source, portable=False)


@contextmanager
def postgresql_on_a_small_tablespace(disk: Path) -> Iterator[str]:
    """A database whose tables go to a tablespace on `disk` (the server must be this machine)."""
    admin_url = server_url("postgresql")
    if make_url(admin_url).host not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip("the PostgreSQL server is not on this machine: its tablespace cannot be a local tmpfs")
    name = f"rv_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLESPACE {name} LOCATION '{disk}'")
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_tablespace = {name}')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP TABLESPACE IF EXISTS {name}")
        admin.dispose()


@pytest.fixture
def reachable_by_the_server() -> Iterator[Path]:
    """A folder the PostgreSQL server's user can walk into (pytest's are root's only)."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user on this machine to own the tablespace's disk")
    folder = Path(tempfile.mkdtemp(prefix="rowvault-tablespace-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.alone  # while its tablespace is full, the server's checkpoints fail for every database
def test_a_full_postgresql_tablespace_stops_the_restore_and_the_job_resumes(
    source: Source, tmp_path: Path, reachable_by_the_server: Path
) -> None:
    with small_disk(reachable_by_the_server / "disk", "2m", owner="postgres") as disk:
        with postgresql_on_a_small_tablespace(disk) as target:
            home = tmp_path / "home"
            run = rowvault_cli("restore", str(source.backup), "--db", target, home=home)
            assert run.returncode == 1 and "Traceback" not in run.stderr
            line = error_line(run)
            assert "the database's disk is full" in line and "No space left on device" in line
            job = only_job(home)
            assert job["status"] == "error" and "the database's disk is full" in job["error"]
            assert stored_job(home, job["id"]).result["success"] is False
            make_room(disk)
            assert_resumes_to_the_source(job["id"], home, target, source, portable=True)


# -- ROWVAULT_HOME's disk ----------------------------------------------------------------------


def test_a_full_home_refuses_the_restore_before_anything_is_written(source: Source, tmp_path: Path) -> None:
    with small_disk(tmp_path / "home", "1m") as home:
        filler = fill(home)
        target = tmp_path / "target.db"
        run = rowvault_cli("restore", str(source.backup), "--db", str(target), home=home)
        assert run.returncode == 1 and "Traceback" not in run.stderr
        line = error_line(run)
        assert str(home / "state.db") in line and "the job state store cannot be used" in line
        assert "disk is full" in line
        assert not target.exists(), "the restore wrote although its job could not be recorded"
        filler.unlink()
        assert json.loads(rowvault_cli("jobs", "--json", home=home).stdout) == []


@dataclass
class HomeFilled:
    run: subprocess.CompletedProcess[str]
    job: dict[str, Any]
    home: Path
    target: str


@pytest.fixture(scope="module")
def home_filled_mid_restore(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeFilled]:
    """A slow restore (batches of 100, 20 ms apart) whose home another program fills once the
    job has written its first progress; then that program's file is removed again."""
    folder = tmp_path_factory.mktemp("home-disk")
    with small_disk(folder / "home", "4m") as home:
        target = folder / "target.db"
        args = [
            "restore",
            str(source.backup),
            "--db",
            str(target),
            "--batch-size",
            "100",
            "--batch-delay-ms",
            "20",
        ]
        process = subprocess.Popen(
            [sys.executable, "-m", "rowvault.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(home),
        )
        try:
            wait_for_progress(home)
            filler = fill(home)
            stdout, stderr = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
        filler.unlink()
        run = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        yield HomeFilled(run, only_job(home), home, f"sqlite:///{target}")


def wait_for_progress(home: Path, records: int = 1000) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (home / "state.db").exists():
            store = StateStore(f"sqlite:///{home / 'state.db'}")
            try:
                jobs = store.recent(1)
            finally:
                store.close()
            if jobs and int(jobs[0].progress.get("processed") or 0) >= records:
                return
        time.sleep(0.05)
    raise AssertionError("the restore never reported progress")


def test_a_home_filled_mid_restore_leaves_no_job_claiming_success(
    home_filled_mid_restore: HomeFilled, source: Source
) -> None:
    filled = home_filled_mid_restore
    assert filled.run.returncode == 1, filled.run.stdout[-2000:]
    assert "disk is full" in error_line(filled.run)
    job = filled.job
    assert job["status"] in ("error", "interrupted") and job["model"] != "completed", job
    stored = stored_job(filled.home, job["id"])
    assert stored.result is None or stored.result["success"] is False
    assert stored.resumable
    assert_resumes_to_the_source(job["id"], filled.home, filled.target, source, portable=False)


def test_a_home_filled_mid_restore_is_reported_as_the_state_store_disk(
    home_filled_mid_restore: HomeFilled,
) -> None:
    line = error_line(home_filled_mid_restore.run)
    assert "the database's disk" not in line
    assert str(home_filled_mid_restore.home) in line


def test_a_home_filled_mid_restore_prints_no_traceback(home_filled_mid_restore: HomeFilled) -> None:
    assert "Traceback" not in home_filled_mid_restore.run.stderr
