"""The progress record keeps the DESIGN.md §3 wire shape, derives rate and ETA from an
injected clock, caps its error list, and the throttle passes on few reports but the last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import rowvault
from rowvault.demo import build_demo
from rowvault.progress import MAX_ERRORS_IN_RECORD, Progress, RecordingProgress, Throttled

WIRE_KEYS = {
    "model",
    "recordId",
    "processed",
    "total",
    "counts",
    "errors",
    "errorCount",
    "status",
    "startedAt",
    "updatedAt",
    "finishedAt",
    "rate",
    "etaSeconds",
    "retrying",
    "phase",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def started(clock: FakeClock, totals: dict[str, int] | None = None) -> Progress:
    progress = Progress(clock=clock)
    progress.start(totals if totals is not None else {"users": 60, "posts": 40})
    return progress


def test_the_wire_shape_has_exactly_the_documented_keys() -> None:
    assert set(Progress().to_dict()) == WIRE_KEYS
    assert set(started(FakeClock()).to_dict()) == WIRE_KEYS


def test_start_counts_every_table_and_runs() -> None:
    data = started(FakeClock()).to_dict()

    assert data["status"] == "running"
    assert data["total"] == 100
    assert data["counts"] == {
        "users": {"processed": 0, "total": 60},
        "posts": {"processed": 0, "total": 40},
    }
    assert data["startedAt"] is not None and data["startedAt"].endswith("Z")
    assert data["finishedAt"] is None


def test_advancing_names_the_current_table_and_record() -> None:
    progress = started(FakeClock())

    progress.advance("users", 10, record_id="u-10")
    data = progress.to_dict()

    assert data["model"] == "users"
    assert data["recordId"] == "u-10"
    assert data["processed"] == 10
    assert data["counts"]["users"] == {"processed": 10, "total": 60}


def test_finishing_completed_or_error_names_the_outcome_as_the_model() -> None:
    for status in ("completed", "error"):
        progress = started(FakeClock())
        progress.advance("users", 5)

        progress.finish(status)
        data = progress.to_dict()

        assert data["model"] == status
        assert data["status"] == status
        assert data["finishedAt"] is not None
        assert data["etaSeconds"] == 0.0


def test_a_cancelled_job_keeps_the_table_it_stopped_in() -> None:
    progress = started(FakeClock())
    progress.advance("posts", 5)

    progress.finish("cancelled")

    assert progress.to_dict()["model"] == "posts"


def test_rate_and_eta_come_from_the_clock() -> None:
    clock = FakeClock()
    progress = started(clock)
    assert progress.to_dict()["rate"] is None
    assert progress.to_dict()["etaSeconds"] is None

    clock.now = 2.0
    progress.advance("users", 20)

    assert progress.to_dict()["rate"] == 10.0
    assert progress.to_dict()["etaSeconds"] == 8.0


def test_rate_follows_the_last_seconds_not_the_whole_run() -> None:
    clock = FakeClock()
    progress = started(clock, {"t": 5000})
    for now, n in [(10.0, 1000), (15.0, 10), (20.0, 10)]:
        clock.now = now
        progress.advance("t", n)

    assert progress.rate == 2.0
    assert progress.eta_seconds == (5000 - 1020) / 2.0


def test_no_progress_gives_no_eta() -> None:
    clock = FakeClock()
    progress = started(clock)
    clock.now = 5.0
    progress.advance("users", 0)

    assert progress.to_dict()["rate"] == 0.0
    assert progress.to_dict()["etaSeconds"] is None


def test_errors_are_capped_but_all_counted() -> None:
    progress = started(FakeClock())

    for i in range(MAX_ERRORS_IN_RECORD + 5):
        progress.add_error(f"record {i}: bad")
    data = progress.to_dict()

    assert MAX_ERRORS_IN_RECORD == 1000
    assert len(data["errors"]) == 1000
    assert data["errors"][0] == "record 0: bad"
    assert data["errors"][-1] == "record 999: bad"
    assert data["errorCount"] == 1005


def test_the_wire_shape_round_trips() -> None:
    clock = FakeClock()
    progress = started(clock)
    clock.now = 2.0
    progress.advance("users", 20, record_id="42")
    progress.add_error("users line 3: expected an integer, got 'abc'")
    data = progress.to_dict()

    restored = Progress.from_dict(data)

    assert restored == progress
    assert restored.to_dict() == data


def test_a_finished_record_round_trips() -> None:
    progress = started(FakeClock())
    progress.advance("posts", 40)
    progress.finish("completed")

    restored = Progress.from_dict(progress.to_dict())

    assert restored == progress
    assert restored.finished_at == progress.finished_at
    assert restored.finished


def test_recording_progress_keeps_snapshots_not_live_views() -> None:
    recorder = RecordingProgress()
    progress = started(FakeClock())

    recorder(progress)
    progress.advance("users", 7)
    recorder(progress)

    assert [s["processed"] for s in recorder.snapshots] == [0, 7]


def test_throttled_passes_at_most_one_report_per_interval_and_always_the_last() -> None:
    clock = FakeClock()
    recorder = RecordingProgress()
    throttled = Throttled(recorder, 1.0, clock=clock)
    progress = started(FakeClock(), {"t": 100})

    for step in range(100):  # one report every 0.1 s for 10 s
        clock.now = step / 10
        progress.advance("t", 1)
        throttled(progress)
    progress.finish("completed")
    throttled(progress)

    processed = [s["processed"] for s in recorder.snapshots]
    assert processed == [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100]
    assert recorder.snapshots[-1]["status"] == "completed"


def test_throttled_passes_a_change_of_status_at_once() -> None:
    clock = FakeClock()
    recorder = RecordingProgress()
    throttled = Throttled(recorder, 60.0, clock=clock)
    progress = Progress(clock=FakeClock())

    throttled(progress)
    progress.start({"t": 1})
    throttled(progress)
    throttled(progress)

    assert [s["status"] for s in recorder.snapshots] == ["queued", "running"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_every_stage_of_a_restore_shows_in_order(make_db: Any, kind: str, tmp_path: Path) -> None:
    """Into an empty database: tables are created, the data written, the foreign keys held
    back for cycles filled in, indexes and foreign keys added, counters moved - each stage
    named in the progress record while it runs, with its count where it has one."""
    build_demo(tmp_path / "source.db", 2000)
    backup = tmp_path / "b.json.gz"
    rowvault.backup(tmp_path / "source.db", backup)
    recording = RecordingProgress()
    rowvault.restore(make_db(kind), backup, progress=recording)
    phases = [s["phase"] for s in recording.snapshots if s["phase"]]
    order = list(dict.fromkeys(p["name"] for p in phases))
    assert order == ["creating", "data", "deferred", "indexes", "counters"]
    indexes = [p for p in phases if p["name"] == "indexes"]
    assert indexes[0]["done"] == 0 and indexes[-1]["done"] == indexes[-1]["total"] > 0
    assert all(p["label"] for p in phases)
    assert recording.snapshots[-1]["phase"] is None  # completed


def test_the_safety_snapshot_shows_as_a_stage_with_its_rows(tmp_path: Path) -> None:
    """What any API process reads from the store while a job saves its safety snapshot: the
    stage `snapshot` with rows saved of rows to save - not a bar standing still at 0%."""
    from rowvault.jobs import new_runner
    from rowvault.settings import load_settings

    build_demo(tmp_path / "source.db", 20_000)
    backup = tmp_path / "b.json.gz"
    rowvault.backup(tmp_path / "source.db", backup)
    target = tmp_path / "target.db"
    rowvault.restore(target, backup)  # populated: the snapshot has every row to save
    runner = new_runner(load_settings(DATABASE_URL=str(target)))
    seen: list[dict[str, Any]] = []
    job = runner.create_restore(backup, {"snapshot": True})
    update = runner.store.update

    def recorded(job_id: str, **fields: Any) -> Any:  # every record another process could read
        progress = fields.get("progress")
        if job_id == job.id and progress and progress.get("phase"):
            seen.append(progress["phase"])
        return update(job_id, **fields)

    runner.store.update = recorded  # type: ignore[method-assign]
    try:
        finished = runner.run(job.id)
    finally:
        runner.close()
        runner.store.close()
    assert finished.status == "completed", finished.error
    snapshot = [p for p in seen if p["name"] == "snapshot"]
    assert snapshot, seen[:5]
    assert snapshot[0]["label"] == "Saving the rows the restore will change"
    assert max(p["done"] for p in snapshot) > 0
    assert all(p["total"] == 20_000 for p in snapshot if p["total"] is not None)
    assert [p["name"] for p in seen].index("snapshot") < [p["name"] for p in seen].index("data")
