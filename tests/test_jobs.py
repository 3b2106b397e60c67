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
