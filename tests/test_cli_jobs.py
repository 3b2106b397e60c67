"""What the CLI says about a restore job tells the truth: Ctrl-C cancels after the batch, a
refused run is not offered as resumable, and each run keeps its own rejects file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rowvault
from rowvault.demo import build_demo

from .backupfiles import read_backup, write_backup


def env(home: Path, **extra: str) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("ROWVAULT_", "RESTORE_", "DATABASE_URL"))
    }
    return {**base, "ROWVAULT_HOME": str(home), **extra}


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rowvault.cli", *args],
        capture_output=True,
        text=True,
        env=env(home),
        timeout=300,
    )


def start_slow_restore(backup: Path, target: Path, home: Path, output: int) -> subprocess.Popen[str]:
    """`rowvault restore` in batches of 100 with a pause, returned well into its batches."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rowvault.cli", "restore", str(backup), "--db", str(target)],
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(home, RESTORE_BATCH_SIZE="100", RESTORE_BATCH_DELAY_MS="100"),
    )
    deadline = time.monotonic() + 60
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    return process


@pytest.fixture
def backup_file(tmp_path: Path) -> Path:
    build_demo(tmp_path / "source.db", 3000)
    path = tmp_path / "backup.json.gz"
    rowvault.backup(tmp_path / "source.db", path)
    return path


def test_ctrl_c_cancels_the_job_after_the_current_batch(backup_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = start_slow_restore(backup_file, tmp_path / "t.db", home, subprocess.PIPE)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert "KeyboardInterrupt" not in output and "Traceback" not in output
    job = json.loads(cli("jobs", "--json", home=home).stdout)[0]
    assert job["status"] == "cancelled", job
    assert f"rowvault resume {job['id']}" in output
    resumed = cli("resume", job["id"], home=home)  # as printed: the job knows its database
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def test_a_killed_restore_shows_interrupted_at_once(backup_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = start_slow_restore(backup_file, tmp_path / "t.db", home, subprocess.DEVNULL)
    process.kill()
    process.wait(10)
    listed = json.loads(cli("jobs", "--json", home=home).stdout)
    assert listed[0]["status"] == "interrupted", listed[0]
    resumed = cli("resume", listed[0]["id"], home=home)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def test_resume_asks_for_a_password_it_could_not_store(backup_file: Path, tmp_path: Path) -> None:
    from rowvault.jobs import new_runner
    from rowvault.settings import load_settings

    home = tmp_path / "home"
    url = "postgresql+psycopg://postgres:not-stored@127.0.0.1:5432/test"
    runner = new_runner(load_settings(DATABASE_URL=url, ROWVAULT_HOME=str(home)))
    try:
        job = runner.create_restore(backup_file, {})
        runner.cancel(job.id)
    finally:
        runner.close()
        runner.store.close()
    done = cli("resume", job.id, home=home)
    assert done.returncode == 1
    assert "password is not stored" in done.stdout + done.stderr
    assert "not-stored" not in done.stdout + done.stderr


def test_a_run_refused_by_validation_is_not_offered_as_resumable(tmp_path: Path) -> None:
    path = write_backup(tmp_path / "unknown.json", None, {"nowhere": [{"a": 1}]})
    done = cli("restore", str(path), "--db", str(tmp_path / "t.db"), home=tmp_path / "home")
    assert done.returncode == 1
    assert "rowvault resume" not in done.stdout + done.stderr
    assert "nothing was written" in done.stdout + done.stderr


def test_each_run_keeps_its_own_rejects_file(backup_file: Path, tmp_path: Path) -> None:
    metadata, tables = read_backup(backup_file)
    tables["categories"].append({"id": "not a number", "name": "bad"})
    damaged = write_backup(tmp_path / "damaged.json", metadata, tables)
    for _ in range(2):
        done = cli("restore", str(damaged), "--db", str(tmp_path / "t.db"), home=tmp_path / "home")
        assert done.returncode == 3, done.stdout + done.stderr
    rejects = sorted(tmp_path.glob("damaged.rejects-*.json"))
    assert len(rejects) == 2
