"""Property tests (issue 9, item 4): generated tables round-trip exactly, on each engine and
across engines; generated damage to a valid file ends in a clear rowvault error or a correct
partial restore.

Round trip: a table of 1-6 columns (integers of every width, MariaDB's unsigned ones too; text
with any unicode; booleans; doubles with their extremes, -0.0 and subnormals; decimals with a
declared precision and scale, or none; dates; naive and time-zone-aware date-times; times;
bytes; UUIDs; nested JSON), an integer primary key or none, NULLs where nullable, is created
in a source database with its rows, backed up, and restored into an empty database of each
engine. Every row comes back exactly: on the same engine as the same Python value of the same
type (JSON compared as JSON); across engines as the same value, or changed or refused exactly
as the README's table of engine limits says:

- into SQLite: an integer beyond 64 bits (MariaDB's BIGINT UNSIGNED), a float NaN and a decimal
  with more digits than a 64-bit integer or a double are record errors; -0.0 becomes 0.0; a
  date-time with an offset comes back as its UTC instant, written with +00:00.
- into PostgreSQL: text holding NUL is a record error; MariaDB's BIGINT UNSIGNED in a key
  becomes BIGINT, where a value past 2^63-1 is a record error; SQLite's date-time text with an
  offset becomes a timestamp of its UTC instant.
- into MariaDB: NaN and ±Infinity are record errors, -0.0 becomes 0.0; a decimal of a column
  without a declared precision (PostgreSQL NUMERIC, SQLite) goes into DECIMAL(65, 30): more
  than 30 places or 35 integer digits is a record error; a date-time with an offset becomes
  DATETIME(6) of its UTC instant.
- UUIDs go into text on engines without a UUID type (SQLAlchemy's `Uuid` on SQLite is CHAR(32)
  hex text, and stays that text).

Then the same backup is restored into the database it came from, which must change nothing
(README: restoring the same file twice leaves the same database).

The strategies (tests/strategies.py) generate only what a source engine can hold, and leave
out the README's known limits: fractional seconds past a column's precision (MariaDB columns
are DATETIME(6) / TIME(6) here), PostgreSQL time 24:00, BC dates and infinity timestamps,
years outside Python's 1-9999 (in UTC too, for instants), MariaDB backticks in names, NUL in
PostgreSQL text and JSON, NaN and infinity in MariaDB's DOUBLE and NaN in SQLite's REAL, each
integer type's range, a bare JSON null (it reads back as SQL NULL), MariaDB TIME durations
beyond a day, an offset-keeping type on MariaDB (it has none), and UUIDs MariaDB's UUID type
refuses (only version 4 there). They also steer clear of the defects below, each shown by an
explicit xfail test at the end of this module.

Damaged files: a small valid backup gets 1-3 generated edits (byte flips, truncation, a line
deleted or duplicated, a value replaced by one of another JSON type, a key renamed, a metadata
count changed or made to match; gzip or not) and is restored into a SQLite database. Either a
BackupFileError or ValidationError naming the file is raised and the database is unchanged,
or the restore completes, every record of the file it lacks is named in its errors, every row
it wrote is a record of the file, and every record the damage did not touch is there as the
undamaged file restores it. Any other exception, or a restore past 60 s, is a failure.

Defects found: fixed, each kept as a plain test at the end - PostgreSQL times with
10000-99999 microseconds were written ten times too long; a keyless MariaDB table of doubles
only could not be restored into once it held rows; a PostgreSQL NUMERIC wider than 65 digits
aborted a restore into MariaDB; a parent record whose key is an array or object crashed the
restore (TypeError); a null key got an invented id in a table rowvault creates on SQLite. Still
open, each a strict xfail test at the end and kept out of the generated data or relaxed in the
check at the place that says so: a bare-number JSON document loses digits in SQLite; JSON in
another spelling than orjson's adds a keyless row, or counts a row updated, when restored into
its source (so does a SQLite JSON REAL with an exponent); a key twice in a file (1 and true are
one key) counts two created rows, the later replacing the earlier unreported.

Runs are deterministic (`derandomize`, no example database) and bounded; a summary of the
cases and rows compared is printed at the end of the module.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import shutil
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rowvault
from rowvault import BackupFileError, ValidationError

from .backupfiles import Tables, read_backup, write_backup
from .dbdump import rows, run
from .strategies import Case, Col, Damage, cases, damaged, damages, insert_type, source_type

ENGINES = ("sqlite", "postgresql", "mysql")
EXAMPLES = {"sqlite": 30, "postgresql": 30, "mysql": 30}
"""Examples per source engine; each is restored into all three engines (3 pairs)."""
DAMAGE_EXAMPLES = 250
FIGURES: Counter[str] = Counter()
_numbers = itertools.count(1)


def bounded(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


@pytest.fixture(scope="module", autouse=True)
def figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print what the module compared, once, at its end."""
    yield
    pairs = sorted(k.removeprefix("examples ") for k in FIGURES if k.startswith("examples "))
    lines = [
        f"{pair}: {FIGURES['examples ' + pair]} examples, {FIGURES['rows ' + pair]} rows compared,"
        f" {FIGURES['refused ' + pair]} of them refused as documented"
        for pair in pairs
    ]
    lines.append(
        f"restored into their source: {FIGURES['again']} unchanged,"
        f" {FIGURES['again skipped']} left out (known defects)"
    )
    lines.append(
        f"damaged files: {FIGURES['damaged']} ({FIGURES['damaged refused']} refused,"
        f" {FIGURES['damaged restored']} restored, {FIGURES['damaged records']} records accounted for)"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even when the tests pass
            reporter.write_line("")
            for line in lines:
                reporter.write_line(f"[properties] {line}")


# -- the databases ----------------------------------------------------------------------------


@dataclass
class Databases:
    """One server database per engine and role for a whole test function (Hypothesis runs
    every example inside it); SQLite gets new files per example. Engines are kept for the
    test's own reads and writes; rowvault is always given the URL."""

    make_db: Callable[[str], str]
    folder: Path
    urls: dict[tuple[str, str], str] = field(default_factory=dict)
    engines: dict[str, sa.Engine] = field(default_factory=dict)

    def url(self, engine: str, role: str, number: int) -> str:
        if engine == "sqlite":
            return f"sqlite:///{self.folder / f'{role}{number}.db'}"
        if (engine, role) not in self.urls:
            self.urls[engine, role] = self.make_db(engine)
        return self.urls[engine, role]

    def engine(self, url: str) -> sa.Engine:
        if url.startswith("sqlite"):
            return sa.create_engine(url, poolclass=sa.pool.NullPool)
        if url not in self.engines:
            self.engines[url] = sa.create_engine(url)
        return self.engines[url]

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


@pytest.fixture
def databases(make_db: Callable[[str], str], tmp_path: Path) -> Iterator[Databases]:
    found = Databases(make_db, tmp_path)
    yield found
    found.close()


def create(db: sa.Engine, engine: str, case: Case) -> None:
    columns = [
        sa.Column(c.name, source_type(c, engine), primary_key=c.key, nullable=c.nullable, autoincrement=False)
        for c in case.columns
    ]
    loading = sa.Table(
        case.table, sa.MetaData(), *(sa.Column(c.name, insert_type(c, engine)) for c in case.columns)
    )
    with db.begin() as conn:
        sa.Table(case.table, sa.MetaData(), *columns).create(conn)
        if case.rows:
            names = [c.name for c in case.columns]
            conn.execute(loading.insert(), [dict(zip(names, row, strict=True)) for row in case.rows])


def drop(db: sa.Engine, table: str) -> None:
    with db.begin() as conn:
        sa.Table(table, sa.MetaData()).drop(conn, checkfirst=True)


def read(db: sa.Engine, engine: str, case: Case) -> list[tuple[Any, ...]]:
    """The table's rows as the driver hands them out (no SQLAlchemy type processing); JSON on
    PostgreSQL as its text."""
    table = sa.Table(case.table, sa.MetaData(), *(sa.Column(c.name) for c in case.columns))
    picks = [
        sa.cast(table.c[c.name], sa.Text) if engine == "postgresql" and c.kind == "json" else table.c[c.name]
        for c in case.columns
    ]
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*picks)).fetchall()]


# -- what a value should come back as ---------------------------------------------------------

EXACT = Context(prec=1000)
"""Decimal arithmetic that never rounds (normalize() rounds to 28 digits by default)."""


@dataclass(frozen=True)
class Refused:
    reason: str


def clock(value: timedelta) -> time:
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    seconds, fraction = divmod(micros, 1_000_000)
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60, fraction)


def json_value(text: Any) -> Any:
    """JSON compared as JSON: every digit kept, an integer is not a float, keys unordered."""
    if not isinstance(text, str):
        text = json.dumps(text)

    def refuse(word: str) -> Any:
        raise ValueError(word)

    return _frozen(json.loads(text, parse_float=lambda s: ("float", Decimal(s)), parse_constant=refuse))


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _frozen(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("array", tuple(_frozen(v) for v in value))
    return value


def number(value: Any) -> str:
    d = Decimal(str(value))
    return "0" if d == 0 else str(d.normalize(EXACT))


def moment(value: Any) -> tuple[str, bool]:
    """A date-time as (its UTC instant, or its naive value; whether it had an offset)."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if parsed.tzinfo is None:
        return parsed.isoformat(timespec="microseconds"), False
    return parsed.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds"), True


def portable(col: Col, value: Any) -> Any:
    """A value as it compares across engines: each driver hands out its own Python types (a
    BOOL as 1, TIME as timedelta, SQLite's text), the value itself must match."""
    if value is None:
        return None
    kind = col.kind
    if kind in ("datetime", "datetimetz"):
        return moment(value)
    if kind == "time":
        if isinstance(value, timedelta):
            value = clock(value)
        elif isinstance(value, str):
            value = time.fromisoformat(value)
        return value.isoformat(timespec="microseconds")
    if kind == "date":
        return value.isoformat() if isinstance(value, date) else value
    convert: dict[str, Callable[[Any], Any]] = {
        "int": int,
        "bool": bool,
        "float": lambda v: repr(float(v)),
        "decimal": number,
        "bytes": bytes,
        "uuid": str,
        "json": json_value,
    }
    return convert.get(kind, lambda v: v)(value)


def exact(col: Col, value: Any) -> Any:
    """Within one engine: the same Python value of the same type (JSON compared as JSON)."""
    if value is None:
        return None
    if col.kind == "json":
        return json_value(value)
    return (type(value).__name__, repr(value))


def fits_sqlite(value: Decimal) -> bool:
    """SQLite's NUMERIC holds a 64-bit integer or a double (README)."""
    if value == value.to_integral_value(context=EXACT) and -(2**63) <= value < 2**63:
        return True
    return Decimal(repr(float(value))) == value


def _places(value: Decimal) -> int:
    exponent = value.normalize(EXACT).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _whole_digits(value: Decimal) -> int:
    whole = abs(value.to_integral_value(rounding="ROUND_DOWN", context=EXACT))
    return len(str(whole)) if whole else 0


def refusal(col: Col, source: str, target: str, value: Any) -> str | None:
    """Why a value of `col` from `source` is a record error on `target` (README), or None."""
    kind = col.kind
    if target == "sqlite":
        if kind == "int" and not -(2**63) <= int(value) < 2**63:
            return "beyond SQLite's 64-bit range"
        if kind == "float" and math.isnan(value):
            return "NaN cannot be stored"
        if kind == "decimal" and not fits_sqlite(Decimal(str(value))):
            return "has more digits than SQLite keeps"
    if target == "postgresql":
        if kind == "text" and "\x00" in value:
            return "cannot contain NUL"
        if kind == "int" and col.key and col.unsigned and col.bits == 64 and value >= 2**63:
            return "out of range for type bigint"
    if target == "mysql":
        if kind == "float" and not math.isfinite(value):
            return "hold no NaN or infinity"
        if kind == "decimal" and (col.precision is None or source == "sqlite"):
            if _places(Decimal(str(value))) > 30:
                return "has more decimal places than the column's DECIMAL(65, 30) keeps (30)"
            if _whole_digits(Decimal(str(value))) > 35:
                return "Out of range"
    return None


def expected(col: Col, source: str, target: str, value: Any) -> Any:
    """What the target should hold for `value`, as `portable` or `exact` makes it, or Refused."""
    if value is None:
        return None
    if source == target:
        return exact(col, value)
    reason = refusal(col, source, target, value)
    if reason is not None:
        return Refused(reason)
    if col.kind == "float" and target in ("sqlite", "mysql") and value == 0:
        return "0.0"  # their REAL / DOUBLE store -0.0 as 0
    came = portable(col, value)
    if col.kind == "datetimetz":  # an instant: with an offset (+00:00) only where SQLite holds it
        return came[0], target == "sqlite" or (target == "postgresql" and source == "postgresql")
    return came


def observed(col: Col, source: str, target: str, value: Any) -> Any:
    return exact(col, value) if source == target else portable(col, value)


# -- the round trip ---------------------------------------------------------------------------


def short(rows: Counter[str]) -> list[str]:
    """Rows for a failure message: a few, each cut short."""
    return [text if len(text) < 300 else text[:297] + "..." for text in sorted(rows)[:5]]


def same_rows(where: str, kept: list[tuple[Any, ...]], got: list[tuple[Any, ...]], errors: list[str]) -> None:
    missing, extra = Counter(map(repr, kept)), Counter(map(repr, got))
    missing, extra = missing - extra, extra - missing
    assert not missing and not extra, (
        f"{where}: {len(kept)} rows expected, {len(got)} there; expected {short(missing)},"
        f" got {short(extra)}; errors {errors[:3]}"
    )


def check_target(
    case: Case, pair: tuple[str, str], want_rows: list[tuple[Any, ...]], got_rows: list[Any], result: Any
) -> None:
    """The target holds exactly the rows the README says, and each refused row is one record
    error that names it and says why."""
    source, target = pair
    where = f"{source} -> {target}, table {case.table!r}"
    assert result.status == "completed", (where, result.errors)
    cols = case.columns
    wanted = [
        tuple(expected(c, source, target, v) for c, v in zip(cols, row, strict=True)) for row in want_rows
    ]
    refused = [(i, row) for i, row in enumerate(wanted) if any(isinstance(v, Refused) for v in row)]
    kept = [row for row in wanted if not any(isinstance(v, Refused) for v in row)]
    got = [tuple(observed(c, source, target, v) for c, v in zip(cols, row, strict=True)) for row in got_rows]
    same_rows(where, kept, got, result.errors)
    errors = [m.split(" - ", 1) for m in result.errors]
    assert len(errors) == len(refused) == result.error_count, (where, result.errors, refused)
    for i, row in refused:
        reasons = [v.reason for v in row if isinstance(v, Refused)]
        named = errors
        if case.keyed:
            named = [m for m in errors if m[0] == f"{case.table}:{want_rows[i][0]}"]
            assert len(named) == 1, (where, row, result.errors)
        assert any(r in m[1] for r in reasons for m in named), (where, reasons, result.errors)
    FIGURES[f"examples {source} -> {target}"] += 1
    FIGURES[f"rows {source} -> {target}"] += len(wanted)
    FIGURES[f"refused {source} -> {target}"] += len(refused)


def known_defect_again(case: Case, engine: str) -> bool:
    """Restoring into the source trips a known defect (explicit xfail tests below)."""
    python_json = any(c.kind == "json" and c.spelling == "python" and not c.jsonb for c in case.columns)
    if python_json and not (engine == "postgresql" and case.keyed):
        return True  # test_json_text_in_another_spelling_...
    if engine == "sqlite" and any(
        _bare_number(c, row[i]) for row in case.rows for i, c in enumerate(case.columns)
    ):
        return True  # test_a_sqlite_json_number_with_an_exponent_...
    return engine == "mysql" and not case.keyed and all(c.kind == "float" for c in case.columns)


def _bare_number(col: Col, text: Any) -> bool:
    return col.kind == "json" and text is not None and type(json.loads(text)) in (int, float)


def check_again(
    db: sa.Engine, engine: str, case: Case, want_rows: list[tuple[Any, ...]], backup: Path
) -> None:
    """Restoring the backup into the database it came from changes nothing."""
    if known_defect_again(case, engine):
        FIGURES["again skipped"] += 1
        return
    url = db.url.render_as_string(hide_password=False)
    again = rowvault.restore(url, backup)
    where = f"{engine} -> the same {engine} database, table {case.table!r}"
    assert again.status == "completed" and again.errors == [], (where, again.errors)
    written = again.tables[case.table]
    assert (written.created, written.updated) == (0, 0), (where, written)
    cols = case.columns
    same_rows(
        where,
        [tuple(exact(c, v) for c, v in zip(cols, r, strict=True)) for r in want_rows],
        [tuple(exact(c, v) for c, v in zip(cols, r, strict=True)) for r in read(db, engine, case)],
        [],
    )
    FIGURES["again"] += 1


def round_trip(databases: Databases, source: str, case: Case, gz: bool) -> None:
    number = next(_numbers)
    case = replace(case, table=f"t{number}_{case.table}")
    source_db = databases.engine(databases.url(source, "source", number))
    backup = databases.folder / f"backup{number}.json{'.gz' if gz else ''}"
    create(source_db, source, case)
    try:
        want_rows = read(source_db, source, case)
        rowvault.backup(databases.url(source, "source", number), backup)
        for target in ENGINES:
            target_url = databases.url(target, "target", number)
            target_db = databases.engine(target_url)
            rows_url = databases.url(target, "rows", number)
            rows_db = databases.engine(rows_url)
            try:
                result = rowvault.restore(target_url, backup)
                got = read(target_db, target, case)
                check_target(case, (source, target), want_rows, got, result)
                # the row path alone (columnar=False) stores the very same values and counts
                by_rows = rowvault.restore(rows_url, backup, columnar=False)
                by_row_path = sorted(map(repr, read(rows_db, target, case)))
                assert by_row_path == sorted(map(repr, got)), f"{source} -> {target}: the two paths differ"
                assert [t.to_dict() for t in by_rows.tables.values()] == [
                    t.to_dict() for t in result.tables.values()
                ]
            finally:
                drop(target_db, case.table)
                drop(rows_db, case.table)
        check_again(source_db, source, case, want_rows, backup)
    finally:
        drop(source_db, case.table)
        backup.unlink(missing_ok=True)


@pytest.mark.parametrize("source", ENGINES)
def test_generated_tables_round_trip_into_every_engine(databases: Databases, source: str) -> None:
    @bounded(EXAMPLES[source])
    @given(case=cases(source), gz=st.booleans())
    def run(case: Case, gz: bool) -> None:
        round_trip(databases, source, case, gz)

    run()


# -- damaged files ----------------------------------------------------------------------------

GOOD_SCHEMA = [
    "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, born DATE, score REAL,"
    " data BLOB, flag BOOLEAN, amount NUMERIC(10, 2), doc JSON, at DATETIME)",
    "CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents (id), note TEXT)",
    "CREATE TABLE notes (body TEXT, n INTEGER)",
]
GOOD_ROWS = {
    "parents": [
        (
            i,
            f"p{i} ü🦉",
            f"2024-0{i}-1{i}",
            i / 4,
            bytes([i, 0, 255]),
            i % 2,
            f"{i}.5{i}",
            json.dumps({"k": [i, "v"]}),
            f"2024-01-0{i} 10:00:0{i}.12345{i}",
        )
        for i in range(1, 7)
    ],
    "children": [(10 + i, 1 + i % 6, f"c{i}" if i % 3 else None) for i in range(8)],
    "notes": [("same", 1), ("same", 1), ("other", None), (None, 2)],
}
KEYS = {"parents": "id", "children": "id"}
REFUSED = (BackupFileError, ValidationError)
"""What a damaged file may end in instead of a restore: it is not a readable backup, or it does
not fit the database (both name the file)."""


@dataclass(frozen=True)
class GoodBackup:
    lines: list[bytes]
    metadata: dict[str, Any]
    records: dict[str, list[Any]]
    """The records of each table, as JSON."""
    restored: dict[str, list[tuple[Any, ...]]]
    """Each table as the undamaged file restores it into an empty SQLite database."""
    target: Path
    """An empty-of-these-tables SQLite database (a bystander table with a row), copied per example."""


def stored(path: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row with the storage class of each value (SQLite)."""
    conn = sqlite3.connect(path)
    try:
        names = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        picks = ", ".join(f'"{n}", typeof("{n}")' for n in names)
        return [tuple(r) for r in conn.execute(f'SELECT {picks} FROM "{table}"')]
    finally:
        conn.close()


def snapshot(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> GoodBackup:
    folder = tmp_path_factory.mktemp("good")
    source = folder / "source.db"
    conn = sqlite3.connect(source)
    for statement in GOOD_SCHEMA:
        conn.execute(statement)
    for table, values in GOOD_ROWS.items():
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(values[0]))})", values)
    conn.commit()
    conn.close()
    backup = folder / "good.json"
    rowvault.backup(source, backup)
    target = folder / "target.db"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE bystander (id INTEGER PRIMARY KEY, what TEXT)")
    conn.execute("INSERT INTO bystander VALUES (1, 'must stay as it is')")
    conn.commit()
    conn.close()
    restored = folder / "restored.db"
    shutil.copy(target, restored)
    assert rowvault.restore(restored, backup).success
    document = json.loads(backup.read_bytes())
    records = {t: v for t, v in document.items() if t != "metadata"}
    return GoodBackup(
        backup.read_bytes().split(b"\n"),
        document["metadata"],
        records,
        {t: stored(restored, t) for t in records},
        target,
    )


# -- judging the outcome


def within(seconds: int, run: Callable[[], Any]) -> Any:
    """`run()` on a thread that must finish within `seconds` (a hang is a failure; signals are
    left to pytest-timeout)."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = run()
        except BaseException as exc:  # handed to the caller as it is
            outcome["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the restore did not finish within {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


BROKEN = object()
"""A record line that is not a JSON object."""


@dataclass
class FileView:
    """A damaged file as another reader sees rowvault's line layout: its metadata (None if
    that line does not parse) and each table's records, BROKEN where a line does not parse."""

    metadata: Any
    tables: dict[str, list[Any]]


def _record(line: bytes) -> Any:
    try:
        record = orjson.loads(line.removesuffix(b","))
    except orjson.JSONDecodeError:
        return BROKEN
    return record if isinstance(record, dict) else BROKEN


def read_view(data: bytes) -> FileView:
    """Raises AssertionError for a file that no reader would take as a backup."""
    try:
        text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError) as exc:
        raise AssertionError(f"a file that does not gunzip was restored ({exc})") from exc
    lines = text.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    head = b'{"metadata":'
    assert lines[0].startswith(head), f"restored a file whose first line is {lines[0][:80]!r}"
    try:
        metadata = orjson.loads(lines[0][len(head) :].removesuffix(b","))
    except orjson.JSONDecodeError:
        metadata = None
    tables: dict[str, list[Any]] = {}
    current: list[Any] | None = None
    for line in lines[1:]:
        if line.endswith(b":["):
            try:
                current = tables.setdefault(orjson.loads(line[:-2]), [])
            except (orjson.JSONDecodeError, TypeError) as exc:
                raise AssertionError(f"restored a file with the table line {line[:80]!r}") from exc
        elif line in (b"]", b"],"):
            current = None
        elif current is not None:
            current.append(_record(line))
        else:  # rowvault reads past white space there, \v and \f too
            assert line.strip() in (b"}", b""), (
                f"restored a file with the line {line[:80]!r} outside any table"
            )
    return FileView(metadata, tables)


def _without_counts(metadata: Any) -> Any:
    if not isinstance(metadata, dict) or not isinstance(metadata.get("tables"), dict):
        return metadata
    tables = {
        name: {k: v for k, v in table.items() if k != "count"} if isinstance(table, dict) else table
        for name, table in metadata["tables"].items()
    }
    return {**metadata, "tables": tables, "createdAt": None}


def _key_twice(table: str, records: list[Any]) -> bool:
    """Whether two records of the file have the same key as rowvault reads it (1 and true)."""
    keys = [as_key(r.get("id")) for r in records if r is not BROKEN]
    keys = [k for k in keys if k is not None]
    return table in KEYS and len(set(keys)) < len(keys)


def _names(result: Any, tables: dict[str, list[Any]]) -> dict[str, list[str]]:
    """The record each error names (`table:name - reason`), by table; every error must name
    a table of the file and give a reason."""
    found: dict[str, list[str]] = {}
    for message in result.errors:
        table = max((t for t in tables if message.startswith(f"{t}:")), key=len, default=None)
        assert table is not None and " - " in message, f"an error that names no table of the file: {message}"
        found.setdefault(table, []).append(message[len(table) + 1 :].split(" - ", 1)[0])
    return found


def check_restored(good: GoodBackup, data: bytes, target: Path, result: Any) -> None:
    """A completed restore of a damaged file: what it lacks is reported, what it wrote came
    from the file, and what the damage left alone came back as the undamaged file restores."""
    assert result.status == "completed", result.errors
    view = read_view(data)
    metadata_kept = _without_counts(view.metadata) == _without_counts(good.metadata)
    named = _names(result, view.tables)
    for table, records in view.tables.items():
        there = stored(target, table)
        done = result.tables[table]
        assert done.processed == len(records), (table, done, len(records))
        assert done.created + done.updated + done.unchanged + done.failed == done.processed, (table, done)
        assert done.failed == len(named.get(table, [])), (table, done, named.get(table))
        if not _key_twice(table, records):  # a defect otherwise: test_a_key_twice_in_a_file_...
            assert len(there) == done.created, (table, done, len(there))
        if table in KEYS and metadata_kept:
            _check_keyed(good, table, records, there, named.get(table, []))
        elif metadata_kept:
            clean = Counter(
                good.restored[table][good.records[table].index(r)]
                for r in records
                if r in good.records[table]
            )
            assert not clean - Counter(there), f"{table}: undamaged records missing: {clean - Counter(there)}"
        FIGURES["damaged records"] += len(records)
    assert stored(target, "bystander") == [(1, "integer", "must stay as it is", "text")]


def as_key(value: Any) -> int | None:
    """The integer a key value is read as: rowvault reads true, 12.0 and " 12" as integers."""
    if type(value) in (bool, int) or (type(value) is float and value.is_integer()):
        return int(value)
    if type(value) is str:
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _check_keyed(
    good: GoodBackup, table: str, records: list[Any], there: list[tuple[Any, ...]], named: list[str]
) -> None:
    """Every record is a row (the last one of its key wins) or an error that names it (by its
    key as the file spells it, or by its position); no row comes from elsewhere."""
    rows = {row[0]: row for row in there}
    original = {r["id"]: r for r in good.records[table]}
    restored = {r[0]: r for r in good.restored[table]}
    ids = [r.get("id") if r is not BROKEN else BROKEN for r in records]
    keys = [as_key(v) for v in ids]
    unnamed = 0
    for position, (record, value, key) in enumerate(zip(records, ids, keys, strict=True)):
        if key is not None and key in rows:
            if type(value) is int and original.get(value) == record and keys.count(key) == 1:  # left alone
                assert rows[key] == restored[key], (table, rows[key], restored[key])
            continue
        if type(value) in (int, str):
            assert str(value) in named or f"#{position + 1}" in named, (
                f"{table}: record #{position + 1} {record!r} is neither there nor reported ({named})"
            )
        else:
            unnamed += 1
        if type(value) is int and original.get(value) == record and table != "children":
            raise AssertionError(f"{table}: the undamaged record {record!r} was not restored")
    assert unnamed <= len(named), (table, unnamed, named)
    assert set(rows) <= set(keys), f"{table}: rows {set(rows) - set(keys)} are not records of the file"


def restore_damaged(good: GoodBackup, damage: Damage, folder: Path) -> None:
    number = next(_numbers)
    path = folder / f"damaged{number}.json{'.gz' if damage.gzip else ''}"
    path.write_bytes(damaged(good.lines, damage))
    target = folder / f"target{number}.db"
    shutil.copy(good.target, target)
    before = snapshot(target)
    FIGURES["damaged"] += 1
    try:
        result = within(60, lambda: rowvault.restore(target, path))
    except REFUSED as exc:
        assert path.name in str(exc), exc
        assert snapshot(target) == before, f"refused ({exc}), but the database changed"
        FIGURES["damaged refused"] += 1
        return
    check_restored(good, path.read_bytes(), target, result)
    FIGURES["damaged restored"] += 1


def test_damaged_files_end_in_a_clear_error_or_a_correct_partial_restore(
    good: GoodBackup, tmp_path: Path
) -> None:
    @bounded(DAMAGE_EXAMPLES)
    @given(damage=damages())
    def run(damage: Damage) -> None:
        restore_damaged(good, damage, tmp_path)

    run()


# -- defects the properties found: each fails today (strict xfail) ----------------------------


def insert(url: str, sql: str, **values: Any) -> None:
    """One statement with bound values (MariaDB would read a backslash in SQL text as an escape)."""
    db = sa.create_engine(url)
    with db.begin() as conn:
        conn.execute(sa.text(sql), values)
    db.dispose()


def _parents_and_children(tmp_path: Path, edit: Callable[[Tables], None]) -> Path:
    """A backup of parents (1, 2) and children (10 -> 1, 11 -> 2), edited by `edit`."""
    source = f"sqlite:///{tmp_path / 'family.db'}"
    run(
        source,
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents (id))",
        "INSERT INTO parents VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO children VALUES (10, 1), (11, 2)",
    )
    rowvault.backup(source, tmp_path / "family.json")
    metadata, tables = read_backup(tmp_path / "family.json")
    edit(tables)
    return write_backup(tmp_path / "edited.json", metadata, tables)


def test_a_postgresql_time_with_hundredths_of_a_second_round_trips(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("postgresql"), make_db("postgresql")
    run(
        source,
        "CREATE TABLE clocks (id int PRIMARY KEY, at time)",
        "INSERT INTO clocks VALUES (1, '00:00:00.01'), (2, '12:30:00.099999')",
    )
    rowvault.backup(source, tmp_path / "clocks.json")

    assert rowvault.restore(target, tmp_path / "clocks.json").success
    assert rows(target, "SELECT id, at FROM clocks ORDER BY id") == [
        (1, time(0, 0, 0, 10000)),
        (2, time(12, 30, 0, 99999)),
    ]


@pytest.mark.xfail(
    strict=True,
    reason="the JSON column rowvault creates on SQLite is declared JSON, which has NUMERIC "
    "affinity: a document that is a bare number is stored as a number, so "
    "12345678901234567890123 becomes 1.2345678901234568e+22 and 1e400 Infinity, silently",
)
def test_a_json_document_that_is_a_bare_number_keeps_its_digits_in_sqlite(
    make_db: Any, tmp_path: Path
) -> None:
    source, target = make_db("postgresql"), make_db("sqlite")
    run(
        source,
        "CREATE TABLE docs (id int PRIMARY KEY, doc json)",
        "INSERT INTO docs VALUES (1, '12345678901234567890123'), (2, '1e400')",
    )
    rowvault.backup(source, tmp_path / "docs.json")

    assert rowvault.restore(target, tmp_path / "docs.json").success
    assert rows(target, "SELECT id, doc FROM docs ORDER BY id") == [
        (1, "12345678901234567890123"),
        (2, "1e400"),
    ]


@pytest.mark.xfail(
    strict=True,
    reason="a keyless table's rows are matched on their JSON text as the engine compacts it, "
    "so JSON that an application wrote in another spelling than orjson's (\\u00fc, 1E16, 1.50, "
    "\\/; on PostgreSQL json any spacing) is not found, and restoring the backup into the "
    "database it came from adds a second copy of the row",
)
@pytest.mark.parametrize("kind", ENGINES)
def test_json_text_in_another_spelling_restored_into_its_source_adds_no_keyless_row(
    make_db: Any, kind: str, tmp_path: Path
) -> None:
    url = make_db(kind)
    run(url, "CREATE TABLE events (doc JSON)")
    insert(url, "INSERT INTO events VALUES (:doc)", doc='{"a": "\\u00fc"}')
    rowvault.backup(url, tmp_path / "events.json")

    again = rowvault.restore(url, tmp_path / "events.json")

    assert again.success and again.tables["events"].created == 0
    assert len(rows(url, "SELECT * FROM events")) == 1


@pytest.mark.xfail(
    strict=True,
    reason="on SQLite and MariaDB a JSON document is compared as its compacted text, so one "
    "written with \\u escapes counts as changed: restoring the backup into the database it came "
    "from rewrites the row and reports it updated",
)
@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_json_text_with_escapes_restored_into_its_source_is_unchanged(
    make_db: Any, kind: str, tmp_path: Path
) -> None:
    url = make_db(kind)
    run(url, "CREATE TABLE docs (id INTEGER PRIMARY KEY, doc JSON)")
    insert(url, "INSERT INTO docs VALUES (1, :doc)", doc='{"a": "\\u00fc"}')
    rowvault.backup(url, tmp_path / "docs.json")

    again = rowvault.restore(url, tmp_path / "docs.json")

    assert (again.tables["docs"].updated, again.tables["docs"].unchanged) == (0, 1)
    assert rows(url, "SELECT doc FROM docs") == [('{"a": "\\u00fc"}',)]


def test_a_keyless_mariadb_table_of_doubles_restores_into_its_source(make_db: Any, tmp_path: Path) -> None:
    url = make_db("mysql")
    run(url, "CREATE TABLE readings (v DOUBLE)", "INSERT INTO readings VALUES (1.5)")
    rowvault.backup(url, tmp_path / "readings.json")

    again = rowvault.restore(url, tmp_path / "readings.json")

    assert again.success and again.tables["readings"].unchanged == 1


def test_a_parent_key_that_is_a_list_is_a_record_error(tmp_path: Path) -> None:
    backup = _parents_and_children(tmp_path, lambda t: t["parents"][1].update(id=[2]))
    target = tmp_path / "target.db"

    result = rowvault.restore(target, backup)

    assert result.status == "completed" and len(result.errors) == 2  # the parent, its child
    assert rows(f"sqlite:///{target}", "SELECT id FROM parents") == [(1,)]


@pytest.mark.xfail(
    strict=True,
    reason="into a table it creates, rowvault counts every record of a key that is twice in "
    "the file (also 1 and true, which it reads as 1) as created, and the later record replaces "
    "the earlier one unreported: the result says 3 created for 2 rows",
)
def test_a_key_twice_in_a_file_counts_the_rows_created(tmp_path: Path) -> None:
    backup = _parents_and_children(tmp_path, lambda t: t["parents"].append({"id": 1, "name": "z"}))
    target = tmp_path / "target.db"

    result = rowvault.restore(target, backup)

    assert len(rows(f"sqlite:///{target}", "SELECT * FROM parents")) == 2
    assert result.tables["parents"].created == 2


def test_a_key_that_is_null_is_a_record_error_in_a_new_table(tmp_path: Path) -> None:
    backup = _parents_and_children(tmp_path, lambda t: t["parents"][0].update(id=None))

    result = rowvault.restore(tmp_path / "target.db", backup)

    assert result.errors[:1] == ["parents:#1 - column 'id' must not be empty"]


def test_a_postgresql_numeric_wider_than_65_digits_restores_into_mariadb(
    make_db: Any, tmp_path: Path
) -> None:
    source, target = make_db("postgresql"), make_db("mysql")
    run(
        source,
        "CREATE TABLE prices (id int PRIMARY KEY, amount numeric(70, 2))",
        "INSERT INTO prices VALUES (1, 1.5)",
    )
    rowvault.backup(source, tmp_path / "prices.json")

    assert rowvault.restore(target, tmp_path / "prices.json").success
    assert rows(target, "SELECT amount FROM prices") == [(Decimal("1.50"),)]


@pytest.mark.xfail(
    strict=True,
    reason="SQLite keeps a JSON document that is a bare number as a REAL (NUMERIC affinity); one "
    "whose text has an exponent (1e300) compares unequal to itself through json(), so each "
    "restore into the database it came from rewrites it and reports it updated",
)
def test_a_sqlite_json_number_with_an_exponent_restored_into_its_source_is_unchanged(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'docs.db'}"
    run(url, "CREATE TABLE docs (id INTEGER PRIMARY KEY, doc JSON)", "INSERT INTO docs VALUES (1, '1e300')")
    rowvault.backup(url, tmp_path / "docs.json")

    again = rowvault.restore(url, tmp_path / "docs.json")

    assert (again.tables["docs"].updated, again.tables["docs"].unchanged) == (0, 1)
