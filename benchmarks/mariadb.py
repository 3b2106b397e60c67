"""MariaDB restore throughput: LOAD DATA LOCAL against PyMySQL's executemany, in one run.

    python benchmarks/mariadb.py [--records 1000000] [--rounds 1]

Uses the demo backup benchmarks/restore.py builds (cached under benchmarks/out/). Each round
restores it into an empty MariaDB database and again into the populated one, first with the
server's local_infile on (rowvault's LOAD DATA path for new tables), then off (the
executemany path every batch falls back to). Prints records/s and the ratio of the two.
Needs a server where this user may SET GLOBAL local_infile (the test server: root).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rowvault
from restore import prepare

ADMIN = os.environ.get("ROWVAULT_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def measure(admin: sa.Engine, backup: Path, records: int, local_infile: bool) -> dict[str, float]:
    name = f"rv_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"SET GLOBAL local_infile = {int(local_infile)}")
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.make_url(ADMIN).set(database=name).render_as_string(hide_password=False)
    rates = {}
    try:
        for phase in ("empty", "populated"):
            started = time.perf_counter()
            result = rowvault.restore(url, backup)
            seconds = time.perf_counter() - started
            assert result.error_count == 0 and result.processed == records, result.errors[:3]
            rates[phase] = records / seconds
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    _, backup = prepare(args.records)
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        was = conn.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar()
    try:
        for round_ in range(1, args.rounds + 1):
            load = measure(admin, backup, args.records, True)
            insert = measure(admin, backup, args.records, False)
            for phase in ("empty", "populated"):
                print(
                    f"round {round_} {phase:9}  LOAD DATA path {load[phase]:9,.0f} records/s   "
                    f"executemany {insert[phase]:9,.0f} records/s   ratio {load[phase] / insert[phase]:.2f}",
                    flush=True,
                )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"SET GLOBAL local_infile = {int(was)}")
        admin.dispose()


if __name__ == "__main__":
    main()
