"""Jobs: restores with an id, their state in a SQL store, and the runner that executes them."""

from __future__ import annotations

from .model import FINISHED, Job, JobKind, JobStatus
from .runner import Busy, JobError, JobRunner, new_runner
from .store import StateStore

__all__ = [
    "FINISHED",
    "Busy",
    "Job",
    "JobError",
    "JobKind",
    "JobRunner",
    "JobStatus",
    "StateStore",
    "new_runner",
]
