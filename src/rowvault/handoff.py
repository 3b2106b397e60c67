"""Hand items from a producer thread to a consumer, a bounded number ahead.

Used to decompress a backup on a second thread (zlib releases the GIL) and to stream a
backup to an HTTP client while it is being written. If the consumer stops early, the
producer's next `put` says so and the producer ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class Handoff(Generic[T]):
    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()

    def put(self, item: T) -> bool:
        """Hand `item` over; False once the consumer has gone away."""
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self, produce: Callable[[Handoff[T]], None], name: str) -> Iterator[T]:
        """Run `produce(self)` on a thread; yield what it puts, raise what it raises."""

        def target() -> None:
            try:
                produce(self)
                self._queue.put(_DONE)
            except BaseException as exc:  # handed to the consumer, raised there
                self._queue.put(exc)

        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stopped.set()
            while thread.is_alive():
                with suppress(queue.Empty):
                    self._queue.get(timeout=0.1)
