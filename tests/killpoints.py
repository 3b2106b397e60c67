"""Run the real `rowvault` CLI and SIGKILL it at one named moment of a restore.

    python tests/killpoints.py POINT TRUTH.json -- restore backup.json.gz --db URL ...

The wrapper wraps one rowvault function so that, at that precise moment, the process does
`os.kill(os.getpid(), SIGKILL)`: a real kill of a real process, at the same place every run.
Just before, it writes TRUTH.json: what had really been committed (records per table, from
the batches `TableLoader.settle` counted), the largest batch, and the checkpoint the job had
last written to its state store. The test reads it to tell "remaining work" from what the
resumed run did.

Points (`name[:argument]`):
  validation:N          the validation pass, once N record lines were checked (`check_region`)
  mid-create:N          N tables created, the others not yet (MariaDB commits each CREATE)
  created               the tables are created (committed), the job has not recorded them yet
  mid-table:T:K         table T, just after its K-th batch was settled (the job writes its
                        checkpoint after every batch, so nothing lags: the kill needs no flush)
  between-tables:T      every earlier table written, table T about to start
  deferred:T            held-back foreign keys: those of the earlier tables are in, T's next
                        (T must not be the first table that holds some back)
  ddl                   after the data: the first foreign key added after an index is in
  counters              half the tables' auto-increment counters are moved

Outside `mid-table`, the job's checkpoint is written (its own `flush`) just before the kill,
as when a kill lands right after a checkpoint write: those cells measure what a resume
redoes beyond its checkpoint, whatever the write throttle.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from rowvault import cli
from rowvault.dialects import base, mysql, postgresql
from rowvault.file import reader
from rowvault.jobs import runner
from rowvault.load.columnar import ColumnarLoader
from rowvault.load.plan import TablePlan
from rowvault.load.rows import TableLoader

restore = importlib.import_module("rowvault.restore")  # the package's `restore` is the function


class Truth:
    """What really happened before the kill, written beside the test's database."""

    def __init__(self, path: Path, point: str) -> None:
        self.path = path
        self.point = point
        self.settled: dict[str, int] = {}
        self.batches: dict[str, int] = {}
        self.largest = 0
        self.stored: dict[str, int] = {}
        self.reporter: Any = None

    def kill(self, moment: str, *, flush: bool = True) -> None:
        if flush and self.reporter is not None:
            self.reporter.flush()
        data = {
            "point": self.point,
            "moment": moment,
            "settled": self.settled,
            "batches": self.batches,
            "largestBatch": self.largest,
            "stored": self.stored,
        }
        with open(self.path, "wb") as out:
            out.write(orjson.dumps(data))
            out.flush()
            os.fsync(out.fileno())
        os.kill(os.getpid(), signal.SIGKILL)


def wrap(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(owner, name)
    setattr(owner, name, functools.wraps(original)(make(original)))


def watch(truth: Truth) -> None:
    """Follow the batches and the job's checkpoint writes (every point needs them)."""

    def settle(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: TableLoader, batch: Any) -> None:
            original(self, batch)
            table = self.plan.source
            truth.settled[table] = batch.base + len(batch.chunk)
            truth.batches[table] = truth.batches.get(table, 0) + 1
            truth.largest = max(truth.largest, len(batch.chunk))

        return run

    def reporter_init(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            truth.reporter = self

        return run

    def flush(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any) -> None:
            original(self)
            truth.stored = dict(self.done)

        return run

    def checkpoint(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, *args: Any) -> None:
            original(self, *args)  # written to the store after every batch
            truth.stored = dict(self.done)

        return run

    wrap(TableLoader, "settle", settle)
    wrap(runner._Reporter, "__init__", reporter_init)
    wrap(runner._Reporter, "flush", flush)
    wrap(runner._Reporter, "checkpoint", checkpoint)


def arm(truth: Truth, point: str) -> None:
    name, _, argument = point.partition(":")
    arms = {
        "validation": _validation,
        "mid-create": _mid_create,
        "created": _created,
        "mid-table": _mid_table,
        "between-tables": _between_tables,
        "deferred": _deferred,
        "ddl": _ddl,
        "counters": _counters,
    }
    if name not in arms:
        raise SystemExit(f"unknown kill point {name!r}; one of {', '.join(arms)}")
    arms[name](truth, argument)


def _validation(truth: Truth, argument: str) -> None:
    lines = int(argument or 100_000)
    checked = [0]

    def make(original: Callable[..., int]) -> Callable[..., int]:
        def run(*args: Any, **kwargs: Any) -> int:
            count = original(*args, **kwargs)
            checked[0] += count
            if checked[0] >= lines:
                truth.kill(f"validation pass, {checked[0]} lines checked")
            return count

        return run

    wrap(reader, "check_region", make)


def _mid_create(truth: Truth, argument: str) -> None:
    wanted, created = int(argument or 1), [0]

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, conn: Any, sql: str, params: Any = None) -> Any:
            answer = original(self, conn, sql, params)
            if sql.lstrip().startswith("CREATE TABLE") and "rowvault_pending_ddl" not in sql:
                created[0] += 1
                if created[0] >= wanted:
                    truth.kill(f"{created[0]} tables created, the others not yet", flush=False)
            return answer

        return run

    wrap(base.Dialect, "execute", make)


def _created(truth: Truth, argument: str) -> None:
    def make(original: Callable[..., None]) -> Callable[..., None]:
        def run(self: Any, names: list[str]) -> None:
            truth.kill(f"{len(names)} tables created, not yet recorded by the job", flush=False)

        return run

    wrap(runner._Reporter, "tables_created", make)


def _mid_table(truth: Truth, argument: str) -> None:
    table, _, after = argument.partition(":")
    after_batches = int(after or 1)

    def make(original: Callable[..., None]) -> Callable[..., None]:
        def run(self: TableLoader, batch: Any) -> None:
            original(self, batch)
            if self.plan.source != table:
                return
            done = truth.batches.get(table, 0)
            if done >= after_batches:
                behind = truth.settled[table] - truth.stored.get(table, 0)
                truth.kill(f"{table}: batch {done} settled, stored checkpoint {behind} behind", flush=False)

        return run

    wrap(TableLoader, "settle", make)  # over the watcher's wrapper: `truth` is current


def _between_tables(truth: Truth, argument: str) -> None:
    def make(original: Callable[..., None]) -> Callable[..., None]:
        def run(self: TableLoader, *args: Any, **kwargs: Any) -> None:
            if self.plan.source == argument:
                truth.kill(f"before table {argument}")
            original(self, *args, **kwargs)

        return run

    wrap(TableLoader, "run", make)
    wrap(ColumnarLoader, "run", make)  # its own `run`: the columnar path of a table


def _deferred(truth: Truth, argument: str) -> None:
    """After the held-back keys of the tables before `argument` are in (the restore's own
    count of that stage: `_Run._step` in the `deferred` phase)."""

    def make(original: Callable[..., None]) -> Callable[..., None]:
        def run(self: Any, ctx: Any, done: int) -> None:
            original(self, ctx, done)
            phase = self.state.phase
            if phase is None or phase.name != "deferred":
                return
            held = [tp.source for tp in self.plan.tables if tp.deferrals]
            if argument in held and done == held.index(argument):
                truth.kill(f"held-back foreign keys of {argument} next")

        return run

    wrap(restore._Run, "_step", make)


def _ddl(truth: Truth, argument: str) -> None:
    indexes = [0]

    def make(original: Callable[..., None]) -> Callable[..., None]:
        def run(self: Any, ctx: Any, work: Any) -> None:
            original(self, ctx, work)
            func = getattr(work, "func", None)
            if getattr(func, "__name__", "") == "add_foreign_key":
                if indexes[0]:
                    table = next((a.name for a in work.args if isinstance(a, TablePlan)), "?")
                    truth.kill(f"after the data: {indexes[0]} index(es) and a foreign key of {table} in")
            else:
                indexes[0] += 1

        return run

    wrap(restore._Run, "_once", make)


def _counters(truth: Truth, argument: str) -> None:
    def make(original: Callable[..., None]) -> Callable[..., None]:
        def run(self: Any, conn: Any, tables: Any) -> None:
            half = list(tables)[: len(tables) // 2]
            original(self, conn, half)
            truth.kill(f"counters of {', '.join(str(t.name) for t in half)} moved, not the rest")

        return run

    for dialect in (base.Dialect, postgresql.PostgreSQLDialect, mysql.MySQLDialect):
        if "advance_sequences" in vars(dialect):
            wrap(dialect, "advance_sequences", make)


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit(__doc__)
    point, truth_path, rowvault_args = argv[0], Path(argv[1]), argv[3:]
    truth = Truth(truth_path, point)
    watch(truth)
    arm(truth, point)
    sys.argv = ["rowvault", *rowvault_args]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
