"""Worker processes: they take queued jobs from the state store and run them.

`rowvault serve` starts its own (one by default) so a restore never shares the server's
Python interpreter: with a thread in the server process, each progress request and each
garbage collection of the restore stalled the other (measured: 50 pollers slowed a
1,000,000-record restore by 170-335% and saw a p99 of 230 ms). `rowvault worker` runs the
same loop on any machine that reaches the database and a shared state store (PostgreSQL).

A worker wakes when the server writes a line to its stdin (a job was queued) and otherwise
looks for work every few seconds. When its stdin closes - the server is gone - it finishes
the job in hand and exits. SIGTERM stops the job after its current batch (`interrupted`,
resumable) and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

from .model import this_process
from .runner import JobRunner, new_runner

log = logging.getLogger("rowvault.jobs")
IDLE_LOOK_SECONDS = 3.0
CHILD_FLAG = "ROWVAULT_WORKER_CHILD"


# -- in the worker process -----------------------------------------------------------------


def work(settings: Any, *, stop: threading.Event | None = None) -> None:
    """Run queued jobs for `settings.database_url` until stopped."""
    stop = stop or threading.Event()
    wake = threading.Event()
    child = os.environ.get(CHILD_FLAG) == "1"
    if child:
        threading.Thread(target=_listen, args=(sys.stdin.fileno(), wake, stop), daemon=True).start()
    runner = new_runner(settings, freeze_heap=True)  # a process of rowvault's own
    _stop_on_sigterm(runner, stop)
    owner = this_process()
    log.info("[worker] %s ready for %s", owner, runner.target)
    try:
        while not stop.is_set():
            job_id = runner.store.claim(runner.key, owner)
            if job_id is None:
                wake.wait(IDLE_LOOK_SECONDS)
                wake.clear()
                continue
            runner.run(job_id, claimed=True)
    finally:
        runner.close()
        runner.store.close()
        log.info("[worker] %s stopped", owner)


def _listen(fd: int, wake: threading.Event, stop: threading.Event) -> None:
    """A line on stdin: work was queued. End of stdin: the server is gone.

    Reads the file descriptor itself: a thread blocked in sys.stdin's buffered reader holds
    its lock, and the interpreter aborts at exit when it cannot take that lock."""
    while os.read(fd, 4096):
        wake.set()
    stop.set()
    wake.set()


def _stop_on_sigterm(runner: JobRunner, stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, frame: Any) -> None:
        stop.set()
        runner.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


# -- in the server process -----------------------------------------------------------------


class WorkerPool:
    """The worker processes of one server: started with it, woken when work is queued,
    restarted if one dies, stopped (jobs interrupted, resumable) when the server stops."""

    def __init__(self, settings: Any, runner: JobRunner, count: int = 1) -> None:
        self.settings = settings
        self.runner = runner
        self.count = count
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="rowvault-workers", daemon=True)

    def start(self) -> None:
        with self._lock:
            self._processes = [self._spawn() for _ in range(self.count)]
        self._watch.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROWVAULT_", "RESTORE_"))}
        env.update(
            DATABASE_URL=s.database_url,
            ROWVAULT_HOME=str(Path(s.home).resolve()),
            RESTORE_BATCH_DELAY_MS=str(s.restore_batch_delay_ms),
            RESTORE_JOBS=str(s.restore_jobs),
            ROWVAULT_MAX_EXPANDED_MB=str(s.max_expanded_mb),  # the caps on reading an upload
            ROWVAULT_MAX_RATIO=str(s.max_ratio),
            PYTHONUNBUFFERED="1",
            **{CHILD_FLAG: "1"},
        )
        if s.state_url:
            env["ROWVAULT_STATE_URL"] = s.state_url
        if s.restore_batch_size:
            env["RESTORE_BATCH_SIZE"] = str(s.restore_batch_size)
        return subprocess.Popen(  # the URL travels in the environment, not on the command line
            [sys.executable, "-m", "rowvault.cli", "worker"], stdin=subprocess.PIPE, env=env
        )

    def notify(self) -> None:
        """Wake the workers: a job was queued."""
        with self._lock:
            for process in self._processes:
                try:
                    assert process.stdin is not None
                    process.stdin.write(b"\n")
                    process.stdin.flush()
                except (BrokenPipeError, OSError, ValueError):
                    pass  # it died; the watcher replaces it

    def _watch_loop(self) -> None:
        while not self._stopping.wait(1.0):
            replaced = False
            with self._lock:
                for i, process in enumerate(self._processes):
                    if process.poll() is None or self._stopping.is_set():
                        continue
                    log.warning(
                        "[worker] process %d exited (%s); starting another", process.pid, process.returncode
                    )
                    self.runner.recover()  # its job, if any, becomes interrupted
                    self._processes[i] = self._spawn()
                    replaced = True
            if replaced:
                self.notify()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            if process.stdin is not None:
                with suppress(OSError):
                    process.stdin.close()
