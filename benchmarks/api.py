"""Restore through the HTTP API against the library, measured in one run on this machine.

    python benchmarks/api.py [--records 1000000] [--pollers 50] [--poll-interval-ms 2000] [--repeat 1]

Uses the demo database and gzip backup of benchmarks/restore.py (built once, cached under
benchmarks/out/), then measures three restores of the .json.gz, each into a fresh empty
SQLite file:

  library           `rowvault.restore()` in its own process
  api               a real `rowvault serve` (its own process, 127.0.0.1, a fresh ROWVAULT_HOME):
                    the file is streamed as the body of `POST /api/backup` (application/gzip,
                    64 KiB reads, never whole in memory), then `GET /api/backup/progress?id=`
                    every 200 ms until `status` is `completed`; seconds from the start of the
                    upload to the poll that saw `completed`
  api-with-pollers  the same as `api` (new server, new database), while N asyncio pollers
                    (default 50; one httpx.AsyncClient, so one keep-alive connection, each,
                    made and connected before the upload so no client set-up is measured) poll
                    the same progress URL every --poll-interval-ms (default 2000, the web
                    page's RESTORE_POLL_INTERVAL; starts spread over one interval) or, with 0,
                    back to back, from the moment the job id is known
                    (the 202 answer) until the job ends

and prints seconds, records/s, the ratio to the library, the peak RSS of the server or its
worker process (VmHWM of /proc/<pid>/status, read just before the server is stopped) and
their CPU seconds, and the
pollers' request count and latency percentiles. `upload` is the time to the 202 answer (body
streamed to disk, structure scan, validation against the database), `job` the engine's own
startedAt..finishedAt from the progress record, `exact` the upload start to the server's
finishedAt (the same figure without the 200 ms polling granularity).

With --repeat N the library and api runs are done N times, alternated, and the fastest of
each is compared (the machine is shared and noisy); the loaded run is done once and compared
with the fastest api run.

Every load loop is bounded by --timeout and by a request count, and stops by itself when
the job ends; servers are stopped on the way out whatever happened. Figures also go to
benchmarks/out/api-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from restore import prepare  # noqa: E402  (benchmarks/restore.py)

OUT = HERE / "out"
WORK = OUT / "api-run"
LOOPBACK = "127.0.0.1"
MAIN_POLL_SECONDS = 0.2
TARGET_OVERHEAD = 0.10  # api / library - 1
TARGET_SLOWDOWN = 0.10  # api-with-pollers / api - 1
TARGET_P99_MS = 50.0
MAX_REQUESTS_PER_POLLER = 200_000
FINISHED = ("completed", "error", "cancelled", "interrupted")


# -- the library run (own process) ---------------------------------------------------------


def child_library(backup: Path, target: Path) -> None:
    import rowvault

    started = time.perf_counter()
    cpu0 = os.times()
    result = rowvault.restore(str(target), backup)
    seconds = time.perf_counter() - started
    cpu1 = os.times()
    assert result.success, result.errors[:5]
    measured = {
        "seconds": seconds,
        "records": result.processed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_seconds": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
    }
    print("RESULT " + json.dumps(measured), flush=True)


def run_library(backup: Path, target: Path, timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "library", "--backup", str(backup), "--target", str(target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    remove_db(target)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            measured: dict[str, Any] = json.loads(line[7:])
            measured["rate"] = measured["records"] / measured["seconds"]
            return measured
    raise SystemExit(f"library run failed:\n{proc.stdout}\n{proc.stderr}")


def remove_db(path: Path) -> None:
    """A restored database is not looked at again: 150 MB each at 1,000,000 records."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- a real server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    """This environment without any rowvault setting (token, batch size, state URL...),
    so the server runs with the defaults the library run gets; ROWVAULT_HOME its own."""
    from rowvault.settings import Settings

    names = {info.alias or name for name, info in Settings.model_fields.items()}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["ROWVAULT_HOME"] = str(home)
    return env


class Server:
    def __init__(self, db: Path, home: Path, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.log = log
        home.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log, "wb")  # a file, not a pipe: a full pipe would stall it
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rowvault.cli",
                "serve",
                "--db",
                str(db),
                "--host",
                LOOPBACK,
                "--port",
                str(self.port),
            ],
            env=server_env(home),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        LIVE.append(self)

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer /healthz in {timeout:.0f} s:\n{self.tail()}")

    def _family(self) -> list[int]:
        """The server and its worker processes (the restore runs in a worker)."""
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    @staticmethod
    def _status(pid: int) -> dict[str, str]:
        fields = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return fields

    def peak_rss_mb(self) -> float:
        """The largest peak RSS among the server and its workers."""
        return max(int(self._status(pid)["VmHWM"].split()[0]) / 1024 for pid in self._family())

    def cpu_seconds(self) -> float:
        """CPU seconds of the server and its workers together."""
        total = 0.0
        for pid in self._family():
            stat = Path(f"/proc/{pid}/stat").read_text()
            after = stat[stat.rindex(")") + 2 :].split()
            total += (int(after[11]) + int(after[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return total

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log_file.close()
        if self in LIVE:
            LIVE.remove(self)


LIVE: list[Server] = []


def stop_all() -> None:
    for server in list(LIVE):
        try:
            server.stop()
        except Exception as exc:  # keep stopping the others
            print(f"could not stop server {server.proc.pid}: {exc}", file=sys.stderr)


# -- the pollers ---------------------------------------------------------------------------


class Pollers:
    """N asyncio pollers on a thread of their own, each with its own httpx.AsyncClient.

    `prepare()` makes the clients and connects each (GET /healthz) before the upload, so no
    client set-up is in the latencies; `go(job_id)` starts them all. Each stops at the job's
    end, at `stop()`, at the deadline or after MAX_REQUESTS_PER_POLLER requests, whichever
    comes first. With an interval, their starts are spread evenly over one interval."""

    def __init__(self, base: str, count: int, interval: float, deadline: float) -> None:
        self.base, self.count = base, count
        self.interval, self.deadline = interval, deadline
        self.job_id = ""
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="pollers", daemon=True)
        self.started = self.ended = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._go: asyncio.Event | None = None

    def prepare(self, timeout: float = 120.0) -> None:
        self.thread.start()
        if not self.ready.wait(timeout) or self.failures:
            raise RuntimeError(f"the pollers could not connect: {self.failures[:3]}")

    def go(self, job_id: str) -> None:
        self.job_id = job_id
        self.started = time.perf_counter()
        self._release()

    def stop(self) -> None:
        self.stopping.set()
        self._release()
        self.thread.join(timeout=30)
        self.ended = self.ended or time.perf_counter()

    def _release(self) -> None:
        if self._loop is not None and self._go is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just ended
                self._loop.call_soon_threadsafe(self._go.set)

    def _main(self) -> None:
        asyncio.run(self._all())

    async def _all(self) -> None:
        import httpx

        self._loop, self._go = asyncio.get_running_loop(), asyncio.Event()
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with contextlib.AsyncExitStack() as stack:
            try:
                clients = []
                for _ in range(self.count):
                    client = httpx.AsyncClient(base_url=self.base, timeout=30.0, limits=limits)
                    clients.append(await stack.enter_async_context(client))
                    (await client.get("/healthz")).raise_for_status()  # its connection, opened now
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                return
            finally:
                self.ready.set()
            try:
                await asyncio.wait_for(self._go.wait(), max(0.0, self.deadline - time.perf_counter()))
            except TimeoutError:
                return
            await asyncio.gather(*(self._one(client, i) for i, client in enumerate(clients)))

    async def _one(self, client: Any, index: int) -> None:
        import httpx

        next_at = time.perf_counter()
        if self.interval:
            next_at += self.interval * index / self.count
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        for _ in range(MAX_REQUESTS_PER_POLLER):
            if self.stopping.is_set() or time.perf_counter() > self.deadline:
                return
            t0 = time.perf_counter()
            try:
                r = await client.get("/api/backup/progress", params={"id": self.job_id})
            except httpx.HTTPError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                if len(self.failures) > 100:
                    self.stopping.set()
                continue
            self.latencies.append(time.perf_counter() - t0)
            self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
            if r.status_code == 200 and r.json()["progress"]["status"] in FINISHED:
                self.stopping.set()  # the job ended: every poller stops
                return
            if self.interval:
                next_at += self.interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    def report(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        seconds = max(self.ended - self.started, 1e-9)

        def pct(p: float) -> float:
            return lat[max(0, math.ceil(p / 100 * len(lat)) - 1)] * 1000 if lat else float("nan")

        return {
            "pollers": self.count,
            "interval_ms": self.interval * 1000,
            "requests": len(lat),
            "requests_per_s": len(lat) / seconds,
            "http_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failures": len(self.failures),
            "first_failures": self.failures[:5],
            "p50_ms": pct(50),
            "p95_ms": pct(95),
            "p99_ms": pct(99),
            "max_ms": lat[-1] * 1000 if lat else float("nan"),
            "mean_ms": sum(lat) / len(lat) * 1000 if lat else float("nan"),
        }


# -- an API run ----------------------------------------------------------------------------


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else None


def run_api(
    name: str,
    backup: Path,
    records: int,
    timeout: float,
    pollers: int = 0,
    poll_interval: float = 0.0,
) -> dict[str, Any]:
    import httpx

    db = WORK / f"{name}.db"
    server = Server(db, WORK / f"home-{name}", WORK / f"server-{name}.log")
    load: Pollers | None = None
    try:
        server.wait_ready()
        if pollers:
            load = Pollers(server.base, pollers, poll_interval, time.perf_counter() + timeout)
            load.prepare()
        cpu_before = server.cpu_seconds()
        client_cpu0 = os.times()
        with httpx.Client(base_url=server.base, timeout=httpx.Timeout(timeout, connect=10.0)) as client:
            try:
                wall_start = time.time()
                started = time.perf_counter()
                deadline = started + timeout
                with open(backup, "rb") as body:  # httpx reads it 64 KiB at a time, Content-Length set
                    r = client.post("/api/backup", content=body, headers={"content-type": "application/gzip"})
                if r.status_code != 202:
                    raise RuntimeError(f"{name}: POST /api/backup answered {r.status_code}: {r.text[:500]}")
                accepted = time.perf_counter()
                job_id = r.json()["progressId"]
                if load is not None:
                    load.go(job_id)
                polls = 0
                record: dict[str, Any] = {}
                for polls in range(1, int(timeout / MAIN_POLL_SECONDS) + 2):
                    p = client.get("/api/backup/progress", params={"id": job_id})
                    p.raise_for_status()
                    record = p.json()["progress"]
                    if record["status"] in FINISHED or time.perf_counter() > deadline:
                        break
                    time.sleep(max(0.0, accepted + polls * MAIN_POLL_SECONDS - time.perf_counter()))
                completed = time.perf_counter()
            finally:
                if load is not None:
                    load.stop()
        client_cpu1 = os.times()
        if record.get("status") != "completed":
            raise RuntimeError(
                f"{name}: job {job_id} ended {record.get('status')!r} after {completed - started:.1f} s: "
                f"{record.get('errors', [])[:3]}\n{server.tail()}"
            )
        if record.get("processed") != records or record.get("errorCount"):
            raise RuntimeError(f"{name}: restored {record.get('processed')} of {records}: {record}")
        job_started, job_finished = _epoch(record.get("startedAt")), _epoch(record.get("finishedAt"))
        measured: dict[str, Any] = {
            "seconds": completed - started,
            "records": record["processed"],
            "upload_seconds": accepted - started,
            "job_seconds": (job_finished - job_started) if job_started and job_finished else None,
            "exact_seconds": (job_finished - wall_start) if job_finished else None,
            "main_polls": polls,
            "peak_rss_mb": server.peak_rss_mb(),
            "cpu_seconds": server.cpu_seconds() - cpu_before,
            "client_cpu_seconds": (client_cpu1.user - client_cpu0.user)
            + (client_cpu1.system - client_cpu0.system),
            "server_pid": server.proc.pid,
        }
        measured["rate"] = measured["records"] / measured["seconds"]
        if load is not None:
            measured["pollers"] = load.report()
        return measured
    finally:
        if load is not None:
            load.stop()
        server.stop()
        remove_db(db)


# -- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument(
        "--poll-interval-ms",
        type=float,
        default=2000.0,
        help="each poller's period (the web page's RESTORE_POLL_INTERVAL); 0: back to back",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="library and api runs, alternated; the fastest of each counts"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="bound of each run, seconds")
    parser.add_argument("--child")
    parser.add_argument("--backup")
    parser.add_argument("--target")
    args = parser.parse_args()
    if args.child == "library":
        child_library(Path(args.backup), Path(args.target))
        return

    def on_term(signum: int, _: Any) -> None:
        raise SystemExit(128 + signum)  # so the finally below stops the servers

    signal.signal(signal.SIGTERM, on_term)
    _, backup = prepare(args.records)
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    results: dict[str, dict[str, Any]] = {}
    try:
        libraries, apis = [], []
        for i in range(1, args.repeat + 1):  # alternated, so a noisy minute hits both
            suffix = f"-{i}" if args.repeat > 1 else ""
            libraries.append(run_library(backup, WORK / f"library{suffix}.db", args.timeout))
            apis.append(run_api(f"api{suffix}", backup, args.records, args.timeout))
        for name, runs in (("library", libraries), ("api", apis)):
            results[name] = min(runs, key=lambda m: float(m["seconds"]))
            results[name]["all_seconds"] = [m["seconds"] for m in runs]
        results["api-with-pollers"] = run_api(
            "api-with-pollers",
            backup,
            args.records,
            args.timeout,
            pollers=args.pollers,
            poll_interval=args.poll_interval_ms / 1000,
        )
    finally:
        stop_all()
    report(args, backup, results)


def report(args: argparse.Namespace, backup: Path, results: dict[str, dict[str, Any]]) -> None:
    lib, api, loaded = results["library"], results["api"], results["api-with-pollers"]
    poll = loaded["pollers"]
    how = "back to back" if not args.poll_interval_ms else f"every {args.poll_interval_ms:.0f} ms"
    print(
        f"\n{args.records:,} demo records ({backup.stat().st_size / 1e6:.1f} MB gzip), "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    print(
        f"{'run':<18}{'seconds':>9}{'records/s':>11}{'vs library':>12}{'upload':>8}{'job':>7}"
        f"{'exact':>8}{'peak RSS':>11}{'CPU s':>7}"
    )
    for run, m in results.items():
        ratio = m["seconds"] / lib["seconds"] if run != "library" else None

        def opt(key: str, m: dict[str, Any] = m) -> str:
            return f"{m[key]:.2f}" if m.get(key) is not None else "-"

        print(
            f"{run:<18}{m['seconds']:>9.2f}{m['rate']:>11,.0f}{(f'{ratio:.3f}' if ratio else '-'):>12}"
            f"{opt('upload_seconds'):>8}{opt('job_seconds'):>7}{opt('exact_seconds'):>8}"
            f"{m['peak_rss_mb']:>8.0f} MB{m['cpu_seconds']:>7.1f}"
        )
    if args.repeat > 1:
        for run in ("library", "api"):
            runs = ", ".join(f"{x:.2f}" for x in results[run]["all_seconds"])
            print(f"{run} runs (s): {runs}; the fastest counts")
    overhead = api["seconds"] / lib["seconds"] - 1
    slowdown = loaded["seconds"] / api["seconds"] - 1
    print(
        f"pollers: {poll['pollers']} {how}, {poll['requests']:,} requests "
        f"({poll['requests_per_s']:,.0f}/s), HTTP {poll['http_statuses']}, {poll['failures']} failures; "
        f"latency ms p50 {poll['p50_ms']:.1f}  p95 {poll['p95_ms']:.1f}  p99 {poll['p99_ms']:.1f}  "
        f"max {poll['max_ms']:.1f}"
    )
    print(f"client (this process) CPU during the loaded run: {loaded['client_cpu_seconds']:.1f} s")
    targets = {
        "overhead": (overhead, TARGET_OVERHEAD),
        "slowdown": (slowdown, TARGET_SLOWDOWN),
        "p99_ms": (poll["p99_ms"], TARGET_P99_MS),
    }
    labels = {
        "overhead": "api overhead vs library",
        "slowdown": "slowdown with pollers",
        "p99_ms": "pollers' p99 latency",
    }
    failed = []
    for key, (value, limit) in targets.items():
        ok = value < limit
        shown, wanted = (
            (f"{value:.1f} ms", f"< {limit:.0f} ms")
            if key == "p99_ms"
            else (f"{value:+.1%}", f"< {limit:.0%}")
        )
        print(f"  {labels[key]:<26}{shown:>12}   target {wanted:<9}{'met' if ok else 'MISSED'}")
        if not ok:
            failed.append(labels[key])
    summary = {
        "records": args.records,
        "backup_mb": backup.stat().st_size / 1e6,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "poll_interval_ms": args.poll_interval_ms,
        "pollers": args.pollers,
        "main_poll_ms": MAIN_POLL_SECONDS * 1000,
        "runs": results,
        "overhead": overhead,
        "slowdown": slowdown,
        "targets": {
            key: {"value": value, "target": limit, "met": value < limit}
            for key, (value, limit) in targets.items()
        },
    }
    (OUT / "api-latest.json").write_text(json.dumps(summary, indent=2))
    print("targets met" if not failed else "targets missed: " + ", ".join(failed))


if __name__ == "__main__":
    main()
