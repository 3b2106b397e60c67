"""What a reader of the state store sees while a job runs: a progress record never says the
restore is over before the job's final status and result are saved with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rowvault
from rowvault.demo import build_demo
from rowvault.jobs import new_runner
from rowvault.progress import Progress
from rowvault.settings import load_settings


def test_finished_progress_is_stored_with_the_final_status(tmp_path: Path) -> None:
    source = str(tmp_path / "source.db")
    build_demo(source, 3000)
    rowvault.backup(source, tmp_path / "demo.json")
    target = str(tmp_path / "target.db")
    runner = new_runner(load_settings(DATABASE_URL=target, RESTORE_BATCH_SIZE=200))
    seen: list[dict[str, Any]] = []
    try:
        job = runner.create_restore(tmp_path / "demo.json", {})

        def look(progress: Progress) -> None:  # runs right after each of the reporter's writes
            stored = runner.store.get(job.id)
            assert stored is not None
            seen.append({"status": stored.status, **stored.progress_record()})

        finished = runner.run(job.id, progress=look)
    finally:
        runner.close()
        runner.store.close()

    assert finished.status == "completed", finished.error
    assert len(seen) > 5
    early = [r for r in seen if r["model"] in ("completed", "error") and r["status"] != "completed"]
    assert early == []
    final = finished.progress_record()
    assert (final["model"], final["status"]) == ("completed", "completed")
    assert final["processed"] == final["total"] == 3000


def test_the_state_store_makes_its_home_folder(tmp_path: Path) -> None:
    from rowvault.jobs import StateStore

    store = StateStore(f"sqlite:///{tmp_path / 'new' / 'home' / 'state.db'}")
    try:
        assert store.recent() == []
    finally:
        store.close()
    assert (tmp_path / "new" / "home" / "state.db").exists()


def test_only_a_job_that_stopped_part_way_is_resumable() -> None:
    from rowvault.jobs import Job

    def job(status: str, checkpoint: dict[str, Any]) -> Job:
        found = Job(id="j", kind="restore", target="t", target_key="t", checkpoint=checkpoint)
        found.status = status  # type: ignore[assignment]
        return found

    assert job("cancelled", {}).resumable and job("interrupted", {}).resumable
    assert job("error", {"done": {"users": 500}}).resumable
    assert job("error", {"created": ["users"]}).resumable
    assert not job("error", {}).resumable  # refused before its first write: run it again
    assert not job("completed", {"done": {"users": 500}}).resumable
