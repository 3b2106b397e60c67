"""Stream a backup to an HTTP client while it is being written, never whole in memory.

`backup()` runs on a thread and writes into a bounded queue; the response reads from it. If
the client goes away the queue is closed and the backup stops at its next write.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator
from typing import Any

from ..backup import backup
from ..options import BackupOptions

_END = object()


class _Closed(Exception):
    """The client stopped reading."""


class _QueueWriter(io.RawIOBase):
    def __init__(self, handoff: queue.Queue[Any], closed: threading.Event) -> None:
        self._handoff = handoff
        self._closed = closed

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        while True:
            if self._closed.is_set():
                raise _Closed
            try:
                self._handoff.put(chunk, timeout=0.5)
                return len(chunk)
            except queue.Full:
                continue


def stream_backup(database: Any, options: BackupOptions, *, depth: int = 32) -> Iterator[bytes]:
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    closed = threading.Event()

    def produce() -> None:
        try:
            backup(database, _QueueWriter(handoff, closed), options=options)
            handoff.put(_END)
        except _Closed:
            pass
        except BaseException as exc:  # handed to the reader, which ends the response
            handoff.put(exc)

    thread = threading.Thread(target=produce, name="rowvault-download", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()
