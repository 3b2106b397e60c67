"""Several processes that start at once against a new state store (two `rowvault serve`
instances, a worker, a CLI command) all get a working store: creating its tables is not a
race that one of them loses."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from rowvault.jobs.store import StateStore

STARTERS = 8


def start_together(url: str) -> list[BaseException]:
    barrier = threading.Barrier(STARTERS)
    failures: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            StateStore(url).close()
        except BaseException as exc:  # what a starting process would die of
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(STARTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_stores_started_at_the_same_moment_all_work(make_db: Any, kind: str, tmp_path: Path) -> None:
    for attempt in range(5):  # the race is narrow: give it a few chances to show
        url = f"sqlite:///{tmp_path / f'home{attempt}' / 'state.db'}" if kind == "sqlite" else make_db(kind)
        assert start_together(url) == []
