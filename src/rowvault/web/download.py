"""Stream a backup to an HTTP client while it is being written, never whole in memory.

`backup()` runs on a thread and writes into a bounded hand-off; the response reads from it.
If the client goes away, the backup's next write raises and the backup stops.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from ..backup import backup
from ..handoff import Handoff
from ..options import BackupOptions


class _Closed(Exception):
    """The client stopped reading."""


class _HandoffWriter(io.RawIOBase):
    def __init__(self, handoff: Handoff[bytes]) -> None:
        self._handoff = handoff

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if not self._handoff.put(chunk):
            raise _Closed
        return len(chunk)


def stream_backup(database: Any, options: BackupOptions, *, depth: int = 32) -> Iterator[bytes]:
    def produce(handoff: Handoff[bytes]) -> None:
        with suppress(_Closed):  # the client went away: stop writing
            backup(database, _HandoffWriter(handoff), options=options)

    return Handoff[bytes](depth).run(produce, "rowvault-download")
