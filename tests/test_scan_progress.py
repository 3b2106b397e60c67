"""The validation pass shows that it is working (issue 11 item 2): `BackupFile.scan` tells
how many bytes of the file it has read (compressed bytes for gzip) of the file's size, a
restore's progress record carries it as the stage `reading` (also in the state store, where
the page reads it), and the terminal draws it as a labelled stage with a bar of bytes before
the data stage."""

from __future__ import annotations

import gzip
import io
import itertools
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo
from rowvault.file.reader import BackupFile
from rowvault.jobs import JobRunner, StateStore
from rowvault.progress import PHASES, Progress

from .test_terminal import assert_no_count_is_cut, assert_nothing_wraps, keep_screens, run_in_terminal

NOTES = 300_000
"""Records of a plain JSON document: read record by record, its scan takes about a second."""


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("notes") / "notes.json"
    records = [{"id": i, "body": f"note {i} " + "x" * 40} for i in range(NOTES)]
    path.write_bytes(orjson.dumps({"notes": records}))
    return path


@pytest.fixture(scope="module")
def demo_backups(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("demo")
    build_demo(folder / "demo.db", 20_000)
    rowvault.backup(folder / "demo.db", folder / "demo.json.gz")
    rowvault.backup(folder / "demo.db", folder / "demo.json")
    return folder / "demo.json.gz", folder / "demo.json"


def notes_target(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    engine.dispose()
    return url


def scan_reports(source: Any) -> list[tuple[float, int, int | None]]:
    seen: list[tuple[float, int, int | None]] = []
    BackupFile(source).scan(lambda done, total: seen.append((time.monotonic(), done, total)))
    return seen


def test_the_scan_reports_bytes_read_of_the_file_size(demo_backups: tuple[Path, Path], notes: Path) -> None:
    for path in (*demo_backups, notes):
        seen = scan_reports(path)
        done = [d for _, d, _ in seen]
        size = path.stat().st_size
        assert {t for _, _, t in seen} == {size}, path.name
        assert done == sorted(done) and done[-1] == size, (path.name, done)
    gz, _ = demo_backups
    expanded = len(gzip.decompress(gz.read_bytes()))
    assert all(d <= gz.stat().st_size < expanded for _, d, _ in scan_reports(gz)), "compressed bytes"


def test_a_long_scan_reports_several_times_a_second(notes: Path) -> None:
    seen = scan_reports(notes)
    assert seen[-1][0] - seen[0][0] > 0.3, "the file should take a while to read"
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    assert len(set(d for _, d, _ in seen)) >= 3, seen
    assert sorted(gaps)[len(gaps) // 2] <= 0.3, gaps


def test_a_stream_is_measured_too(demo_backups: tuple[Path, Path]) -> None:
    gz, _ = demo_backups
    data = gz.read_bytes()
    seen = scan_reports(io.BytesIO(data))
    assert seen[-1][1:] == (len(data), len(data))


def test_a_restores_records_include_the_reading_stage_with_growing_bytes(notes: Path, tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    runner = JobRunner(store, notes_target(tmp_path / "target.db"), tmp_path / "home")
    stored: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []

    def watch(progress: Progress, /) -> None:
        records.append(progress.to_dict())
        if progress.phase is not None and progress.phase.name == "reading":
            job = store.get(job_id)
            assert job is not None
            stored.append(job.progress_record())

    try:
        job_id = runner.create_restore(notes, {"fileName": notes.name}).id
        finished = runner.run(job_id, progress=watch)
    finally:
        runner.close()
        store.close()
    assert finished.status == "completed", finished.error
    phases = [r["phase"]["name"] if r["phase"] else None for r in records]
    assert phases[0] == "reading" and "data" in phases
    assert phases.index("data") > max(i for i, p in enumerate(phases) if p == "reading")
    reading = [r["phase"] for r in records if r["phase"] and r["phase"]["name"] == "reading"]
    done = [p["done"] for p in reading]
    assert done == sorted(done) and len(set(done)) >= 3, done
    assert reading[-1]["done"] == reading[-1]["total"] == notes.stat().st_size
    assert all(p["label"] == PHASES["reading"] for p in reading)
    assert all(r["status"] == "running" for r in records if r["phase"] and r["phase"]["name"] == "reading")
    in_store = [r["phase"]["done"] for r in stored if r.get("phase") and r["phase"]["name"] == "reading"]
    assert len(set(in_store)) >= 2 and in_store == sorted(in_store), in_store


@pytest.mark.parametrize(("cols", "lines"), [(80, 24), (120, 40)])
def test_the_terminal_shows_the_reading_stage_before_the_data(
    notes: Path, tmp_path: Path, cols: int, lines: int
) -> None:
    target = notes_target(tmp_path / "target.db")
    run = run_in_terminal(
        ["restore", str(notes), "--db", target], cols=cols, lines=lines, env={"ROWVAULT_HOME": str(tmp_path)}
    )
    keep_screens(run, tmp_path, f"reading-{cols}x{lines}")
    assert run.status == 0, run.last.text()
    assert_nothing_wraps(run)
    assert_no_count_is_cut(run)
    reading = [
        i
        for i, f in enumerate(run.frames)
        if any(r.startswith(f"restore · {PHASES['reading']}") for r in f.rows)
    ]
    data = [
        i
        for i, f in enumerate(run.frames)
        if any(r.startswith(f"restore · {PHASES['data']}") for r in f.rows)
    ]
    assert reading and data and reading[0] < data[0], run.last.text()
    bars = [
        r for i in reading for r in run.frames[i].rows if r.startswith("  file ━") or r.startswith("  file ─")
    ]
    assert bars, [run.frames[i].text() for i in reading]
    assert all(" MB " in r and r.rstrip().endswith("%") for r in bars), bars
