"""The hand-written references of benchmarks/peers.py, each run as its own process:

    python benchmarks/peerbounds.py PHASE --source DEMO.db --target DB [--tsv DIR]

  sqlite-bound     benchmarks/restore.py's raw bound: executemany of in-memory tuples into
                   a new SQLite file, one transaction, then the indexes
  pg-copy          benchmarks/restore.py's COPY of the same rows into an empty PostgreSQL
                   database, then indexes and foreign keys (peers.py's PostgreSQL source)
  pg-upsert-bound  onto a populated PostgreSQL database, per table: COPY the same rows into
                   a temp table, then one INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE
                   (a table without a key: INSERT ... SELECT ... EXCEPT ALL the rows there)
  write-tsv        the source's rows as MariaDB LOAD DATA files (tab-separated, \\N for NULL,
                   binary columns in hex) under --tsv
  mysql-load-data  tables created as the demo defines them (before the clock), then
                   LOAD DATA LOCAL INFILE of each ready file with foreign_key_checks and
                   unique_checks off (also how peers.py fills its MariaDB source)

Prints `RESULT {"seconds": ..., "records": ...}`: for the bounds, seconds from rows in memory
(or files on disk) to the last commit, as benchmarks/restore.py measures its bound.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from restore import _pg_values, phase_pg_bound, phase_sqlite_bound, source_rows  # noqa: E402
from rowvault.demo import ORDER, metadata  # noqa: E402


def pg_upsert_bound(source: Path, url: str) -> dict[str, Any]:
    import psycopg

    from peerkit import libpq_url

    keys = _primary_keys(url)
    rows = source_rows(source)
    with psycopg.connect(libpq_url(url)) as conn:
        started = time.perf_counter()
        for name in ORDER:
            cols, data = rows[name]
            types = [metadata.tables[name].c[c].type for c in cols]
            fixed = [_pg_values(row, types) for row in data]
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f'CREATE TEMP TABLE "rv_stage" (LIKE "{name}") ON COMMIT DROP')
                listed = ", ".join(f'"{c}"' for c in cols)
                with cur.copy(f'COPY "rv_stage" ({listed}) FROM STDIN') as copy:
                    for row in fixed:
                        copy.write_row(row)
                cur.execute(_merge_sql(name, cols, keys[name]))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": sum(len(d) for _, d in rows.values())}


def _primary_keys(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {name: inspector.get_pk_constraint(name)["constrained_columns"] for name in ORDER}
    finally:
        engine.dispose()


def _merge_sql(table: str, cols: list[str], key: list[str]) -> str:
    listed = ", ".join(f'"{c}"' for c in cols)
    if not key:
        return (
            f'INSERT INTO "{table}" ({listed}) SELECT {listed} FROM "rv_stage" '
            f'EXCEPT ALL SELECT {listed} FROM "{table}"'
        )
    rest = [c for c in cols if c not in key]
    on = ", ".join(f'"{c}"' for c in key)
    action = "DO UPDATE SET " + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in rest) if rest else "DO NOTHING"
    return f'INSERT INTO "{table}" ({listed}) SELECT {listed} FROM "rv_stage" ON CONFLICT ({on}) {action}'


# -- MariaDB: ready files and LOAD DATA ---------------------------------------------------


def _binary_columns(table: str) -> set[str]:
    return {c.name for c in metadata.tables[table].columns if isinstance(c.type, sa.LargeBinary)}


def _tsv_field(value: Any, binary: bool) -> str:
    if value is None:
        return "\\N"
    if binary:
        return bytes(value).hex()
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return str(value)


def write_tsv(source: Path, out: Path) -> dict[str, Any]:
    """One file per table, streamed from the SQLite source."""
    out.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(source)
    total = 0
    started = time.perf_counter()
    for name in ORDER:
        cols = [c.name for c in metadata.tables[name].columns]
        binary = [c in _binary_columns(name) for c in cols]
        listed = ", ".join(f'"{c}"' for c in cols)
        cur = conn.execute(f'SELECT {listed} FROM "{name}"')
        with (out / f"{name}.tsv").open("w", encoding="utf-8", newline="\n") as file:
            while chunk := cur.fetchmany(10_000):
                total += len(chunk)
                file.write(
                    "".join(
                        "\t".join(_tsv_field(v, b) for v, b in zip(row, binary, strict=True)) + "\n"
                        for row in chunk
                    )
                )
    conn.close()
    return {"seconds": time.perf_counter() - started, "records": total}


def _load_sql(table: str, path: Path) -> str:
    binary = _binary_columns(table)
    cols = [c.name for c in metadata.tables[table].columns]
    listed = ", ".join(f"@`b_{c}`" if c in binary else f"`{c}`" for c in cols)
    sets = ", ".join(f"`{c}` = UNHEX(@`b_{c}`)" for c in cols if c in binary)
    quoted = str(path).replace("\\", "\\\\").replace("'", "\\'")
    sql = f"LOAD DATA LOCAL INFILE '{quoted}' INTO TABLE `{table}` CHARACTER SET utf8mb4 ({listed})"
    return sql + (f" SET {sets}" if sets else "")


def mysql_load_data(tsv: Path, url: str) -> dict[str, Any]:
    import pymysql

    engine = sa.create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    parts = sa.make_url(url)
    conn = pymysql.connect(
        host=parts.host,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.database,
        charset="utf8mb4",
        local_infile=True,
    )
    total = 0
    try:
        with conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute("SET foreign_key_checks = 0, unique_checks = 0")
            for name in ORDER:
                cur.execute(_load_sql(name, tsv / f"{name}.tsv"))
                total += cur.rowcount
                conn.commit()
            seconds = time.perf_counter() - started
    finally:
        conn.close()
    return {"seconds": seconds, "records": total}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "phase", choices=["sqlite-bound", "pg-copy", "pg-upsert-bound", "write-tsv", "mysql-load-data"]
    )
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--target", default="")
    parser.add_argument("--tsv", type=Path)
    args = parser.parse_args()
    if args.phase == "sqlite-bound":
        measured = phase_sqlite_bound(args.source, Path(args.target))
    elif args.phase == "pg-copy":
        measured = phase_pg_bound(args.source, args.target)
    elif args.phase == "pg-upsert-bound":
        measured = pg_upsert_bound(args.source, args.target)
    elif args.phase == "write-tsv":
        measured = write_tsv(args.source, args.tsv)
    else:
        measured = mysql_load_data(args.tsv, args.target)
    print("RESULT " + json.dumps(measured), flush=True)


if __name__ == "__main__":
    main()
