"""Restore throughput against the bound, measured in one run on this machine.

    python benchmarks/restore.py [--records 1000000] [--skip-postgres]

Builds (once, cached under benchmarks/out/) a demo database of N records and its gzip
backup, then measures, each phase in its own process so peak memory is its own:

  sqlite-bound      raw sqlite3: executemany of the same rows, one transaction, then indexes
  sqlite-empty      rowvault restore from the .json.gz into an empty SQLite database
  sqlite-populated  the same restore again, into the now populated database
  pg-bound          psycopg COPY of the same rows into PostgreSQL, then indexes and keys
  pg-empty          rowvault restore into an empty PostgreSQL database
  pg-populated      the same restore again

and prints records/s, the ratio to the bound, and peak RSS. Machines are noisy: compare the
ratios, which are measured minutes apart in the same run, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
PG_ADMIN = os.environ.get("ROWVAULT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TARGETS = {"sqlite-empty": 0.6, "pg-empty": 0.5}
RSS_LIMIT_MB = 150


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- fixtures ------------------------------------------------------------------------------


def prepare(records: int) -> tuple[Path, Path]:
    import rowvault
    from rowvault.demo import build_demo

    OUT.mkdir(exist_ok=True)
    source = OUT / f"demo-{records}.db"
    backup = OUT / f"demo-{records}.json.gz"
    if not source.exists():
        print(f"building a {records:,}-record demo database (once)...", flush=True)
        partial = source.with_suffix(".part")
        partial.unlink(missing_ok=True)
        build_demo(partial, records)
        partial.rename(source)
    if not backup.exists():
        started = time.perf_counter()
        rowvault.backup(source, backup)
        seconds = time.perf_counter() - started
        print(
            f"backup: {records / seconds:,.0f} records/s, {backup.stat().st_size / 1e6:.1f} MB",
            flush=True,
        )
    return source, backup


def source_rows(source: Path) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    from rowvault.demo import ORDER

    conn = sqlite3.connect(source)
    tables = {}
    for name in ORDER:
        cur = conn.execute(f'SELECT * FROM "{name}"')
        tables[name] = ([d[0] for d in cur.description], cur.fetchall())
    conn.close()
    return tables


# -- phases (each runs in its own process) -------------------------------------------------


def phase_sqlite_bound(source: Path, target: Path) -> dict[str, Any]:
    import sqlalchemy as sa
    from sqlalchemy.schema import CreateIndex, CreateTable

    from rowvault.demo import ORDER, metadata

    rows = source_rows(source)
    dialect = sa.create_engine("sqlite://").dialect
    conn = sqlite3.connect(target, isolation_level=None)
    for name in ORDER:
        conn.execute(str(CreateTable(metadata.tables[name]).compile(dialect=dialect)))
    started = time.perf_counter()
    conn.execute("BEGIN")
    for name in ORDER:
        cols, data = rows[name]
        marks = ", ".join("?" * len(cols))
        conn.executemany(f'INSERT INTO "{name}" VALUES ({marks})', data)
    conn.execute("COMMIT")
    for table in metadata.tables.values():
        for index in table.indexes:
            conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": sum(len(d) for _, d in rows.values())}


def phase_pg_bound(source: Path, url: str) -> dict[str, Any]:
    import psycopg
    import sqlalchemy as sa
    from sqlalchemy.schema import AddConstraint, CreateIndex, CreateTable

    from rowvault.demo import ORDER, metadata

    rows = source_rows(source)
    dialect = sa.create_engine(url).dialect
    conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in ORDER:
            ddl = str(
                CreateTable(metadata.tables[name], include_foreign_key_constraints=[]).compile(
                    dialect=dialect
                )
            )
            conn.execute(ddl)
        started = time.perf_counter()
        for name in ORDER:
            cols, data = rows[name]
            types = [metadata.tables[name].c[c].type for c in cols]
            fixed = [_pg_values(row, types) for row in data]
            with conn.transaction(), conn.cursor() as cur:
                column_list = ", ".join(f'"{c}"' for c in cols)
                with cur.copy(f'COPY "{name}" ({column_list}) FROM STDIN') as copy:
                    for row in fixed:
                        copy.write_row(row)
        for table in metadata.tables.values():
            for index in table.indexes:
                conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
            for fk in table.foreign_key_constraints:
                conn.execute(str(AddConstraint(fk).compile(dialect=dialect)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": sum(len(d) for _, d in rows.values())}


def _pg_values(row: tuple[Any, ...], types: list[Any]) -> tuple[Any, ...]:
    import sqlalchemy as sa

    out = []
    for value, type_ in zip(row, types, strict=True):
        if value is not None and isinstance(type_, sa.Boolean):
            value = bool(value)
        out.append(value)
    return tuple(out)


def phase_restore(db: str, backup: Path) -> dict[str, Any]:
    import rowvault

    started = time.perf_counter()
    result = rowvault.restore(db, backup)
    seconds = time.perf_counter() - started
    assert result.success, result.errors[:5]
    return {"seconds": seconds, "records": result.processed}


def child(args: argparse.Namespace) -> None:
    source, backup = Path(args.source), Path(args.backup)
    if args.phase == "sqlite-bound":
        measured = phase_sqlite_bound(source, Path(args.target))
    elif args.phase == "pg-bound":
        measured = phase_pg_bound(source, args.target)
    else:
        measured = phase_restore(args.target, backup)
    measured["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(measured), flush=True)


def run_phase(phase: str, source: Path, backup: Path, target: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            phase,
            "--source",
            str(source),
            "--backup",
            str(backup),
            "--target",
            target,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            measured: dict[str, Any] = json.loads(line[7:])
            measured["rate"] = measured["records"] / measured["seconds"]
            return measured
    raise SystemExit(f"{phase} failed:\n{proc.stdout}\n{proc.stderr}")


def pg_database(admin: str) -> tuple[str, Any]:
    import sqlalchemy as sa

    name = f"rv_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return sa.make_url(admin).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--source")
    parser.add_argument("--backup")
    parser.add_argument("--target")
    args = parser.parse_args()
    if args.child:
        args.phase = args.child
        child(args)
        return
    source, backup = prepare(args.records)
    results: dict[str, dict[str, Any]] = {}
    work = OUT / "run"
    work.mkdir(exist_ok=True)
    for old in work.glob("*.db*"):
        old.unlink()
    results["sqlite-bound"] = run_phase("sqlite-bound", source, backup, str(work / "bound.db"))
    target = str(work / "restored.db")
    results["sqlite-empty"] = run_phase("sqlite-empty", source, backup, target)
    results["sqlite-populated"] = run_phase("sqlite-populated", source, backup, target)
    if not args.skip_postgres:
        bound_url, drop_bound = pg_database(PG_ADMIN)
        target_url, drop_target = pg_database(PG_ADMIN)
        try:
            results["pg-bound"] = run_phase("pg-bound", source, backup, bound_url)
            results["pg-empty"] = run_phase("pg-empty", source, backup, target_url)
            results["pg-populated"] = run_phase("pg-populated", source, backup, target_url)
        finally:
            drop_bound()
            drop_target()
    report(args.records, results)


def report(records: int, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n{records:,} demo records, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'phase':<18}{'seconds':>9}{'records/s':>12}{'vs bound':>10}{'peak RSS':>11}")
    failed = []
    for phase, m in results.items():
        bound = results.get(("pg" if phase.startswith("pg") else "sqlite") + "-bound")
        ratio = m["rate"] / bound["rate"] if bound and not phase.endswith("bound") else None
        print(
            f"{phase:<18}{m['seconds']:>9.2f}{m['rate']:>12,.0f}"
            f"{(f'{ratio:.2f}' if ratio else '-'):>10}{m['peak_rss_mb']:>8.0f} MB"
        )
        if phase in TARGETS and ratio is not None and ratio < TARGETS[phase]:
            failed.append(f"{phase}: {ratio:.2f} of the bound, target {TARGETS[phase]}")
        if not phase.endswith("bound") and m["peak_rss_mb"] >= RSS_LIMIT_MB:
            failed.append(f"{phase}: peak RSS {m['peak_rss_mb']:.0f} MB, limit {RSS_LIMIT_MB} MB")
    (OUT / "restore-latest.json").write_text(json.dumps(results, indent=2))
    print("targets met" if not failed else "targets missed:\n  " + "\n  ".join(failed))


if __name__ == "__main__":
    main()
