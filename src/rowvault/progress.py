"""The progress record of a backup or restore, and how the engine hands it out.

The record's shape is the compatibility contract of DESIGN.md §3 (camelCase keys, `model`
naming the current table or `"completed"` / `"error"` when finished). The engine owns one
`Progress`, updates it after every batch and passes it to a callback; callers decide what to
do with it (draw a bar, store it, ignore it). Rate and ETA are derived from samples taken
with an injectable clock, so they are testable.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Status = Literal["queued", "running", "completed", "error", "cancelled", "interrupted"]
FINISHED: frozenset[str] = frozenset({"completed", "error", "cancelled", "interrupted"})
MAX_ERRORS_IN_RECORD = 1000
RATE_WINDOW_SECONDS = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _parse_iso(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass
class TableCount:
    processed: int = 0
    total: int = 0


PHASES = {
    "reading": "Reading the file",
    "snapshot": "Saving the rows the restore will change",
    "creating": "Creating tables",
    "data": "Writing the data",
    "deferred": "Filling in held-back foreign keys",
    "indexes": "Adding indexes and foreign keys",
    "counters": "Moving auto-increment counters",
}
"""The stages of a restore, in order, with the words the faces show for them."""


@dataclass
class Phase:
    """The stage a job is in, and how far it is when that can be counted (bytes read,
    statements run)."""

    name: str
    done: int = 0
    total: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": PHASES.get(self.name, self.name),
            "done": self.done,
            "total": self.total,
        }


@dataclass
class Progress:
    """Where a job stands. Mutated by the engine; `to_dict()` gives the wire shape."""

    total: int = 0
    processed: int = 0
    model: str | None = None
    record_id: str | None = None
    counts: dict[str, TableCount] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    status: Status = "queued"
    started_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    phase: Phase | None = None
    """The stage of the job (`PHASES`); every stage shows, also those that write no records."""
    retrying: dict[str, Any] | None = None
    """While a transient failure is waited out: the attempt that comes next, of how many, why
    (`retry.Retrying`); the status stays `running`."""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    _samples: deque[tuple[float, int]] = field(
        default_factory=lambda: deque(maxlen=256), repr=False, compare=False
    )
    _rate: float | None = field(default=None, repr=False, compare=False)
    error_sink: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    """Sees every error message, also those past the record's first 1,000."""

    # -- transitions -------------------------------------------------------------------

    def start(self, totals: dict[str, int]) -> None:
        self.counts = {name: TableCount(0, n) for name, n in totals.items()}
        self.total = sum(totals.values())
        self.status = "running"
        self.started_at = self.updated_at = utc_now()
        self._samples.clear()
        self._samples.append((self.clock(), self.processed))

    def enter_phase(self, name: str, total: int | None = None) -> None:
        self.phase = Phase(name, 0, total)
        self.updated_at = utc_now()

    def step_phase(self, done: int) -> None:
        if self.phase is not None:
            self.phase.done = done
            self.updated_at = utc_now()

    def enter_table(self, table: str) -> None:
        self.model = table
        self.counts.setdefault(table, TableCount())
        self.updated_at = utc_now()

    def advance(self, table: str, n: int, record_id: str | None = None) -> None:
        self.counts.setdefault(table, TableCount()).processed += n
        self.processed += n
        self.model = table
        if record_id is not None:
            self.record_id = record_id
        self.updated_at = utc_now()
        self._samples.append((self.clock(), self.processed))
        self._rate = None

    def add_error(self, message: str) -> None:
        if self.error_sink is not None:
            self.error_sink(message)
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_IN_RECORD:
            self.errors.append(message)

    def finish(self, status: Status) -> None:
        self.status = status
        if status == "completed":
            self.phase = None
        self.model = {"completed": "completed", "error": "error"}.get(status, self.model)
        self.finished_at = self.updated_at = utc_now()

    # -- derived -----------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> float:
        if self.total <= 0:
            return 100.0 if self.finished else 0.0
        return max(0.0, min(100.0, 100.0 * self.processed / self.total))

    @property
    def rate(self) -> float | None:
        """Records per second over the last few seconds (None until measurable)."""
        if self._rate is not None:
            return self._rate
        if len(self._samples) < 2:
            return None
        now, latest = self._samples[-1]
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_SECONDS:
            self._samples.popleft()
        then, earliest = self._samples[0]
        if now - then <= 0:
            return None
        self._rate = (latest - earliest) / (now - then)
        return self._rate

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate
        if self.finished:
            return 0.0
        if not rate or rate <= 0:
            return None
        return max(0.0, (self.total - self.processed) / rate)

    # -- wire shape --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        rate, eta = self.rate, self.eta_seconds
        return {
            "model": self.model,
            "recordId": self.record_id,
            "processed": self.processed,
            "total": self.total,
            "counts": {name: {"processed": c.processed, "total": c.total} for name, c in self.counts.items()},
            "errors": list(self.errors),
            "errorCount": self.error_count,
            "status": self.status,
            "startedAt": _iso(self.started_at),
            "updatedAt": _iso(self.updated_at),
            "finishedAt": _iso(self.finished_at),
            "rate": round(rate, 1) if rate is not None else None,
            "etaSeconds": round(eta, 1) if eta is not None else None,
            "phase": self.phase.to_dict() if self.phase else None,
            "retrying": dict(self.retrying) if self.retrying else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        progress = cls(
            total=int(data.get("total") or 0),
            processed=int(data.get("processed") or 0),
            model=data.get("model"),
            record_id=data.get("recordId"),
            counts={
                name: TableCount(int(c.get("processed", 0)), int(c.get("total", 0)))
                for name, c in (data.get("counts") or {}).items()
            },
            errors=list(data.get("errors") or []),
            error_count=int(data.get("errorCount") or 0),
            status=data.get("status") or "queued",
            started_at=_parse_iso(data.get("startedAt")),
            updated_at=_parse_iso(data.get("updatedAt")),
            finished_at=_parse_iso(data.get("finishedAt")),
            phase=_phase(data.get("phase")),
            retrying=data["retrying"] if isinstance(data.get("retrying"), dict) else None,
        )
        if data.get("rate") is not None:
            progress._rate = float(data["rate"])
        return progress


def _phase(data: Any) -> Phase | None:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    total = data.get("total")
    return Phase(data["name"], int(data.get("done") or 0), int(total) if total is not None else None)


class ProgressCallback(Protocol):
    def __call__(self, progress: Progress, /) -> None: ...


def null_progress(progress: Progress, /) -> None:
    """The callback for callers that do not want progress."""


class RecordingProgress:
    """Keeps a snapshot of every progress report; for tests and for `--json` summaries."""

    def __init__(self) -> None:
        self.snapshots: list[dict[str, Any]] = []

    def __call__(self, progress: Progress, /) -> None:
        self.snapshots.append(progress.to_dict())


class Throttled:
    """Passes a report on at most every `interval` seconds, and always the final one."""

    def __init__(
        self,
        callback: ProgressCallback,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback = callback
        self.interval = interval
        self.clock = clock
        self._last = float("-inf")
        self._last_status: str | None = None

    def __call__(self, progress: Progress, /) -> None:
        now = self.clock()
        changed = progress.status != self._last_status
        if changed or progress.finished or now - self._last >= self.interval:
            self._last = now
            self._last_status = progress.status
            self.callback(progress)
