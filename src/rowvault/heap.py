"""Keep the garbage collector off the objects that existed before a restore or backup.

A restore allocates millions of short-lived objects; every full collection would walk the
whole heap - the application's modules and objects included - and on a million records that
came to a fifth of the run (measured: 11.0 s -> 9.0 s with the heap frozen). Freezing moves
the existing objects out of the collector's scans until the last running restore ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_running = 0


@contextmanager
def frozen_heap() -> Iterator[None]:
    global _running
    with _lock:
        if _running == 0:
            gc.freeze()
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                gc.unfreeze()
