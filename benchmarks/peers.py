"""rowvault against the peer tools (issue 10), on the same data, in one run on this machine.

    python benchmarks/peers.py [--records 1000000] [--only sqlite,postgresql,mysql]
                               [--json out.json] [--keep DIR]
    python benchmarks/peers.py --rss-scale [--rss-sizes 1000000,3000000] [--only ...]

Makes the demo source once (rowvault.demo.build_demo into SQLite, rowvault.backup to
.json.gz; both cached under benchmarks/out/ by benchmarks/restore.py's `prepare`), loads the
same rows into fresh uniquely named PostgreSQL and MariaDB databases (COPY / LOAD DATA, the
demo's own schema), then runs every measured phase as its own process and times it:

  rowvault phases   `python -m rowvault.cli restore FILE --db TARGET --json` (each `-empty`
                    phase into a fresh empty SQLite file or database; each `-again` phase
                    onto the one the previous phase filled) and `... backup --db SOURCE`:
                    the whole process, interpreter start included
  peer tools        sqlite3 .dump / sqlite3 new.db < dump.sql, pg_dump -Fc / pg_restore -j 2
                    into an empty database, mydumper -t 2 / myloader -t 2 into an empty
                    database: the whole process
  bounds            benchmarks/peerbounds.py (the SQLite raw executemany bound of
                    benchmarks/restore.py; PostgreSQL COPY into a temp table + one
                    INSERT ... ON CONFLICT per table onto the populated database; MariaDB LOAD
                    DATA of ready files): seconds from rows in memory to the last commit

Prints seconds, records/s, the ratio to the peer (rowvault's speed / the peer's, above 1
means rowvault is faster), the issue's target, PASS/MISS and peak RSS (os.wait4 ru_maxrss of
the child; a database server's own work and memory are in the server processes, for
rowvault and the peers alike), and the machine. Every restore is checked by counting rows.

--rss-scale runs rowvault's restore (into a fresh target) and backup (of that target) at
each size of --rss-sizes and prints their peak RSS: the target is flat (the largest size
within 15% of the smallest) and under 400 MB.

Machines are shared and noisy: the ratios, measured minutes apart in one run, hold better
than the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from peerkit import (  # noqa: E402
    Child,
    ServerDatabases,
    compile_rowvault,
    count_rows,
    libpq_url,
    machine,
    run_child,
)
from restore import OUT, prepare  # noqa: E402
from rowvault.demo import ORDER  # noqa: E402

KINDS = ["sqlite", "postgresql", "mysql"]
RSS_LIMIT_MB = 400.0
FLAT_TOLERANCE = 0.15
BOUNDS = str(HERE / "peerbounds.py")
COMPARISONS: list[tuple[str, str, float | None]] = [  # rowvault phase, peer phase, target ratio
    ("sqlite-empty", "sqlite-bound", 0.8),
    ("sqlite-empty", "sqlite3-load", 1.5),
    ("sqlite-again", "sqlite-bound", 0.6),
    ("sqlite-backup", "sqlite3-dump", 0.5),
    ("pg-empty", "pg_restore", 0.6),
    ("pg-again", "pg-upsert-bound", 0.8),
    ("pg-backup", "pg_dump", 1.0),
    ("mysql-empty", "myloader", 1.5),
    ("mysql-empty", "mysql-load-data", None),
    ("mysql-backup", "mydumper", 0.2),
]


@dataclass
class Phase:
    """One measured phase: what ran, its seconds (see the module docstring), peak RSS."""

    name: str
    what: str
    kind: str  # rowvault, peer or bound
    seconds: float = 0.0
    process_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    records: int = 0
    error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds and not self.error else 0.0


class Run:
    """One benchmark run: the work directory, the server databases, the phases so far."""

    def __init__(self, records: int, work: Path, databases: ServerDatabases, timeout: float) -> None:
        self.records = records
        self.work = work
        self.databases = databases
        self.timeout = timeout
        self.phases: dict[str, Phase] = {}
        self.env = {**os.environ, "ROWVAULT_HOME": str(work / "rowvault-home")}
        self.env.pop("DATABASE_URL", None)

    def child(self, argv: list[str], **kwargs: Any) -> Child:
        return run_child(argv, work=self.work, env=self.env, timeout=self.timeout, **kwargs)

    def setup(self, what: str, argv: list[str]) -> None:
        done = self.child(argv).check(what)
        print(f"  setup: {what} ({done.seconds:.1f} s)", flush=True)

    def _record(self, phase: Phase, child: Child) -> Phase:
        phase.process_seconds = child.seconds
        phase.seconds = phase.seconds or child.seconds
        phase.peak_rss_mb = child.peak_rss_mb
        phase.records = phase.records or self.records
        if child.returncode != 0 and not phase.error:
            phase.error = f"exit {child.returncode}: {(child.stderr or child.stdout).strip()[-2000:]}"
        self.phases[phase.name] = phase
        shown = f"FAILED {phase.error[:300]}" if phase.error else f"{phase.seconds:.2f} s"
        print(f"  {phase.name:<20} {shown}  ({phase.peak_rss_mb:.0f} MB)", flush=True)
        return phase

    def rowvault(self, name: str, what: str, args: list[str]) -> Phase:
        child = self.child([sys.executable, "-m", "rowvault.cli", *args, "--json"])
        phase = Phase(name, what, "rowvault")
        answer = _first_json(child.stdout)
        done = answer.get("processed") if args[0] == "restore" else answer.get("total")
        if child.returncode == 0 and done != self.records:
            phase.error = f"{done} records of {self.records}: {child.stdout[-1500:]}"
        if child.returncode != 0:
            phase.error = f"exit {child.returncode}: {child.stdout[-1500:]}\n{child.stderr[-1500:]}"
        return self._record(phase, child)

    def tool(self, name: str, what: str, argv: list[str], **kwargs: Any) -> Phase:
        return self._record(Phase(name, what, "peer"), self.child(argv, **kwargs))

    def bound(self, name: str, what: str, args: list[str]) -> Phase:
        child = self.child([sys.executable, BOUNDS, *args])
        phase = Phase(name, what, "bound")
        for line in child.stdout.splitlines():
            if line.startswith("RESULT "):
                measured = json.loads(line[7:])
                phase.seconds, phase.records = measured["seconds"], measured["records"]
        return self._record(phase, child)

    def check_rows(self, name: str, target: str) -> None:
        """A restore that left the wrong number of rows did not do the work it is timed for."""
        try:
            found = count_rows(target, ORDER)
        except Exception as exc:  # a peer that failed may leave no tables at all
            found, detail = -1, f"{type(exc).__name__}: {exc}"
        else:
            detail = f"{found:,} rows"
        if found != self.records:
            phase = self.phases[name]
            phase.notes.append(f"after the phase: {detail}, expected {self.records:,}")
            phase.error = phase.error or phase.notes[-1]
            print(f"  {name}: {phase.notes[-1]}", flush=True)


def _first_json(text: str) -> dict[str, Any]:
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- the engines ----------------------------------------------------------------------------


def bench_sqlite(run: Run, source: Path, backup: Path) -> None:
    w = run.work
    run.rowvault(
        "sqlite-backup",
        "rowvault backup of the SQLite source",
        ["backup", "--db", str(source), "-o", str(w / "rv-sqlite.json.gz")],
    )
    dump = w / "dump.sql"
    run.tool(
        "sqlite3-dump", "sqlite3 SOURCE .dump > dump.sql", ["sqlite3", str(source), ".dump"], stdout=dump
    )
    peer = w / "peer.db"
    _remove_sqlite(peer)
    run.tool("sqlite3-load", "sqlite3 new.db < dump.sql", ["sqlite3", str(peer)], stdin=dump)
    run.check_rows("sqlite3-load", str(peer))
    _remove_sqlite(peer)
    bound = w / "bound.db"
    _remove_sqlite(bound)
    run.bound(
        "sqlite-bound",
        "raw executemany of in-memory tuples + indexes (restore.py)",
        ["sqlite-bound", "--source", str(source), "--target", str(bound)],
    )
    _remove_sqlite(bound)
    target = w / "rowvault.db"
    _remove_sqlite(target)
    for name, what in (
        ("sqlite-empty", "into an empty SQLite file"),
        ("sqlite-again", "again, every row unchanged"),
    ):
        run.rowvault(
            name, f"rowvault restore of the .json.gz {what}", ["restore", str(backup), "--db", str(target)]
        )
        run.check_rows(name, str(target))
    _remove_sqlite(target)


def bench_postgresql(run: Run, source: Path, backup: Path) -> None:
    dbs, w = run.databases, run.work
    src = dbs.new("postgresql", "src")
    run.setup(
        "PostgreSQL source: COPY of the demo rows, then indexes and keys",
        [sys.executable, BOUNDS, "pg-copy", "--source", str(source), "--target", src],
    )
    run.rowvault(
        "pg-backup",
        "rowvault backup of the PostgreSQL source",
        ["backup", "--db", src, "-o", str(w / "rv-pg.json.gz")],
    )
    dump = w / "pg.dump"
    run.tool("pg_dump", "pg_dump -Fc of the source", ["pg_dump", "-Fc", "-f", str(dump), libpq_url(src)])
    peer = dbs.new("postgresql", "peer")
    run.tool(
        "pg_restore",
        "pg_restore -j 2 into an empty database (server work not in RSS)",
        ["pg_restore", "-j", "2", "--no-owner", "-d", libpq_url(peer), str(dump)],
    )
    run.check_rows("pg_restore", peer)
    dbs.drop("postgresql", peer)
    target = dbs.new("postgresql", "rv")
    for name, what in (("pg-empty", "into an empty database"), ("pg-again", "again, every row unchanged")):
        run.rowvault(
            name, f"rowvault restore of the .json.gz {what}", ["restore", str(backup), "--db", target]
        )
        run.check_rows(name, target)
    run.bound(
        "pg-upsert-bound",
        "COPY into a temp table + one INSERT ... ON CONFLICT per table, populated",
        ["pg-upsert-bound", "--source", str(source), "--target", target],
    )
    run.check_rows("pg-upsert-bound", target)
    dbs.drop("postgresql", target)
    dbs.drop("postgresql", src)


def bench_mysql(run: Run, source: Path, backup: Path) -> None:
    dbs, w = run.databases, run.work
    tsv = w / "tsv"
    run.setup(
        "LOAD DATA files of the demo rows",
        [sys.executable, BOUNDS, "write-tsv", "--source", str(source), "--tsv", str(tsv)],
    )
    src = dbs.new("mysql", "src")
    run.setup(
        "MariaDB source: LOAD DATA of those files",
        [
            sys.executable,
            BOUNDS,
            "mysql-load-data",
            "--source",
            str(source),
            "--tsv",
            str(tsv),
            "--target",
            src,
        ],
    )
    run.rowvault(
        "mysql-backup",
        "rowvault backup of the MariaDB source",
        ["backup", "--db", src, "-o", str(w / "rv-mysql.json.gz")],
    )
    dumped = w / "mydumper"
    shutil.rmtree(dumped, ignore_errors=True)
    run.tool(
        "mydumper",
        "mydumper -t 2 of the source",
        ["mydumper", *_my_login(src), "-t", "2", "-B", _db_name(src), "-o", str(dumped), "-v", "1"],
    )
    uuid_columns = _uuid_to_char(dumped)
    peer = dbs.new("mysql", "peer")
    run.tool(
        "myloader",
        "myloader -t 2 into an empty database (server work not in RSS)",
        ["myloader", *_my_login(peer), "-t", "2", "-d", str(dumped), "-B", _db_name(peer), "-v", "1"],
    )
    run.check_rows("myloader", peer)
    if uuid_columns:
        run.phases["myloader"].notes.append(
            f"{uuid_columns} uuid column(s) made char(36) in the dump's schema files first: mydumper 0.10 "
            "writes SET NAMES binary, under which MariaDB refuses every UUID literal (ERROR 1292)"
        )
    dbs.drop("mysql", peer)
    loaded = dbs.new("mysql", "load")
    run.bound(
        "mysql-load-data",
        "LOAD DATA LOCAL of ready files, tables made first (reference)",
        ["mysql-load-data", "--source", str(source), "--tsv", str(tsv), "--target", loaded],
    )
    run.check_rows("mysql-load-data", loaded)
    dbs.drop("mysql", loaded)
    target = dbs.new("mysql", "rv")
    for name, what in (
        ("mysql-empty", "into an empty database"),
        ("mysql-again", "again, every row unchanged"),
    ):
        run.rowvault(
            name, f"rowvault restore of the .json.gz {what}", ["restore", str(backup), "--db", target]
        )
        run.check_rows(name, target)
    dbs.drop("mysql", target)
    dbs.drop("mysql", src)


def _uuid_to_char(dumped: Path) -> int:
    """Make the dump's native `uuid` columns char(36), so that myloader can load them."""
    changed = 0
    for path in dumped.glob("*-schema.sql"):
        text, n = re.subn(r"(`\w+` )uuid\b", r"\1char(36)", path.read_text())
        if n:
            path.write_text(text)
            changed += n
    return changed


def _db_name(url: str) -> str:
    return sa.make_url(url).database or ""


def _my_login(url: str) -> list[str]:
    parts = sa.make_url(url)
    login = ["-h", parts.host or "127.0.0.1", "-P", str(parts.port or 3306), "-u", parts.username or "root"]
    return login + (["-p", parts.password] if parts.password else [])


ENGINES = {"sqlite": bench_sqlite, "postgresql": bench_postgresql, "mysql": bench_mysql}


# -- the report -----------------------------------------------------------------------------


def comparisons(phases: dict[str, Phase]) -> list[dict[str, Any]]:
    rows = []
    for ours, theirs, target in COMPARISONS:
        if ours not in phases or theirs not in phases:
            continue
        a, b = phases[ours], phases[theirs]
        ratio = a.rate / b.rate if a.rate and b.rate else None
        if ratio is None:
            verdict = "FAILED"
        elif target is None:
            verdict = "-"
        else:
            verdict = "PASS" if ratio >= target else "MISS"
        rows.append({"phase": ours, "against": theirs, "ratio": ratio, "target": target, "verdict": verdict})
    return rows


def report(records: int, phases: dict[str, Phase], info: dict[str, Any]) -> list[dict[str, Any]]:
    compared = comparisons(phases)
    print(
        f"\n{records:,} demo records, one run; "
        "ratio = rowvault records/s / peer records/s (>1: rowvault faster)"
    )
    print(
        f"{'phase':<17}{'seconds':>9}{'proc s':>8}{'records/s':>11}{'peak RSS':>10}  "
        f"{'vs':<17}{'ratio':>6}{'target':>8}  verdict"
    )
    for phase in phases.values():
        mine = [c for c in compared if c["phase"] == phase.name] or [None]
        for i, c in enumerate(mine):
            if i == 0:
                seconds = f"{phase.seconds:>9.2f}" if not phase.error else f"{'FAILED':>9}"
                rate = f"{phase.rate:>11,.0f}" if not phase.error else f"{'-':>11}"
                figures = f"{seconds}{phase.process_seconds:>8.2f}{rate}{phase.peak_rss_mb:>7.0f} MB"
                head = f"{phase.name:<17}{figures}"
            else:
                head = " " * 55
            if c is None:
                print(head)
                continue
            ratio = f"{c['ratio']:.2f}" if c["ratio"] else "-"
            target = f"≥ {c['target']}" if c["target"] else "-"
            print(f"{head}  {c['against']:<17}{ratio:>6}{target:>8}  {c['verdict']}")
    ours = [p for p in phases.values() if p.kind == "rowvault"]
    if ours:
        top = max(ours, key=lambda p: p.peak_rss_mb)
        verdict = "PASS" if top.peak_rss_mb < RSS_LIMIT_MB else "MISS"
        print(
            f"rowvault peak RSS: max {top.peak_rss_mb:.0f} MB ({top.name}), "
            f"target < {RSS_LIMIT_MB:.0f} MB: {verdict}"
            " (flat 1M -> 3M: see --rss-scale)"
        )
    print("\nphases:")
    for phase in phases.values():
        print(f"  {phase.name:<16} {phase.what}")
        for note in phase.notes:
            print(f"  {'':<16} note: {note}")
        if phase.error:
            print(f"  {'':<16} error: {phase.error[:1500]}")
    print("  seconds: the whole process for rowvault and the peer tools; rows in memory (or files on disk)")
    print("  to the last commit for the bounds (proc s: their whole process). peak RSS: the child's own")
    print("  (wait4 ru_maxrss); the servers' work and memory are in the server processes, for rowvault too.")
    print("\nmachine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    return compared


# -- the modes ------------------------------------------------------------------------------


def peers(
    args: argparse.Namespace, kinds: list[str], work: Path, databases: ServerDatabases
) -> dict[str, Any]:
    source, backup = prepare(args.records)
    info = machine(databases, kinds, work)
    run = Run(args.records, work, databases, args.timeout)
    for kind in kinds:
        print(f"{kind}:", flush=True)
        ENGINES[kind](run, source, backup)
    info["load_average_after"] = tuple(round(x, 2) for x in os.getloadavg())
    compared = report(args.records, run.phases, info)
    return {
        "records": args.records,
        "machine": info,
        "phases": {k: asdict(p) | {"rate": p.rate} for k, p in run.phases.items()},
        "comparisons": compared,
    }


def rss_scale(
    args: argparse.Namespace, kinds: list[str], work: Path, databases: ServerDatabases
) -> dict[str, Any]:
    sizes = [int(s) for s in args.rss_sizes.split(",")]
    figures: dict[str, dict[int, Phase]] = {}
    for size in sizes:
        _, backup = prepare(size)
        run = Run(size, work, databases, args.timeout)
        print(f"{size:,} records:", flush=True)
        for kind in kinds:
            target = str(work / f"rss-{size}.db") if kind == "sqlite" else databases.new(kind, f"rss{size}")
            for name, cli in (
                (f"{kind}-restore", ["restore", str(backup), "--db", target]),
                (
                    f"{kind}-backup",
                    ["backup", "--db", target, "-o", str(work / f"rss-{kind}-{size}.json.gz")],
                ),
            ):
                figures.setdefault(name, {})[size] = run.rowvault(name, f"rowvault {name} at {size:,}", cli)
            (work / f"rss-{kind}-{size}.json.gz").unlink(missing_ok=True)
            if kind == "sqlite":
                _remove_sqlite(Path(target))
            else:
                databases.drop(kind, target)
    print(
        f"\npeak RSS (MB); flat = the largest size within {FLAT_TOLERANCE:.0%} of the smallest, "
        f"all < {RSS_LIMIT_MB:.0f} MB"
    )
    print(f"{'phase':<20}" + "".join(f"{s:>12,}" for s in sizes) + "  verdict")
    rows = []
    for name, by_size in figures.items():
        rss = [by_size[s].peak_rss_mb for s in sizes]
        failed = any(by_size[s].error for s in sizes)
        flat = rss[-1] <= rss[0] * (1 + FLAT_TOLERANCE) and max(rss) < RSS_LIMIT_MB
        verdict = "FAILED" if failed else ("PASS" if flat else "MISS")
        print(f"{name:<20}" + "".join(f"{r:>12.0f}" for r in rss) + f"  {verdict}")
        rows.append({"phase": name, "sizes": sizes, "peak_rss_mb": rss, "verdict": verdict})
    print("\nmachine: " + ", ".join(f"{k} {v}" for k, v in machine(databases, kinds, work).items()))
    return {"rss_scale": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--only", default=",".join(KINDS), help="comma-separated: sqlite,postgresql,mysql")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--keep", type=Path, help="work in this directory and keep its files (dumps, backups)"
    )
    parser.add_argument("--rss-scale", action="store_true", help="peak RSS of rowvault at each --rss-sizes")
    parser.add_argument("--rss-sizes", default="1000000,3000000")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one phase may take")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
    work = args.keep or OUT / f"peers-{os.getpid()}-{int(time.time())}"
    work.mkdir(parents=True, exist_ok=True)
    compile_rowvault()
    databases = ServerDatabases()
    try:
        figures = (rss_scale if args.rss_scale else peers)(args, kinds, work, databases)
    finally:
        databases.drop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
